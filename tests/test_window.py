"""End to end in a real PsychoPy window under Xvfb: key events injected from this process
(XTEST) are typed into the anagram box, scored, and end up in the trial TSV."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ARTIFACTS, run_lhlab
from live import LiveSession

pytestmark = pytest.mark.window


def _plan(condition: str, seed: int) -> dict:
    out = run_lhlab("plan", "protocols/demo.yaml", "--condition", condition, "--seed", seed, "--json", check_rc=0)
    return {p["id"]: p for p in json.loads(out.stdout)["phases"]}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_typed_answers_reach_the_trial_file(x_display, tmp_path):
    from x11tools import Keys, save_png
    plan = _plan("solvable", 11)
    s = LiveSession("protocols/demo.yaml", "--participant", "k01", "--condition", "solvable", "--seed", 11,
                    "--data-dir", tmp_path, "--windowed", "--experimenter", "E1")
    keys = Keys(x_display)
    try:
        s.wait_for("page", timeout=60)
        assert keys.focus_window(), "the participant window never appeared"
        time.sleep(0.2)
        keys.press("space")                                        # welcome page
        typed = {}
        for phase in ("practice", "trainsolvable", "test"):
            trials = plan[phase]["trials"]
            s.wait_for("phase_start", phase=phase)
            if phase != "practice":
                s.wait_for("page")                                 # the phase's instructions
                time.sleep(0.1)
                keys.press("space")
            for n, trial in enumerate(trials, 1):
                s.wait_for("trial_start", phase=phase, trial=n)
                time.sleep(0.15)
                if phase == "test" and n == 1:
                    shot = keys.screenshot()
                    save_png(shot, ARTIFACTS / "anagram-screen.png")
                    _assert_anagram_drawn(shot)
                if phase == "trainsolvable" and n == 1:
                    keys.type("wrong")                             # a wrong answer first
                    keys.press("return")
                    time.sleep(0.2)
                word = trial["solution"]
                keys.type(word.upper() if n % 2 else word)         # answers are case-insensitive
                keys.press("return")
                typed[(phase, n)] = word
                s.wait_for("trial", phase=phase, trial=n)
            if phase == "trainsolvable":
                s.wait_for("trial_start", phase="check", trial=1)
                time.sleep(0.1)
                keys.press("right"); time.sleep(0.05); keys.press("right"); time.sleep(0.05)
                keys.press("return")
        s.pass_debriefing(keys, settle=0.2)
        s.wait_for("page", phase="repair")                         # the repair task's own introduction
        time.sleep(0.1)
        keys.press("space")
        for n, trial in enumerate(plan["repair"]["trials"], 1):
            s.wait_for("trial_start", phase="repair", trial=n)
            time.sleep(0.15)
            keys.type(trial["solution"])
            keys.press("return")
        assert s.finish() == 0
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
        keys.close()

    beh = tmp_path / "demo" / "sub-k01" / "ses-1" / "beh"
    for phase in ("practice", "trainsolvable", "test"):
        rows = _rows(beh / f"sub-k01_ses-1_task-{phase}_beh.tsv")
        assert [r["outcome"] for r in rows] == ["solved"] * len(rows), rows
        for n, r in enumerate(rows, 1):
            assert r["response"] == typed[(phase, n)]
            assert 0.1 < float(r["rt"]) < 10, r["rt"]
            assert 0 < float(r["first_key"]) < float(r["rt"])
    first = _rows(beh / "sub-k01_ses-1_task-trainsolvable_beh.tsv")[0]
    assert first["wrong_answers"] == "wrong" and first["attempts"] == "2"
    rating = _rows(beh / "sub-k01_ses-1_task-check_beh.tsv")[0]
    assert rating["response"] == "7" and rating["moves"] == "2"    # marker starts at 5 on a 1-10 scale
    record = json.loads((tmp_path / "demo/sub-k01/ses-1/sub-k01_ses-1_session.json").read_text())
    assert record["status"] == "complete" and record["debriefing_shown"]
    assert record["experimenter"] == "E1" and record["versions"]["psychopy-lib"].startswith("2026.2")


def _assert_anagram_drawn(rgb: np.ndarray) -> None:
    """Not blank: the background plus bright letters in the upper middle of the window."""
    bright = (rgb.min(axis=2) > 200)
    assert bright.sum() > 500, "no bright text on the screen"
    ys, xs = np.nonzero(bright)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10, "the screen is a flat colour"


def test_withdraw_key_shows_debriefing_and_marks_withdrawn(x_display, tmp_path):
    from x11tools import Keys
    s = LiveSession("protocols/demo.yaml", "--participant", "w01", "--condition", "unsolvable", "--seed", 2,
                    "--data-dir", tmp_path, "--windowed")
    keys = Keys(x_display)
    try:
        s.wait_for("page", timeout=60)
        keys.focus_window()
        time.sleep(0.2)
        keys.press("space")
        s.wait_for("trial_start", phase="practice", trial=1)
        time.sleep(0.1)
        keys.press("f12")
        s.wait_for("page")                     # "you have chosen to stop"
        time.sleep(0.1)
        keys.press("space")
        s.pass_debriefing(keys)
        assert s.finish() == 4
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
        keys.close()
    record = json.loads((tmp_path / "demo/sub-w01/ses-1/sub-w01_ses-1_session.json").read_text())
    assert record["status"] == "withdrawn" and record["debriefing_shown"]
    assert [p["status"] for p in record["phases"]][:2] == ["complete", "interrupted"]
