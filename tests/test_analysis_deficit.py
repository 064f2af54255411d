"""The analysis recovers a simulated deficit, and finds none where none was simulated.

Studies come from `lhlab simulate` (registry, permuted blocks, the real task code in data-only
simulation), 30 participants per group. The size check compares the 30-per-group estimate with
a large reference study (150 per group) of the same simulated population.

Chance rates, measured over 40 no-effect studies of 30 per group (`run_sessions`, seeds 1-40,
2026-11, this simulator): any "helpless worse" row in the deficit table in 1 of 40 studies
(2.5%); for a single deficit row, its CI excluded 0 in 2.5-10% of studies; the
helpless-vs-others contrast on mean latency had p < .05 in 2 of 40 (5%). So a fixed quiet seed
is expected; `lhlab simulate --seed 12` below is one (checked, not searched for among many).
(With helplessness_effect = 0 the simulator still makes the solvable group slightly slower,
about +1 s mean latency at 900 per group, so deficits "helpless better" than solvable come up
more often than 2.5%; a "helpless worse" row does not.)
"""

from __future__ import annotations

import pytest

from analysis.exclusions import ExclusionRules
from analysis.pipeline import Options, analyze
from test_analysis_cohort import run_sessions, simulate_study

EFFECT = "default,helplessness_effect=0.9"
OPTIONS = Options(rules=ExclusionRules(pilot=False))     # simulated data are pilot data
KEY = ["test_mean_latency", "test_failures", "test_trials_to_criterion", "test_pattern_found", "test_solved"]


@pytest.fixture(scope="module")
def effect(tmp_path_factory):
    study = simulate_study(tmp_path_factory.mktemp("effect"), 90, profile=EFFECT, seed=11)
    return analyze(study, OPTIONS)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    study = run_sessions(tmp_path_factory.mktemp("reference"), 450, profile=EFFECT, seed=5)
    return analyze(study, OPTIONS)


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    study = simulate_study(tmp_path_factory.mktemp("null"), 90, profile="no-effect", seed=12)
    return analyze(study, OPTIONS)


def rows(result, measure):
    d = result.tables["deficits"]
    return d[d["measure"] == measure].set_index("comparison")


def test_groups_are_balanced(effect):
    assert effect.included.groupby("condition").size().to_dict() == {"notraining": 30, "solvable": 30,
                                                                       "unsolvable": 30}
    assert effect.tables["exclusions"].empty and effect.tables["load_problems"].empty


@pytest.mark.parametrize("measure", KEY)
def test_deficit_direction_is_recovered_with_ci_excluding_zero(effect, measure):
    r = rows(effect, measure)
    assert set(r.index) == {"solvable", "notraining"}
    assert (r["direction"] == "helpless worse").all(), r[["deficit", "deficit_ci_low", "deficit_ci_high"]]
    assert (r["deficit_ci_low"] > 0).all()
    # direction in raw units: slower, more failures, later criterion, fewer solved / patterns found
    if measure in ("test_mean_latency", "test_failures", "test_trials_to_criterion"):
        assert (r["mean_helpless"] > r["mean_comparison"]).all()
    else:
        assert (r["mean_helpless"] < r["mean_comparison"]).all()
    # one sign convention in the whole row: the effect size agrees with the deficit
    assert (r["g"] > 0).all() and (r["g_ci_low"] > 0).all()


@pytest.mark.parametrize("measure", ["test_mean_latency", "test_failures"])
def test_deficit_size_is_within_its_ci(effect, reference, measure):
    small, big = rows(effect, measure), rows(reference, measure)
    for comparison in ("solvable", "notraining"):
        s, b = small.loc[comparison], big.loc[comparison]
        assert s["deficit_ci_low"] <= b["deficit"] <= s["deficit_ci_high"], (comparison, s["deficit"], b["deficit"])


def test_planned_contrasts_omnibus_and_survival(effect):
    t = effect.tables
    c = t["contrasts"]
    c = c[(c["measure"] == "test_mean_latency") & (c["contrast"] == "helpless_vs_others")].set_index("method")
    assert (c["p_unc"] < 0.001).all() and (c["estimate"] > 0).all() and c.loc["pooled", "g_ci_low"] > 0
    for name in ("anova", "welch", "kruskal"):
        f = t[name].set_index("measure")
        assert f.loc["test_mean_latency", "p_unc"] < 0.001, name
    lr = t["logrank"]
    assert (lr.loc[lr["measure"] == "test_trials_to_criterion", "p_unc"] < 0.001).all()
    km = t["survival"]
    last = km[km["measure"] == "test_trials_to_criterion"].groupby("condition")["survival"].last()
    assert last["unsolvable"] > last["solvable"] and last["unsolvable"] > last["notraining"]


def test_manipulation_check_shows_less_perceived_control(effect):
    d = effect.tables["descriptives"]
    ctl = d[d["measure"] == "check_control"].set_index("condition")["mean"]
    assert ctl["unsolvable"] < ctl["solvable"] and ctl["unsolvable"] < ctl["notraining"]


def test_no_effect_study_shows_no_deficit(null):
    d = null.tables["deficits"]
    assert not (d["direction"] == "helpless worse").any(), d[["measure", "comparison", "deficit", "deficit_ci_low"]]
    c = null.tables["contrasts"]
    c = c[(c["contrast"] == "helpless_vs_others") & (c["role"] == "test") & (c["method"] == "pooled")]
    assert (c.set_index("measure").loc[["test_mean_latency", "test_failures"], "p_unc"] > 0.05).all()
    lr = null.tables["logrank"]
    assert lr["p_unc"].iloc[0] > 0.05
