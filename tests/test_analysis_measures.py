"""analysis.measures on small hand-made trial tables, checked against hand calculations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.measures import participant_measures, safe


def rows(pid, cond, kind, phase, role, task, trials):
    return [{"participant_id": pid, "session": 1, "condition": cond, "condition_kind": kind, "phase": phase,
             "role": role, "task": task, "trial": i, **t} for i, t in enumerate(trials, 1)]


def anagram(outcome, rt, crit=0, limit=100):
    return {"outcome": outcome, "rt": rt if outcome == "solved" else np.nan,
            "latency_scored": rt if outcome == "solved" else limit, "time_limit": limit, "criterion_reached": crit}


@pytest.fixture
def trials():
    a = rows("sub-a", "unsolvable", "helpless", "test", "test", "anagram", [
        anagram("solved", 40), anagram("timeout", None), anagram("solved", 10), anagram("solved", 12),
        anagram("solved", 8, crit=1), anagram("skipped", None, crit=1)])
    # b never reaches criterion
    b = rows("sub-b", "solvable", "controllable", "test", "test", "anagram", [
        anagram("solved", 20), anagram("timeout", None), anagram("solved", 30), anagram("solved", 50)])
    a_train = rows("sub-a", "unsolvable", "helpless", "trainunsolvable", "training", "anagram",
                   [anagram("timeout", None, limit=45), anagram("timeout", None, limit=45)])
    b_train = rows("sub-b", "solvable", "controllable", "trainsolvable", "training", "anagram",
                   [anagram("solved", 15, limit=45), anagram("timeout", None, limit=45)])
    check = (rows("sub-a", "unsolvable", "helpless", "check", "check", "rating",
                  [{"question": "control", "response": 2}, {"question": "mood", "response": 4}])
             + rows("sub-b", "solvable", "controllable", "check", "check", "rating",
                    [{"question": "control", "response": 8}, {"question": "mood", "response": 7}]))
    instr = rows("sub-a", "unsolvable", "helpless", "welcome", "instructions", "instructions", [{"rt": 3.0}])
    return pd.DataFrame(a + b + a_train + b_train + check + instr)


def test_anagram_test_measures_by_hand(trials):
    m = participant_measures(trials).table.set_index("participant_id")
    a, b = m.loc["sub-a"], m.loc["sub-b"]
    assert a["test_n_trials"] == 6 and a["test_solved"] == 4 and a["test_failures"] == 2
    # latencies with failures at the limit: 40, 100, 10, 12, 8, 100 -> mean 270/6 = 45, median (12+40)/2 = 26
    assert a["test_mean_latency"] == pytest.approx(45.0)
    assert a["test_median_latency"] == pytest.approx(26.0)
    assert a["test_trials_to_criterion"] == 5 and a["test_criterion_censored"] == 0 and a["test_pattern_found"] == 1
    # b: 20, 100, 30, 50 -> mean 50; never reached: censored at its 4 trials
    assert b["test_mean_latency"] == pytest.approx(50.0)
    assert b["test_trials_to_criterion"] == 4 and b["test_criterion_censored"] == 1 and b["test_pattern_found"] == 0
    assert a["condition"] == "unsolvable" and a["condition_kind"] == "helpless"


def test_latency_is_scored_at_the_limit_when_the_column_is_missing(trials):
    m = participant_measures(trials.drop(columns=["latency_scored"])).table.set_index("participant_id")
    assert m.loc["sub-a", "test_mean_latency"] == pytest.approx(45.0)


def test_training_and_check_summaries(trials):
    res = participant_measures(trials)
    m = res.table.set_index("participant_id")
    # the two conditions' training phases share one set of columns
    assert m.loc["sub-a", "training_solved"] == 0 and m.loc["sub-a", "training_failures"] == 2
    assert m.loc["sub-a", "training_mean_latency"] == 45
    assert m.loc["sub-b", "training_solved"] == 1 and m.loc["sub-b", "training_mean_latency"] == 30
    assert m.loc["sub-a", "check_control"] == 2 and m.loc["sub-b", "check_mood"] == 7
    cat = res.catalog.set_index("column")
    assert cat.loc["training_solved", "phase"] == "trainunsolvable;trainsolvable"
    assert cat.loc["check_control", "role"] == "check"
    assert cat.loc["test_mean_latency", "worse"] == "higher" and cat.loc["test_solved", "worse"] == "lower"
    assert cat.loc["test_trials_to_criterion", "censor_column"] == "test_criterion_censored"
    assert not any(c.startswith("welcome") for c in m.columns)
    assert all(c.isidentifier() for c in m.columns)


def test_only_the_analysed_session_counts(trials):
    second = trials[trials["participant_id"] == "sub-b"].assign(session=2)
    second = second.assign(latency_scored=1.0)
    both = pd.concat([trials, second])
    parts = pd.DataFrame({"participant_id": ["sub-a", "sub-b"], "session": [1, 1],
                          "condition": ["unsolvable", "solvable"], "condition_kind": ["helpless", "controllable"]})
    m = participant_measures(both, parts).table.set_index("participant_id")
    assert m.loc["sub-b", "test_mean_latency"] == pytest.approx(50.0)


def test_shuttle_test_measures_by_hand():
    t = pd.DataFrame(rows("sub-s", "inescapable", "helpless", "shuttle", "test", "shuttle", [
        {"outcome": "fail", "latency": np.nan, "window": 10.0},
        {"outcome": "escape", "latency": 6.0, "window": 10.0},
        {"outcome": "fail", "latency": np.nan, "window": 10.0},
        {"outcome": "escape", "latency": 4.0, "window": 10.0},
        {"outcome": "avoid", "latency": 2.0, "window": 10.0},
        {"outcome": "escape", "latency": 3.0, "window": 10.0},
        {"outcome": "avoid", "latency": 1.0, "window": 10.0},
    ]) + rows("sub-t", "escapable", "controllable", "shuttle", "test", "shuttle", [
        {"outcome": "escape", "latency": 5.0, "window": 10.0},
        {"outcome": "fail", "latency": np.nan, "window": 10.0},
        {"outcome": "escape", "latency": 5.0, "window": 10.0},
    ]))
    res = participant_measures(t, shuttle_criterion=3)
    s = res.table.set_index("participant_id").loc["sub-s"]
    assert (s["shuttle_failures"], s["shuttle_escapes"], s["shuttle_avoidances"]) == (2, 3, 2)
    # latencies, failures at the 10 s window: 10 6 10 4 2 3 1 -> 36 / 7
    assert s["shuttle_mean_latency"] == pytest.approx(36 / 7)
    assert s["shuttle_median_latency"] == pytest.approx(4.0)
    # three successes in a row first completed on trial 6 (trials 4, 5, 6)
    assert s["shuttle_trials_to_criterion"] == 6 and s["shuttle_criterion_censored"] == 0
    u = res.table.set_index("participant_id").loc["sub-t"]
    assert u["shuttle_trials_to_criterion"] == 3 and u["shuttle_criterion_censored"] == 1
    cat = res.catalog.set_index("column")
    assert cat.loc["shuttle_failures", "worse"] == "higher"
    assert cat.loc["shuttle_trials_to_criterion", "kind"] == "trials_to_criterion"


def test_noise_training_summary_for_the_yoking_check():
    t = pd.DataFrame(rows("sub-e", "escapable", "controllable", "noiseesc", "training", "noise_escape", [
        {"outcome": "escaped", "noise_duration": 1.5, "escape_latency": 1.5, "responses_completed": 1},
        {"outcome": "timeout", "noise_duration": 5.0, "escape_latency": np.nan, "responses_completed": 0}])
        + rows("sub-y", "yoked", "helpless", "noiseyoked", "training", "noise_escape", [
            {"outcome": "yoked", "noise_duration": 1.5, "escape_latency": np.nan, "responses_completed": 2},
            {"outcome": "yoked", "noise_duration": 5.0, "escape_latency": np.nan, "responses_completed": 1}]))
    m = participant_measures(t).table.set_index("participant_id")
    assert m.loc["sub-e", "training_noise_time"] == pytest.approx(6.5)
    assert m.loc["sub-y", "training_noise_time"] == pytest.approx(6.5)
    assert m.loc["sub-e", "training_escapes"] == 1 and m.loc["sub-y", "training_escapes"] == 0
    assert m.loc["sub-e", "training_timeouts"] == 1 and m.loc["sub-y", "training_timeouts"] == 0
    assert m.loc["sub-e", "training_mean_escape_latency"] == 1.5
    assert m.loc["sub-y", "training_escape_responses"] == 3


def test_discrimination_training_summary():
    t = pd.DataFrame(rows("sub-s", "soluble", "controllable", "problems", "training", "discrimination", [
        {"feedback": "correct", "choice_correct": 1, "rt": 2.0},
        {"feedback": "wrong", "choice_correct": 0, "rt": 4.0},
        {"feedback": "correct", "choice_correct": 1, "rt": 3.0}])
        + rows("sub-i", "insoluble", "helpless", "problems", "training", "discrimination", [
            {"feedback": "wrong", "choice_correct": np.nan, "rt": 2.0},
            {"feedback": "timeout", "choice_correct": np.nan, "rt": np.nan},
            {"feedback": "correct", "choice_correct": np.nan, "rt": 5.0}]))
    res = participant_measures(t)
    m = res.table.set_index("participant_id")
    assert m.loc["sub-s", "training_correct_feedback"] == 2 and m.loc["sub-i", "training_correct_feedback"] == 1
    assert m.loc["sub-s", "training_correct_choices"] == 2 and np.isnan(m.loc["sub-i", "training_correct_choices"])
    assert m.loc["sub-i", "training_timeouts"] == 1 and m.loc["sub-i", "training_mean_rt"] == 3.5
    assert res.catalog.set_index("column").loc["training_correct_feedback", "worse"] == "lower"


def test_columns_of_other_tasks_do_not_leak_into_a_task_measure():
    """The trials table is the union of every task's columns: a shuttle phase must not read the
    anagram's (empty for its rows) latency_scored."""
    t = pd.DataFrame(rows("sub-s", "x", "helpless", "shuttle", "test", "shuttle", [
        {"outcome": "escape", "latency": 6.0, "latency_scored": np.nan},
        {"outcome": "fail", "latency": 10.0, "latency_scored": np.nan}]))
    m = participant_measures(t).table.set_index("participant_id")
    assert m.loc["sub-s", "shuttle_mean_latency"] == 8.0


def test_identifier_safe_names():
    assert safe("mood-now") == "mood_now" and safe("1st") == "x1st" and safe("") == "x"
