"""Trial-level models of the test phase: every trial, not one mean per participant.

Four models per test phase (one table row each), all comparing the helpless group(s) with the
mean of the other groups (the same contrast as the primary test), signed so that positive =
helpless worse; the report and the paper lead with the crossed ones (latency_crossed,
failure_glmm):

latency
    Linear mixed model of log latency (anagrams: unsolved trials scored at the limit, the
    classic score; shuttle: failures scored at the window's end), fixed effects group and
    item (sum-coded; anagram item ids), random intercept per participant; REML. Fitted by
    `random_intercept_reml` (the profiled REML likelihood of this one model, computed from
    per-participant sums: milliseconds where statsmodels' general ``MixedLM`` takes seconds;
    tests/test_analysis_trial_models.py checks it against ``MixedLM``). The effect is
    exp(estimate): how many times slower the helpless group was.
failure
    Logistic regression of a trial's failure (anagram not solved; shuttle no response), fixed
    effects group and item, SEs robust to the clustering of trials within participants
    (``cluster_logit``: IRLS and the sandwich estimator, as statsmodels' ``GLM`` with
    ``cov_type="cluster"`` and R's ``vcovCL(type = "HC1")``). The effect is the odds ratio of
    failing a trial. A group that never (or always) failed makes it not estimable (separation).

latency_crossed
    Linear mixed model of the same log latency with crossed random intercepts for participants
    and items (lme4: ``lmer(log_latency ~ 0 + condition + (1 | participant) + (1 | item))``, REML;
    analysis/glmm.py ``lmm``): items are a sample of anagrams, so the effect generalises over items.
failure_glmm
    Logistic mixed model of a trial's failure with crossed random intercepts for participants and
    items, maximum likelihood with the Laplace approximation (lme4: ``glmer(failed ~ 0 + condition +
    (1 | participant) + (1 | item), family = binomial)``, nAGQ = 1; analysis/glmm.py ``glmm``;
    Wald SEs as lme4's default, from the Hessian of the Laplace deviance). The effect is the
    conditional odds ratio of failing a trial (helpless / others) for a given participant and item.
    With one item only (shuttle tasks), the random intercept is the participant's alone.
Both crossed models report the random-effect SDs and say in ``singular`` / ``note`` when an SD
is estimated as 0 (lme4's isSingular) or the fit did not converge.

The first two models (items as fixed effects, population-averaged logistic model) are kept as a
check of the crossed ones. All four are pinned to R: tests/reference/trial_models_lme4.csv holds
lme4's ``lmer(log latency ~ 0 + group + item + (1 | participant), REML = TRUE)`` (sum-coded
items) and ``glm`` + ``sandwich::vcovCL``
(type "HC1", the same small-sample correction as statsmodels' cluster SEs) fits of the test
data, written by tests/reference/trial_models_reference.R, and the crossed models' lmer / glmer
fits of three inputs (one with an item SD estimated as 0); the tests compare lhlab to them.
Above `MAX_PARTICIPANTS` included participants the models are skipped unless asked for
(`lhlab analyze --trial-models`): they would dominate the run time. The logistic mixed model is
the slowest (an optimisation over the Laplace deviance; ~0.3 s per 1,000 participants x 20 items
on an idle 2-core machine, ~1 s on a busy one): above `GLMM_MAX_PARTICIPANTS` it is skipped in
"auto" mode, with a row saying so, and fitted with ``--trial-models on``.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

MAX_PARTICIPANTS = 10_000
GLMM_MAX_PARTICIPANTS = 2_000
MAX_LOG_ODDS = 30.0     # |log OR| beyond this is a fit running off to separation, not an estimate
COLUMNS = ["phase", "task", "model", "outcome", "method", "n_trials", "n_participants", "n_items", "estimate",
           "se", "ci_low", "ci_high", "statistic", "p", "effect", "effect_ci_low", "effect_ci_high",
           "effect_scale", "sd_participant", "sd_item", "sd_residual", "loglik", "converged", "singular", "note"]


def test_trials(trials: pd.DataFrame, participants: pd.DataFrame, included: pd.Series) -> pd.DataFrame:
    """Test-phase trials of the included participants' analysed sessions."""
    keys = participants.loc[participants["participant_id"].isin(included), ["participant_id", "session"]]
    t = trials[trials["role"] == "test"]
    return t.merge(keys, on=["participant_id", "session"], how="inner")


def _frame(df: pd.DataFrame, task: str, between: str, kinds: Mapping) -> pd.DataFrame | None:
    outcome = df["outcome"].astype(str) if "outcome" in df.columns else None
    if outcome is None:
        return None
    if task == "anagram":
        lat = pd.to_numeric(df.get("latency_scored"), errors="coerce")
        failed = (outcome != "solved").astype(float)
    elif task == "shuttle":
        lat = pd.to_numeric(df.get("latency"), errors="coerce")
        failed = (outcome == "fail").astype(float)
    else:
        return None
    item = df["item_id"].astype(str) if "item_id" in df.columns and df["item_id"].notna().all() else None
    out = pd.DataFrame({"pid": df["participant_id"].to_numpy(), "grp": df[between].to_numpy(),
                        "helpless": df[between].map(lambda lv: kinds.get(lv) == "helpless").to_numpy(),
                        "log_latency": np.log(lat.where(lat > 0)).to_numpy(), "failed": failed.to_numpy(),
                        "item": item.to_numpy() if item is not None else "all"})
    return out


def _contrast(params: pd.Series, cov: pd.DataFrame, names: list[str], helpless: list[str], others: list[str],
              df_t: float | None = None) -> tuple[float, float, float, float, float, float]:
    w = pd.Series(0.0, index=params.index)
    for lv in helpless:
        w[names[lv]] = 1 / len(helpless)
    for lv in others:
        w[names[lv]] = -1 / len(others)
    est = float(w @ params)
    var = float(w @ cov.loc[w.index, w.index] @ w)
    se = float(np.sqrt(var)) if np.isfinite(var) and var > 0 else np.nan     # a broken fit: no SE, not a warning
    z = est / se if se > 0 else np.nan
    q = sps.norm.ppf(0.975)
    p = float(2 * sps.norm.sf(abs(z))) if np.isfinite(z) else np.nan
    return est, se, est - q * se, est + q * se, z, p


def random_intercept_reml(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> dict:
    """REML fit of y = X b + u_group + e, u ~ N(0, tau2), e ~ N(0, sigma2).

    With gamma = tau2 / sigma2, V_g = sigma2 (I + gamma J) and V_g^-1 = (I - c_g J) / sigma2 with
    c_g = gamma / (1 + gamma n_g), so X'V^-1 X, X'V^-1 y and y'V^-1 y need only the per-group
    sums of X and y. The REML log likelihood profiled over b and sigma2 is maximised over
    log gamma (bounded search). Returns ``params`` (b), ``cov`` (sigma2 (X'V*^-1 X)^-1, as
    MixedLM's ``cov_params`` and lme4's ``vcov``), ``sigma2``, ``tau2``, ``reml_criterion``
    (-2 REML log likelihood, lme4's ``REMLcrit``), ``converged``.
    """
    from scipy import optimize
    codes, g = pd.factorize(groups)
    n_g = np.bincount(codes).astype(float)
    n, k = X.shape
    Sx = np.zeros((len(g), k))
    np.add.at(Sx, codes, X)
    Sy = np.bincount(codes, weights=y)
    XtX, Xty, yty = X.T @ X, X.T @ y, float(y @ y)

    def parts(log_gamma):
        gamma = np.exp(log_gamma)
        c = gamma / (1 + gamma * n_g)
        A = XtX - (Sx * c[:, None]).T @ Sx
        bvec = Xty - (Sx * c[:, None]).T @ Sy
        b = np.linalg.solve(A, bvec)
        rss = yty - (c * Sy * Sy).sum() - b @ bvec          # r'V*^-1 r at the GLS estimate
        return gamma, A, b, rss

    def neg_reml(log_gamma):
        gamma, A, _, rss = parts(log_gamma)
        sign, logdet = np.linalg.slogdet(A)
        return 0.5 * ((n - k) * np.log(rss / (n - k)) + np.log1p(gamma * n_g).sum() + logdet)

    res = optimize.minimize_scalar(neg_reml, bounds=(-20.0, 10.0), method="bounded",
                                   options={"xatol": 1e-10, "maxiter": 500})
    gamma, A, b, rss = parts(res.x)
    sigma2 = rss / (n - k)
    # -2 x the REML log likelihood with its constant, as lme4's REMLcrit / lmer's "REML criterion"
    crit = 2 * float(neg_reml(res.x)) + (n - k) * (1 + np.log(2 * np.pi))
    return {"params": b, "cov": sigma2 * np.linalg.inv(A), "sigma2": sigma2, "tau2": gamma * sigma2,
            "reml_criterion": crit, "converged": bool(res.success)}


def cluster_logit(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> dict:
    """Logistic regression by IRLS with cluster-robust (sandwich) covariance, as statsmodels'
    ``GLM(...).fit(cov_type="cluster")`` and R's ``sandwich::vcovCL(type = "HC1")``: bread B =
    (X'WX)^-1, meat M = sum over clusters of s_g s_g' with s_g = sum_i x_i (y_i - mu_i), V = c B M B,
    c = G / (G - 1) (n - 1) / (n - k). Returns ``params``, ``cov``, ``deviance``, ``converged``.
    Written out (not statsmodels) because statsmodels' IRLS took ~2 s at 1,000 participants x 20 items."""
    from analysis.glmm import _one_thread
    return _one_thread(_cluster_logit)(y, X, groups)


def _cluster_logit(y, X, groups) -> dict:
    n, k = X.shape
    beta = np.zeros(k)
    dev_old, converged = np.inf, False
    for _ in range(100):
        eta = X @ beta
        t = np.exp(-np.abs(eta))
        mu = np.where(eta >= 0, 1.0, t) / (1.0 + t)
        dev = 2.0 * float((np.maximum(-(2 * y - 1) * eta, 0.0) + np.log1p(t)).sum())
        if abs(dev - dev_old) <= 1e-13 * (abs(dev) + 0.1):
            converged = True
            break
        dev_old = dev
        w = mu * (1 - mu)
        XtWX = X.T @ (X * w[:, None])
        beta = beta + np.linalg.solve(XtWX, X.T @ (y - mu))
    eta = X @ beta
    mu = 1 / (1 + np.exp(-eta))
    w = mu * (1 - mu)
    bread = np.linalg.inv(X.T @ (X * w[:, None]))
    codes, levels = pd.factorize(pd.Series(groups))
    G = len(levels)
    score = X * (y - mu)[:, None]
    sg = np.stack([np.bincount(codes, weights=score[:, j], minlength=G) for j in range(k)], axis=1)
    c = G / (G - 1) * (n - 1) / (n - k)
    cov = c * bread @ (sg.T @ sg) @ bread
    return {"params": beta, "cov": (cov + cov.T) / 2, "deviance": dev, "converged": converged}


def _crossed(row: dict, kind: str, d: pd.DataFrame, y: np.ndarray, levels: list, helpless: list,
             others: list) -> dict:
    """Fit the crossed mixed model `kind` ("lmm" or "glmm") and fill `row` with its helpless contrast."""
    from analysis import glmm
    X = (d["grp"].to_numpy()[:, None] == np.array(levels, dtype=object)[None, :]).astype(float)
    two = d["item"].nunique() > 1
    groups = [d["pid"].to_numpy(), d["item"].to_numpy()] if two else [d["pid"].to_numpy()]
    names = ["participant", "item"] if two else ["participant"]
    m = (glmm.lmm if kind == "lmm" else glmm.glmm)(y, X, groups, names)
    cols = [f"C(grp)[{lv}]" for lv in levels]
    fe = pd.Series(m["params"], index=cols)
    cov = pd.DataFrame(m["cov"], index=cols, columns=cols)
    est, se, lo, hi, z, p = _contrast(fe, cov, {lv: f"C(grp)[{lv}]" for lv in levels}, helpless, others)
    if not (np.isfinite(se) and abs(lo) < MAX_LOG_ODDS and abs(hi) < MAX_LOG_ODDS):
        return {**row, "converged": False, "note": "not estimable: the fit diverges (separation or a flat likelihood)"}
    row.update(estimate=est, se=se, ci_low=lo, ci_high=hi, statistic=z, p=p, effect=np.exp(est),
               effect_ci_low=np.exp(lo), effect_ci_high=np.exp(hi), sd_participant=float(m["sd"][0]),
               sd_item=float(m["sd"][1]) if two else np.nan,
               sd_residual=m.get("sigma", np.nan), loglik=m.get("loglik", -m.get("reml_criterion", np.nan) / 2),
               converged=m["converged"], singular=m["singular"], note=m["note"])
    return row


def fit(trials: pd.DataFrame, between: str, kinds: Mapping, order: list, glmm: bool | None = None) -> pd.DataFrame:
    """The models for every test phase of `trials` (from `test_trials`); one row each. The
    logistic mixed model is fitted with `glmm` True, not with False (a row says so), and with None
    (auto) up to `GLMM_MAX_PARTICIPANTS` participants."""
    rows = []
    for (phase, task), df in trials.groupby(["phase", "task"], sort=False):
        d = _frame(df, task, between, kinds)
        if d is None:
            continue
        levels = [lv for lv in order if lv in set(d["grp"])]
        helpless = [lv for lv in levels if kinds.get(lv) == "helpless"]
        others = [lv for lv in levels if kinds.get(lv) != "helpless"]
        base = {"phase": phase, "task": task, "n_participants": d["pid"].nunique(), "n_items": d["item"].nunique()}
        if not helpless or not others:
            continue
        d = d.assign(grp=pd.Categorical(d["grp"], categories=levels))
        names = {lv: f"C(grp)[{lv}]" for lv in levels}
        item_term = " + C(item, Sum)" if d["item"].nunique() > 1 else ""
        formula = "0 + C(grp)" + item_term
        # latency: linear mixed model of log latency, random intercept per participant
        lat = d.dropna(subset=["log_latency"])
        row = {**base, "model": "latency", "outcome": "log latency", "n_trials": len(lat),
               "method": "linear mixed model (REML), random intercept per participant, item fixed",
               "effect_scale": "ratio of latencies (helpless / others)"}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                X = design(lat, formula)
                m = random_intercept_reml(lat["log_latency"].to_numpy(float), X.to_numpy(float),
                                          lat["pid"].to_numpy())
            fe = pd.Series(m["params"], index=X.columns)
            cov = pd.DataFrame(m["cov"], index=X.columns, columns=X.columns)
            est, se, lo, hi, z, p = _contrast(fe, cov, names, helpless, others)
            singular = bool(m["tau2"] < 1e-8 * m["sigma2"])          # lme4's isSingular: theta < 1e-4
            row.update(estimate=est, se=se, ci_low=lo, ci_high=hi, statistic=z, p=p, effect=np.exp(est),
                       effect_ci_low=np.exp(lo), effect_ci_high=np.exp(hi), sd_participant=np.sqrt(m["tau2"]),
                       sd_residual=np.sqrt(m["sigma2"]), loglik=-m["reml_criterion"] / 2, converged=m["converged"],
                       singular=singular, note="singular fit: participant SD estimated as 0" if singular else "")
        except Exception as e:            # a singular design (e.g. no variation) is reported, not raised
            row.update(converged=False, note=f"not estimable: {type(e).__name__}: {e}")
        rows.append(row)
        two = d["item"].nunique() > 1
        row = {**base, "model": "latency_crossed", "outcome": "log latency", "n_trials": len(lat),
               "method": ("linear mixed model (REML), crossed random intercepts for participants and items"
                          if two else "linear mixed model (REML), random intercept per participant (one item)"),
               "effect_scale": "ratio of latencies (helpless / others)"}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows.append(_crossed(row, "lmm", lat, lat["log_latency"].to_numpy(float), levels, helpless, others))
        except Exception as e:
            rows.append({**row, "converged": False, "note": f"not estimable: {type(e).__name__}: {e}"})
        # failure: logistic GEE, trials clustered within participants
        row = {**base, "model": "failure", "outcome": "trial failed", "n_trials": len(d),
               "method": "logistic regression, item fixed, SE clustered by participant",
               "effect_scale": "odds ratio of failing a trial (helpless / others)"}
        rate = d.groupby("grp", observed=True)["failed"].mean()
        if ((rate == 0) | (rate == 1)).any():
            flat = ", ".join(f"{lv} {'never' if r == 0 else 'always'}" for lv, r in rate.items() if r in (0, 1))
            row.update(converged=False, note=f"not estimable (separation): {flat} failed a trial")
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    Xd = design(d, formula)
                    g = cluster_logit(d["failed"].to_numpy(float), Xd.to_numpy(float), d["pid"].to_numpy())
                params = pd.Series(g["params"], index=Xd.columns)
                cov = pd.DataFrame(g["cov"], index=Xd.columns, columns=Xd.columns)
                est, se, lo, hi, z, p = _contrast(params, cov, names, helpless, others)
                if not (np.isfinite(se) and abs(hi) < MAX_LOG_ODDS and abs(lo) < MAX_LOG_ODDS):
                    # quasi-separation (e.g. an item nobody in a group failed): the odds ratio runs off
                    # to 0 or infinity; say so rather than print an interval of [0, inf]
                    row.update(converged=False, note="not estimable (quasi-separation: the odds ratio diverges; "
                                                     "the mixed model below shrinks the items and may be estimable)")
                else:
                    row.update(estimate=est, se=se, ci_low=lo, ci_high=hi, statistic=z, p=p, effect=np.exp(est),
                               effect_ci_low=np.exp(lo), effect_ci_high=np.exp(hi), converged=g["converged"],
                               note="" if g["converged"] else "IRLS did not converge")
            except Exception as e:
                row.update(converged=False, note=f"not estimable: {type(e).__name__}: {e}")
        rows.append(row)
        separated = row["note"].startswith("not estimable (separation)")
        row = {**base, "model": "failure_glmm", "outcome": "trial failed", "n_trials": len(d),
               "method": ("logistic mixed model, crossed random intercepts for participants and items, Laplace "
                          "approximation" if two else
                          "logistic mixed model, random intercept per participant (one item), Laplace approximation"),
               "effect_scale": "odds ratio of failing a trial (helpless / others)"}
        if glmm is False or (glmm is None and base["n_participants"] > GLMM_MAX_PARTICIPANTS):
            row.update(converged=False, note=f"not fitted: more than {GLMM_MAX_PARTICIPANTS:,} participants "
                                             "(--trial-models on fits it)")
        elif separated:
            row.update(converged=False, note=rows[-1]["note"])
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row = _crossed(row, "glmm", d, d["failed"].to_numpy(float), levels, helpless, others)
            except Exception as e:
                row.update(converged=False, note=f"not estimable: {type(e).__name__}: {e}")
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def design(d: pd.DataFrame, formula: str) -> pd.DataFrame:
    """The fixed-effects design matrix of `formula` (right-hand side), columns named as
    statsmodels names them (``C(grp)[level]``, ``C(item, Sum)[S.x]``)."""
    from formulaic import model_matrix
    try:
        return model_matrix(formula, d, output="pandas")
    except Exception:
        from patsy import dmatrix
        return dmatrix(formula, d, return_type="dataframe")
