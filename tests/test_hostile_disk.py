"""A full disk (issue 9), on a real small file system: a tmpfs mounted by the test (root only,
otherwise skipped with the reason). The session ends `crashed` with reason "disk full" in its
record and its last JSON line, exits 1 with one line, every row on disk is whole and counted,
no temp or reserve file is left, and `lhlab status` still lists the study."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import REPO, events, run_lhlab
from experiment import datafile

PROTO = "protocols/unsolvable-anagrams.yaml"
SIZE_KB = 3072


def _mount_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs"
    return None


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs at tmp_path/disk; unmounted afterwards."""
    why = _mount_problem()
    if why:
        pytest.skip(why)
    mnt = tmp_path / "disk"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KB}k", f"lhlab-{uuid.uuid4().hex[:8]}", str(mnt)],
                         capture_output=True, text=True)
    if out.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path, leave_kb: int) -> Path:
    """Fill the disk so that `leave_kb` kB stay free."""
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(bytes(max(0, free - leave_kb * 1024)))
    return filler


def _run(data: Path, label: str = "P1") -> subprocess.CompletedProcess:
    return run_lhlab("run", PROTO, "--participant", label, "--condition", "unsolvable", "--data-dir", data,
                     "--simulate", "default", "--seed", "1", env={**os.environ, "LHLAB_MIN_FREE_MB": "0"}, timeout=60)


def _debris(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.name.endswith(".tmp") or p.name.startswith((".lhlab-reserve", ".participants.", ".lhlab-probe"))]


RESERVE_KB = datafile.RESERVE_BYTES // 1024


@pytest.mark.parametrize("extra_kb", [12, 28, 48, 72])
def test_disk_full_mid_session_is_recorded_as_crashed(small_disk, extra_kb):
    _fill(small_disk, RESERVE_KB + extra_kb)
    data = small_disk / "data"
    out = _run(data)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "crashed: disk full" in lines[0], out.stderr
    end = events(out.stdout)[-1]
    assert end["event"] == "session_end" and end["status"] == "crashed" and "disk full" in end["reason"]
    study = data / "unsolvable-anagrams"
    if extra_kb < 24 and not (study / "sub-P1").exists():
        assert _debris(small_disk) == []       # full before the session began: no folder, no record
        return
    rec = datafile.read_session(datafile.session_json_path(study, "P1", 1))
    assert rec["status"] == "crashed" and rec["exit"]["code"] == 1 and "disk full" in rec["exit"]["reason"]
    assert "traceback" not in rec
    for phase in rec["phases"]:
        if phase.get("file"):
            rows, problems = datafile.read_trials(study / phase["file"])
            assert not problems, problems                          # every row on disk is whole
            assert len(rows) == phase["trials"], phase             # and counted by the record
    assert _debris(small_disk) == []
    # `lhlab status` works on the still-full disk and says what happened
    status = run_lhlab("status", study, check_rc=0, timeout=60)
    assert "crashed" in status.stdout and "disk full" in status.stdout and "Traceback" not in status.stderr


def test_simulate_stops_at_a_full_disk_instead_of_using_up_slots(small_disk):
    _fill(small_disk, RESERVE_KB + 200)
    out = run_lhlab("simulate", PROTO, "--participants", "30", "--data-dir", small_disk / "data", "--seed", "1",
                    env={**os.environ, "LHLAB_MIN_FREE_MB": "0"}, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    stopped = [ln for ln in out.stderr.splitlines() if ln.startswith("lhlab simulate: stopped after")]
    assert len(stopped) == 1 and ("disk full" in stopped[0] or "data folder" in stopped[0]), out.stderr
    assert "(stopped after" in out.stdout.splitlines()[-1]
    assert len([ln for ln in out.stdout.splitlines() if ln.startswith("p")]) < 30


def test_no_room_for_the_reserve_refuses_before_writing(small_disk):
    _fill(small_disk, RESERVE_KB // 2)
    data = small_disk / "data"
    out = _run(data)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "is full" in out.stderr
    assert not data.exists()


def test_status_on_a_completely_full_disk(small_disk):
    data = small_disk / "data"
    assert _run(data).returncode == 0
    study = data / "unsolvable-anagrams"
    rec = datafile.session_json_path(study, "P1", 1)
    # a session left `running` by a process that is gone: status wants to write `crashed`
    text = rec.read_text().replace('"status": "complete"', '"status": "running"', 1)
    rec.write_text(text.replace('"pid": ', '"pid": 1', 1))
    (study / "participants.tsv").unlink()
    _fill(small_disk, 0)
    before = sorted(str(p) for p in small_disk.rglob("*"))
    out = run_lhlab("status", study, check_rc=0, timeout=60)
    assert "Traceback" not in out.stderr and "read-only" in out.stderr
    assert "sub-P1\tses-1" in out.stdout and "crashed" in out.stdout
    assert sorted(str(p) for p in small_disk.rglob("*")) == before     # no debris


def test_the_kernel_really_says_enospc(small_disk):
    """The fixture is a real small file system, not a simulation."""
    _fill(small_disk, 0)
    with pytest.raises(OSError) as err:
        with open(small_disk / "more", "wb") as f:
            f.write(bytes(1 << 20))
            f.flush()
    assert datafile.is_disk_full(err.value)
    assert REPO.exists()


def test_analyze_onto_a_full_disk_leaves_nothing_half_written(small_disk, tmp_path, capsys):
    from experiment.cli import main
    from test_analysis_cohort import run_sessions
    study = run_sessions(tmp_path / "data", 3, seed=5)
    _fill(small_disk, 0)
    code = main(["analyze", str(study), "--out", str(small_disk / "out"), "--include-pilot", "--quiet",
                 "--no-plots"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err[-2000:]
    assert "could not write the outputs" in err.strip().splitlines()[-1]
    assert not (small_disk / "out").exists()


def test_the_reserve_of_a_killed_session_is_removed_when_it_is_settled(tmp_path):
    """SIGKILL leaves the reserve file behind; settling the crashed session removes it."""
    data = tmp_path / "data"
    assert _run(data).returncode == 0
    study = data / "unsolvable-anagrams"
    assert _debris(data) == []                              # a finished session keeps no reserve
    rec = datafile.session_json_path(study, "P1", 1)
    text = rec.read_text().replace('"status": "complete"', '"status": "running"', 1)
    rec.write_text(text.replace('"pid": ', '"pid": 1', 1))
    reserve = study / ".lhlab-reserve-sub-P1_ses-1"
    reserve.write_bytes(bytes(1024))
    run_lhlab("status", study, check_rc=0, timeout=60)
    assert not reserve.exists()
