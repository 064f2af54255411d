"""The Hiroto & Seligman designs: noise training with yoked partners, the shuttle test and
discrimination problems, simulated with `lhlab simulate` and analysed end to end."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from analysis.exclusions import ExclusionRules
from analysis.pipeline import Options, analyze
from test_analysis_cohort import ROOT, simulate_study

NOISE_SHUTTLE = ROOT / "protocols" / "hiroto-seligman-noise-shuttle.yaml"
PROBLEMS_ANAGRAMS = ROOT / "protocols" / "hiroto-seligman-problems-anagrams.yaml"
PILOT_OK = Options(rules=ExclusionRules(pilot=False))

pytestmark = pytest.mark.skipif(not NOISE_SHUTTLE.exists(), reason="the Hiroto & Seligman protocols are not here")


@pytest.fixture(scope="module")
def noise_study(tmp_path_factory):
    d = tmp_path_factory.mktemp("noise")
    simulate_study(d, 18, profile="default,helplessness_effect=0.9", seed=3, protocol=NOISE_SHUTTLE)
    return next(d.iterdir())


@pytest.fixture
def noise_copy(noise_study, tmp_path):
    dst = tmp_path / noise_study.name
    shutil.copytree(noise_study, dst)
    return dst


def test_yokes_are_checked_and_intact(noise_study):
    r = analyze(noise_study, PILOT_OK)
    y = r.tables["yoking"]
    yoked = r.study.participants["yoked_to"].notna().sum()
    assert yoked >= 4 and len(y) == yoked
    assert y["checked"].all() and y["ok"].all() and (y["difference"].abs() < 1e-6).all()
    assert r.tables["exclusions"].empty


def test_shuttle_deficit_and_noise_training_summaries(noise_study):
    r = analyze(noise_study, PILOT_OK)
    d = r.tables["deficits"].set_index(["measure", "comparison"])
    assert (d.loc["shuttle_failures", "direction"] == "helpless worse").all()
    assert (d.loc["shuttle_failures", "deficit_ci_low"] > 0).all()
    m = r.measures.table
    assert {"training_noise_time", "training_escapes", "shuttle_avoidances", "shuttle_trials_to_criterion"} <= set(m)
    esc = m[m["condition_kind"] == "controllable"]
    assert (esc["training_escapes"] > 0).all()
    assert (m.loc[m["condition_kind"] == "helpless", "training_escapes"] == 0).all()
    lr = r.tables["logrank"]
    assert set(lr["measure"]) == {"shuttle_trials_to_criterion"}


def test_a_changed_noise_duration_breaks_the_yoke(noise_copy):
    r = analyze(noise_copy, PILOT_OK)
    victim = r.tables["yoking"]["participant_id"].iloc[0]
    path = next(noise_copy.glob(f"{victim}/ses-1/beh/*_task-noise*_beh.tsv"))
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    # a burst 0.5 s shorter than the partner's, written consistently (offset - onset = duration,
    # which the task's row check requires)
    row = df.index[pd.to_numeric(df["noise_duration"]) > 1][0]
    for col in ("offset", "noise_duration"):
        df.loc[row, col] = f"{float(df.loc[row, col]) - 0.5:.6f}"
    df.to_csv(path, sep="\t", index=False, lineterminator="\n")
    r = analyze(noise_copy, PILOT_OK)
    assert r.tables["load_problems"].empty
    y = r.tables["yoking"].set_index("participant_id")
    assert not y.loc[victim, "ok"] and y.loc[victim, "difference"] == pytest.approx(-0.5)
    e = r.tables["exclusions"]
    assert list(e.loc[e["reason_code"] == "broken_yoke", "participant_id"]) == [victim]
    assert victim not in set(r.included["participant_id"])
    kept = analyze(noise_copy, Options(rules=ExclusionRules(pilot=False, broken_yoke=False)))
    assert victim in set(kept.included["participant_id"])


def test_a_missing_partner_breaks_the_yoke(noise_copy):
    r = analyze(noise_copy, PILOT_OK)
    row = r.tables["yoking"].iloc[0]
    shutil.rmtree(noise_copy / row["yoked_to"])
    r = analyze(noise_copy, PILOT_OK)
    y = r.tables["yoking"].set_index("participant_id")
    assert "not in the study" in y.loc[row["participant_id"], "problem"]
    assert row["participant_id"] not in set(r.included["participant_id"])


def test_discrimination_training_then_anagrams(tmp_path):
    simulate_study(tmp_path, 9, profile="default,helplessness_effect=0.9", seed=5, protocol=PROBLEMS_ANAGRAMS)
    r = analyze(next(tmp_path.iterdir()), PILOT_OK)
    m = r.measures.table.set_index("condition_kind")
    assert "training_correct_feedback" in m.columns
    # the control group gets no feedback: no training phase, or cards without feedback (Hiroto & Seligman 1975)
    ctl = m.loc["control", "training_correct_feedback"]
    assert (ctl.isna() | (ctl == 0)).all()
    assert m.loc[["helpless", "controllable"], "training_n_trials"].gt(0).all()
    assert any(c.endswith("_mean_latency") for c in r.measures.performance("test")["column"])
    assert r.tables["load_problems"].empty
