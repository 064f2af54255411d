"""Shuttle test logic (data-only): avoid / escape / fail, latency, marker side, noise times."""

from __future__ import annotations

from audiotools import read_rows, row_problems, run_session
from conftest import REPO

PROTOCOL = REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml"


def test_outcomes_latencies_and_noise_times_are_consistent(tmp_path):
    outcomes = set()
    for i, cond in enumerate(["escapable", "nonoise"]):
        _, study = run_session(PROTOCOL, tmp_path, f"p{i}", cond, seed=21 + i)
        rows = read_rows(study, f"p{i}", "shuttle")
        assert len(rows) == 18                                   # Hiroto (1974): 18 test trials
        assert row_problems(PROTOCOL, "shuttle", rows) == []     # outcomes, latencies, noise times, keys
        side = "left"
        for r in rows:
            assert r["side_before"] == side
            if r["outcome"] == "escape":     # the simulated devices: no start latency, an instant stop
                assert float(r["noise_onset"]) == float(r["warning_onset"]) + 5
                assert float(r["noise_duration"]) == float(r["escape_latency"])      # stopped at the response
                assert float(r["stop_command"]) == float(r["noise_offset"])
            if r["outcome"] != "fail":
                side = "right" if side == "left" else "left"
            outcomes.add(r["outcome"])
        assert float(rows[-1]["dose_percent"]) > 0
    assert outcomes == {"avoid", "escape", "fail"}
