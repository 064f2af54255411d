"""analysis.loading: real simulated studies, then damaged on purpose. Every damaged file is
reported with what was done about it; nothing damaged reaches the trials table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis import loading
from analysis.loading import load_study
from experiment import datafile
from experiment.errors import BadInput
from test_analysis_cohort import run_one, simulate_study


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return simulate_study(tmp_path_factory.mktemp("pristine"), 6, seed=4)


@pytest.fixture
def study(pristine, tmp_path):
    dst = tmp_path / pristine.name
    shutil.copytree(pristine, dst)
    return dst


def labels(study: Path) -> list[str]:
    return sorted(p.name[4:] for p in study.glob("sub-*"))


def beh(study: Path, label: str, phase: str) -> Path:
    return datafile.beh_path(study, label, 1, phase)


def problems_for(s, name: str) -> pd.DataFrame:
    return s.problems[s.problems["path"].str.contains(name, regex=False)]


def test_loads_every_trial_with_session_columns(study):
    s = load_study(study)
    assert s.problems.empty
    assert len(s.sessions) == len(s.participants) == 6
    # one row per trial: the row counts the session records hold
    recorded = 0
    for rec in datafile.all_sessions(study):
        recorded += sum(ph["trials"] for ph in rec["phases"])
    assert len(s.trials) == recorded
    for col in ("participant_id", "session", "condition", "condition_kind", "yoked_to", "session_status", "phase",
                "role", "task", "trial", "pilot"):
        assert col in s.trials.columns
    assert set(s.trials["condition_kind"]) == {"helpless", "controllable", "control"}
    assert s.trials["latency_scored"].dtype.kind == "f"
    assert set(s.trials["session_status"]) == {"complete"}
    # phases in the order they ran, trials in order
    first = s.trials[s.trials["participant_id"] == s.trials["participant_id"].iloc[0]]
    assert list(dict.fromkeys(first["phase"]))[:4] == ["consent", "demographics", "welcome", "practice"]
    assert first.groupby("phase", sort=False)["trial"].apply(lambda t: t.is_monotonic_increasing).all()
    p = s.participants.iloc[0]
    assert p["protocol_sha256"] and len(p["protocol_sha256"]) == 64 and p["pilot"]


def test_fast_path_reads_exactly_what_read_trials_reads(study, monkeypatch):
    fast = load_study(study).trials
    monkeypatch.setattr(loading, "_lines_have", lambda body, tabs: False)   # every file through read_trials
    slow = load_study(study).trials
    pd.testing.assert_frame_equal(fast.reset_index(drop=True), slow.reset_index(drop=True), check_dtype=False)


def test_quoted_text_is_read_through_the_csv_reader(study):
    lab = labels(study)[0]
    path = beh(study, lab, "test")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split("\t")
    row = lines[1].rstrip("\n").split("\t")
    row[header.index("wrong_answers")] = '"say ""hi"" | x"'     # csv quoting of: say "hi" | x
    lines[1] = "\t".join(row) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    s = load_study(study)
    assert s.problems.empty
    got = s.trials[(s.trials["participant_id"] == f"sub-{lab}") & (s.trials["phase"] == "test")]
    assert got["wrong_answers"].iloc[0] == 'say "hi" | x'


def test_torn_last_row_of_a_complete_session_skips_the_file(study):
    lab = labels(study)[0]
    path = beh(study, lab, "test")
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:-9], encoding="utf-8")         # cut inside the last row
    s = load_study(study)
    probs = problems_for(s, path.name)
    assert "row skipped" in set(probs["action"]) and "file skipped" in set(probs["action"])
    assert any("torn last row" in p for p in probs["problem"])
    assert any("fewer" in p for p in probs["problem"])
    assert s.trials[(s.trials["participant_id"] == f"sub-{lab}") & (s.trials["phase"] == "test")].empty


def test_torn_last_row_with_the_right_field_count_is_still_caught(study):
    lab = labels(study)[0]
    path = beh(study, lab, "test")
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:-2], encoding="utf-8")          # drop the line end and one digit: fields still complete
    s = load_study(study)
    assert any("torn last row" in p for p in problems_for(s, path.name)["problem"])


def test_corrupt_row_in_the_middle_skips_the_file(study):
    lab = labels(study)[1]
    path = beh(study, lab, "test")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace("\t", "\t\t", 1)
    path.write_text("".join(lines), encoding="utf-8")
    s = load_study(study)
    probs = problems_for(s, path.name)
    assert list(probs["action"]) == ["file skipped"] and "corrupt" in probs["problem"].iloc[0]
    assert s.trials[(s.trials["participant_id"] == f"sub-{lab}") & (s.trials["phase"] == "test")].empty
    # the participant's other phases are still there
    assert not s.trials[(s.trials["participant_id"] == f"sub-{lab}") & (s.trials["phase"] == "check")].empty


def test_not_utf8_and_empty_and_headerless_files(study):
    a, b, c = labels(study)[:3]
    beh(study, a, "check").write_bytes(b"\xff\xfe garbage")
    beh(study, b, "check").write_text("", encoding="utf-8")
    beh(study, c, "check").write_text("x\ty\n1\t2\n", encoding="utf-8")
    s = load_study(study)
    assert "not valid UTF-8" in problems_for(s, f"sub-{a}_ses-1_task-check")["problem"].iloc[0]
    assert "empty file" in problems_for(s, f"sub-{b}_ses-1_task-check")["problem"].iloc[0]
    assert "not an lhlab trial file" in problems_for(s, f"sub-{c}_ses-1_task-check")["problem"].iloc[0]
    assert set(s.problems["action"]) == {"file skipped"}
    damaged = s.trials["participant_id"].isin([f"sub-{x}" for x in (a, b, c)]) & s.trials["phase"].eq("check")
    assert not damaged.any()


def test_rows_of_another_participant_skip_the_file(study):
    a, b = labels(study)[:2]
    src, dst = beh(study, a, "check"), beh(study, b, "check")
    dst.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    s = load_study(study)
    assert "do not belong to this file" in problems_for(s, dst.name)["problem"].iloc[0]
    assert s.trials[(s.trials["participant_id"] == f"sub-{b}") & (s.trials["phase"] == "check")].empty


def test_unexpected_files_are_reported_and_ignored(study):
    lab = labels(study)[0]
    (datafile.session_dir(study, lab, 1) / "beh" / "notes.txt").write_text("hello")
    (datafile.session_dir(study, lab, 1) / "beh" / f"sub-{lab}_ses-1_task-bonus_beh.tsv").write_text("a\n")
    (study / f"sub-{lab}" / "stray.txt").write_text("x")
    s = load_study(study)
    assert set(s.problems["action"]) == {"ignored", "file skipped"}
    assert any("not in the session record" in p for p in s.problems["problem"])
    assert len(s.problems) == 3
    assert len(s.participants) == 6


def test_missing_or_broken_session_json_skips_the_session(study):
    a, b = labels(study)[:2]
    datafile.session_json_path(study, a, 1).unlink()
    datafile.session_json_path(study, b, 1).write_text("{ not json", encoding="utf-8")
    s = load_study(study)
    assert "without a session JSON" in problems_for(s, f"sub-{a}/ses-1")["problem"].iloc[0]
    assert "unreadable session JSON" in problems_for(s, f"sub-{b}_ses-1_session.json")["problem"].iloc[0]
    assert set(s.participants["participant_id"]).isdisjoint({f"sub-{a}", f"sub-{b}"})
    assert not s.trials["participant_id"].isin([f"sub-{a}", f"sub-{b}"]).any()


def test_session_json_of_another_folder_is_refused(study):
    a, b = labels(study)[:2]
    rec = json.loads(datafile.session_json_path(study, a, 1).read_text())
    datafile.session_json_path(study, b, 1).write_text(json.dumps(rec), encoding="utf-8")
    s = load_study(study)
    assert "does not describe this folder" in s.problems["problem"].iloc[0]


def test_a_dead_running_session_is_crashed_and_its_stale_counts_are_not_checked(study):
    lab = labels(study)[0]
    path = datafile.session_json_path(study, lab, 1)
    rec = json.loads(path.read_text())
    rec["status"] = "running"
    rec["process"]["pid"] = 2 ** 22 + 12345          # no such process
    rec["phases"][-2]["status"] = "running"            # as if killed during the test phase
    rec["phases"][-2]["trials"] = 0
    path.write_text(json.dumps(rec), encoding="utf-8")
    s = load_study(study)
    assert s.problems.empty
    row = s.participants.set_index("participant_id").loc[f"sub-{lab}"]
    assert row["session_status"] == "crashed" and row["status"] == "running"


def test_participants_tsv_extra_columns_are_kept_and_mismatches_reported(study):
    tsv = study / "participants.tsv"
    df = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    df["age"] = [str(20 + i) for i in range(len(df))]
    df.loc[0, "condition"] = "nonsense"
    extra = df.iloc[[0]].assign(participant_id="sub-ghost")
    pd.concat([df, extra]).to_csv(tsv, sep="\t", index=False)
    s = load_study(study)
    assert "age" in s.participants.columns
    assert any("sub-ghost" in p for p in s.problems["problem"])
    assert any("differs from the session record" in p for p in s.problems["problem"])


def test_session_rule_picks_which_session_is_analysed(study):
    lab = labels(study)[0]
    path = datafile.session_json_path(study, lab, 1)
    rec = json.loads(path.read_text())
    rec["status"] = "aborted"
    path.write_text(json.dumps(rec), encoding="utf-8")
    assert run_one(study.parent, lab, rec["condition"], seed=9) == 0      # ses-2, complete
    first = load_study(study).participants.set_index("participant_id").loc[f"sub-{lab}"]
    assert first["session"] == 1 and first["session_status"] == "aborted" and first["n_sessions"] == 2
    s = load_study(study, session_rule="first-complete")
    later = s.participants.set_index("participant_id").loc[f"sub-{lab}"]
    assert later["session"] == 2 and later["session_status"] == "complete"
    assert any("2 sessions" in n for n in s.notes)
    assert set(s.trials.loc[s.trials["participant_id"] == f"sub-{lab}", "session"]) == {1, 2}


def test_generic_loader_takes_any_task(study):
    """A phase of a task the analysis has never seen (a task type newer than this lhlab, so no row
    rules either) is loaded like any other."""
    lab = labels(study)[0]
    path = datafile.session_json_path(study, lab, 1)
    rec = json.loads(path.read_text())
    rec["phases"].insert(2, {"id": "noise", "task": "noise_tapping", "role": "training", "status": "complete",
                             "trials": 2, "file": f"sub-{lab}/ses-1/beh/sub-{lab}_ses-1_task-noise_beh.tsv"})
    path.write_text(json.dumps(rec), encoding="utf-8")
    common = f"sub-{lab}\t1\t{rec['condition']}\tnoise\ttraining\tnoise_tapping"
    beh(study, lab, "noise").write_text(
        "participant_id\tsession\tcondition\tphase\trole\ttask\ttrial\toutcome\tnoise_duration\trt\n"
        f"{common}\t1\tescape\t1.25\t1.25\n{common}\t2\ttimeout\t5\tn/a\n", encoding="utf-8")
    s = load_study(study)
    assert s.problems.empty
    noise = s.trials[s.trials["task"] == "noise_tapping"]
    assert list(noise["noise_duration"]) == [1.25, 5.0] and noise["rt"].isna().iloc[1]


def test_not_a_study_and_empty_study_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="not a folder"):
        load_study(tmp_path / "nope")
    with pytest.raises(BadInput, match="not an lhlab study folder"):
        load_study(tmp_path)
    (tmp_path / "dataset_description.json").write_text("{}")
    with pytest.raises(BadInput, match="holds no sessions"):
        load_study(tmp_path)
    with pytest.raises(BadInput, match="session rule"):
        load_study(tmp_path, session_rule="latest")


def test_a_file_with_its_columns_in_another_order_is_read_by_name(study):
    lab = labels(study)[0]
    path = beh(study, lab, "check")
    before = load_study(study).trials
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df[list(reversed(df.columns))].to_csv(path, sep="\t", index=False, lineterminator="\n")
    after = load_study(study)
    assert after.problems.empty
    cols = ["participant_id", "phase", "trial", "question", "response"]
    sel = lambda t: t.loc[(t["participant_id"] == f"sub-{lab}") & (t["phase"] == "check"), cols]  # noqa: E731
    pd.testing.assert_frame_equal(sel(before).reset_index(drop=True), sel(after.trials).reset_index(drop=True),
                                  check_dtype=False)
    df.loc[0, "participant_id"] = "sub-someoneelse"
    df[list(reversed(df.columns))].to_csv(path, sep="\t", index=False, lineterminator="\n")
    assert "do not belong" in problems_for(load_study(study), path.name)["problem"].iloc[0]


def test_a_first_session_stopped_before_any_phase_does_not_count(tmp_path):
    """Stopped on the welcome page, re-run as ses-2: the analysis uses ses-2 (session rule 'first')."""
    import json
    import shutil
    import subprocess
    import sys
    from analysis.loading import load_study
    from experiment import datafile
    repo = Path(__file__).resolve().parents[1]
    run = [sys.executable, "-m", "experiment.cli", "run", "protocols/demo.yaml", "--participant", "a1",
           "--condition", "solvable", "--data-dir", str(tmp_path), "--simulate", "default"]
    subprocess.run(run + ["--seed", "1"], cwd=repo, check=True, capture_output=True)
    study = tmp_path / "demo"
    path = datafile.session_json_path(study, "a1", 1)
    rec = json.loads(path.read_text())
    for phase in rec["phases"]:            # as if aborted on the welcome page
        phase.update(status="pending", trials=0)
        if phase["file"]:
            (study / phase["file"]).unlink()
            (study / phase["file"]).with_suffix(".json").unlink()
            phase["file"] = None
    rec["status"] = "aborted"
    path.write_text(json.dumps(rec))
    shutil.rmtree(study / "sub-a1" / "ses-1" / "beh")
    subprocess.run(run + ["--seed", "2", "--session", "2"], cwd=repo, check=True, capture_output=True)
    parts = load_study(study).participants
    assert parts.loc[parts["participant_id"] == "sub-a1", "session"].tolist() == [2]
