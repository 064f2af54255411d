"""Yes/no measures and omnibus effect sizes, pinned to hand calculations and to statsmodels.

Hand calculations (kept here, as the R script is kept for analysis/stats.py):
  * Fisher, table [[3, 1], [1, 3]]: P(a) = C(4, a) C(4, 4 - a) / C(8, 4) = 1, 16, 36, 16, 1 (/70)
    for a = 0..4; two-sided p sums the tables no more likely than the observed (16/70):
    (1 + 16 + 16 + 1) / 70 = 0.4857142857.
  * Pearson chi-square, table [[10, 5], [5, 10]]: every expected count 7.5, so
    chi2 = 4 * 2.5^2 / 7.5 = 3.3333333, 1 df, p = 0.0678892.
  * Three groups 6/10, 2/10, 1/10: pooled 9/30 = 0.3, expected 3 and 7 per group,
    chi2 = (3^2/3 + 3^2/7) + (1^2/3 + 1^2/7) + (2^2/3 + 2^2/7) = 14 * (1/3 + 1/7) = 6.6666667, 2 df.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import Table2x2
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from analysis import binary, effects, stats
from test_analysis_stats import REF

CASES = [(0, 8), (1, 8), (4, 9), (7, 7), (12, 30), (30, 30)]


@pytest.mark.parametrize("x, n", CASES)
def test_wilson_matches_statsmodels_and_stays_in_0_1(x, n):
    lo, hi = binary.wilson(x, n)
    want = proportion_confint(x, n, alpha=0.05, method="wilson")
    assert (lo, hi) == pytest.approx(want, abs=1e-12)
    assert 0 <= lo <= x / n <= hi <= 1


@pytest.mark.parametrize("a, b", [((0, 8), (8, 8)), ((3, 10), (7, 10)), ((5, 12), (5, 9)), ((9, 9), (0, 11))])
def test_newcombe_difference_matches_statsmodels_and_stays_in_minus1_1(a, b):
    d, lo, hi = binary.newcombe(*a, *b)
    want = confint_proportions_2indep(a[0], a[1], b[0], b[1], method="newcomb", compare="diff")
    assert d == pytest.approx(a[0] / a[1] - b[0] / b[1])
    assert (lo, hi) == pytest.approx(want, abs=1e-12)
    assert -1 <= lo <= d <= hi <= 1


@pytest.mark.parametrize("a, b", [((3, 10), (7, 10)), ((0, 8), (5, 8)), ((6, 6), (2, 9))])
def test_odds_ratio_matches_statsmodels_table2x2(a, b):
    or_, lo, hi = binary.odds_ratio(*a, *b)
    table = np.array([[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]], float)
    t = Table2x2(table + 0.5 if (table == 0).any() else table)     # Haldane-Anscombe: 0.5 in every cell
    assert or_ == pytest.approx(t.oddsratio, rel=1e-12)
    assert (lo, hi) == pytest.approx(t.oddsratio_confint(alpha=0.05), rel=1e-12)


def test_fisher_and_chi_square_by_hand():
    assert binary.fisher(3, 4, 1, 4) == pytest.approx(34 / 70, abs=1e-12)
    two = pd.DataFrame({"g": ["a"] * 15 + ["b"] * 15, "y": [1] * 10 + [0] * 5 + [1] * 5 + [0] * 10})
    r = binary.chi_square(two, "y", "g").iloc[0]
    assert r["chi2"] == pytest.approx(10 / 3, abs=1e-12) and r["dof"] == 1
    assert r["p_chi2"] == pytest.approx(0.0678892, abs=1e-7)
    assert r["test"] == "Fisher exact" and r["p_unc"] == r["p_fisher"]
    three = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 10),
                          "y": [1] * 6 + [0] * 4 + [1] * 2 + [0] * 8 + [1] * 1 + [0] * 9})
    r = binary.chi_square(three, "y", "g").iloc[0]
    assert r["chi2"] == pytest.approx(14 * (1 / 3 + 1 / 7), abs=1e-12) and r["dof"] == 2
    assert r["test"] == "chi-square" and math.isnan(r["p_fisher"])
    flat = binary.chi_square(three.assign(y=1), "y", "g").iloc[0]
    assert math.isnan(flat["p_unc"]) and "same value" in flat["note"]


def test_chinn_d_has_the_sign_of_the_log_odds_ratio():
    assert binary.d_from_log_or(1.0) == 0
    assert binary.d_from_log_or(4.0) == pytest.approx(math.log(4) * math.sqrt(3) / math.pi)
    assert binary.d_from_log_or(0.25) == pytest.approx(-binary.d_from_log_or(4.0))


# -- omnibus effect sizes, on the R-pinned reference data ------------------------------------------

@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF / "stats_input.csv")


@pytest.mark.parametrize("dv", ["test_mean_latency", "test_failures", "check_control"])
def test_eta_and_omega_squared_from_the_anova_table(data, dv):
    a = stats.anova(data, dv, "condition").iloc[0]          # its sums of squares are pinned to R
    e = effects.omnibus_effects(data, dv, "condition").iloc[0]
    sst = a["ss_between"] + a["ss_within"]
    assert e["eta2"] == pytest.approx(a["ss_between"] / sst, rel=1e-12)
    assert e["omega2"] == pytest.approx((a["ss_between"] - a["ddof1"] * a["ms_within"]) / (sst + a["ms_within"]),
                                        rel=1e-12)
    assert 0 <= e["pve_ci_low"] <= e["eta2"] <= e["pve_ci_high"] <= 1
    # the CI excludes 0 exactly when the F test rejects at the two-sided 5% level's upper tail
    assert (e["pve_ci_low"] > 0) == (a["p_unc"] < 0.025)


def test_eta_squared_ci_lower_bound_is_zero_without_an_effect():
    d = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 6), "y": np.tile([1.0, 2, 3, 4, 5, 6], 3)
                      + np.repeat([0, 0.5, 1.0], 6)})
    e = effects.omnibus_effects(d, "y", "g").iloc[0]
    assert 0 < e["eta2"] < 0.1 and e["pve_ci_low"] == 0 and e["eta2"] < e["pve_ci_high"] < 1


def test_assumption_checks_say_which_test_to_read():
    from scipy import stats as sps
    normal = sps.norm.ppf((np.arange(20) + 0.5) / 20)           # normal quantiles: as normal as 20 values get
    equal = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 20), "y": np.tile(normal, 3)})
    assert "classic ANOVA" in effects.assumptions(equal, "y", "g").iloc[0]["advice"]
    unequal = equal.assign(y=equal["y"] * np.repeat([1, 1, 12], 20))
    a = effects.assumptions(unequal, "y", "g").iloc[0]
    assert a["brown_forsythe_p"] < 0.05 and "Welch" in a["advice"]
    skewed = equal.assign(y=np.exp(3 * equal["y"]))
    assert "Kruskal-Wallis" in effects.assumptions(skewed, "y", "g").iloc[0]["advice"]


def test_undefined_tests_say_why():
    d = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "y": [0, 0, 0, 0, 1, 2, 1, 3, 2, 2, 4, 1]})
    w = stats.welch_anova(d, "y", "g").iloc[0]
    assert math.isnan(w["F"]) and w["note"] == "undefined: no variance in a (every value the same)"
    none = stats.anova(d.iloc[:0], "y", "g").iloc[0]
    assert math.isnan(none["ddof1"]) and math.isnan(none["ddof2"])       # never "-1"
