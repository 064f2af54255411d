"""Anagram scoring on scripted devices: time-outs, wrong answers, skips, criterion, censoring.
No window, no sleeping: a virtual clock and a keyboard that plays a script."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiment.devices import KeyPress, TextEntry
from experiment.errors import Withdrawn
from experiment.devices.virtual import VirtualClock
from experiment.tasks import TASKS
from experiment.tasks.base import PhaseContext
from experiment.tasks.anagram import obeys_pattern

REPO = Path(__file__).resolve().parent.parent
TEXTS = {"withdraw_hint": "F12 stops.", "continue_hint": "SPACE."}
KEYS = {"withdraw": "f12", "abort": "escape", "continue": "space"}


class ScriptedKeyboard:
    """Per trial, a list of (delay after onset, answer); answer None = let it time out,
    a KeyPress name string starting with '!' = press that key."""

    def __init__(self, clock, script):
        self.clock, self.script, self.onset = clock, list(script), 0.0

    def read_text(self, until, view, extra_keys=(), since=None):
        if not self.script or not self.script[0]:
            self.script and self.script.pop(0)
            self.clock.t = until
            return None
        delay, answer = self.script[0].pop(0)
        if not self.script[0] and answer is not None:
            self.script.pop(0)
        t = self.onset + delay
        if answer is None or t >= until:
            self.clock.t = until
            return None
        self.clock.t = t
        if answer.startswith("!"):
            if answer[1:] == KEYS["withdraw"]:
                raise Withdrawn("withdraw")
            return KeyPress(answer[1:], t)
        return TextEntry(answer, t, t - 1.0)


class Screen:
    def __init__(self, clock, kb):
        self.clock, self.kb, self.views = clock, kb, []

    def show(self, view):
        if view.kind == "anagram" and (not self.views or self.views[-1].kind != "anagram"):
            self.kb.onset = self.clock.t
        self.views.append(view)
        return self.clock.t


def _params(**params):
    task = TASKS["anagram"]
    p = {prm.name: prm.default for prm in task.params}
    p.update(items="stimuli/anagrams/patterned-34251.tsv", time_limit=100,
             pattern=[3, 4, 2, 5, 1], criterion_run=0, criterion_time=15, order="fixed")
    p.update(params)
    assert not task.check(p, REPO)
    return p


def planned(**params):
    import random
    return TASKS["anagram"].plan(_params(**params), random.Random(1), REPO)


def run_anagram(script, **params):
    task = TASKS["anagram"]
    p = _params(**params)
    schedule = planned(**params)
    clock = VirtualClock()
    kb = ScriptedKeyboard(clock, script)
    screen = Screen(clock, kb)
    rows, events = [], []
    ctx = PhaseContext("test", "test", p, clock, screen, kb, None, TEXTS, KEYS, rows.append,
                       lambda e, **f: events.append((e, f)), REPO, {})
    task.run(ctx, schedule)
    return rows, schedule, screen


def solution(schedule, n):
    return schedule[n]["solution"]


def test_solved_timeout_and_scoring():
    sched = planned(n_trials=3)
    script = [[(12.5, solution(sched, 0).upper())], [], [(30, "nope"), (40.25, "wrong")]]
    rows, schedule, _ = run_anagram(script, n_trials=3)
    assert [r["outcome"] for r in rows] == ["solved", "timeout", "timeout"]
    assert rows[0]["rt"] == pytest.approx(12.5) and rows[0]["latency_scored"] == pytest.approx(12.5)
    assert rows[0]["response"] == solution(schedule, 0)               # case-insensitive, stored lower-case
    assert rows[1]["rt"] is None and rows[1]["latency_scored"] == 100  # failures scored at the limit
    assert rows[2]["attempts"] == 2 and rows[2]["wrong_answers"] == "nope|wrong"


def test_criterion_three_fast_in_a_row_and_censoring():
    sched = planned(n_trials=6)
    fast = lambda n, t: [(t, solution(sched, n))]  # noqa: E731
    script = [fast(0, 10), fast(1, 16), fast(2, 3), fast(3, 4), fast(4, 14.9), fast(5, 2)]
    rows, _, _ = run_anagram(script, n_trials=6, criterion_run=3)
    assert [r["fast_run"] for r in rows] == [1, 0, 1, 2, 3, 4]        # 16 s breaks the run
    assert [r["criterion_reached"] for r in rows] == [0, 0, 0, 0, 1, 1]
    never = run_anagram([fast(0, 20), fast(1, 20), fast(2, 20)], n_trials=3, criterion_run=3)[0]
    assert [r["criterion_reached"] for r in never] == [0, 0, 0]      # censored: analysis sees 0


def test_stop_at_criterion_ends_the_phase():
    sched = planned(n_trials=5)
    script = [[(2, solution(sched, n))] for n in range(5)]
    rows, _, _ = run_anagram(script, n_trials=5, criterion_run=3, stop_at_criterion=True)
    assert len(rows) == 3 and rows[-1]["criterion_reached"] == 1


def test_skip_key_only_when_allowed():
    sched = planned(n_trials=2)
    rows, _, screen = run_anagram([[(7, "!f2")], [(3, solution(sched, 1))]], n_trials=2, allow_skip=True)
    assert rows[0]["outcome"] == "skipped" and rows[0]["latency_scored"] == 100
    assert any("F2" in v.footer for v in screen.views if v.kind == "anagram")


def test_unsolvable_items_can_never_be_solved():
    items = "stimuli/anagrams/training.tsv"
    rows, schedule, screen = run_anagram([[(5, "hello"), (9, "house")], []], items=items, n_trials=2,
                                         unsolvable_proportion=1, pattern=None, criterion_run=0)
    assert all(not t["solvable"] for t in schedule)
    assert [r["outcome"] for r in rows] == ["timeout", "timeout"]
    assert [v.text for v in screen.views if v.kind == "feedback"] == ["Time is up.", "Time is up."]


def test_withdraw_during_a_trial_leaves_earlier_rows():
    sched = planned(n_trials=2)
    rows: list = []
    task, p = TASKS["anagram"], _params(n_trials=2)
    clock = VirtualClock()
    kb = ScriptedKeyboard(clock, [[(3, solution(sched, 0))], [(1, "!f12")]])
    ctx = PhaseContext("test", "test", p, clock, Screen(clock, kb), kb, None, TEXTS, KEYS, rows.append,
                       lambda e, **f: None, REPO, {})
    with pytest.raises(Withdrawn):
        task.run(ctx, sched)
    assert [r["outcome"] for r in rows] == ["solved"]        # the finished trial was written


def test_patterned_items_follow_the_rule():
    _, schedule, _ = run_anagram([[]] * 20, n_trials=20)
    assert all(obeys_pattern(t["letters"], t["solution"], [3, 4, 2, 5, 1]) for t in schedule)
    assert obeys_pattern("aihrc", "chair", [3, 4, 2, 5, 1])
