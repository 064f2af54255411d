"""Shuttle test logic (data-only): avoid / escape / fail, latency, marker side, noise times."""

from __future__ import annotations

from audiotools import read_rows, run_session
from conftest import REPO

PROTOCOL = REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml"


def test_outcomes_latencies_and_noise_times_are_consistent(tmp_path):
    outcomes = set()
    for i, cond in enumerate(["escapable", "nonoise"]):
        _, study = run_session(PROTOCOL, tmp_path, f"p{i}", cond, seed=21 + i)
        rows = read_rows(study, f"p{i}", "shuttle")
        assert len(rows) == 20
        side = "left"
        for r in rows:
            assert r["side_before"] == side
            assert r["shuttle_key"] == ("right" if side == "left" else "left")
            lat = float(r["latency"])
            if r["outcome"] == "avoid":
                assert lat < 5 and r["noise_onset"] == "n/a" and float(r["noise_duration"]) == 0
            elif r["outcome"] == "escape":
                assert 5 <= lat < 10
                assert float(r["noise_onset"]) == float(r["warning_onset"]) + 5
                assert float(r["noise_duration"]) == float(r["escape_latency"])      # stopped at the response
                assert float(r["stop_command"]) == float(r["noise_offset"])
            else:
                assert r["outcome"] == "fail" and lat == 10 and float(r["noise_duration"]) == 5
            if r["outcome"] != "fail":
                side = "right" if side == "left" else "left"
            outcomes.add(r["outcome"])
        assert float(rows[-1]["dose_percent"]) > 0
    assert outcomes == {"avoid", "escape", "fail"}
