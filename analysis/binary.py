"""Yes/no measures (one 0/1 value per participant, e.g. "pattern found"): proportions, not means.

Conventions (pinned to statsmodels and scipy in tests/test_analysis_binary.py)
    * Proportion CI: Wilson score interval (statsmodels ``proportion_confint(method="wilson")``);
      it never leaves [0, 1].
    * Risk difference ``p_a - p_b``: Newcombe's hybrid score interval (Newcombe 1998, method 10;
      statsmodels ``confint_proportions_2indep(method="newcomb")``); it never leaves [-1, 1].
    * Odds ratio of a over b: Woolf's logit interval (statsmodels ``Table2x2.oddsratio_confint``);
      when a cell is 0, 0.5 is added to every cell first (Haldane-Anscombe; statsmodels'
      ``shift_zeros`` would shift the zero cells only).
    * Two groups: Fisher's exact test (two-sided, scipy ``fisher_exact``). Any number of
      groups: Pearson's chi-square test of the k x 2 table without continuity correction
      (scipy ``chi2_contingency(correction=False)``; R ``chisq.test(correct = FALSE)``).
    * The same omnibus question as a likelihood-ratio test of condition in a logistic regression
      (R ``anova(glm(y ~ condition, binomial), test = "LRT")``; pinned to R in
      tests/test_analysis_trial_models.py): with one categorical predictor the fitted model
      reproduces each group's proportion, so the statistic is the G statistic of the k x 2 table,
      ``2 sum O ln(O / E)`` (0 ln 0 = 0), on k - 1 df. Computed in closed form, it stays exact when a
      group has no success (or no failure), where glm's coefficients diverge (its deviance converges
      to this value). Reported beside Pearson's chi-square for 3 or more groups.
    * A standardised effect for the deficit table: d from the log odds ratio,
      ``d = ln(OR) * sqrt(3) / pi`` (Chinn 2000; Borenstein et al. 2009, eq. 7.1), same CI transform.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

BINARY_COLUMNS = ["n", "successes", "proportion", "ci_low", "ci_high"]


def _z(ci: float) -> float:
    return float(sps.norm.ppf(0.5 + ci / 2))


def wilson(x: float, n: float, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of x successes out of n."""
    if n <= 0:
        return np.nan, np.nan
    z = _z(ci)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if x <= 0 else lo), (1.0 if x >= n else hi)     # exact at the ends (no rounding below p)


def newcombe(x1: float, n1: float, x2: float, n2: float, ci: float = 0.95) -> tuple[float, float, float]:
    """(p1 - p2, low, high): Newcombe's hybrid score interval of the risk difference."""
    if n1 <= 0 or n2 <= 0:
        return np.nan, np.nan, np.nan
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, ci)
    l2, u2 = wilson(x2, n2, ci)
    d = p1 - p2
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def odds_ratio(x1: float, n1: float, x2: float, n2: float, ci: float = 0.95) -> tuple[float, float, float]:
    """(odds ratio of group 1 over group 2, low, high), Woolf interval, 0.5 added when a cell is 0."""
    if n1 <= 0 or n2 <= 0:
        return np.nan, np.nan, np.nan
    a, b, c, d = float(x1), float(n1 - x1), float(x2), float(n2 - x2)
    if min(a, b, c, d) == 0:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    log_or = np.log(a * d / (b * c))
    se = np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    z = _z(ci)
    return float(np.exp(log_or)), float(np.exp(log_or - z * se)), float(np.exp(log_or + z * se))


def fisher(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p of Fisher's exact test of the 2 x 2 table."""
    if n1 <= 0 or n2 <= 0:
        return np.nan
    return float(sps.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]]).pvalue)


def d_from_log_or(or_: float) -> float:
    """Chinn's (2000) conversion of an odds ratio to a standardised mean difference."""
    return float(np.log(or_) * np.sqrt(3) / np.pi) if or_ > 0 and np.isfinite(or_) else np.nan


def _counts(data: pd.DataFrame, dv: str, between: str, order: Sequence | None) -> tuple[list, np.ndarray, np.ndarray]:
    d = data[[between, dv]].copy()
    d[dv] = pd.to_numeric(d[dv], errors="coerce")
    d = d.dropna()
    levels = [lv for lv in (order if order is not None else sorted(d[between].unique(), key=str))
              if lv in set(d[between])]
    n = np.array([(d[between] == lv).sum() for lv in levels], float)
    x = np.array([(d.loc[d[between] == lv, dv] > 0).sum() for lv in levels], float)
    return levels, x, n


def proportions(data: pd.DataFrame, dv: str, between: str, ci: float = 0.95,
                order: Sequence | None = None) -> pd.DataFrame:
    """One row per group: `between`, ``n``, ``successes`` (value 1), ``proportion``, ``ci_low``,
    ``ci_high`` (Wilson)."""
    levels, x, n = _counts(data, dv, between, order)
    rows = []
    for lv, xi, ni in zip(levels, x, n):
        lo, hi = wilson(xi, ni, ci)
        rows.append({between: lv, "n": int(ni), "successes": int(xi), "proportion": xi / ni, "ci_low": lo,
                     "ci_high": hi})
    return pd.DataFrame(rows, columns=[between] + BINARY_COLUMNS)


def chi_square(data: pd.DataFrame, dv: str, between: str, order: Sequence | None = None) -> pd.DataFrame:
    """The omnibus test of a yes/no measure across the groups. One row: ``test`` ("Fisher exact"
    for 2 groups, else "chi-square"), ``chi2``, ``dof``, ``p_chi2`` (Pearson, no continuity
    correction), ``p_fisher`` (2 groups only), ``p_unc`` (the one to read: Fisher for 2 groups),
    ``cramers_v``, ``lr_chi2`` and ``p_lr`` (likelihood-ratio test of condition in a logistic
    regression, same df), ``note`` (why a test is undefined)."""
    levels, x, n = _counts(data, dv, between, order)
    row = {"test": "chi-square", "chi2": np.nan, "dof": max(len(levels) - 1, 0), "p_chi2": np.nan,
           "p_fisher": np.nan, "p_unc": np.nan, "cramers_v": np.nan, "lr_chi2": np.nan, "p_lr": np.nan,
           "note": ""}
    if len(levels) < 2:
        row["note"] = "fewer than 2 groups with data"
        return pd.DataFrame([row])
    table = np.column_stack([x, n - x])
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        row["note"] = "every participant has the same value: no test"
        return pd.DataFrame([row])
    chi2, p, dof, _ = sps.chi2_contingency(table, correction=False)
    g = likelihood_ratio(table)
    row.update(chi2=float(chi2), dof=int(dof), p_chi2=float(p), p_unc=float(p),
               cramers_v=float(np.sqrt(chi2 / table.sum())), lr_chi2=g, p_lr=float(sps.chi2.sf(g, dof)))
    if len(levels) == 2:
        row.update(test="Fisher exact", p_fisher=fisher(int(x[0]), int(n[0]), int(x[1]), int(n[1])))
        row["p_unc"] = row["p_fisher"]
    return pd.DataFrame([row])


def likelihood_ratio(table: np.ndarray) -> float:
    """The likelihood-ratio statistic of a k x 2 table (successes, failures per group): the deviance
    reduction of a logistic regression on the grouping factor against the intercept-only model."""
    from scipy.special import xlogy
    t = np.asarray(table, float)
    expected = t.sum(1, keepdims=True) * t.sum(0, keepdims=True) / t.sum()
    return float(2 * (xlogy(t, t) - xlogy(t, expected)).sum())
