"""Simulated participants go through the real task code, and their helplessness model gives
a deficit whose size follows the profile's helplessness_effect."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from experiment import datafile
from experiment.errors import BadInput
from experiment.protocol import load_protocol
from experiment.preflight import SessionRequest, prepare
from experiment.session import run_data_only
from experiment.simulation.participant import parse_profile

REPO = Path(__file__).resolve().parent.parent
PROTO = load_protocol(REPO / "protocols/unsolvable-anagrams.yaml")


def cohort(tmp: Path, profile: str, n: int) -> dict[str, list[float]]:
    """Mean test latency (failures at the limit) per participant, by condition."""
    out: dict[str, list[float]] = {"solvable": [], "unsolvable": []}
    for i in range(2 * n):
        cond = ("solvable", "unsolvable")[i % 2]
        prep = prepare(SessionRequest(PROTO, f"s{i}", cond, tmp, seed=1000 + i, simulate=profile))
        assert run_data_only(prep) == 0
        rows, problems = datafile.read_trials(datafile.beh_path(prep.study, f"s{i}", 1, "test"))
        assert not problems and len(rows) == 20
        out[cond].append(statistics.mean(float(r["latency_scored"]) for r in rows))
    return out


def test_deficit_follows_the_profile(tmp_path):
    strong = cohort(tmp_path / "strong", "default,helplessness_effect=0.9", 25)
    none = cohort(tmp_path / "none", "no-effect", 25)
    gap_strong = statistics.mean(strong["unsolvable"]) - statistics.mean(strong["solvable"])
    gap_none = statistics.mean(none["unsolvable"]) - statistics.mean(none["solvable"])
    sd = statistics.pstdev(none["solvable"] + none["unsolvable"])
    assert gap_strong > 1.0 * sd, (gap_strong, sd)        # helpless clearly slower
    assert abs(gap_none) < 0.6 * sd, (gap_none, sd)       # no effect: only chance differences
    assert gap_strong > gap_none + 0.8 * sd


def test_simulated_rows_obey_the_same_rules_as_real_ones(tmp_path):
    from experiment.tasks import TASKS
    cohort(tmp_path, "default", 2)
    study = tmp_path / "unsolvable-anagrams"
    for rec in datafile.all_sessions(study):
        for phase in rec["phases"]:
            rows, _ = datafile.read_trials(study / phase["file"])
            params = PROTO.phases[phase["id"]].params
            for r in rows:
                assert TASKS[r["task"]].check_row(r, params) == [], r


def test_profile_overrides_are_checked():
    assert parse_profile("default,solve_median=10").solve_median == 10
    for bad in ("nobody", "default,speed=3", "default,solve_median=fast", "default,solve_median=-1"):
        with pytest.raises(BadInput):
            parse_profile(bad)
