"""Simulated studies for the analysis tests and the benchmark, made with the real commands.

`simulate_study` calls `lhlab simulate` in-process (registry, permuted-block assignment, the
real task code with data-only simulated devices); `run_one` calls `lhlab run --simulate` for a
single hand-placed session (a withdrawal, a second session...).
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "unsolvable-anagrams.yaml"
STUDY_ID = "unsolvable-anagrams"


def _lhlab(argv: list[str]) -> tuple[int, str]:
    from experiment.cli import main
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


def simulate_study(data_dir: Path, n_participants: int, profile: str = "default", seed: int = 1,
                   protocol: Path = PROTOCOL) -> Path:
    """`lhlab simulate PROTOCOL --participants N --profile P --seed S`; returns the study folder."""
    code, out = _lhlab(["simulate", str(protocol), "--participants", str(n_participants), "--data-dir",
                        str(data_dir), "--seed", str(seed), "--profile", profile])
    assert code == 0, out
    return Path(data_dir) / STUDY_ID


def run_one(data_dir: Path, label: str, condition: str, profile: str = "default", seed: int = 1,
            protocol: Path = PROTOCOL) -> int:
    """`lhlab run PROTOCOL --participant L --condition C --simulate P`; returns its exit code."""
    code, _ = _lhlab(["run", str(protocol), "--participant", label, "--condition", condition, "--data-dir",
                      str(data_dir), "--simulate", profile, "--seed", str(seed)])
    return code


def run_sessions(data_dir: Path, n_participants: int, profile: str = "default", seed: int = 1,
                 protocol: Path = PROTOCOL, start: int = 1) -> Path:
    """Many simulated sessions in this process without the registry (3x faster than
    `lhlab simulate`): conditions in turn, labels p00001..., session seed = seed * 1_000_003 + i.
    For large reference studies and the benchmark; same task code, same files."""
    from experiment.protocol import load_protocol
    from experiment.preflight import SessionRequest, prepare
    from experiment.session import run_data_only
    import os
    proto = load_protocol(protocol)
    conditions = list(proto.conditions)
    real_fsync, os.fsync = os.fsync, lambda fd: None   # generated test data: the same files, no disk waits
    try:
        for i in range(start, start + n_participants):
            req = SessionRequest(protocol=proto, participant=f"p{i:05d}", condition=conditions[i % len(conditions)],
                                 data_dir=Path(data_dir), seed=seed * 1_000_003 + i, simulate=profile,
                                 mode="data-only")
            run_data_only(prepare(req))
    finally:
        os.fsync = real_fsync
    return Path(data_dir) / proto.study_id


def test_simulated_study_is_balanced_complete_and_pilot(tmp_path):
    from experiment import datafile
    study = simulate_study(tmp_path, 6, seed=2)
    recs = datafile.all_sessions(study)
    assert len(recs) == 6
    assert {r["effective_status"] for r in recs} == {"complete"}
    assert sorted(r["condition"] for r in recs) == sorted(["solvable", "unsolvable", "notraining"] * 2)
    assert all(r["pilot"] for r in recs)
