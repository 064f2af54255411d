"""The in-memory fast path gives the tables `lhlab analyze` gets from the same study on disk.

A study is simulated twice from the same plan (labels, conditions, session seeds, profile):
once in memory (experiment.simstudy, nothing written) and once through the normal
on-disk path (preflight.prepare + session.run_data_only), which analysis.loading then reads.
The trial tables, the participants, the measures and the planned tests must be identical, and
the power analysis's per-study result must be the `outcomes` table `analyze` reports.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from analysis import power
from analysis.loading import load_study
from analysis.measures import participant_measures
from analysis.pipeline import analyze
from experiment.protocol import load_protocol
from experiment import simstudy as memory

REPO = Path(__file__).resolve().parent.parent
ANAGRAMS = REPO / "protocols" / "unsolvable-anagrams.yaml"
YOKED = REPO / "protocols" / "hiroto-seligman-noise-anagrams.yaml"
PARTICIPANT_KEYS = ["participant_id", "session", "condition", "condition_kind", "yoked_to", "session_status",
                    "pilot", "simulated", "seed", "phases", "phases_completed", "n_sessions"]


def _both(path: Path, tmp_path: Path, n: int, seed: int, profile: str = "default"):
    proto = load_protocol(path)
    mem = power.study_tables(memory.simulate_study(proto, profile, n, seed))
    disk = load_study(memory.write_study(proto, profile, n, seed, tmp_path))
    return proto, mem, disk


@pytest.mark.parametrize("path,n", [(ANAGRAMS, 3), (YOKED, 2)])
def test_memory_tables_equal_disk_tables(path, n, tmp_path):
    proto, mem, disk = _both(path, tmp_path, n, seed=11)
    assert disk.problems.empty, disk.problems
    assert len(mem.trials) > 20 * n
    pd.testing.assert_frame_equal(mem.trials, disk.trials)
    pd.testing.assert_frame_equal(mem.participants[PARTICIPANT_KEYS], disk.participants[PARTICIPANT_KEYS])
    m1 = participant_measures(mem.trials, mem.participants)
    m2 = participant_measures(disk.trials, disk.participants)
    pd.testing.assert_frame_equal(m1.table, m2.table)
    pd.testing.assert_frame_equal(m1.catalog, m2.catalog)


def test_power_study_result_is_what_analyze_reports(tmp_path):
    """The planned tests of one simulated study: the power path (test rows only, in memory)
    and `lhlab analyze`'s pipeline on the same study written to disk agree to the last bit."""
    proto, mem, disk = _both(ANAGRAMS, tmp_path, 4, seed=5)
    spec = power.analysis_spec(str(proto.path), proto.sha256)
    assert spec.primary == "test_mean_latency" and spec.alpha == 0.05
    reported = analyze(disk.path).tables["outcomes"]
    full = power.analyse_study(mem, spec)
    pd.testing.assert_frame_equal(full, reported)
    fast = power.study_tables(memory.simulate_study(proto, "default", 4, 5, roles=frozenset({"test"})))
    pd.testing.assert_frame_equal(power.analyse_study(fast, spec), reported)
    assert reported["plan"].iloc[0] == "primary" and reported["measure"].iloc[0] == "test_mean_latency"


def test_fast_path_writes_nothing(tmp_path, monkeypatch):
    """No file, no folder, no fsync: the fast path runs in a read-only working directory."""
    proto = load_protocol(ANAGRAMS)
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kw):
        raise AssertionError("the in-memory path tried to write or sync")
    monkeypatch.setattr(os, "fsync", refuse)
    monkeypatch.setattr(os, "mkdir", refuse)
    monkeypatch.setattr(os, "makedirs", refuse)
    monkeypatch.setattr(os, "replace", refuse)
    sessions = memory.simulate_study(proto, "default", 2, 3)
    assert [s.record["effective_status"] for s in sessions] == ["complete"] * 6
    assert list(tmp_path.iterdir()) == []
