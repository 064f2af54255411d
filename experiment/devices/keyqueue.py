"""Every key the participant presses reaches the task, in order.

A keyboard device polls its event source once per frame (or every ~0.5 ms while noise is on),
and one poll may bring several presses: a quick typist, a key held on auto-repeat, four
LEFT presses 12 ms apart. Those presses go into a pending queue, and every wait (wait_key,
read_text, wait_response) takes from that queue in order; a wait that ends leaves the
presses it did not use for the next wait. Presses made before a wait's `since` (the onset
of the screen that asks for the answer) are not answers to it and are dropped when it
takes from the queue, as PsychoPy Builder and jsPsych discard keys pressed before a
stimulus appears.

Typed answers: the text comes from the window's text events (they follow the keyboard
layout: accents, shifted letters, dead keys), the timing from the keyboard's timestamps.
Both streams are kept in order and matched Enter by Enter, so "wrong<Enter>right<Enter>"
typed in one burst is two answers, never one box holding "wrongright".

No PsychoPy here: the real window (experiment.devices.window) and the scripted tests use
the same queue and the same waiting loops (`QueuedKeyboard` over an `InputSource`).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from experiment.devices.seam import KeyPress, Response, TextEntry

ENTER_KEYS = ("return", "num_enter")
# Keys that type nothing themselves: not the "first key" of a typed answer.
NOT_TYPING = {"lshift", "rshift", "shift", "lctrl", "rctrl", "ctrl", "lalt", "ralt", "alt", "capslock",
              "backspace", "delete", "left", "right", "up", "down", "tab", "escape"}
ENTER_GRACE = 0.25      # s the text events may lag the keyboard's Enter before the box's text is taken as is

CHAR, BACK, ENTER = "char", "back", "enter"


class KeyQueue:
    """Pending presses and typed-text events, oldest first."""

    def __init__(self):
        self.keys: deque[KeyPress] = deque()
        self.typed: deque[tuple[str, str]] = deque()    # (CHAR, "é") | (BACK, "") | (ENTER, "")
        self.buffer = ""                # the answer being typed (what the entry box shows)
        self._enter_seen: float | None = None   # when the keyboard's Enter waited for its text event

    # -- filling ------------------------------------------------------------------------------
    def add(self, presses: list[KeyPress]) -> None:
        self.keys.extend(presses)

    def add_text(self, text: str) -> None:
        """Characters from the window's text events ('\\r' is the Enter key)."""
        for ch in text:
            if ch in "\r\n":
                self.typed.append((ENTER, ""))
            elif ch.isprintable():
                self.typed.append((CHAR, ch))

    def add_backspace(self) -> None:
        self.typed.append((BACK, ""))

    def clear_text(self) -> None:
        """A new answer box: nothing typed before it belongs to it."""
        self.typed.clear()
        self.buffer = ""
        self._enter_seen = None

    def clear(self) -> None:
        self.keys.clear()
        self.clear_text()

    # -- taking -------------------------------------------------------------------------------
    def take(self, keys, since: float | None = None) -> KeyPress | None:
        """The oldest pending press of one of `keys` (None: any key) made at or after `since`;
        the presses before it are used up (they were not answers to this wait)."""
        while self.keys:
            k = self.keys.popleft()
            if since is not None and k.t < since:
                continue
            if keys is None or k.key in keys:
                return k
        return None

    def take_answer(self, now: float, extra_keys=(), since: float | None = None) -> TextEntry | KeyPress | None:
        """A complete typed answer (Enter on the keyboard matched with Enter in the text events),
        a press of one of `extra_keys`, or None while the answer is still being typed."""
        while self.keys and since is not None and self.keys[0].t < since:
            self.keys.popleft()
        end = next((i for i, k in enumerate(self.keys) if k.key in ENTER_KEYS or k.key in extra_keys), None)
        if end is None:
            self._apply_typed(stop_at_enter=True)
            return None
        if self.keys[end].key in extra_keys:
            self._apply_typed(stop_at_enter=True)
            return self._pop_through(end)[-1]
        # Enter: the text is what was typed up to the matching Enter text event.
        if not self._apply_typed(stop_at_enter=True, consume_enter=True):
            if self._enter_seen is None:
                self._enter_seen = now
            if now - self._enter_seen < ENTER_GRACE:
                return None         # the window has not delivered the text up to this Enter yet
        self._enter_seen = None
        used = self._pop_through(end)
        first = next((k.t for k in used if k.key not in ENTER_KEYS and k.key not in NOT_TYPING), None)
        text, self.buffer = self.buffer.strip(), ""
        return TextEntry(text, used[-1].t, first)

    def _pop_through(self, index: int) -> list[KeyPress]:
        return [self.keys.popleft() for _ in range(index + 1)]

    def _apply_typed(self, stop_at_enter: bool, consume_enter: bool = False) -> bool:
        """Apply typed events to the buffer up to the next Enter; True if that Enter was reached
        (and, with consume_enter, used up)."""
        while self.typed:
            kind, ch = self.typed[0]
            if kind == ENTER and stop_at_enter:
                if consume_enter:
                    self.typed.popleft()
                return True
            self.typed.popleft()
            if kind == CHAR:
                self.buffer += ch
            elif kind == BACK:
                self.buffer = self.buffer[:-1]
        return False


class InputSource(Protocol):
    """What a QueuedKeyboard needs from a screen: a clock, a frame (draw, deliver window
    events, poll the keyboard into `queue`) and the queue itself."""

    queue: KeyQueue

    def now(self) -> float: ...

    def frame(self) -> None:
        """Show one frame and move new key presses and text events into `queue`; raises
        Withdrawn/Aborted when a stop key was pressed."""


class QueuedKeyboard:
    """The Keyboard seam (wait_key, read_text, wait_response) over an input source (the real window, or a
    scripted source in tests): one frame per loop, answers taken from the pending queue."""

    def __init__(self, src: InputSource):
        self.src = src

    def wait_key(self, keys, until=None, since=None):
        q = self.src.queue
        while True:
            k = q.take(keys, since)
            if k is not None:
                return k
            if until is not None and self.src.now() >= until:
                return None
            self.src.frame()

    def read_text(self, until, view, extra_keys=(), since=None):
        q = self.src.queue
        while True:
            got = q.take_answer(self.src.now(), tuple(extra_keys), since)
            if got is not None:
                return got
            if self.src.now() >= until:
                return None
            self.src.frame()


    def wait_response(self, matcher, until, on_complete=None, since=None):
        """One frame per loop (the real window overrides this with a sub-millisecond polling loop)."""
        resp = Response(None)
        while not take_response(self.src.queue, matcher, resp, on_complete, since):
            if self.src.now() >= until:
                break
            self.src.frame()
        return resp


def take_response(q: KeyQueue, matcher, resp, on_complete, since) -> bool:
    """Feed the pending presses to `matcher` in order; True (with resp.done set) once the
    response is complete. Presses after the completing one stay pending."""
    while q.keys:
        k = q.keys.popleft()
        if since is not None and k.t < since:
            continue
        resp.presses.append(k)
        if k.key in matcher.key_set and resp.first is None:
            resp.first = k
        if matcher.feed(k):
            if on_complete is not None:
                on_complete(k)
            resp.done = k
            return True
    return False
