"""Mixed models with crossed random intercepts (participants x items), fitted as lme4 fits them.

    lmm(y, X, groups)     lmer(y ~ 0 + X + (1 | g1) + (1 | g2), REML = TRUE)
    glmm(y, X, groups)    glmer(y ~ 0 + X + (1 | g1) + (1 | g2), family = binomial)   (Laplace, nAGQ = 1)

`groups` is a list of one or two grouping factors (participant, item), one label per row; every
row has one level of each (crossed or partly crossed, any balance). Both models use lme4's
parameterisation (Bates et al. 2015, "Fitting linear mixed-effects models using lme4", J. Stat.
Softw. 67(1)): b = Lambda u with u ~ N(0, I) and Lambda = diag(theta_1 I, theta_2 I), so the
random-effect SDs are theta (GLMM) or theta * sigma (LMM).

Linear mixed model (REML)
    For a given theta the penalised least-squares problem
    min ||y - X beta - Z Lambda u||^2 + ||u||^2 is solved exactly; with L L' = Lambda'Z'Z Lambda + I,
    R_X the Cholesky factor of the fixed-effects block after eliminating u, and r^2 the minimum,
    the profiled REML criterion is
        log|L|^2 + log|R_X|^2 + (n - p) (1 + log(2 pi r^2 / (n - p)))        (lme4's REMLcrit)
    and is minimised over theta >= 0 (L-BFGS-B, then a bounded polish). vcov(beta) = sigma^2 (R_X'R_X)^-1
    with sigma^2 = r^2 / (n - p), as lme4's vcov for an LMM.
Logistic mixed model (Laplace approximation)
    For given (theta, beta) the conditional mode u* of u maximises log p(y | u) - ||u||^2 / 2
    (penalised IRLS = Newton's method with step halving; the binomial deviance with the logit link
    is concave in u). The Laplace deviance is
        -2 sum log p(y_i | eta_i*) + ||u*||^2 + log|L|^2,   L L' = Lambda'Z'W Z Lambda + I,
    W = mu (1 - mu) at u*: lme4's ``devfun`` of stage 2 (its ``-2 logLik``). It is minimised over
    (theta, beta) jointly, theta >= 0, by L-BFGS-B with the exact gradient (``value_and_grad``:
    envelope theorem at u* plus the derivative of log|L|^2 through W), then Newton steps on the
    interior parameters (lme4 optimises the same function, with Nelder-Mead).
    Standard errors as lme4's default for nAGQ >= 1 (``vcov.merMod``, use.hessian = TRUE): the
    Hessian H of the Laplace deviance in (theta, beta) by central finite differences with lme4's
    step (``deriv12``, delta = 1e-4, no bounds; lme4 differences the deviance, this module its exact
    gradient: the same H up to O(delta^2), 2m instead of 2m^2 + 1 evaluations), and
    vcov(beta) = 2 (H^-1)[beta, beta]: this accounts for the uncertainty in theta. If that matrix is not positive definite, lme4 falls back on R_X (the
    fixed-effects block of the penalised information at u*, theta held fixed); so does this module,
    and says so in ``cov_method``. The R_X covariance is returned too (``cov_rx``): it is smaller
    than the Hessian's by ~1-2% in the reference data, which is why the choice matters.

Singular fits (an SD estimated as 0: lme4's ``isSingular``, theta < 1e-4) and convergence
(lme4's ``checkConv`` rule: the Newton step H^-1 g over the interior parameters below 2e-3) are
returned, never hidden.

Speed: the random-effects system is never formed densely. The larger factor (participants) gives a
diagonal block, eliminated first; what remains is the smaller factor (items) plus the fixed effects,
a small dense matrix. One Laplace deviance costs O(n + q1 q2^2), and a fit takes ~55 of them: 60
participants x 20 items fit in 0.05 s, 1,000 in 0.3 s and 10,000 in 3.2 s on 2 cores with a load
of 3 (0.2 s, 1.0 s and 8.7 s with a load of 7; benchmarks/bench_analysis.py --glmm-only). Long dot
products avoid BLAS and the fits run with BLAS on one thread (threadpoolctl, when installed): on a
busy machine a threaded BLAS ddot of 20,000 numbers took 20 ms.

Pinned to R: tests/reference/trial_models_reference.R fits these models with lme4 and
tests/test_analysis_trial_models.py compares.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

SINGULAR_TOL = 1e-4        # lme4's isSingular(): theta below this on the boundary
GRAD_TOL = 2e-3            # lme4's checkConv: |H^-1 g| (the Newton step) below this
HESS_DELTA = 1e-4          # lme4's deriv12 step


@dataclass
class _Design:
    """Grouping codes and the sums of the design that do not depend on theta."""

    n: int
    p: int
    codes: list[np.ndarray]        # one code array per factor, factor 0 the larger (diagonal) one
    levels: list[np.ndarray]
    order: list[int]               # position of each factor in the caller's `groups`
    X: np.ndarray


def _design(X: np.ndarray, groups: list) -> _Design:
    X = np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    if not 1 <= len(groups) <= 2:
        raise ValueError("one or two grouping factors")
    codes, levels = [], []
    for g in groups:
        c, lv = pd.factorize(pd.Series(np.asarray(g)), sort=True)
        if (c < 0).any():
            raise ValueError("missing grouping level")
        codes.append(c.astype(np.int64))
        levels.append(np.asarray(lv))
    order = list(range(len(groups)))
    if len(groups) == 2 and len(levels[1]) > len(levels[0]):
        order = [1, 0]
    return _Design(len(X), X.shape[1], [codes[i] for i in order], [levels[i] for i in order], order, X)


def _sums(d: _Design, w: np.ndarray, with_x: bool):
    """Lambda-free pieces of Z'WZ (and Z'WX, X'WX): a1 (q1), a2 (q2), C (q1 x q2), Z1'WX, Z2'WX, X'WX."""
    c1 = d.codes[0]
    q1 = len(d.levels[0])
    a1 = np.bincount(c1, weights=w, minlength=q1)
    out = {"a1": a1}
    if len(d.codes) == 2:
        c2 = d.codes[1]
        q2 = len(d.levels[1])
        out["a2"] = np.bincount(c2, weights=w, minlength=q2)
        out["C"] = np.bincount(c1 * q2 + c2, weights=w, minlength=q1 * q2).reshape(q1, q2)
    if with_x:
        WX = d.X * w[:, None]
        out["Z1X"] = np.stack([np.bincount(c1, weights=WX[:, j], minlength=q1) for j in range(d.p)], axis=1)
        if len(d.codes) == 2:
            out["Z2X"] = np.stack([np.bincount(d.codes[1], weights=WX[:, j], minlength=len(d.levels[1]))
                                   for j in range(d.p)], axis=1)
        out["XX"] = np.array([[float((d.X[:, a] * WX[:, b]).sum()) for b in range(d.p)] for a in range(d.p)])
    return out


def _system(s: dict, theta: np.ndarray, with_x: bool):
    """The penalised system [Lambda'Z'WZ Lambda + I, Lambda'Z'WX; ., X'WX] after eliminating the diagonal
    factor: returns d1 (its diagonal), B (q1 x m, its coupling to the rest) and S (m x m, the Schur
    complement over [u2, beta] or [u2] or [beta])."""
    t1 = theta[0]
    d1 = t1 * t1 * s["a1"] + 1.0
    blocks_b, diag = [], []
    two = "a2" in s
    if two:
        t2 = theta[1]
        blocks_b.append(t1 * t2 * s["C"])
    if with_x:
        blocks_b.append(t1 * s["Z1X"])
    B = np.hstack(blocks_b) if blocks_b else np.zeros((len(d1), 0))
    m = B.shape[1]
    D = np.zeros((m, m))
    if two:
        q2 = len(s["a2"])
        D[:q2, :q2] = np.diag(t2 * t2 * s["a2"] + 1.0)
        if with_x:
            D[:q2, q2:] = t2 * s["Z2X"]
            D[q2:, :q2] = D[:q2, q2:].T
            D[q2:, q2:] = s["XX"]
    elif with_x:
        D[:, :] = s["XX"]
    S = D - B.T @ (B / d1[:, None])
    return d1, B, S


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: on a loaded machine a threaded BLAS ddot of 20,000 numbers took 20 ms."""
    return float((a * b).sum())


def _xb(X: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """X beta column by column (no threaded BLAS gemv for a tall, thin X)."""
    out = X[:, 0] * beta[0]
    for j in range(1, X.shape[1]):
        out = out + X[:, j] * beta[j]
    return out


def _one_thread(fit):
    """Run `fit` with BLAS on one thread when threadpoolctl is there: the matrices here are small
    (q2 x q2, q1 x q2), and a multi-threaded BLAS on a busy machine spins instead of computing."""
    import functools

    @functools.wraps(fit)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return fit(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            return fit(*args, **kwargs)
    return wrapper


def _logdet(A: np.ndarray) -> float:
    if A.size == 0:
        return 0.0
    return 2.0 * float(np.log(np.diag(np.linalg.cholesky(A))).sum())


def _status(theta: np.ndarray, names: list[str]) -> str:
    zero = [n for n, t in zip(names, theta) if abs(t) < SINGULAR_TOL]
    return ("singular fit: " + ", ".join(zero) + " SD estimated as 0") if zero else ""


# -- linear mixed model ----------------------------------------------------------------------------

@_one_thread
def lmm(y, X, groups: list, names: list[str] | None = None) -> dict:
    """REML fit of y = X beta + sum_k Z_k b_k + e with one random intercept per grouping factor.

    Returns ``params`` (beta), ``cov`` (lme4's vcov), ``sd`` (random-effect SDs, in the order of
    `groups`), ``sigma`` (residual SD), ``theta`` (SD / sigma, in `groups` order), ``reml_criterion``
    (lme4's REMLcrit), ``converged``, ``singular`` (bool) and ``note`` (what is singular / did not
    converge), ``n_levels``."""
    y = np.asarray(y, float)
    d = _design(X, groups)
    names = names or [f"factor{i + 1}" for i in range(len(groups))]
    names = [names[i] for i in d.order]
    n, p = d.n, d.p
    s = _sums(d, np.ones(n), with_x=True)
    zy = [np.bincount(c, weights=y, minlength=len(lv)) for c, lv in zip(d.codes, d.levels)]
    xy, yy = (d.X * y[:, None]).sum(0), float((y * y).sum())
    k = len(d.codes)
    q2 = len(d.levels[1]) if k == 2 else 0

    def solve(theta):
        d1, B, S = _system(s, theta, with_x=True)
        r1 = theta[0] * zy[0]
        r2 = np.concatenate([theta[1] * zy[1], xy]) if k == 2 else xy
        cho = np.linalg.cholesky(S)
        rhs = r2 - B.T @ (r1 / d1)
        sol2 = np.linalg.solve(cho.T, np.linalg.solve(cho, rhs))
        sol1 = (r1 - B @ sol2) / d1
        pwrss = yy - r1 @ sol1 - r2 @ sol2
        ld_l = float(np.log(d1).sum()) + _logdet(S[:q2, :q2])
        ld_x = 2.0 * float(np.log(np.diag(cho)).sum()) - _logdet(S[:q2, :q2])
        return ld_l, ld_x, pwrss, sol2[q2:], S

    def crit(theta):
        ld_l, ld_x, pwrss, _, _ = solve(np.abs(theta))
        return ld_l + ld_x + (n - p) * (1 + np.log(2 * np.pi * pwrss / (n - p)))

    res = _minimise(crit, np.ones(k), k)
    theta = np.maximum(res.x, 0.0)
    ld_l, ld_x, pwrss, beta, S = solve(theta)
    sigma2 = pwrss / (n - p)
    cov = sigma2 * np.linalg.inv(S)[q2:, q2:]
    note = _status(theta, names)
    back = np.argsort(d.order)
    return {"params": beta, "cov": cov, "sd": (theta * np.sqrt(sigma2))[back], "sigma": float(np.sqrt(sigma2)),
            "theta": theta[back], "reml_criterion": float(crit(theta)), "converged": bool(res.success),
            "singular": bool(note), "note": note if res.success else "; ".join(
                x for x in (f"did not converge ({res.message})", note) if x),
            "n_levels": [len(d.levels[i]) for i in back], "n": n}


def _minimise(fun, x0: np.ndarray, k: int):
    """Bounded (theta >= 0) minimisation of a smooth criterion of k <= 2 parameters: L-BFGS-B, then
    Nelder-Mead from there (robust when the optimum is on the boundary or the gradient is flat), then
    L-BFGS-B once more to polish."""
    bounds = [(0.0, None)] * k
    r = optimize.minimize(fun, x0, method="L-BFGS-B", bounds=bounds,
                          options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
    r2 = optimize.minimize(lambda t: fun(np.abs(t)), np.maximum(r.x, 0.0), method="Nelder-Mead",
                           options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 400})
    x = np.abs(r2.x) if r2.fun < r.fun else r.x
    r3 = optimize.minimize(fun, x, method="L-BFGS-B", bounds=bounds,
                           options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
    best = min((r, r2, r3), key=lambda z: z.fun)
    best.x = np.abs(best.x)
    best.success = bool(r.success or r2.success or r3.success)
    return best


# -- logistic mixed model (Laplace) ------------------------------------------------------------------

class _Laplace:
    """The Laplace deviance of a binomial (logit) GLMM as a function of (theta, beta)."""

    def __init__(self, y: np.ndarray, d: _Design):
        self.y, self.d = y, d
        self.s = 2.0 * y - 1.0
        self.k = len(d.codes)
        self.q = [len(lv) for lv in d.levels]
        self.u = [np.zeros(q) for q in self.q]        # warm start of the conditional modes
        self.evals = 0

    def _eta(self, theta, beta, u):
        eta = _xb(self.d.X, beta)
        for t, c, uk in zip(theta, self.d.codes, u):
            eta = eta + t * uk[c]
        return eta

    def _dev(self, eta):
        """(-2 log p(y | eta), mu): one exp and one log1p per trial (y is 0/1, so the deviance term is
        log(1 + exp(-s eta)) with s = +-1, = max(-s eta, 0) + log1p(exp(-|eta|)))."""
        t = np.exp(-np.abs(eta))
        mu = np.where(eta >= 0, 1.0, t) / (1.0 + t)
        dev = 2.0 * float((np.maximum(-self.s * eta, 0.0) + np.log1p(t)).sum())
        return dev, mu

    def modes(self, theta, beta, tol: float = 1e-11, max_iter: int = 100):
        """Penalised IRLS for u* given (theta, beta); returns (u*, eta, weights, penalised deviance)."""
        u = [x.copy() for x in self.u]
        eta = self._eta(theta, beta, u)
        dev, mu = self._dev(eta)
        pdev = dev + sum(float(x @ x) for x in u)
        for _ in range(max_iter):
            w = mu * (1.0 - mu)
            r = self.y - mu
            s = _sums(self.d, w, with_x=False)
            d1, B, S = _system(s, theta, with_x=False)
            g = [theta[i] * np.bincount(self.d.codes[i], weights=r, minlength=self.q[i]) - u[i]
                 for i in range(self.k)]
            if self.k == 2:
                step2 = np.linalg.solve(S, g[1] - B.T @ (g[0] / d1))
                step = [(g[0] - B @ step2) / d1, step2]
            else:
                step = [g[0] / d1]
            size = max(float(np.abs(x).max()) if x.size else 0.0 for x in step)
            h = 1.0
            while True:
                un = [ui + h * si for ui, si in zip(u, step)]
                etan = self._eta(theta, beta, un)
                devn, mun = self._dev(etan)
                pn = devn + sum(float(x @ x) for x in un)
                if pn <= pdev + 1e-12 * abs(pdev) or h < 1e-10:
                    break
                h /= 2
            u, eta, pdev, mu = un, etan, pn, mun
            if size * h < tol:
                break
        return u, eta, mu * (1.0 - mu), pdev

    def deviance(self, par) -> float:
        theta, beta = np.asarray(par[:self.k], float), np.asarray(par[self.k:], float)
        self.evals += 1
        u, eta, w, pdev = self.modes(theta, beta)
        self.u = u
        d1, _, S = _system(_sums(self.d, w, with_x=False), theta, with_x=False)
        return pdev + float(np.log(d1).sum()) + _logdet(S)

    def value_and_grad(self, par) -> tuple[float, np.ndarray]:
        """The Laplace deviance and its exact gradient in (theta, beta).

        With A = Z Lambda, eta = X beta + A u, r = y - mu, w = mu (1 - mu), w' = w (1 - 2 mu), H = A'WA + I
        and u* the mode (where A'r = u): dD/dphi = df/dphi at fixed u (envelope: -2 X_j'r for beta_j,
        -2 (Z_k u_k)'r for theta_k) + tr(H^-1 dH/dphi). dH/dphi has a direct part for theta_k
        (2 tr(H^-1 (Z E_k)'W A)) and the change of W along d eta/dphi = d_phi eta - A H^-1 d_phi g,
        g = u - A'r, which contributes sum_i w'_i (d eta_i/dphi) a_i'H^-1 a_i. The per-trial pieces
        a_i'H^-1 a_i and (H^-1 a_i) at the trial's own levels need only diag(P11), P12 and diag(P22)
        of P = H^-1, from the same Schur complement as the modes."""
        theta, beta = np.asarray(par[:self.k], float), np.asarray(par[self.k:], float)
        self.evals += 1
        u, eta, w, pdev = self.modes(theta, beta)
        self.u = u
        d, k = self.d, self.k
        c = d.codes
        s_ = _sums(d, w, with_x=False)
        d1, B, S = _system(s_, theta, with_x=False)
        value = pdev + float(np.log(d1).sum()) + _logdet(S)
        mu = 1.0 / (1.0 + np.exp(-eta))
        r = self.y - mu
        wp = w * (1.0 - 2.0 * mu)
        t1 = theta[0]
        if k == 2:
            t2 = theta[1]
            Sinv = np.linalg.inv(S)
            G = B / d1[:, None]
            P12 = -G @ Sinv                                      # q1 x q2
            P11 = 1.0 / d1 - (G * P12).sum(1)                    # diag
            P22 = np.diag(Sinv)
            p12 = P12[c[0], c[1]]
            m1 = t1 * P11[c[0]] + t2 * p12                       # (H^-1 a_i) at the trial's participant
            m2 = t1 * p12 + t2 * P22[c[1]]                       # ... and at its item
            h = t1 * m1 + t2 * m2
            ms = [m1, m2]
        else:
            P11 = 1.0 / d1
            m1 = t1 * P11[c[0]]
            h = t1 * m1
            ms = [m1]

        def solve(v):                                             # H^-1 v, v = [v1, v2]
            if k == 2:
                x2 = np.linalg.solve(S, v[1] - B.T @ (v[0] / d1))
                return [(v[0] - B @ x2) / d1, x2]
            return [v[0] / d1]

        def at(v):                                                # A v per trial
            out = theta[0] * v[0][c[0]]
            for j in range(1, k):
                out = out + theta[j] * v[j][c[j]]
            return out

        def zt(x):                                                # A'x
            return [theta[j] * np.bincount(c[j], weights=x, minlength=self.q[j]) for j in range(k)]

        grad = np.zeros(k + d.p)
        wh = wp * h
        for j in range(k):
            uk = u[j][c[j]]                                       # d_theta_j eta at fixed u
            dg = [np.zeros(q) for q in self.q]
            dg[j] = -np.bincount(c[j], weights=r, minlength=self.q[j])
            dg = [a + b for a, b in zip(dg, zt(w * uk))]
            deta = uk - at(solve(dg))
            grad[j] = -2.0 * _dot(r, uk) + 2.0 * _dot(w, ms[j]) + _dot(wh, deta)
        for j in range(d.p):
            xj = d.X[:, j]
            deta = xj - at(solve(zt(w * xj)))
            grad[k + j] = -2.0 * _dot(r, xj) + _dot(wh, deta)
        return value, grad

    def cov_rx(self, theta, beta) -> np.ndarray:
        """(R_X'R_X)^-1: the fixed-effects block of the inverse penalised information at u*."""
        u, eta, w, _ = self.modes(theta, beta)
        d1, B, S = _system(_sums(self.d, w, with_x=True), theta, with_x=True)
        q2 = self.q[1] if self.k == 2 else 0
        return np.linalg.inv(S)[q2:, q2:]


def _glm_start(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Plain logistic regression (IRLS), the starting fixed effects; shrunk when it separates."""
    beta = np.zeros(X.shape[1])
    for _ in range(50):
        eta = np.clip(_xb(X, beta), -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        w = np.maximum(mu * (1 - mu), 1e-10)
        XtWX = np.array([[_dot(X[:, a] * w, X[:, b]) for b in range(X.shape[1])] for a in range(X.shape[1])])
        step = np.linalg.lstsq(XtWX, (X * (y - mu)[:, None]).sum(0), rcond=None)[0]
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return np.clip(beta, -10, 10)


def hessian(f, x: np.ndarray, fx: float, delta: float = HESS_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian by central differences, as lme4's ``deriv12`` (no bounds)."""
    x = np.asarray(x, float)
    k = len(x)
    H, g = np.zeros((k, k)), np.zeros(k)
    e = np.eye(k) * delta
    fp = [f(x + e[j]) for j in range(k)]
    fm = [f(x - e[j]) for j in range(k)]
    for j in range(k):
        H[j, j] = (fp[j] - 2 * fx + fm[j]) / delta ** 2
        g[j] = (fp[j] - fm[j]) / (2 * delta)
        for i in range(j):
            H[i, j] = H[j, i] = (f(x + e[i] + e[j]) - f(x + e[i] - e[j]) - f(x - e[i] + e[j])
                                 + f(x - e[i] - e[j])) / (4 * delta ** 2)
    return g, H


def hessian_from_gradient(grad, x: np.ndarray, delta: float = HESS_DELTA) -> np.ndarray:
    """Hessian by central differences of a gradient function (symmetrised), lme4's step and no bounds."""
    x = np.asarray(x, float)
    cols = []
    for j in range(len(x)):
        e = np.zeros(len(x))
        e[j] = delta
        cols.append((grad(x + e) - grad(x - e)) / (2 * delta))
    H = np.array(cols)
    return (H + H.T) / 2


@_one_thread
def glmm(y, X, groups: list, names: list[str] | None = None) -> dict:
    """Laplace ML fit of a logistic mixed model, logit P(y = 1) = X beta + sum_k b_k[group_k].

    Returns ``params`` (beta), ``cov`` (lme4's default vcov: 2 (H^-1)[beta, beta]), ``cov_rx``,
    ``cov_method`` ("hessian" or "RX (Hessian not positive definite)"), ``sd`` (random-effect SDs
    in `groups` order; = theta), ``loglik`` (lme4's logLik: -deviance / 2), ``deviance``,
    ``converged``, ``singular``, ``note``, ``n_levels``, ``evals`` (deviance evaluations)."""
    y = np.asarray(y, float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1")
    d = _design(X, groups)
    names = names or [f"factor{i + 1}" for i in range(len(groups))]
    names = [names[i] for i in d.order]
    k, p = len(d.codes), d.p
    lap = _Laplace(y, d)
    beta0 = _glm_start(y, d.X)
    f = lap.deviance
    vg = lap.value_and_grad
    bounds = [(0.0, None)] * k + [(None, None)] * p
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x0 = np.concatenate([np.full(k, 0.5), beta0])
        r = optimize.minimize(vg, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 1000})
        x = r.x.copy()
        # Newton polish on the interior parameters (theta at 0 stays there): the optimum itself, not
        # where L-BFGS-B's line search stopped
        fx, gvec = vg(x)
        for _ in range(10):
            free = np.ones(len(x), bool)
            free[:k] = x[:k] > SINGULAR_TOL
            H = hessian_from_gradient(lambda z: vg(z)[1], x)
            Hf = H[np.ix_(free, free)]
            try:
                if not np.all(np.linalg.eigvalsh(Hf) > 0):
                    break
                step = np.linalg.solve(Hf, gvec[free])
            except np.linalg.LinAlgError:
                break
            h = 1.0
            while h > 1e-4:
                xn = x.copy()
                xn[free] -= h * step
                xn[:k] = np.maximum(xn[:k], 0.0)
                fn, gn = vg(xn)
                if fn <= fx:
                    break
                h /= 2
            else:
                break
            moved = float(np.abs(x - xn).max())
            x, fx, gvec = xn, fn, gn
            if moved < 1e-8:
                break
        fx, gvec = vg(x)
        theta, beta = x[:k], x[k:]
        # lme4's deriv12 differences the deviance (1 + 2m + 2m(m - 1) evaluations); differencing the
        # exact gradient with the same step (2m evaluations) gives the same Hessian up to O(delta^2)
        H = hessian_from_gradient(lambda z: vg(z)[1], x)
        cov_rx = lap.cov_rx(theta, beta)
        cov, method = cov_rx, "RX (Hessian not positive definite)"
        try:
            Vh = np.linalg.inv(H)[k:, k:]
            Vh = Vh + Vh.T
            if np.all(np.isfinite(Vh)) and np.linalg.eigvalsh(Vh).min() > 0:
                cov, method = Vh, "hessian"
        except np.linalg.LinAlgError:
            pass
    free = np.ones(len(x), bool)
    free[:k] = theta > SINGULAR_TOL
    try:
        scaled = np.abs(np.linalg.solve(H[np.ix_(free, free)], gvec[free])).max()
    except np.linalg.LinAlgError:
        scaled = np.inf
    converged = bool(np.isfinite(fx) and scaled < GRAD_TOL)
    singular = _status(theta, names)
    notes = [] if converged else [f"did not converge (max |H^-1 g| = {scaled:.2g})"]
    if singular:
        notes.append(singular)
    if method != "hessian":
        notes.append("SEs from RX: the Hessian is not positive definite")
    back = np.argsort(d.order)
    return {"params": beta, "cov": cov, "cov_rx": cov_rx, "cov_method": method, "sd": theta[back],
            "theta": theta[back], "loglik": -fx / 2, "deviance": fx, "converged": converged,
            "singular": bool(singular), "note": "; ".join(notes), "n_levels": [len(d.levels[i]) for i in back],
            "n": d.n, "evals": lap.evals}
