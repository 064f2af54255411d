"""`lhlab simulate`: a whole simulated study through the registry, as the user runs it."""

from __future__ import annotations

import csv
import subprocess
from collections import Counter
from pathlib import Path

from conftest import LHLAB, REPO
from experiment import datafile
from experiment.registry import Registry
from test_registry import write_yoked_protocol

ANAGRAMS = REPO / "protocols" / "unsolvable-anagrams.yaml"


def participants_tsv(study: Path) -> list[dict]:
    with open(study / "participants.tsv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_simulate_twelve_gives_a_balanced_complete_study(tmp_path, lhlab):
    data = tmp_path / "data"
    proc = lhlab("simulate", ANAGRAMS, "--participants", 12, "--data-dir", data, "--seed", 1, check_rc=0)
    study = data / "unsolvable-anagrams"
    rows = participants_tsv(study)
    assert [r["participant_id"] for r in rows] == [f"sub-P{i:03d}" for i in range(1, 13)]
    assert Counter(r["condition"] for r in rows) == {"solvable": 4, "unsolvable": 4, "notraining": 4}
    assert {(r["status"], r["sessions"]) for r in rows} == {("complete", "1")}
    records = datafile.all_sessions(study)
    assert len(records) == 12 and {r["effective_status"] for r in records} == {"complete"}
    assert all(r["pilot"] and r["simulated"]["mode"] == "data-only" for r in records)
    for r in records:     # every phase wrote its trials
        assert all(ph["status"] == "complete" and ph["trials"] == ph["planned_trials"] for ph in r["phases"])
        assert (study / r["phases"][-1]["file"]).is_file()
    assert (study / "dataset_description.json").is_file()
    # what the user reads: one line per participant and a summary
    lines = proc.stdout.splitlines()
    assert len(lines) == 13 and lines[0].split()[:3] == ["P001", rows[0]["condition"], "complete"]
    assert "12 simulated participants" in lines[-1] and "solvable 4, unsolvable 4, notraining 4" in lines[-1]
    with Registry.open(study) as reg:
        assert [(p.label, p.condition, p.status) for p in reg.participants()] == \
            [(r["participant_id"][4:], r["condition"], "complete") for r in rows]
        assert {e.rule for e in reg.assignment_log()} == {"block"}


def test_same_seed_same_study(tmp_path, lhlab):
    def study(folder: str, seed: int) -> Path:
        lhlab("simulate", ANAGRAMS, "--participants", 6, "--data-dir", tmp_path / folder, "--seed", seed, check_rc=0)
        return tmp_path / folder / "unsolvable-anagrams"

    a, b, c = study("a", 7), study("b", 7), study("c", 8)
    assert (a / "participants.tsv").read_text() == (b / "participants.tsv").read_text()
    trials = sorted(p.relative_to(a) for p in a.glob("sub-*/ses-*/beh/*_beh.tsv"))
    assert len(trials) > 6
    for rel in trials:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    test_a = (a / "sub-P001/ses-1/beh/sub-P001_ses-1_task-test_beh.tsv").read_text()
    test_c = (c / "sub-P001/ses-1/beh/sub-P001_ses-1_task-test_beh.tsv").read_text()
    assert test_a != test_c


def test_two_simulate_processes_on_one_folder(tmp_path):
    data = tmp_path / "data"
    cmd = [*LHLAB, "simulate", str(ANAGRAMS), "--participants", "10", "--data-dir", str(data), "--seed", "3"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    printed = [line.split()[0] for out, _ in outs for line in out.splitlines()[:-1]]
    assert len(printed) == 20 and len(set(printed)) == 20
    study = data / "unsolvable-anagrams"
    rows = participants_tsv(study)
    assert sorted(r["participant_id"][4:] for r in rows) == sorted(printed)
    assert {(r["status"], r["sessions"]) for r in rows} == {("complete", "1")}
    records = datafile.all_sessions(study)
    assert len(records) == 20 and {r["effective_status"] for r in records} == {"complete"}
    with Registry.open(study) as reg:
        log = reg.assignment_log()
    assert len({(e.block, e.slot) for e in log}) == 20
    for b in (0, 1):     # the two complete blocks are balanced even though two processes filled them
        assert Counter(e.condition for e in log if e.block == b) == {"solvable": 2, "unsolvable": 2,
                                                                    "notraining": 2}


def test_simulate_yoked_study(tmp_path, lhlab):
    proto = write_yoked_protocol(tmp_path)
    lhlab("simulate", proto, "--participants", 18, "--data-dir", tmp_path / "data", "--seed", 2, check_rc=0)
    study = tmp_path / "data" / "yoketest"
    rows = {r["participant_id"][4:]: r for r in participants_tsv(study)}
    assert len(rows) == 18
    yoked = [r for r in rows.values() if r["condition"] == "yoked"]
    assert len(yoked) >= 4
    partners = [r["yoked_to"] for r in yoked]
    assert len(set(partners)) == len(partners) and "n/a" not in partners
    assert all(rows[p]["condition"] == "escape" for p in partners)
    assert {r["yoked_to"] for r in rows.values() if r["condition"] != "yoked"} == {"n/a"}
    # the session record carries the partner too
    for label, r in rows.items():
        record = datafile.read_session(datafile.session_json_path(study, label, 1))
        assert (record["yoked_to"] or "n/a") == r["yoked_to"]


def test_simulate_adds_to_an_existing_study(tmp_path, lhlab):
    data = tmp_path / "data"
    lhlab("simulate", ANAGRAMS, "--participants", 4, "--data-dir", data, "--seed", 5, check_rc=0)
    proc = lhlab("simulate", ANAGRAMS, "--participants", 2, "--data-dir", data, "--seed", 6, check_rc=0)
    assert [line.split()[0] for line in proc.stdout.splitlines()[:-1]] == ["P005", "P006"]
    assert "block seed 5" in proc.stderr
    with Registry.open(data / "unsolvable-anagrams") as reg:
        log = reg.assignment_log()
    assert [(e.block, e.slot, e.seed) for e in log] == [(0, i, 5) for i in range(6)]
    assert Counter(e.condition for e in log) == {"solvable": 2, "unsolvable": 2, "notraining": 2}


def test_simulate_refuses_bad_input_before_writing(tmp_path, lhlab):
    data = tmp_path / "data"
    for args, message in ((("--participants", 0), "--participants must be >= 1"),
                          (("--participants", 2, "--profile", "nosuch"), "unknown profile 'nosuch'")):
        proc = lhlab("simulate", ANAGRAMS, *args, "--data-dir", data, check_rc=2)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not data.exists()
    other = data / "unsolvable-anagrams"
    lhlab("simulate", write_yoked_protocol(tmp_path), "--participants", 1, "--data-dir", tmp_path / "y", check_rc=0)
    other.parent.mkdir(parents=True)
    (tmp_path / "y" / "yoketest").rename(other)       # a folder that belongs to another study
    proc = lhlab("simulate", ANAGRAMS, "--participants", 2, "--data-dir", data, check_rc=2)
    assert "belongs to study 'yoketest'" in proc.stderr
    assert len(list(other.glob("sub-*"))) == 1
