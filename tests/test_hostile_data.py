"""Damaged study folders in the analysis (issue 9): bad cells, session records with fields of the
wrong type, absurd nesting, FIFOs named like data files and relabelled copies are reported in
load_problems and never used silently."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from analysis.loading import load_study
from experiment import datafile
from test_analysis_cohort import run_sessions


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return run_sessions(tmp_path_factory.mktemp("hostile"), 4, seed=7)


@pytest.fixture
def study(pristine, tmp_path):
    dst = tmp_path / pristine.name
    shutil.copytree(pristine, dst)
    return dst


@pytest.fixture
def deadline():
    """Fail instead of hanging (a blocking open of a FIFO never returns)."""
    def on_alarm(signum, frame):
        raise TimeoutError("the analysis hung")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


LABEL = "p00001"


def _record_path(study: Path, label: str = LABEL) -> Path:
    return datafile.session_json_path(study, label, 1)


def _edit_record(study: Path, change) -> None:
    path = _record_path(study)
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec))


def _test_file(study: Path, label: str = LABEL) -> Path:
    return datafile.beh_path(study, label, 1, "test")


def _problems(s, label: str = LABEL) -> list[str]:
    rows = s.problems[s.problems["path"].str.contains(f"sub-{label}", regex=False)]
    return [f"{r.path}: {r.problem} -> {r.action}" for r in rows.itertuples()]


RECORDS = [
    ("phase trials is text", lambda r: r["phases"][4].update(trials="many"), "trials must be a whole number"),
    ("phase trials is a boolean", lambda r: r["phases"][4].update(trials=True), "trials must be a whole number"),
    ("status is a number", lambda r: r.update(status=5), "status must be one of"),
    ("pilot is text", lambda r: r.update(pilot="no"), "pilot must be true or false"),
    ("session is text", lambda r: r.update(session="1"), "session must be a whole number"),
    ("phases is a mapping", lambda r: r.update(phases={"a": 1}), "phases must be a list"),
    ("phase status unknown", lambda r: r["phases"][0].update(status="done"), "status must be one of"),
    ("process id is text", lambda r: r.update(status="running", process={**r["process"], "pid": "abc"}),
     "process.pid must be a process id"),
    ("process start time is text", lambda r: r.update(status="running", process={**r["process"], "start_time": "x"}),
     "process.start_time must be a number"),
]


@pytest.mark.parametrize("case", RECORDS, ids=[c[0] for c in RECORDS])
def test_session_record_fields_are_type_checked(study, case):
    _, change, message = case
    _edit_record(study, change)
    s = load_study(study)
    found = _problems(s)
    assert any(message in p and "session skipped" in p for p in found), found
    assert f"sub-{LABEL}" not in set(s.trials["participant_id"])


def test_a_test_file_cut_short_is_not_analysed_as_complete(study):
    """`trials: "many"` used to switch the row-count check off: the record is refused now, and
    with an intact record a cut file is caught by the count."""
    path = _test_file(study)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:8]))            # header + 7 of 20 rows
    s = load_study(study)
    assert any("fewer" in p for p in _problems(s)), _problems(s)
    assert not ((s.trials["participant_id"] == f"sub-{LABEL}") & (s.trials["phase"] == "test")).any()


def test_absurdly_nested_session_json(study, deadline):
    _record_path(study).write_text("[" * 200_000 + "]" * 200_000)
    s = load_study(study)
    assert any("nested too deeply" in p and "session skipped" in p for p in _problems(s)), _problems(s)
    # `lhlab status` reads every record too: the damaged one reads as crashed, no RecursionError
    recs = {r["participant"]: r for r in datafile.all_sessions(study)}
    assert recs[LABEL]["effective_status"] == "crashed" and "nested" in recs[LABEL]["problem"]


def test_fifo_named_like_a_trial_file_is_never_opened(study, deadline):
    path = _test_file(study)
    path.unlink()
    os.mkfifo(path)
    s = load_study(study)
    found = _problems(s)
    assert any("pipe (FIFO)" in p and "file skipped" in p for p in found), found
    rows, problems = datafile.read_trials(path)
    assert rows == [] and "pipe (FIFO)" in problems[0]


def test_fifo_named_like_a_session_record(study, deadline):
    path = _record_path(study)
    path.unlink()
    os.mkfifo(path)
    s = load_study(study)
    assert any("pipe (FIFO)" in p and "session skipped" in p for p in _problems(s)), _problems(s)


def test_a_relabelled_copy_is_flagged_as_a_suspected_duplicate(study):
    src, dst = study / f"sub-{LABEL}", study / "sub-p00099"
    shutil.copytree(src, dst)
    for path in sorted(dst.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_file():
            path.write_text(path.read_text().replace(LABEL, "p00099"))
        if LABEL in path.name:
            path.rename(path.with_name(path.name.replace(LABEL, "p00099")))
    s = load_study(study)
    dup = s.problems[s.problems["action"].str.contains("suspected duplicate")]
    assert len(dup) == 1 and "sub-p00099" in dup.iloc[0]["path"] and f"sub-{LABEL}" in dup.iloc[0]["problem"]
    assert load_study(study.parent / study.name).problems.pipe(len) >= 1
    # different people are never flagged
    shutil.rmtree(dst)
    assert not load_study(study).problems["action"].str.contains("duplicate").any()


CELLS = [
    ("latency_scored is text", "latency_scored", "abc"),
    ("latency_scored is infinite", "latency_scored", "inf"),
    ("latency_scored is negative", "latency_scored", "-50"),
    ("latency_scored is astronomic", "latency_scored", "1e300"),
    ("outcome not a level", "outcome", "solvedX"),
    ("trial number duplicated", "trial", "1"),
]


@pytest.mark.parametrize("case", CELLS, ids=[c[0] for c in CELLS])
def test_damaged_cells_in_well_formed_rows_are_never_used(study, case):
    _, column, value = case
    path = _test_file(study)
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split("\t")
    row = lines[3].rstrip("\n").split("\t")
    row[header.index(column)] = value
    lines[3] = "\t".join(row) + "\n"
    path.write_text("".join(lines))
    s = load_study(study)
    assert _problems(s), "the damaged cell was not reported"
    mine = s.trials[(s.trials["participant_id"] == f"sub-{LABEL}") & (s.trials["phase"] == "test")]
    assert mine.empty or value not in set(mine[column].astype(str)) or column == "trial"
    if column == "trial":
        assert mine.empty or not mine["trial"].duplicated().any()


def test_a_file_name_ending_in_a_newline_is_not_a_trial_file(study):
    before = len(load_study(study).trials)
    src = _test_file(study)
    shutil.copy(src, str(src) + "\n")
    s = load_study(study)
    assert len(s.trials) == before
    assert any("unexpected file in beh/" in p for p in _problems(s)), _problems(s)


def test_values_from_the_folder_never_drive_the_terminal(study):
    """Escape sequences in a record or a folder name are printed as \\x1b, not executed."""
    from analysis.loading import print_problems
    from conftest import run_lhlab
    import io
    _edit_record(study, lambda r: r.update(condition="c\x1b]0;pwned\x07", exit={"reason": "x\x1b[2Jy\nz"}))
    (study / "sub-\x1b[2J").mkdir()
    out = run_lhlab("status", study, check_rc=0, timeout=60)
    assert "\x1b" not in out.stdout and "\\x1b]0;pwned\\x07" in out.stdout and "x\\x1b[2Jy\\nz" in out.stdout
    buf = io.StringIO()
    print_problems(load_study(study).problems, out=buf)
    assert "\x1b" not in buf.getvalue() and "\\x1b" in buf.getvalue()


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, "[1, 2]"])
def test_a_damaged_lab_config_is_one_line(tmp_path, content):
    from conftest import run_lhlab
    lab = tmp_path / "lab.json"
    lab.write_text(content)
    out = run_lhlab("validate", "protocols/hiroto-seligman-noise-shuttle.yaml",
                    env={**os.environ, "LHLAB_LAB_CONFIG": str(lab)}, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1 and "lab.json" in out.stderr
