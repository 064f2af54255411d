"""No key lost (issue 10), without a window: the real tasks on the same pending-queue keyboard the
PsychoPy window uses (experiment.devices.keyqueue.QueuedKeyboard), fed by a scripted source that
delivers key bursts several presses per frame, as a fast typist or a held key does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from experiment.datafile import unescape_text
from experiment.devices import KeyPress
from experiment.devices.keyqueue import BACK, KeyQueue, QueuedKeyboard, take_response
from experiment.devices.seam import Response
from experiment.errors import Withdrawn
from experiment.tasks import TASKS
from experiment.tasks.base import PhaseContext
from experiment.tasks.noise_common import ResponseMatcher

REPO = Path(__file__).resolve().parent.parent
TEXTS = {"withdraw_hint": "F12 stops.", "continue_hint": "Press SPACE."}
KEYS = {"withdraw": "f12", "abort": "escape", "continue": "space"}
FRAME = 1 / 60


class BurstSource:
    """A virtual screen + keyboard: each frame moves the scripted events whose time has come into
    the queue (a press, and the text the window would deliver for it), as Display.frame does."""

    def __init__(self, events):
        self.t = 0.0
        self.events = sorted(events, key=lambda e: e[0])    # (t, key, text or None or BACK)
        self.queue = KeyQueue()
        self.view = None
        self.views = []

    def now(self):
        return self.t

    def frame(self):
        self.t += FRAME
        while self.events and self.events[0][0] <= self.t:
            t, key, text = self.events.pop(0)
            if key == KEYS["withdraw"]:
                raise Withdrawn("withdraw key")
            self.queue.add([KeyPress(key, t)])
            if self.view is not None and self.view.entry:
                if text is BACK:
                    self.queue.add_backspace()
                elif text:
                    self.queue.add_text(text)

    # Screen and Clock
    def show(self, view):
        if view.entry and (self.view is None or self.view.letters != view.letters):
            self.queue.clear_text()
        self.view = view
        self.views.append((self.t, view))
        self.frame()
        return self.t

    def begin_phase(self, phase_id, role):
        self.queue.clear()

    def wait_until(self, t):
        while self.t < t:
            self.frame()


def burst(t0, keys, gap=0.012):
    """Key presses `gap` apart from t0: (t, key, typed text)."""
    out = []
    for i, k in enumerate(keys):
        text = BACK if k == "backspace" else ("\r" if k == "return" else (k if len(k) == 1 else None))
        out.append((t0 + i * gap, k, text))
    return out


def typed(t0, text, gap=0.008):
    return burst(t0, ["return" if ch == "\n" else ("backspace" if ch == "\b" else ch) for ch in text], gap)


def run(task_name, params, events, schedule=None):
    task = TASKS[task_name]
    p = {prm.name: prm.default for prm in task.params}
    p.update(params)
    src = BurstSource(events)
    rows = []
    ctx = PhaseContext("p", "test", p, src, src, QueuedKeyboard(src), None, TEXTS, KEYS, rows.append,
                       lambda *a, **k: None, REPO, {})
    task.run(ctx, schedule if schedule is not None else task.plan(p, random.Random(3), REPO))
    return rows, src


def test_rating_burst_of_four_then_slow_presses():
    """The issue's case: four LEFT 12 ms apart, then four slow RIGHT, from 5: response 5, 8 moves."""
    q = {"id": "control", "text": "How much control?", "low": 1, "high": 10}
    events = burst(0.5, ["left"] * 4) + [(1.0 + 0.3 * i, "right", None) for i in range(4)] + [(2.5, "return", "\r")]
    rows, _ = run("rating", {"questions": [q]}, events)
    assert rows[0]["response"] == 5 and rows[0]["moves"] == 8
    assert rows[0]["rt"] == pytest.approx(2.5 - FRAME, abs=FRAME)


def test_rating_two_questions_in_one_burst_and_require_movement():
    qs = [{"id": "a", "text": "A?", "low": 1, "high": 7}, {"id": "b", "text": "B?", "low": 1, "high": 7}]
    events = burst(0.5, ["return", "right", "right", "return"], gap=0.006) + burst(2.0, ["left", "return"], gap=0.005)
    rows, _ = run("rating", {"questions": qs, "require_movement": True}, events)
    # the first Enter on the untouched start is no answer; the second question's keys come later
    assert [(r["question"], r["response"], r["moves"]) for r in rows] == [("a", 6, 2), ("b", 3, 1)]
    rows, _ = run("rating", {"questions": qs[:1]}, burst(0.5, ["return"]))
    assert rows[0]["response"] == 4 and rows[0]["moves"] == 0      # without require_movement: start value


def test_cards_take_every_choice_in_order_and_no_press_from_before_the_card():
    params = {"mode": "control", "n_problems": 1, "trials_per_problem": 4, "feedback_duration": 0.0, "iti": 0.5,
              "problem_intro_duration": 0.0}
    events = []
    choices = ["left", "right", "right", "left"]
    # each card: a burst of keys that are no choice, then the choice; plus one stray press in the ITI
    for i, c in enumerate(choices):
        start = 0.2 + i * 1.0
        events += burst(start, ["up", "space", c, "down"], gap=0.007)
        events.append((start + 0.25, "left" if c == "right" else "right", None))   # during the blank ITI
    rows, _ = run("discrimination", params, events)
    assert [r["choice"] for r in rows] == choices
    assert all(r["rt"] >= 0 for r in rows)


def test_typed_burst_is_split_at_each_enter_with_backspaces_and_accents():
    sched = [{"item_id": "x1", "letters": "icrkb", "solution": "brick", "solvable": True},
             {"item_id": "x2", "letters": "ifrtd", "solution": "drift", "solvable": True}]
    events = typed(0.4, "wrong\nbrz\bick\n") + typed(3.0, "ça, \"é\"\nDRIFT\n", gap=0.005)
    rows, _ = run("anagram", {"items": "stimuli/anagrams/patterned-34251.tsv", "criterion_run": 0,
                              "feedback_duration": 0.5, "iti": 0.5}, events, schedule=sched)
    assert [r["outcome"] for r in rows] == ["solved", "solved"]
    assert rows[0]["wrong_answers"] == "wrong" and rows[0]["response"] == "brick" and rows[0]["attempts"] == 2
    assert unescape_text(rows[1]["wrong_answers"]) == 'ça, "é"' and rows[1]["response"] == "drift"
    assert rows[0]["first_key"] == pytest.approx(0.4 + 6 * 0.008 - rows[0]["onset"], abs=1e-9)


def test_instructions_count_each_continue_once_and_not_before_the_page():
    # page 1: two presses before min_time (not accepted), one after; then a double press whose
    # second half comes before page 2 appeared, a press within page 2's min_time, one after it
    events = burst(0.1, ["space", "space"], gap=0.005) + burst(2.5, ["space", "space"], gap=0.005) \
        + [(3.0, "space", None), (4.0, "space", None)]
    rows, _ = run("instructions", {"pages": ["one", "two"], "min_time": 1.0}, events)
    assert rows[0]["rt"] == pytest.approx(2.5 - rows[0]["onset"])
    assert rows[1]["onset"] + rows[1]["rt"] == pytest.approx(4.0)


def test_escape_response_of_three_presses_in_one_poll_and_the_rest_stays_pending():
    q = KeyQueue()
    q.add([KeyPress("space", 1.000), KeyPress("space", 1.005), KeyPress("x", 1.007), KeyPress("space", 1.010),
           KeyPress("space", 1.015)])
    resp = Response(None)
    assert take_response(q, ResponseMatcher(["space"], 3), resp, None, since=0.9)
    assert resp.done.t == 1.010 and [k.key for k in resp.presses] == ["space", "space", "x", "space"]
    assert [k.t for k in q.keys] == [1.015]


def test_after_a_withdrawal_and_in_the_debriefing_f12_is_not_offered(tmp_path):
    """The session's own pages (data-only, the screen recording every view): before the
    withdrawal the footer offers F12; the 'you have chosen to stop' page and the debriefing do not."""
    import threading

    from experiment.devices.virtual import data_only_devices
    from experiment.protocol import load_protocol
    from experiment.preflight import SessionRequest, prepare
    from experiment.session import Session
    from experiment.simulation.participant import participant_for
    proto = load_protocol(REPO / "protocols" / "demo.yaml")
    prep = prepare(SessionRequest(proto, "w1", "unsolvable", tmp_path, seed=3, simulate="default,withdraw_rate=1"))
    devices = data_only_devices(participant_for(prep), proto.keys)
    devices[1].keep = True
    assert Session(prep, devices, threading.Event()).run() == 4            # withdrawn
    pages = [v for _, v in devices[1].shown if v.kind in ("text", "debriefing")]
    stop = next(i for i, v in enumerate(pages) if v.text == proto.texts["withdrawn"])
    assert stop > 0 and all("F12" in v.footer for v in pages[:stop])
    assert all("F12" not in v.footer for v in pages[stop:])
    debriefing = [v for v in pages[stop:] if v.kind == "debriefing"]
    assert [v.text for v in debriefing] == proto.debriefing_for("unsolvable")       # the helpless group's own
