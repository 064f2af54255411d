"""Group statistics in pingouin's shape: ``f(data, dv, between, ...) -> DataFrame``.

`data` is a long or wide DataFrame with one row per participant (the measures table),
`dv` the column to analyse and `between` the grouping column (``condition`` or
``condition_kind``). Rows where `dv` is missing are left out of that analysis. Output
columns are identifier-safe and listed in each docstring. Every number here is pinned to
R 4.2 in tests/test_analysis_stats.py (script: tests/reference/stats_reference.R).

Conventions
    * CIs of means: t-based, ``mean +/- t(n-1) * sd / sqrt(n)``.
    * Planned contrasts: weights per group; the estimate is ``sum(w_i * mean_i)``; with
      ``equal_var=True`` the SE uses the ANOVA's pooled MSE (df = N - k, as R's lm with
      contrast coding); with ``equal_var=False`` the Welch-Satterthwaite SE and df.
    * Hedges g: ``d = (mean_a - mean_b) / s_pooled`` (pooled over the groups compared),
      ``g = J * d`` with ``J = 1 - 3 / (4 * df - 1)``; CI by the normal approximation
      ``var(d) = sum(w_i^2 / n_i) + d^2 / (2 * N)`` (Hedges & Olkin 1985; Borenstein et al.
      2009, eq. 4.20 and 4.24), ``se(g) = J * sqrt(var(d))``. For a contrast, ``d`` is the
      contrast estimate (positive weights summing to 1, negative to -1) over the SD pooled
      across the groups with a non-zero weight.
    * Kaplan-Meier: product-limit estimate, Greenwood variance, CI on the log scale
      (R survfit's default ``conf.type = "log"``).
    * Log-rank: the k-group test of R ``survival::survdiff`` (rho = 0).
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

KIND_ORDER = ("helpless", "controllable", "control")


# -- helpers -----------------------------------------------------------------------------------

def _groups(data: pd.DataFrame, dv: str, between: str, order: Sequence | None = None
            ) -> tuple[list, list[np.ndarray]]:
    d = data[[between, dv]].copy()
    d[dv] = pd.to_numeric(d[dv], errors="coerce")
    d = d.dropna()
    if order is None:
        levels = sorted(d[between].unique(), key=str)
    else:
        present = set(d[between].unique())
        levels = [lv for lv in order if lv in present]
    return levels, [d.loc[d[between] == lv, dv].to_numpy(dtype=float) for lv in levels]


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else np.nan


def _p_two_sided_t(t: float, df: float) -> float:
    if not np.isfinite(t) or not np.isfinite(df) or df <= 0:
        return np.nan
    return float(2 * sps.t.sf(abs(t), df))


def level_order(data: pd.DataFrame, between: str, kinds: Mapping | None = None) -> list:
    """Levels of `between` ordered helpless, controllable, control (then by name)."""
    levels = list(pd.unique(data[between].dropna()))
    if kinds is None:
        kinds = {lv: lv for lv in levels}
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    return sorted(levels, key=lambda lv: (rank.get(kinds.get(lv), len(rank)), str(lv)))


# -- descriptives and omnibus tests -----------------------------------------------------------

def descriptives(data: pd.DataFrame, dv: str, between: str, ci: float = 0.95,
                 order: Sequence | None = None) -> pd.DataFrame:
    """Group descriptives.

    Returns one row per group: `between` (the level), ``n``, ``mean``, ``sd``, ``se``,
    ``ci_low``, ``ci_high`` (t-based CI of the mean at level `ci`), ``median``, ``min``, ``max``.
    """
    levels, groups = _groups(data, dv, between, order)
    rows = []
    for lv, x in zip(levels, groups):
        n = len(x)
        mean = float(np.mean(x)) if n else np.nan
        sd = _sd(x)
        se = sd / np.sqrt(n) if n > 1 else np.nan
        half = sps.t.ppf(0.5 + ci / 2, n - 1) * se if n > 1 else np.nan
        rows.append({between: lv, "n": n, "mean": mean, "sd": sd, "se": se, "ci_low": mean - half,
                     "ci_high": mean + half, "median": float(np.median(x)) if n else np.nan,
                     "min": float(np.min(x)) if n else np.nan, "max": float(np.max(x)) if n else np.nan})
    return pd.DataFrame(rows, columns=[between, "n", "mean", "sd", "se", "ci_low", "ci_high", "median", "min", "max"])


def anova(data: pd.DataFrame, dv: str, between: str) -> pd.DataFrame:
    """Classic one-way ANOVA (equal variances), as R ``summary(aov(dv ~ between))``.

    Returns one row: ``source``, ``ddof1``, ``ddof2``, ``ss_between``, ``ss_within``,
    ``ms_between``, ``ms_within``, ``F``, ``p_unc``, ``np2`` (eta squared).
    """
    levels, groups = _groups(data, dv, between)
    k, n_total = len(groups), sum(len(x) for x in groups)
    allx = np.concatenate(groups) if groups else np.array([])
    grand = allx.mean() if len(allx) else np.nan
    ssb = float(sum(len(x) * (x.mean() - grand) ** 2 for x in groups if len(x)))
    ssw = float(sum(((x - x.mean()) ** 2).sum() for x in groups if len(x)))
    df1, df2 = (k - 1, n_total - k) if k >= 2 else (np.nan, np.nan)     # no groups: no dfs (never -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        msb = ssb / df1 if df1 > 0 else np.nan
        msw = ssw / df2 if df2 > 0 else np.nan
        f = msb / msw if df1 > 0 and df2 > 0 and msw > 0 else np.nan
    p = float(sps.f.sf(f, df1, df2)) if np.isfinite(f) else np.nan
    np2 = ssb / (ssb + ssw) if ssb + ssw > 0 else np.nan
    return pd.DataFrame([{"source": between, "ddof1": df1, "ddof2": df2, "ss_between": ssb, "ss_within": ssw,
                          "ms_between": msb, "ms_within": msw, "F": f, "p_unc": p, "np2": np2}])


def welch_anova(data: pd.DataFrame, dv: str, between: str) -> pd.DataFrame:
    """Welch's one-way ANOVA (unequal variances), as R ``oneway.test(var.equal = FALSE)``.

    Returns one row: ``source``, ``ddof1``, ``ddof2`` (Welch df), ``F``, ``p_unc``, ``note``
    (why the test is undefined, else ""). Undefined (NaN) when a group has fewer than 2
    values or no variance (Welch weights each group by 1 / its variance).
    """
    levels, groups = _groups(data, dv, between)
    k = len(groups)
    out = {"source": between, "ddof1": k - 1 if k >= 2 else np.nan, "ddof2": np.nan, "F": np.nan, "p_unc": np.nan,
           "note": ""}
    if k < 2:
        out["note"] = "undefined: fewer than 2 groups with data"
        return pd.DataFrame([out])
    small = [str(lv) for lv, x in zip(levels, groups) if len(x) < 2]
    flat = [str(lv) for lv, x in zip(levels, groups) if len(x) >= 2 and np.var(x) == 0]
    if small or flat:
        out["note"] = "undefined: " + "; ".join(
            ([f"fewer than 2 values in {', '.join(small)}"] if small else []) +
            ([f"no variance in {', '.join(flat)} (every value the same)"] if flat else []))
        return pd.DataFrame([out])
    n = np.array([len(x) for x in groups], float)
    m = np.array([x.mean() for x in groups])
    v = np.array([x.var(ddof=1) for x in groups])
    w = n / v
    sw = w.sum()
    mw = (w * m).sum() / sw
    tmp = ((1 - w / sw) ** 2 / (n - 1)).sum() / (k ** 2 - 1)
    f = ((w * (m - mw) ** 2).sum() / (k - 1)) / (1 + 2 * (k - 2) * tmp)
    df2 = 1 / (3 * tmp)
    out.update(ddof2=float(df2), F=float(f), p_unc=float(sps.f.sf(f, k - 1, df2)))
    return pd.DataFrame([out])


def kruskal(data: pd.DataFrame, dv: str, between: str) -> pd.DataFrame:
    """Kruskal-Wallis H test with the tie correction, as R ``kruskal.test``.

    Returns one row: ``source``, ``ddof1``, ``H``, ``p_unc``.
    """
    levels, groups = _groups(data, dv, between)
    groups = [x for x in groups if len(x)]
    h, p = np.nan, np.nan
    if len(groups) >= 2 and np.ptp(np.concatenate(groups)) > 0:
        h, p = sps.kruskal(*groups)
    return pd.DataFrame([{"source": between, "ddof1": len(groups) - 1, "H": float(h), "p_unc": float(p)}])


def pairwise_mwu(data: pd.DataFrame, dv: str, between: str, order: Sequence | None = None) -> pd.DataFrame:
    """Mann-Whitney U for every pair of groups: normal approximation with tie and continuity
    correction, as R ``wilcox.test(a, b, exact = FALSE, correct = TRUE)``; Holm-adjusted p.

    Returns one row per pair: ``A``, ``B``, ``n_A``, ``n_B``, ``U`` (R's W: pairs with A > B,
    ties counting 1/2), ``p_unc``, ``p_holm``, ``rbc`` (rank-biserial correlation
    ``2 U / (n_A n_B) - 1``; positive: A tends to be larger).
    """
    levels, groups = _groups(data, dv, between, order)
    rows = []
    for (la, xa), (lb, xb) in itertools.combinations(zip(levels, groups), 2):
        u, p = np.nan, np.nan
        if len(xa) and len(xb):
            if np.ptp(np.concatenate([xa, xb])) > 0:
                res = sps.mannwhitneyu(xa, xb, alternative="two-sided", use_continuity=True, method="asymptotic")
                u, p = float(res.statistic), float(res.pvalue)
            else:
                u, p = len(xa) * len(xb) / 2, 1.0
        rbc = 2 * u / (len(xa) * len(xb)) - 1 if len(xa) and len(xb) else np.nan
        rows.append({"A": la, "B": lb, "n_A": len(xa), "n_B": len(xb), "U": u, "p_unc": p, "rbc": rbc})
    out = pd.DataFrame(rows, columns=["A", "B", "n_A", "n_B", "U", "p_unc", "p_holm", "rbc"])
    out["p_holm"] = holm(out["p_unc"].to_numpy(dtype=float))
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stay NaN), as R ``p.adjust(method = "holm")``."""
    p = np.asarray(p, float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = len(q)
    if m:
        idx = np.argsort(q)
        adj = np.maximum.accumulate((m - np.arange(m)) * q[idx])
        res = np.empty(m)
        res[idx] = np.minimum(adj, 1)
        out[ok] = res
    return out


# -- contrasts and effect sizes ---------------------------------------------------------------

def hedges_g(x, y, ci: float = 0.95) -> pd.DataFrame:
    """Hedges g of ``x - y`` (pooled SD) with its normal-approximation CI.

    Returns one row: ``n_x``, ``n_y``, ``d`` (Cohen d), ``g``, ``se``, ``ci_low``, ``ci_high``.
    """
    x = np.asarray(pd.to_numeric(pd.Series(x), errors="coerce").dropna(), float)
    y = np.asarray(pd.to_numeric(pd.Series(y), errors="coerce").dropna(), float)
    d, g, se, lo, hi = _g([x, y], np.array([1.0, -1.0]), ci)
    return pd.DataFrame([{"n_x": len(x), "n_y": len(y), "d": d, "g": g, "se": se, "ci_low": lo, "ci_high": hi}])


def _g(groups: list[np.ndarray], w: np.ndarray, ci: float) -> tuple[float, float, float, float, float]:
    used = [(x, wi) for x, wi in zip(groups, w) if wi != 0]
    if any(len(x) < 2 for x, _ in used) or not used:
        return (np.nan,) * 5
    n = np.array([len(x) for x, _ in used], float)
    ww = np.array([wi for _, wi in used])
    ww = np.where(ww > 0, ww / ww[ww > 0].sum(), -ww / ww[ww < 0].sum())   # positive sum 1, negative sum -1
    df = float((n - 1).sum())
    sp = np.sqrt(sum((len(x) - 1) * x.var(ddof=1) for x, _ in used) / df)
    if not sp > 0:
        return (np.nan,) * 5
    d = float(sum(wi * x.mean() for (x, _), wi in zip(used, ww)) / sp)
    j = 1 - 3 / (4 * df - 1)
    var_d = float((ww ** 2 / n).sum() + d ** 2 / (2 * n.sum()))
    se = j * np.sqrt(var_d)
    z = sps.norm.ppf(0.5 + ci / 2)
    g = j * d
    return d, g, se, g - z * se, g + z * se


def welch_t(x, y, ci: float = 0.95) -> pd.DataFrame:
    """Welch two-sample t test of ``mean(x) - mean(y)``, as R ``t.test(x, y)``.

    Returns one row: ``diff``, ``se``, ``t``, ``df``, ``p_unc``, ``ci_low``, ``ci_high``.
    """
    x = np.asarray(pd.to_numeric(pd.Series(x), errors="coerce").dropna(), float)
    y = np.asarray(pd.to_numeric(pd.Series(y), errors="coerce").dropna(), float)
    row = {"diff": np.nan, "se": np.nan, "t": np.nan, "df": np.nan, "p_unc": np.nan, "ci_low": np.nan,
           "ci_high": np.nan}
    if len(x) >= 2 and len(y) >= 2:
        vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        diff = x.mean() - y.mean()
        se = np.sqrt(vx + vy)
        row["diff"] = diff
        if se > 0:
            df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
            half = sps.t.ppf(0.5 + ci / 2, df) * se
            row.update(se=se, t=diff / se, df=df, p_unc=_p_two_sided_t(diff / se, df),
                       ci_low=diff - half, ci_high=diff + half)
        else:
            row.update(se=0.0, ci_low=diff, ci_high=diff)
    return pd.DataFrame([row])


def contrasts(data: pd.DataFrame, dv: str, between: str, weights: Mapping[str, Mapping], equal_var: bool = True,
              ci: float = 0.95) -> pd.DataFrame:
    """Planned contrasts: `weights` maps a contrast name to {level: weight} (missing levels: 0).

    Returns one row per contrast: ``contrast``, ``estimate`` (``sum(w_i * mean_i)``), ``se``,
    ``t``, ``df``, ``p_unc`` (two-sided), ``ci_low``, ``ci_high`` (CI of the estimate),
    ``g``, ``g_se``, ``g_ci_low``, ``g_ci_high`` (standardised contrast, see the module doc).
    `equal_var`: pooled MSE of all groups (df = N - k) or Welch-Satterthwaite.
    """
    levels, groups = _groups(data, dv, between)
    rows = [{"contrast": name, **contrast_row(groups, np.array([float(wmap.get(lv, 0.0)) for lv in levels]),
                                              equal_var, ci)}
            for name, wmap in weights.items()]
    return pd.DataFrame(rows, columns=["contrast"] + CONTRAST_COLUMNS)


CONTRAST_COLUMNS = ["estimate", "se", "t", "df", "p_unc", "ci_low", "ci_high", "g", "g_se", "g_ci_low", "g_ci_high"]


def contrast_row(groups: list[np.ndarray], w: np.ndarray, equal_var: bool = True, ci: float = 0.95) -> dict:
    """One contrast with weights `w` over the value arrays `groups` (columns CONTRAST_COLUMNS)."""
    n = np.array([len(x) for x in groups], float)
    means = np.array([x.mean() if len(x) else np.nan for x in groups])
    var = np.array([x.var(ddof=1) if len(x) > 1 else np.nan for x in groups])
    row = dict.fromkeys(CONTRAST_COLUMNS, np.nan)
    used = w != 0
    if used.sum() >= 2 and not (n[used] < 2).any() and (w[used] > 0).any() and (w[used] < 0).any():
        est = float((w * np.where(used, means, 0)).sum())
        if equal_var:
            df = n.sum() - len(groups)
            se = np.sqrt(np.nansum((n - 1) * var) / df * (w[used] ** 2 / n[used]).sum())
        else:
            terms = w[used] ** 2 * var[used] / n[used]
            se = np.sqrt(terms.sum())
            df = terms.sum() ** 2 / (terms ** 2 / (n[used] - 1)).sum() if se > 0 else np.nan
        row.update(estimate=est)
        if se > 0:
            half = sps.t.ppf(0.5 + ci / 2, df) * se
            row.update(se=se, t=est / se, df=df, p_unc=_p_two_sided_t(est / se, df),
                       ci_low=est - half, ci_high=est + half)
        _, g, gse, glo, ghi = _g(groups, w, ci)
        row.update(g=g, g_se=gse, g_ci_low=glo, g_ci_high=ghi)
    return row


def planned_weights(kinds: Mapping) -> dict[str, dict]:
    """The design's planned contrasts from {level: condition kind}:

    ``helpless_vs_others``: the helpless group(s) against the mean of all other groups;
    ``controllable_vs_control``: controllable (escapable/solvable) against control.
    Weights within each side are equal and sum to +1 / -1. A contrast whose sides are not
    both present is left out.
    """
    out = {}
    helpless = [lv for lv, k in kinds.items() if k == "helpless"]
    others = [lv for lv, k in kinds.items() if k != "helpless"]
    ctl = [lv for lv, k in kinds.items() if k == "controllable"]
    ctrl = [lv for lv, k in kinds.items() if k == "control"]
    if helpless and others:
        out["helpless_vs_others"] = {**{lv: 1 / len(helpless) for lv in helpless},
                                     **{lv: -1 / len(others) for lv in others}}
    if ctl and ctrl:
        out["controllable_vs_control"] = {**{lv: 1 / len(ctl) for lv in ctl}, **{lv: -1 / len(ctrl) for lv in ctrl}}
    return out


# -- survival: trials to criterion ------------------------------------------------------------

def kaplan_meier(data: pd.DataFrame, time: str, event: str, between: str | None = None,
                 ci: float = 0.95, order: Sequence | None = None) -> pd.DataFrame:
    """Kaplan-Meier curves of `time` (e.g. trials to criterion) with `event` = 1 when the event
    (criterion reached) happened and 0 when censored; one curve per level of `between`.

    Returns one row per group and distinct time, as R ``summary(survfit(...), censored = TRUE)``:
    `between` (if given), ``time``, ``n_risk``, ``n_event``, ``n_censor``, ``survival``
    (probability of not yet having had the event), ``se`` (Greenwood), ``ci_low``, ``ci_high``
    (log-scale CI; NaN where survival is 0).
    """
    cols = [time, event] + ([between] if between else [])
    d = data[cols].copy()
    d[time] = pd.to_numeric(d[time], errors="coerce")
    d[event] = pd.to_numeric(d[event], errors="coerce")
    d = d.dropna()
    z = sps.norm.ppf(0.5 + ci / 2)
    out = []
    levels = ((list(order) if order is not None else level_order(d, between)) if between else [None])
    for lv in levels:
        sub = d if lv is None else d[d[between] == lv]
        t = sub[time].to_numpy(float)
        e = sub[event].to_numpy(float) > 0
        times = np.unique(t)
        n_risk = np.array([(t >= u).sum() for u in times])
        n_event = np.array([(e & (t == u)).sum() for u in times])
        n_cens = np.array([(~e & (t == u)).sum() for u in times])
        with np.errstate(divide="ignore", invalid="ignore"):
            surv = np.cumprod(1 - n_event / n_risk)
            gw = np.cumsum(np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0))
            se_log = np.sqrt(gw)
            lo = np.where(surv > 0, surv * np.exp(-z * se_log), np.nan)
            hi = np.where(surv > 0, np.minimum(1.0, surv * np.exp(z * se_log)), np.nan)
            se = surv * se_log
        se = np.where(np.isfinite(se), se, np.nan)
        frame = pd.DataFrame({"time": times, "n_risk": n_risk, "n_event": n_event, "n_censor": n_cens,
                              "survival": surv, "se": se, "ci_low": lo, "ci_high": hi})
        if between:
            frame.insert(0, between, lv)
        out.append(frame)
    if not out:
        return pd.DataFrame(columns=([between] if between else []) + ["time", "n_risk", "n_event", "n_censor",
                                                                   "survival", "se", "ci_low", "ci_high"])
    return pd.concat(out, ignore_index=True)


def logrank(data: pd.DataFrame, time: str, event: str, between: str, detail: bool = False,
            order: Sequence | None = None) -> pd.DataFrame:
    """Log-rank test of equal survival across the levels of `between`, as R
    ``survival::survdiff(Surv(time, event) ~ between)``.

    Returns one row: ``chi2``, ``dof``, ``p_unc``; with ``detail=True`` one row per group:
    `between`, ``n``, ``observed``, ``expected`` (events), and the test columns repeated.
    """
    d = data[[time, event, between]].copy()
    d[time] = pd.to_numeric(d[time], errors="coerce")
    d[event] = pd.to_numeric(d[event], errors="coerce")
    d = d.dropna()
    present = set(d[between])
    levels = [lv for lv in order if lv in present] if order is not None else level_order(d, between)
    d = d[d[between].isin(levels)]
    k = len(levels)
    g = np.array([levels.index(v) for v in d[between]]) if k else np.array([], int)
    t = d[time].to_numpy(float)
    e = d[event].to_numpy(float) > 0
    obs, exp_ = np.zeros(k), np.zeros(k)
    var = np.zeros((k, k))
    for u in np.unique(t[e]):
        at_risk = t >= u
        n_t = at_risk.sum()
        d_t = (e & (t == u)).sum()
        n_g = np.bincount(g[at_risk], minlength=k).astype(float)
        d_g = np.bincount(g[e & (t == u)], minlength=k).astype(float)
        obs += d_g
        exp_ += d_t * n_g / n_t
        if n_t > 1:
            frac = n_g / n_t
            var += d_t * (n_t - d_t) / (n_t - 1) * (np.diag(frac) - np.outer(frac, frac))
    chi2, dof, p = np.nan, k - 1, np.nan
    if k >= 2:
        diff = (obs - exp_)[:-1]
        v = var[:-1, :-1]
        try:
            chi2 = float(diff @ np.linalg.solve(v, diff))
            dof = int(np.linalg.matrix_rank(v))
            p = float(sps.chi2.sf(chi2, dof)) if dof > 0 else np.nan
        except np.linalg.LinAlgError:
            chi2 = np.nan
    test = {"chi2": chi2, "dof": dof, "p_unc": p}
    if not detail:
        return pd.DataFrame([test])
    n = [int((g == i).sum()) for i in range(k)]
    return pd.DataFrame([{between: lv, "n": n[i], "observed": obs[i], "expected": exp_[i], **test}
                         for i, lv in enumerate(levels)])


# -- everything for one measure -----------------------------------------------------------------

def compare_groups(data: pd.DataFrame, dv: str, between: str, kinds: Mapping, ci: float = 0.95) -> dict:
    """Every between-group analysis of one measure, as a dict of DataFrames:
    ``descriptives``, ``anova``, ``welch``, ``contrasts`` (pooled), ``contrasts_welch``,
    ``kruskal``, ``mannwhitney``."""
    order = level_order(data, between, kinds)
    present = set(data.loc[pd.to_numeric(data[dv], errors="coerce").notna(), between])
    weights = planned_weights({lv: kinds.get(lv) for lv in order if lv in present})
    return {
        "descriptives": descriptives(data, dv, between, ci, order=order),
        "anova": anova(data, dv, between),
        "welch": welch_anova(data, dv, between),
        "contrasts": contrasts(data, dv, between, weights, equal_var=True, ci=ci),
        "contrasts_welch": contrasts(data, dv, between, weights, equal_var=False, ci=ci),
        "kruskal": kruskal(data, dv, between),
        "mannwhitney": pairwise_mwu(data, dv, between, order=order),
    }
