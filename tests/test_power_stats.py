"""Simulation-based checks of the statistics the power analysis counts.

1. For a simple normal data-generating process (a fixture, not the task simulator), the share
   of rejections of the planned test (`outcomes.outcomes`, the function `lhlab analyze` uses)
   matches the analytic power of the same test (statsmodels' t-test power) within Monte-Carlo
   error, and under no effect it matches alpha.
2. Through the real simulator, `lhlab power`'s machinery under the `no-effect` profile gives a
   false-positive rate whose Monte-Carlo interval contains alpha (60 studies: a coarse check
   that the simulator and the pipeline add no bias of their own; check 1 is the sharp one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.power import TTestIndPower

from analysis import outcomes, power, power_run
from experiment.protocol import load_protocol

REPO = Path(__file__).resolve().parent.parent
KINDS = {"unsolvable": "helpless", "solvable": "controllable", "notraining": "control"}
CATALOG = pd.DataFrame([{"column": "test_score", "label": "score", "unit": "", "worse": "higher",
                         "kind": "continuous", "low": -np.inf, "high": np.inf}])


def _normal_studies(groups: tuple, n: int, d: float, studies: int, seed: int) -> pd.DataFrame:
    """Study rows (analysis.power.RESULT_COLUMNS) of `studies` normal data sets: each group N(0, 1),
    the helpless group N(d, 1), analysed by outcomes.outcomes with the score as primary outcome."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(studies):
        data = pd.DataFrame({
            "participant_id": [f"{g}{k}" for g in groups for k in range(n)],
            "condition": np.repeat(groups, n),
            "condition_kind": np.repeat([KINDS[g] for g in groups], n),
            "test_score": np.concatenate([rng.normal(d if KINDS[g] == "helpless" else 0.0, 1.0, n) for g in groups]),
        })
        out = outcomes.outcomes(data, CATALOG, "condition", {g: KINDS[g] for g in groups}, 0.95, "test_score", 0.05)
        rows += power.result_rows(out, f"normal d={d}", n, i, seed)
    return pd.DataFrame(rows, columns=power.RESULT_COLUMNS)


def test_simulated_power_matches_analytic_power():
    n, d, studies = 20, 0.7, 300
    summary = power.summarise(_normal_studies(("unsolvable", "notraining"), n, d, studies, seed=12))
    row = summary.iloc[0]
    analytic = TTestIndPower().power(effect_size=d, nobs1=n, alpha=0.05, ratio=1.0, alternative="two-sided")
    assert row["studies"] == studies
    assert row["ci_low"] <= analytic <= row["ci_high"], (row["power"], analytic)
    assert abs(row["power"] - analytic) < 0.08


def test_false_positive_rate_of_the_planned_contrast_is_alpha():
    summary = power.summarise(_normal_studies(("unsolvable", "solvable", "notraining"), 15, 0.0, 600, seed=2026))
    row = summary.iloc[0]
    assert row["ci_low"] <= 0.05 <= row["ci_high"], row.to_dict()


def test_no_effect_profile_false_positive_rate_through_the_simulator():
    proto = load_protocol(REPO / "protocols" / "unsolvable-anagrams.yaml")
    tasks = [power.StudyTask(str(proto.path.resolve()), proto.sha256, "no-effect", 4, i, 31) for i in range(60)]
    summary = power.summarise(power.results_frame(power_run.run_tasks(tasks, workers=2).chunks))
    prim = summary[summary["plan"] == "primary"].iloc[0]
    assert prim["measure"] == "test_mean_latency" and prim["studies"] == 60
    assert prim["ci_low"] <= 0.05 <= prim["ci_high"], prim.to_dict()
