"""No key lost in the real window (issue 10): bursts of key events 5-15 ms apart, injected from
this process through XTEST while `lhlab run` shows a real PsychoPy window under Xvfb, reach
every keyboard task in order: cards, rating moves, typed answers (several per burst, with
backspaces), continue keys; and answers typed with accents, quotes, commas, a long string
and many backspaces reach the trial file exactly as typed.

(The noise tasks take the same queue through wait_response: tests/test_key_queue.py.)"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from conftest import REPO, run_lhlab
from experiment.datafile import unescape_text
from live import LiveSession

pytestmark = pytest.mark.window

STIMULI = REPO / "stimuli" / "anagrams"
PROTOCOL = f"""
schema_version: 1
study: {{id: keys, title: "Key bursts", block_size: 1}}
phases:
  welcome: {{task: instructions, pages: ["Welcome. Press SPACE."]}}
  cards:
    task: discrimination
    mode: control
    n_problems: 1
    trials_per_problem: 3
    problem_intro_duration: 0
    feedback_duration: 0
    iti: 0.3
  check:
    task: rating
    require_movement: true
    questions: [{{id: control, text: "How much control?", low: 1, high: 10}}]
  test:
    task: anagram
    role: test
    items: {STIMULI / "repair.tsv"}
    n_trials: 2
    order: fixed
    time_limit: 60
    criterion_run: 0
    feedback_duration: 0.5
    iti: 0.3
conditions:
  only: {{kind: control, phases: [welcome, cards, check, test]}}
debriefing: {{pages: "Thank you."}}
"""
ODD = 'ça, "é" – ü; long ' + "x" * 60      # accents, quotes, a comma, a dash, a long answer


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_key_bursts_reach_every_task_in_order(x_display, tmp_path):
    from x11tools import Keys
    proto = tmp_path / "keys.yaml"
    proto.write_text(PROTOCOL, encoding="utf-8")
    plan = json.loads(run_lhlab("plan", proto, "--condition", "only", "--seed", 1, "--json", check_rc=0).stdout)
    words = [t["solution"] for t in next(p for p in plan["phases"] if p["id"] == "test")["trials"]]
    keys = Keys(x_display)
    keys.map_chars("".join(ch for ch in ODD if not (ch.isascii() and ch.isalnum()) and ch != " "))
    s = LiveSession(proto, "--participant", "b01", "--condition", "only", "--seed", 1, "--data-dir", tmp_path / "d",
                    "--windowed", "--experimenter", "E1")
    choices = ["left", "right", "right"]
    try:
        s.wait_for("page", timeout=60)
        assert keys.focus_window(), "the participant window never appeared"
        time.sleep(0.2)
        keys.press("space")
        for n, choice in enumerate(choices, 1):            # non-choice keys, then the choice, in one burst
            s.wait_for("trial_start", phase="cards", trial=n)
            time.sleep(0.05)
            keys.burst(["up", "space", choice, "down"], gap=0.007)
            s.wait_for("trial", phase="cards", trial=n)
        s.wait_for("trial_start", phase="check", trial=1)
        time.sleep(0.1)
        keys.burst(["return"] + ["left"] * 4, gap=0.012)  # Enter on the untouched start is no answer
        for _ in range(4):
            time.sleep(0.3)
            keys.press("right", hold=0.01)
        time.sleep(0.2)
        keys.press("return")
        s.wait_for("trial_start", phase="test", trial=1)
        time.sleep(0.15)
        keys.burst(["space" if ch == " " else ch for ch in ODD] + ["return"], gap=0.012)
        keys.burst(list("abcdefgh") + ["backspace"] * 8, gap=0.006)          # typed and taken back
        keys.burst(list("wrong") + ["return"] + list(words[0][:-1]) + ["x", "backspace", words[0][-1], "return"],
                   gap=0.008)                                                 # two answers in one burst
        s.wait_for("trial_start", phase="test", trial=2)
        time.sleep(0.1)
        keys.burst(list(words[1]) + ["return"], gap=0.005)
        s.pass_debriefing(keys, settle=0.2)
        assert s.finish() == 0
    finally:
        s.kill()
        keys.close()
    beh = tmp_path / "d" / "keys" / "sub-b01" / "ses-1" / "beh"
    cards = _rows(beh / "sub-b01_ses-1_task-cards_beh.tsv")
    assert [r["choice"] for r in cards] == choices and all(float(r["rt"]) > 0 for r in cards)
    rating = _rows(beh / "sub-b01_ses-1_task-check_beh.tsv")[0]
    assert (rating["response"], rating["moves"]) == ("5", "8")               # 5 -4 +4, every press counted
    test = _rows(beh / "sub-b01_ses-1_task-test_beh.tsv")
    assert [r["outcome"] for r in test] == ["solved", "solved"]
    first = test[0]
    answers = [unescape_text(a) for a in first["answers"].split("|")]
    assert answers == [ODD, "wrong", words[0]], answers
    assert first["attempts"] == "3" and test[1]["response"] == words[1]
