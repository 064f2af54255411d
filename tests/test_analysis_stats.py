"""analysis.stats pinned to R.

Expected values: tests/reference/stats_expected.csv, written by
`Rscript tests/reference/stats_reference.R` (R 4.2.2, survival 3.5-3, Debian 12) from the
inputs beside it. The script states how every number was computed (aov, oneway.test,
kruskal.test, wilcox.test(exact = FALSE), t.test, lm with contrast coding, Hedges g by hand
from its formula, survdiff, survfit). R is not needed to run these tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import stats

REF = Path(__file__).parent / "reference"
LEVELS = ["unsolvable", "solvable", "notraining"]
KINDS = {"unsolvable": "helpless", "solvable": "controllable", "notraining": "control"}
DVS = ["test_mean_latency", "test_failures", "check_control"]
PAIRS = [("unsolvable", "solvable"), ("unsolvable", "notraining"), ("solvable", "notraining")]


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF / "stats_input.csv")


@pytest.fixture(scope="module")
def R():
    ref = pd.read_csv(REF / "stats_expected.csv")
    return dict(zip(ref["key"], ref["value"].astype(float)))


def close(got, want, rel=1e-9, abs_=1e-12):
    if math.isnan(want):
        return math.isnan(got)
    return got == pytest.approx(want, rel=rel, abs=abs_)


def test_reference_file_covers_every_analysis(R):
    prefixes = {k.split(".")[0] for k in R}
    assert prefixes >= {"desc", "anova", "welch", "kruskal", "mwu", "contrast", "contrastw", "g", "welch_t",
                        "pair_g", "logrank", "km"}


@pytest.mark.parametrize("dv", DVS)
def test_descriptives_match_r(data, R, dv):
    d = stats.descriptives(data, dv, "condition", order=LEVELS).set_index("condition")
    for lv in LEVELS:
        for col in ("n", "mean", "sd"):
            assert close(float(d.loc[lv, col]), R[f"desc.{dv}.{lv}.{col}"])
        want_lo, want_hi = R[f"desc.{dv}.{lv}.ci_low"], R[f"desc.{dv}.{lv}.ci_high"]
        if math.isnan(want_lo):
            # R's t.test gives NaN for a constant group; we report the zero-width interval.
            assert d.loc[lv, "sd"] == 0 and d.loc[lv, "ci_low"] == d.loc[lv, "ci_high"] == d.loc[lv, "mean"]
        else:
            assert close(d.loc[lv, "ci_low"], want_lo) and close(d.loc[lv, "ci_high"], want_hi)


@pytest.mark.parametrize("dv", DVS)
def test_anova_and_welch_match_r(data, R, dv):
    a = stats.anova(data, dv, "condition").iloc[0]
    for col in ("ddof1", "ddof2", "F", "p_unc"):
        assert close(float(a[col]), R[f"anova.{dv}.{col}"]), col
    w = stats.welch_anova(data, dv, "condition").iloc[0]
    for col in ("ddof1", "ddof2", "F", "p_unc"):
        assert close(float(w[col]), R[f"welch.{dv}.{col}"]), col


def test_welch_anova_is_undefined_for_a_constant_group(data, R):
    # notraining made no failures at all: R's oneway.test gives NaN, and so do we.
    assert math.isnan(R["welch.test_failures.F"])
    assert math.isnan(stats.welch_anova(data, "test_failures", "condition").iloc[0]["F"])


@pytest.mark.parametrize("dv", DVS)
def test_kruskal_and_mann_whitney_match_r(data, R, dv):
    k = stats.kruskal(data, dv, "condition").iloc[0]
    for col in ("ddof1", "H", "p_unc"):
        assert close(float(k[col]), R[f"kruskal.{dv}.{col}"]), col
    m = stats.pairwise_mwu(data, dv, "condition", order=LEVELS).set_index(["A", "B"])
    for a, b in PAIRS:
        for col in ("U", "p_unc", "p_holm"):
            assert close(float(m.loc[(a, b), col]), R[f"mwu.{dv}.{a}.{b}.{col}"]), (a, b, col)


@pytest.mark.parametrize("dv", DVS)
@pytest.mark.parametrize("equal_var", [True, False])
def test_planned_contrasts_match_r(data, R, dv, equal_var):
    w = stats.planned_weights(KINDS)
    assert w["helpless_vs_others"] == {"unsolvable": 1.0, "solvable": -0.5, "notraining": -0.5}
    assert w["controllable_vs_control"] == {"solvable": 1.0, "notraining": -1.0}
    c = stats.contrasts(data, dv, "condition", w, equal_var=equal_var).set_index("contrast")
    for name in w:
        assert close(c.loc[name, "estimate"], R[f"contrast.{dv}.{name}.estimate"])
        key = "contrast" if equal_var else "contrastw"
        cols = ("se", "t", "df", "p_unc", "ci_low", "ci_high") if equal_var else ("se", "t", "df", "p_unc")
        for col in cols:
            assert close(float(c.loc[name, col]), R[f"{key}.{dv}.{name}.{col}"]), (name, col)
        for col, rcol in (("g", "g"), ("g_se", "se"), ("g_ci_low", "ci_low"), ("g_ci_high", "ci_high")):
            assert close(float(c.loc[name, col]), R[f"g.{dv}.{name}.{rcol}"]), (name, col)


@pytest.mark.parametrize("dv", DVS)
def test_welch_t_and_pairwise_hedges_g_match_r(data, R, dv):
    for a, b in PAIRS[:2]:
        x, y = data.loc[data.condition == a, dv], data.loc[data.condition == b, dv]
        t = stats.welch_t(x, y).iloc[0]
        for col in ("diff", "df", "p_unc", "ci_low", "ci_high"):
            assert close(float(t[col]), R[f"welch_t.{dv}.{a}.{b}.{col}"]), col
        g = stats.hedges_g(x, y).iloc[0]
        for col in ("g", "ci_low", "ci_high"):
            assert close(float(g[col]), R[f"pair_g.{dv}.{a}.{b}.{col}"]), col


def test_hedges_g_by_hand():
    # A hand calculation: x = 1..5 (mean 3, var 2.5), y = 3..7 (mean 5, var 2.5), sp = sqrt(2.5),
    # d = -2 / 1.58114 = -1.264911, J = 1 - 3 / (4 * 8 - 1) = 28 / 31, g = -1.142500,
    # var(d) = 2/5 + 1.6 / 20 = 0.48, se(g) = J * sqrt(0.48) = 0.903226 * 0.692820 = 0.625773.
    g = stats.hedges_g([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]).iloc[0]
    assert g["d"] == pytest.approx(-1.264911, abs=1e-6)
    assert g["g"] == pytest.approx(-1.142500, abs=1e-6)
    assert g["se"] == pytest.approx(0.625773, abs=1e-6)
    assert g["ci_low"] == pytest.approx(-1.142500 - 1.959964 * 0.625773, abs=1e-5)


def test_logrank_matches_survdiff(data, R):
    d = data.assign(event=1 - data["test_criterion_censored"])
    lr = stats.logrank(d, "test_trials_to_criterion", "event", "condition").iloc[0]
    for col in ("chi2", "dof", "p_unc"):
        assert close(float(lr[col]), R[f"logrank.anagram.{col}"]), col
    det = stats.logrank(d, "test_trials_to_criterion", "event", "condition", detail=True).set_index("condition")
    for lv in LEVELS:
        assert close(det.loc[lv, "observed"], R[f"logrank.anagram.{lv}.observed"])
        assert close(det.loc[lv, "expected"], R[f"logrank.anagram.{lv}.expected"])


def test_kaplan_meier_and_logrank_match_survfit_on_censored_ties(R):
    s = pd.read_csv(REF / "survival_input.csv")
    lr = stats.logrank(s, "time", "event", "group").iloc[0]
    for col in ("chi2", "dof", "p_unc"):
        assert close(float(lr[col]), R[f"logrank.hand.{col}"]), col
    km = stats.kaplan_meier(s, "time", "event", "group")
    n_checked = 0
    for row in km.itertuples():
        base = f"km.hand.{row.group}.{row.time:g}"
        for col in ("n_risk", "n_event", "n_censor", "survival", "se", "ci_low", "ci_high"):
            assert close(float(getattr(row, col)), R[f"{base}.{col}"]), (base, col)
        n_checked += 1
    assert n_checked == len([k for k in R if k.startswith("km.hand.") and k.endswith(".survival")])


def test_holm_matches_r_p_adjust():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.2), "holm") -> 0.04 0.09 0.09 0.20
    assert np.allclose(stats.holm(np.array([0.01, 0.04, 0.03, 0.2])), [0.04, 0.09, 0.09, 0.2])


def test_missing_values_are_left_out_per_analysis(data):
    d = data.copy()
    d.loc[d.index[:3], "test_mean_latency"] = np.nan
    desc = stats.descriptives(d, "test_mean_latency", "condition", order=LEVELS)
    assert desc["n"].sum() == len(d) - 3
    assert stats.anova(d, "test_mean_latency", "condition").iloc[0]["ddof2"] == len(d) - 3 - 3


def test_output_columns_are_identifier_safe(data):
    d = data.assign(event=1 - data["test_criterion_censored"])
    frames = list(stats.compare_groups(data, "test_mean_latency", "condition", KINDS).values())
    frames += [stats.kaplan_meier(d, "test_trials_to_criterion", "event", "condition"),
               stats.logrank(d, "test_trials_to_criterion", "event", "condition", detail=True)]
    for f in frames:
        assert all(str(c).isidentifier() for c in f.columns), list(f.columns)
