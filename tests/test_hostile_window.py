"""Odd typed answers in the real PsychoPy window (issue 9): 'n/a', '|' and a spreadsheet formula
typed through XTEST reach the trial file recoverable exactly."""

from __future__ import annotations

import csv
import json
import time

import pytest

from conftest import run_lhlab
from experiment import datafile
from live import LiveSession

pytestmark = pytest.mark.window

ODD = ["n/a", "a|b", "=cmd|' /c calc'!a0"]


def test_odd_answers_typed_in_the_window_are_recorded_exactly(x_display, tmp_path):
    from x11tools import Keys
    plan = json.loads(run_lhlab("plan", "protocols/demo.yaml", "--condition", "solvable", "--seed", "11", "--json",
                                check_rc=0).stdout)
    solution = next(p for p in plan["phases"] if p["id"] == "practice")["trials"][0]["solution"]
    if not hasattr(Keys, "map_chars"):
        pytest.skip("tests/x11tools.py without Keys.map_chars cannot type '|' and '/'")
    keys = Keys(x_display)
    keys.map_chars("/|=' !")                     # before the window starts (see Keys.map_chars)
    s = LiveSession("protocols/demo.yaml", "--participant", "w01", "--condition", "solvable", "--seed", 11,
                    "--data-dir", tmp_path, "--windowed")
    try:
        s.wait_for("page", timeout=60)
        assert keys.focus_window(), "the participant window never appeared"
        time.sleep(0.2)
        keys.press("space")
        s.wait_for("trial_start", phase="practice", trial=1)
        time.sleep(0.2)
        for text in ODD + [solution]:
            keys.type(text)
            keys.press("return")
            time.sleep(0.25)
        s.wait_for("trial", phase="practice", trial=1)
        keys.press("escape")                       # the experimenter aborts: the row is on disk already
        assert s.finish() == 3
    finally:
        s.kill()
        keys.close()
    path = datafile.beh_path(tmp_path / "demo", "w01", 1, "practice")
    with open(path, newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f, delimiter="\t"))
    assert datafile.split_answers(row["answers"]) == ODD + [solution], row
    assert datafile.split_answers(row["wrong_answers"]) == ODD and row["attempts"] == "4"
    assert row["response"] == solution and row["outcome"] == "solved"
