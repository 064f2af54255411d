"""Sessions through the real command line: data on disk as it happens, refusals that write
nothing, crashes and aborts that say what happened, and a study folder BIDS accepts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LHLAB, REPO, events, run_lhlab
from experiment import datafile
from experiment.protocol import load_protocol
from experiment.tasks import TASKS

PROTO = "protocols/unsolvable-anagrams.yaml"


def tree(path: Path) -> dict:
    """Every file and folder with its content stamp (folders: just present)."""
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns if p.is_file() else "dir") for p in path.rglob("*")} \
        if path.exists() else {}


def sim(data: Path, label: str, condition: str, *extra, rc: int = 0):
    return run_lhlab("run", PROTO, "--participant", label, "--condition", condition, "--data-dir", data,
                     "--simulate", "default", *extra, check_rc=rc)


def test_data_only_session_writes_every_phase_with_common_columns(tmp_path):
    out = sim(tmp_path, "p1", "unsolvable", "--seed", "3")
    evs = events(out.stdout)
    assert evs[0]["event"] == "session_start" and evs[-1] == {**evs[-1], "event": "session_end", "status": "complete"}
    assert sum(e["event"] == "trial" and e["phase"] == "test" for e in evs) == 20
    study = tmp_path / "unsolvable-anagrams"
    record = datafile.read_session(datafile.session_json_path(study, "p1", 1))
    assert record["status"] == record["effective_status"] == "complete"
    assert record["seed"] == 3 and record["pilot"] is True and record["debriefing_shown"]
    assert record["protocol"]["sha256"] == __import__("hashlib").sha256((REPO / PROTO).read_bytes()).hexdigest()
    assert [p["status"] for p in record["phases"]] == ["complete"] * len(record["phases"])
    proto = load_protocol(REPO / PROTO)
    for phase in record["phases"]:
        rows, problems = datafile.read_trials(study / phase["file"])
        assert not problems and len(rows) == phase["trials"] == phase["planned_trials"]
        for r in rows:
            assert (r["participant_id"], r["session"], r["condition"], r["phase"]) == ("sub-p1", "1", "unsolvable", phase["id"])
            assert TASKS[r["task"]].check_row(r, proto.phases[phase["id"]].params) == [], r
        sidecar = json.loads((study / phase["file"]).with_suffix(".json").read_text())
        assert set(rows[0]) <= set(sidecar)                       # every column described
    with open(study / "participants.tsv", newline="") as f:
        parts = list(csv.DictReader(f, delimiter="\t"))
    assert len(parts) == 1 and list(parts[0])[:5] == ["participant_id", "condition", "yoked_to", "status", "sessions"]
    assert {k: parts[0][k] for k in list(parts[0])[:5]} == {"participant_id": "sub-p1", "condition": "unsolvable",
                                                            "yoked_to": "n/a", "status": "complete", "sessions": "1"}
    assert list(parts[0])[5:] == ["age", "sex", "handedness", "english"]     # the demographics phase's answers


def test_same_seed_same_data(tmp_path):
    sim(tmp_path / "a", "p1", "solvable", "--seed", "9")
    sim(tmp_path / "b", "p1", "solvable", "--seed", "9")
    f = "unsolvable-anagrams/sub-p1/ses-1/beh/sub-p1_ses-1_task-test_beh.tsv"
    assert (tmp_path / "a" / f).read_text() == (tmp_path / "b" / f).read_text()


REFUSALS = [
    ("unknown condition", ["--participant", "p9", "--condition", "helpless"], "choose one of: solvable, unsolvable, notraining"),
    ("label with a dash", ["--participant", "p-9", "--condition", "solvable"], "letters and digits only"),
    ("unknown profile", ["--participant", "p9", "--condition", "solvable", "--simulate", "genius"], "unknown profile"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_bad_arguments_refused_with_one_line_and_nothing_written(tmp_path, case):
    _, args, message = case
    if "--simulate" not in args:
        args = args + ["--simulate", "default"]
    out = run_lhlab("run", PROTO, *args, "--data-dir", tmp_path, check_rc=2)
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert tree(tmp_path) == {}


def test_existing_data_is_never_overwritten(tmp_path):
    sim(tmp_path, "p1", "solvable", "--seed", "1")
    before = tree(tmp_path)
    again = sim(tmp_path, "p1", "solvable", rc=2)
    assert "already has a complete session (ses-1)" in again.stderr and "--session 2" in again.stderr
    explicit = sim(tmp_path, "p1", "solvable", "--session", "1", rc=2)
    assert "nothing is overwritten" in explicit.stderr
    other = sim(tmp_path, "p1", "unsolvable", "--session", "2", rc=2)
    assert "would mix conditions" in other.stderr
    assert tree(tmp_path) == before
    sim(tmp_path, "p1", "solvable", "--session", "2")                # deliberate second session
    assert (tmp_path / "unsolvable-anagrams/sub-p1/ses-2").is_dir()


def test_unwritable_or_full_data_folder_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = sim(blocker, "p1", "solvable", rc=2)
    assert "is not a folder; choose another --data-dir" in out.stderr and len(out.stderr.splitlines()) == 1
    full = run_lhlab("run", PROTO, "--participant", "p1", "--condition", "solvable", "--data-dir", tmp_path / "d",
                     "--simulate", "default", env={**os.environ, "LHLAB_MIN_FREE_MB": "1e12"}, check_rc=2)
    assert "MB free" in full.stderr and "choose another --data-dir" in full.stderr
    assert not (tmp_path / "d").exists()


def _visual(data: Path, label: str) -> subprocess.Popen:
    return subprocess.Popen([*LHLAB, "run", "protocols/demo.yaml", "--participant", label, "--condition", "solvable",
                             "--data-dir", str(data), "--simulate", "default", "--mode", "visual", "--speed", "4",
                             "--windowed", "--seed", "5"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_trials(proc: subprocess.Popen, n: int) -> list[dict]:
    seen = []
    for line in proc.stdout:
        ev = json.loads(line)
        seen.append(ev)
        if sum(e["event"] == "trial" for e in seen) >= n:
            return seen
    raise AssertionError(f"session ended early: {proc.stderr.read()[-2000:]}")


@pytest.mark.window
def test_sigkill_keeps_finished_trials_and_session_reads_as_crashed(x_display, tmp_path):
    proc = _visual(tmp_path, "k1")
    seen = _wait_trials(proc, 4)
    proc.kill()
    proc.wait(10)
    study = tmp_path / "demo"
    record = datafile.read_session(datafile.session_json_path(study, "k1", 1))
    assert record["status"] == "running" and record["effective_status"] == "crashed"
    finished = [e for e in seen if e["event"] == "trial"]
    on_disk = 0
    for phase in record["phases"]:
        if phase["file"]:
            rows, problems = datafile.read_trials(study / phase["file"])
            assert not problems
            on_disk += len(rows)
    assert on_disk >= len(finished)                 # every trial reported finished is on disk
    ses = study / "sub-k1" / "ses-1"
    assert (ses / "sub-k1_ses-1_frames.tsv").exists() and not (ses / "sub-k1_ses-1_frames.tsv.gz").exists()
    status = run_lhlab("status", study, check_rc=0)
    assert "sub-k1\tses-1\tsolvable\tcrashed" in status.stdout
    assert "frames on disk until the end (" in status.stdout           # the timing up to the kill is told
    settled = json.loads(datafile.session_json_path(study, "k1", 1).read_text())   # the file itself now says so
    assert settled["status"] == "crashed" and f"{on_disk} finished trials are on disk" in settled["exit"]["reason"]
    frames = settled["timing"]["frames_on_disk"]
    assert frames["frames"] > 4 * 10 and not frames["complete"]       # 4 trials and more at >= 10 frames each
    assert settled["timing"]["frames_file"] == "sub-k1/ses-1/sub-k1_ses-1_frames.tsv"
    again = run_lhlab("run", "protocols/demo.yaml", "--participant", "k1", "--condition", "solvable", "--data-dir",
                      tmp_path, "--simulate", "default", check_rc=0)  # a crashed slot is re-run as a new session
    assert events(again.stdout)[0]["session"] == 2


@pytest.mark.window
def test_sigterm_ends_gracefully_as_aborted(x_display, tmp_path):
    proc = _visual(tmp_path, "t1")
    _wait_trials(proc, 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 3
    record = json.loads(datafile.session_json_path(tmp_path / "demo", "t1", 1).read_text())
    assert record["status"] == "aborted" and "stop requested" in record["exit"]["reason"]
    assert any(p["status"] == "interrupted" for p in record["phases"])


def test_study_folder_passes_the_bids_validator(tmp_path):
    for n, cond in enumerate(["solvable", "unsolvable", "notraining", "unsolvable"], 1):
        sim(tmp_path, f"p{n}", cond, "--seed", str(n))
    run_lhlab("run", PROTO, "--participant", "w1", "--condition", "solvable", "--data-dir", tmp_path,
              "--simulate", "withdrawer,withdraw_rate=0.5", "--seed", "1", check_rc=4)
    run_lhlab("run", PROTO, "--participant", "d1", "--condition", "solvable", "--data-dir", tmp_path,
              "--simulate", "default,decline_consent=1", "--seed", "1", check_rc=5)     # only a consent record
    validator = REPO / ".venv/bin/bids-validator-deno"
    exe = str(validator) if validator.exists() else "bids-validator-deno"
    out = subprocess.run([exe, "--format", "json", str(tmp_path / "unsolvable-anagrams")], capture_output=True,
                         text=True, timeout=120)
    report = json.loads(out.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert out.returncode == 0 and not errors, errors
    assert sorted(report["summary"]["subjects"]) == ["d1", "p1", "p2", "p3", "p4", "w1"]


def test_torn_last_row_is_reported_not_used(tmp_path):
    log = datafile.TrialLog(tmp_path / "x_beh.tsv", ["trial", "response"])
    log.write({"trial": 1, "response": "house"})
    log.write({"trial": 2, "response": "mouse"})
    log.close()
    full = (tmp_path / "x_beh.tsv").read_text()
    (tmp_path / "x_beh.tsv").write_text(full[:-3])          # power cut inside the last field
    rows, problems = datafile.read_trials(tmp_path / "x_beh.tsv")
    assert rows == [{"trial": "1", "response": "house"}]
    assert len(problems) == 1 and "torn last row" in problems[0]


def test_spreadsheet_edited_participants_tsv_does_not_stop_a_session(tmp_path):
    sim(tmp_path, "p1", "solvable", "--seed", "1")
    tsv = tmp_path / "unsolvable-anagrams" / "participants.tsv"
    tsv.write_bytes(b"\xef\xbb\xbf" + tsv.read_bytes().replace(b"\n", b"\r\n"))   # BOM + CRLF, as a spreadsheet saves
    sim(tmp_path, "p2", "unsolvable", "--seed", "2")
    with open(tsv, newline="", encoding="utf-8-sig") as f:
        ids = [r["participant_id"] for r in csv.DictReader(f, delimiter="\t")]
    assert ids == ["sub-p1", "sub-p2"]


def test_unreadable_session_record_is_reported_not_a_traceback(tmp_path):
    sim(tmp_path, "p1", "solvable", "--seed", "1")
    study = tmp_path / "unsolvable-anagrams"
    datafile.session_json_path(study, "p1", 1).write_bytes(b"\x00\xff\xfe")
    out = run_lhlab("status", study, check_rc=0)
    assert "sub-p1\tses-1" in out.stdout and "crashed" in out.stdout and "Traceback" not in out.stderr


def test_simulate_refuses_a_folder_with_real_sessions(tmp_path):
    study = tmp_path / "unsolvable-anagrams" / "sub-r1" / "ses-1"
    study.mkdir(parents=True)
    (study / "sub-r1_ses-1_session.json").write_text(json.dumps(
        {"participant": "r1", "session": 1, "condition": "solvable", "status": "complete", "pilot": False}))
    out = run_lhlab("simulate", PROTO, "--participants", "2", "--data-dir", tmp_path, check_rc=2)
    assert "real participants' sessions" in out.stderr and not (tmp_path / "unsolvable-anagrams" / "sub-P001").exists()
