"""Effect sizes of the omnibus test and its assumption checks, for continuous and count measures.

Conventions
    * eta^2 = SS_between / SS_total; omega^2 = (SS_between - df1 * MS_within) / (SS_total + MS_within)
      (can be below 0 by chance; reported as computed).
    * Their CI: the CI of the population proportion of variance explained, by inverting the
      noncentral F distribution (Steiger 2004; R ``MBESS::ci.pvaf``, ``effectsize::eta_squared``
      with ``alternative = "two.sided"``): the noncentrality bounds L, U give
      ``[L / (L + N), U / (U + N)]``. One interval for both estimates, which estimate the same
      population value.
    * Brown-Forsythe test (Levene's test around the median; scipy ``levene(center="median")``,
      R ``car::leveneTest``) and Shapiro-Wilk per group (n >= 3).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from analysis.stats import _groups

EFFECT_COLUMNS = ["eta2", "omega2", "pve_ci_low", "pve_ci_high"]
ASSUMPTION_COLUMNS = ["brown_forsythe_W", "brown_forsythe_p", "shapiro_min_p", "shapiro_groups", "advice"]


def _ncp_bound(f: float, df1: float, df2: float, target: float) -> float:
    """The noncentrality at which P(F' <= f) = target (0 if even the central F is below target)."""
    def g(lam):
        return sps.ncf.cdf(f, df1, df2, lam) - target if lam > 0 else sps.f.cdf(f, df1, df2) - target
    if g(0.0) <= 0:
        return 0.0
    hi = max(10.0, f * df1 * 2)
    while g(hi) > 0 and hi < 1e7:
        hi *= 2
    return float(optimize.brentq(g, 0.0, hi, xtol=1e-10))


def omnibus_effects(data: pd.DataFrame, dv: str, between: str, ci: float = 0.95) -> pd.DataFrame:
    """One row: ``eta2``, ``omega2``, ``pve_ci_low``, ``pve_ci_high`` (see the module doc)."""
    _, groups = _groups(data, dv, between)
    groups = [x for x in groups if len(x)]
    out = dict.fromkeys(EFFECT_COLUMNS, np.nan)
    k, n = len(groups), sum(len(x) for x in groups)
    if k < 2 or n - k < 1:
        return pd.DataFrame([out])
    allx = np.concatenate(groups)
    grand = allx.mean()
    ssb = float(sum(len(x) * (x.mean() - grand) ** 2 for x in groups))
    ssw = float(sum(((x - x.mean()) ** 2).sum() for x in groups))
    df1, df2 = k - 1, n - k
    sst = ssb + ssw
    if sst <= 0:
        return pd.DataFrame([out])
    msw = ssw / df2
    out["eta2"] = ssb / sst
    out["omega2"] = (ssb - df1 * msw) / (sst + msw)
    if msw > 0:
        f = (ssb / df1) / msw
        alpha = 1 - ci
        lo = _ncp_bound(f, df1, df2, 1 - alpha / 2)
        hi = _ncp_bound(f, df1, df2, alpha / 2)
        out["pve_ci_low"], out["pve_ci_high"] = lo / (lo + n), hi / (hi + n)
    return pd.DataFrame([out])


def assumptions(data: pd.DataFrame, dv: str, between: str, order: Sequence | None = None,
                alpha: float = 0.05) -> pd.DataFrame:
    """One row: ``brown_forsythe_W``, ``brown_forsythe_p``, ``shapiro_min_p`` (smallest
    Shapiro-Wilk p over the groups), ``shapiro_groups`` ("level: W, p" per group), ``advice``
    (one sentence: which omnibus test to read)."""
    levels, groups = _groups(data, dv, between, order)
    out = {"brown_forsythe_W": np.nan, "brown_forsythe_p": np.nan, "shapiro_min_p": np.nan, "shapiro_groups": "",
           "advice": ""}
    usable = [x for x in groups if len(x) >= 2]
    if len(usable) >= 2 and np.ptp(np.concatenate(usable)) > 0:
        with warnings.catch_warnings():      # a group with no spread around its median divides by 0
            warnings.simplefilter("ignore", RuntimeWarning)
            w, p = sps.levene(*usable, center="median")
        out["brown_forsythe_W"], out["brown_forsythe_p"] = float(w), float(p)
    parts, ps = [], []
    for lv, x in zip(levels, groups):
        if len(x) >= 3 and np.ptp(x) > 0:
            w, p = sps.shapiro(x)
            parts.append(f"{lv}: W = {w:.2f}, p = {p:.3f}")
            ps.append(float(p))
        else:
            parts.append(f"{lv}: not testable (n < 3 or no variation)")
    out["shapiro_groups"] = "; ".join(parts)
    out["shapiro_min_p"] = min(ps) if ps else np.nan
    unequal = np.isfinite(out["brown_forsythe_p"]) and out["brown_forsythe_p"] < alpha
    nonnormal = bool(ps) and min(ps) < alpha
    if not np.isfinite(out["brown_forsythe_p"]):
        out["advice"] = "Too few values to check the assumptions; read the tests with caution."
    elif nonnormal:
        out["advice"] = ("Some groups depart from normality" + (" and the variances differ" if unequal else "")
                         + ": read the Kruskal-Wallis test (rank-based)"
                         + (" and Welch's ANOVA" if unequal else " alongside the ANOVA") + ".")
    elif unequal:
        out["advice"] = "The group variances differ (Brown-Forsythe): read Welch's ANOVA, not the classic one."
    else:
        out["advice"] = "No sign of unequal variances or non-normality: the classic ANOVA and Welch's agree in what they assume."
    return pd.DataFrame([out])
