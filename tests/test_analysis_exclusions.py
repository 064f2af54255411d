"""Exclusion rules, manipulation-check rules and the yoking check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.exclusions import CheckRule, ExclusionRules, exclusions, yoking_check
from analysis.pipeline import Options, analyze
from experiment.errors import BadInput
from test_analysis_cohort import run_one, simulate_study


def participants(**over):
    base = pd.DataFrame({
        "participant_id": ["sub-e1", "sub-y1", "sub-e2", "sub-y2", "sub-c1", "sub-w1", "sub-a1"],
        "session": 1,
        "condition": ["escapable", "yoked", "escapable", "yoked", "control", "control", "escapable"],
        "condition_kind": ["controllable", "helpless", "controllable", "helpless", "control", "control",
                           "controllable"],
        "yoked_to": [None, "sub-e1", None, "sub-gone", None, None, None],
        "session_status": ["complete", "complete", "complete", "complete", "complete", "withdrawn", "crashed"],
        "pilot": [False, False, False, False, True, False, False],
        "simulated": [None, None, None, None, "default", None, None],
    })
    return base.assign(**over)


def measures(noise=(6.5, 6.5, 7.0, 7.0, np.nan, np.nan, 3.0)):
    p = participants()
    return p[["participant_id", "condition", "condition_kind"]].assign(
        training_noise_time=list(noise), test_mean_latency=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan],
        check_control=[8, 2, 9, 6, 5, 5, 5])


def test_yoking_check_finds_equal_and_broken_yokes():
    y = yoking_check(measures(), participants()).set_index("participant_id")
    assert list(y.index) == ["sub-y1", "sub-y2"]
    assert bool(y.loc["sub-y1", "ok"]) and y.loc["sub-y1", "difference"] == 0 and y.loc["sub-y1", "checked"]
    assert not y.loc["sub-y2", "ok"] and "not in the study" in y.loc["sub-y2", "problem"]


def test_yoking_check_tolerance():
    m = measures(noise=(6.5, 6.6, 7.0, 7.0, np.nan, np.nan, 3.0))
    assert not yoking_check(m, participants(), tolerance=0.05).set_index("participant_id").loc["sub-y1", "ok"]
    assert yoking_check(m, participants(), tolerance=0.2).set_index("participant_id").loc["sub-y1", "ok"]
    no_noise = m.drop(columns="training_noise_time")
    y = yoking_check(no_noise, participants()).set_index("participant_id")
    assert y.loc["sub-y1", "ok"] and not y.loc["sub-y1", "checked"]


def test_default_rules_list_every_reason():
    p, m = participants(), measures()
    e = exclusions(p, m, ExclusionRules(), yoking_check(m, p), test_columns=["test_mean_latency"])
    got = set(zip(e["participant_id"], e["reason_code"]))
    assert got == {("sub-c1", "pilot"), ("sub-w1", "withdrawn"), ("sub-a1", "incomplete"),
                   ("sub-a1", "missing_data"), ("sub-y2", "broken_yoke")}
    assert "profile default" in e.set_index("participant_id").loc["sub-c1", "reason"]
    assert list(e.columns) == ["participant_id", "condition", "condition_kind", "reason_code", "reason"]


def test_rules_can_keep_each_group():
    p, m = participants(), measures()
    keep_all = ExclusionRules(pilot=False, withdrawn=False, incomplete=False, broken_yoke=False, missing_data=False)
    assert exclusions(p, m, keep_all, yoking_check(m, p), ["test_mean_latency"]).empty


def test_manipulation_check_rules():
    p, m = participants(), measures()
    rule = CheckRule.parse("helpless:check_control>=6")
    e = exclusions(p, m, ExclusionRules(pilot=False, withdrawn=False, incomplete=False, broken_yoke=False,
                                        checks=(rule,)), None, ["test_mean_latency"])
    checks = e[e["reason_code"] == "failed_check"]
    assert list(checks["participant_id"]) == ["sub-y2"]
    assert "check_control = 6" in checks["reason"].iloc[0]
    by_name = CheckRule.parse("escapable : check_control < 9")
    e = exclusions(p, m, ExclusionRules(pilot=False, withdrawn=False, incomplete=False, checks=(by_name,)),
                   None, None)
    assert set(e.loc[e["reason_code"] == "failed_check", "participant_id"]) == {"sub-e1", "sub-a1"}
    assert str(by_name) == "escapable:check_control<9"


@pytest.mark.parametrize("text", ["", "helpless", "helpless:check_control", "helpless:check control>3",
                                  "helpless:check_control=>3", "helpless:check_control>high"])
def test_bad_check_rules_are_bad_input(text):
    with pytest.raises(BadInput, match="WHO:MEASURE<OP>VALUE"):
        CheckRule.parse(text)


def test_check_rule_on_an_unknown_measure_names_the_measures():
    p, m = participants(), measures()
    with pytest.raises(BadInput, match="check_control"):
        exclusions(p, m, ExclusionRules(checks=(CheckRule.parse("*:check_mood<3"),)), None, None)


def test_a_real_withdrawal_is_excluded_unless_kept(tmp_path):
    study = simulate_study(tmp_path, 3, seed=8)
    codes = [run_one(tmp_path, f"w{i}", "unsolvable", profile="withdrawer", seed=i) for i in range(1, 6)]
    assert 4 in codes, "the withdrawer profile should withdraw at least once in five sessions"
    res = analyze(study, Options(rules=ExclusionRules(pilot=False)))
    e = res.tables["exclusions"]
    withdrawn = set(e.loc[e["reason_code"] == "withdrawn", "participant_id"])
    assert withdrawn == {f"sub-w{i}" for i, c in zip(range(1, 6), codes) if c == 4}
    kept = analyze(study, Options(rules=ExclusionRules(pilot=False, withdrawn=False, missing_data=False)))
    assert kept.tables["exclusions"].empty and len(kept.included) == 8
