"""The real participant screen: a PsychoPy window and the psychtoolbox keyboard.

One of the two modules that import PsychoPy (the other is experiment.devices.audio). The
classes here implement Clock, Screen and Keyboard of experiment.devices.seam; task code never
sees PsychoPy.

Time: session time = (core.getTime() - t0) * speed. Key timestamps come from the keyboard's
own event queue (psychtoolbox kbQueue), so they do not depend on when we poll. While noise is
on, `RealKeyboard.wait_response` polls the keyboard queue every ~0.5 ms without flipping (the
view does not change while the noise is on), so an escape stops the noise within a
millisecond of the key event instead of up to a frame later.
"""

from __future__ import annotations

import math
import os
import textwrap
import time

from experiment import os_specific

os_specific.preload_pipewire_jack()           # before PsychoPy loads psychtoolbox's PortAudio (audio_route jack)

from psychopy import core, logging, prefs     # noqa: E402

prefs.general["audioLib"] = ["ptb"]
logging.console.setLevel(logging.ERROR)       # stdout carries progress JSON only

from psychopy import visual                                  # noqa: E402
from psychopy.hardware import keyboard as ptb_keyboard       # noqa: E402

from experiment.devices.frames import FrameAudit, measured_refresh   # noqa: E402
from experiment.devices.keyqueue import KeyQueue, QueuedKeyboard, take_response   # noqa: E402
from experiment.devices.seam import KeyPress, Response, TextEntry, View   # noqa: E402
from experiment.devices.virtual import deliver_planned        # noqa: E402
from experiment.errors import Aborted, DeviceError, Withdrawn  # noqa: E402

FONT = "DejaVu Sans"
FRAME_HZ_WITHOUT_VSYNC = 60.0   # Xvfb/VMs flip at ~1 kHz; pace to a lab screen's rate
TEXT_COLOR = (0.9, 0.9, 0.9)
DIM = (0.3, 0.3, 0.3)
HINT_COLOR = (0.7, 0.7, 0.7)
BIG_TEXT = {"feedback": (0.09, 0.16), "card_feedback": (0.09, 0.16)}   # kind -> (height, y): where the eye is
TEXT_AT = {"form": (0.045, 0.27)}      # a demographic question: large, above its options or answer box
OPTION_Y, OPTION_STEP, OPTION_H = 0.13, 0.062, 0.042    # the options of a choice question, one line each
OPTION_GAP = 0.05                      # between an option's key and its label
OPTION_FLOOR = -0.35                   # the message under the options stays above the key hints
MESSAGE_COLOR = (1.0, 0.85, 0.3)       # why an answer was refused: read at once, not an alarm
MOTION_BACKSPACE = 0xFF08   # pyglet.window.key.MOTION_BACKSPACE (pyglet is PsychoPy's, not imported here)


class Display:
    """The window, the keyboard queue, the current view and the frame loop: shared by the
    Clock, Screen and Keyboard facades below."""

    def __init__(self, keys: dict, stop_flag, windowed: bool, screen: int, speed: float, hidden: bool = False):
        """Open the window on `screen` and start the session clock. `hidden=True` (a prewarmed
        runner, experiment.runner) opens it unmapped and stops there: `start()` shows it later."""
        self.keys, self.stop_flag, self.speed = keys, stop_flag, speed
        self.windowed, self.screen = windowed, screen
        self.win = _open_window(windowed, screen, hidden)
        self.win.mouseVisible = False
        self.kb = ptb_keyboard.Keyboard(backend="ptb")
        self._seen: set[int] = set()
        self.queue = KeyQueue()       # every press and typed character until a wait takes it
        self.win.winHandle.push_handlers(on_text=self._on_text, on_text_motion=self._on_text_motion)
        self.frame_period = 1.0 / FRAME_HZ_WITHOUT_VSYNC
        self._last_flip = 0.0
        self.view: View | None = None
        self._stims = self._make_stims()
        self._measure = visual.TextStim(self.win, text="", font=FONT, height=0.035, wrapWidth=100)   # never drawn
        self._balanced: dict = {}
        self.entry_text_override: str | None = None   # visual simulation types into the box
        self.frames = 0
        self.audit: FrameAudit | None = None
        if not hidden:
            self.start()

    def start(self, keys: dict | None = None, stop_flag=None, speed: float | None = None) -> None:
        """Show the window (a no-op if it is visible), drop keys pressed before, start the session
        clock and the timing audit. A prewarmed Display gets its session's keys, stop flag and
        speed here."""
        if keys is not None:
            self.keys, self.stop_flag = keys, stop_flag
        if speed is not None:
            self.speed = speed
        self.win.winHandle.set_visible(True)
        self.kb.clearEvents()
        self.queue.clear()
        self.t0 = core.getTime()
        self.t0_unix = time.time() - (core.getTime() - self.t0)   # GetSecs is Unix time on Linux
        self.audit = self._start_audit()       # every frame of the session (experiment.devices.frames)

    def warm_up(self) -> None:
        """Lay out and draw (without flipping) each kind of text once, so the fonts' glyphs are
        rendered before the first page of a session instead of during it (~50 ms)."""
        sample = "".join(map(chr, range(32, 127))) + " äöüßéèàç"
        for view in (View("text", text=sample, footer=sample), View("feedback", text=sample),
                     View("anagram", letters="ABCDEFGHIJKLMNOPQRSTUVWXYZ", text=sample, entry=True)):
            self.set_view(view)
            self.draw()
        self.view = None
        self.queue.clear()

    def matches(self, windowed: bool, screen: int) -> bool:
        """Whether this (prewarmed) window is the one a session with these options needs."""
        return (self.windowed, self.screen) == (bool(windowed), int(screen))

    # -- time ------------------------------------------------------------------------------
    def now(self) -> float:
        return (core.getTime() - self.t0) * self.speed

    def to_session(self, t_abs: float) -> float:
        return (t_abs - self.t0) * self.speed

    def to_unix(self, t: float) -> float:
        """Unix time (= psychtoolbox GetSecs on Linux) of session time `t`."""
        return self.t0_unix + t / self.speed

    def unix_to_session(self, t_unix: float) -> float:
        return (t_unix - self.t0_unix) * self.speed

    def pump(self) -> None:
        """Keep the window responsive without flipping (no wait for a vertical retrace)."""
        try:
            self.win.winHandle.dispatch_events()
        except Exception:  # noqa: BLE001 - a backend without it needs nothing
            pass

    # -- drawing ---------------------------------------------------------------------------
    def _make_stims(self) -> dict:
        w = self.win
        return {
            "text": visual.TextStim(w, text="", font=FONT, height=0.035, wrapWidth=1.1, color=TEXT_COLOR,
                                    pos=(0, 0.05)),
            "letters": visual.TextStim(w, text="", font=FONT, height=0.11, color=(1, 1, 1), bold=True,
                                       pos=(0, 0.15)),
            "prompt": visual.TextStim(w, text="", font=FONT, height=0.032, color=TEXT_COLOR, pos=(0, -0.02),
                                      wrapWidth=1.1),
            # key hints ("Press SPACE...") must be read: as light as the text, not a small grey line
            "footer": visual.TextStim(w, text="", font=FONT, height=0.03, color=HINT_COLOR, pos=(0, -0.42),
                                      wrapWidth=1.3),
            # the answer box: our own text (from KeyQueue), not an editable TextBox2, so a burst
            # of typing is split at each Enter and no placeholder sits under the caret
            "entry_box": visual.Rect(w, width=0.6, height=0.1, pos=(0, -0.14), fillColor=(-0.8, -0.8, -0.8),
                                     lineColor=(0.6, 0.6, 0.6), lineWidth=2),
            "entry": visual.TextStim(w, text="", font=FONT, height=0.06, color=(1, 1, 1), pos=(0, -0.14),
                                     wrapWidth=2.0),
            "caret": visual.Line(w, start=(0, -0.172), end=(0, -0.108), lineColor=(1, 1, 1), lineWidth=2),
            "message": visual.TextStim(w, text="", font=FONT, height=0.036, color=MESSAGE_COLOR, pos=(0, 0.04),
                                       wrapWidth=1.2),
            "option_mark": visual.Rect(w, width=0.8, height=OPTION_STEP * 0.92, pos=(0.06, OPTION_Y),
                                       fillColor=(-0.45, -0.1, 0.45), lineColor=(0.2, 0.6, 1.0), lineWidth=2),
            # (key, label) per option line: keys right-aligned, labels left-aligned, so they line up
            "options": [(visual.TextStim(w, text="", font=FONT, height=OPTION_H, color=TEXT_COLOR, bold=True,
                                         pos=(-0.22, OPTION_Y - i * OPTION_STEP), anchorHoriz="right",
                                         alignText="right"),
                         visual.TextStim(w, text="", font=FONT, height=OPTION_H, color=TEXT_COLOR,
                                         pos=(-0.17, OPTION_Y - i * OPTION_STEP), anchorHoriz="left",
                                         alignText="left", wrapWidth=1.5))      # labels are one line
                        for i in range(9)],
            "scale_line": visual.Line(w, start=(-0.4, -0.12), end=(0.4, -0.12), lineColor=TEXT_COLOR, lineWidth=3),
            "marker": visual.Circle(w, radius=0.02, fillColor=(0.2, 0.6, 1.0), lineColor=None, pos=(0, -0.12)),
            "scale_low": visual.TextStim(w, text="", font=FONT, height=0.028, color=TEXT_COLOR, pos=(-0.4, -0.19)),
            "scale_high": visual.TextStim(w, text="", font=FONT, height=0.028, color=TEXT_COLOR, pos=(0.4, -0.19)),
            "value": visual.TextStim(w, text="", font=FONT, height=0.045, color=(1, 1, 1), pos=(0, -0.05)),
            "light": visual.Circle(w, radius=0.08, fillColor=(0, 0.8, 0), lineColor=None, pos=(0, 0.25)),
            "box_left": visual.Rect(w, width=0.3, height=0.3, pos=(-0.35, -0.15), lineColor=DIM, fillColor=None,
                                    lineWidth=3),
            "box_right": visual.Rect(w, width=0.3, height=0.3, pos=(0.35, -0.15), lineColor=DIM, fillColor=None,
                                     lineWidth=3),
            "shuttle_marker": visual.Circle(w, radius=0.06, fillColor=(0.2, 0.6, 1.0), lineColor=None,
                                            pos=(-0.35, -0.15)),
            # unit-sized shapes: `size` is then the pattern's width in height units
            **{f"{side}_{shape}": (visual.Circle(w, radius=0.5, pos=(x, 0.2), edges=96) if shape == "circle" else
                                   visual.Rect(w, width=1, height=1, pos=(x, 0.2)))
               for side, x in (("left", -0.3), ("right", 0.3)) for shape in ("circle", "square")},
            "left_letter": visual.TextStim(w, text="", font=FONT, height=0.06, color=(1, 1, 1), pos=(-0.3, 0.2),
                                           bold=True),
            "right_letter": visual.TextStim(w, text="", font=FONT, height=0.06, color=(1, 1, 1), pos=(0.3, 0.2),
                                            bold=True),
        }

    def set_view(self, view: View) -> None:
        s = self._stims
        old = self.view
        self.view = view
        _set(s["footer"], view.footer)
        if view.kind == "anagram":
            _set(s["letters"], "  ".join(view.letters))
            _set(s["prompt"], view.text)
            _set(s["text"], "")
            if old is None or old.kind != "anagram" or old.letters != view.letters:
                self.pump()                 # typing delivered so far belongs to the previous screen
                self.queue.clear_text()     # a new item starts with an empty box
        else:
            height, y = BIG_TEXT.get(view.kind) or TEXT_AT.get(view.kind, (0.035, 0.05))
            if view.entry and (old is None or old.kind != view.kind or old.data.get("field") != view.data.get("field")):
                self.pump()                 # a new question's box starts empty
                self.queue.clear_text()
            if s["text"].height != height or tuple(s["text"].pos) != (0, y):
                s["text"].height, s["text"].pos, s["text"].bold = height, (0, y), view.kind in BIG_TEXT
            _set(s["text"], self.balanced(view.text, height, s["text"].wrapWidth))
            _set(s["letters"], "")
            _set(s["prompt"], "")
        self._set_options(view)
        if view.scale:
            low, high = view.scale
            x = -0.4 + 0.8 * (view.marker - low) / (high - low)
            s["marker"].pos = (x, -0.12)
            s["value"].pos = (x, -0.06)          # the number sits above the marker and moves with it
            _set(s["value"], str(view.marker))
            _set(s["scale_low"], f"{low}\n{view.scale_labels[0]}")
            _set(s["scale_high"], f"{high}\n{view.scale_labels[1]}")
        if view.light:
            s["light"].fillColor = {"success": (0, 0.8, 0), "warning": (1, 0.85, 0)}.get(view.light, (0.9, 0.1, 0.1))
        if view.kind == "shuttle":
            s["shuttle_marker"].pos = (-0.35 if not view.marker else 0.35, -0.15)
        if view.kind == "card":
            for side in ("left", "right"):
                pat = view.data[side]
                shape = s[f"{side}_{pat['shape']}"]
                scale = 1.0 if pat["size"] == "large" else 0.6
                shape.size = (0.22 * scale, 0.22 * scale)
                shape.fillColor = (0.8, -0.9, -0.9) if pat["color"] == "red" else (-0.9, -0.6, 0.9)
                shape.lineColor = (1, 1, 1)
                shape.lineWidth = 10 if pat["border"] == "thick" else 2
                _set(s[f"{side}_letter"], pat["letter"])

    def _set_options(self, view: View) -> None:
        """A choice question's option lines (key, label), the marked one highlighted, and the
        message (why an answer was refused): under the options, or above the answer box."""
        s = self._stims
        for i, (key, label) in enumerate(s["options"]):
            _set(key, view.options[i][0] if i < len(view.options) else "")
            _set(label, view.options[i][1] if i < len(view.options) else "")
        if view.options:      # the block (keys, a gap, labels) centred, whatever the labels' length
            shown = s["options"][:len(view.options)]
            keys_w = max(k.boundingBox[0] for k, _ in shown) / self.win.size[1]
            labels_w = max(lab.boundingBox[0] for _, lab in shown) / self.win.size[1]
            left = -(keys_w + OPTION_GAP + labels_w) / 2
            step = min(OPTION_STEP, (OPTION_Y - OPTION_FLOOR) / (len(view.options) + 0.5))   # many: closer
            for i, (key, label) in enumerate(shown):
                key.pos = (left + keys_w, OPTION_Y - i * step)
                label.pos = (left + keys_w + OPTION_GAP, OPTION_Y - i * step)
            s["option_mark"].size = (keys_w + OPTION_GAP + labels_w + 0.08, step * 0.92)
            if view.selected is not None and view.selected < len(view.options):
                s["option_mark"].pos = (0, OPTION_Y - view.selected * step)
        y = OPTION_Y - len(view.options) * step - 0.005 if view.options else 0.04
        s["message"].pos = (0, y)
        _set(s["message"], view.message)

    def balanced(self, text: str, height: float, wrap: float) -> str:
        """`text` with its paragraphs broken into lines of even length, so no word is left alone
        on a last line (PsychoPy wraps greedily: '...in the consent' / 'form.')."""
        if not text or len(text) < 40:
            return text
        cached = self._balanced.get((text, height, wrap))
        if cached is not None:
            return cached
        m = self._measure
        out = []
        for para in text.split("\n"):
            m.height, m.text = height, para
            width = m.boundingBox[0] / self.win.size[1] if para.strip() else 0.0
            n = math.ceil(width / wrap) if width else 1
            if n > 1 and width / n > 0.92 * wrap:     # room for uneven lines, so PsychoPy does not rewrap
                n += 1
            if n <= 1:
                out.append(para)
                continue
            chars = math.ceil(len(para) / n)
            lines = textwrap.wrap(para, chars)
            while len(lines) > n:              # a long word: allow a little more per line
                chars += 1
                lines = textwrap.wrap(para, chars)
            out.append("\n".join(lines))
        self._balanced[(text, height, wrap)] = result = "\n".join(out)
        return result

    def draw(self) -> None:
        s, v = self._stims, self.view
        if v is None:
            return
        if v.kind in ("blank",):
            s["footer"].draw()
            return
        for name in ("text", "letters", "prompt", "footer", "message"):
            if s[name].text:
                s[name].draw()
        if v.options:
            if v.selected is not None:
                s["option_mark"].draw()
            for key, label in s["options"][:len(v.options)]:
                key.draw()
                label.draw()
        if v.entry:
            typed = self.entry_text_override if self.entry_text_override is not None else self.queue.buffer
            if s["entry"].text != typed:
                _set(s["entry"], typed)
                half = s["entry"].boundingBox[0] / 2 / self.win.size[1] if typed else 0.0
                s["caret"].start, s["caret"].end = (half + 0.006, -0.172), (half + 0.006, -0.108)
            s["entry_box"].draw()
            if typed:
                s["entry"].draw()
            s["caret"].draw()
        if v.scale:
            for name in ("scale_line", "scale_low", "scale_high", "marker", "value"):
                s[name].draw()
        if v.light:
            s["light"].draw()
        if v.kind == "shuttle":
            for name in ("box_left", "box_right", "shuttle_marker"):
                s[name].draw()
        if v.kind == "card":
            for side in ("left", "right"):
                s[f"{side}_{v.data[side]['shape']}"].draw()
                s[f"{side}_letter"].draw()

    def flip(self) -> float:
        """Draw the current view and flip; return the session time of the flip. Paced to
        60 Hz where the display has no vsync, so the loop does not spin at 1 kHz; every flip
        goes into the timing audit."""
        self.draw()
        if self.audit.pacing_hz:      # flips *start* one period apart, so their cost is not added to it
            wait = self._last_flip + self.frame_period - core.getTime()
            if wait > 0.0005:
                time.sleep(wait - 0.0003)
        self._last_flip = core.getTime()
        t = self.win.flip()
        t = core.getTime() if t is None else t
        self.frames += 1
        self.audit.flip(t - self.t0)
        return self.to_session(t)

    # -- timing audit (experiment.devices.frames) -------------------------------------------
    def _start_audit(self) -> FrameAudit:
        """Measure the refresh rate from a few unpaced flips (None without vsync) and read the
        nominal one the display reports (None when it reports none, e.g. Xvfb)."""
        stamps = []
        for _ in range(11):
            t = self.win.flip()
            stamps.append(core.getTime() if t is None else t)
        self._last_flip = stamps[-1]
        hz = measured_refresh([b - a for a, b in zip(stamps, stamps[1:])])
        try:
            nominal = float(self.win.winHandle.screen.get_mode().rate) or None
        except Exception:  # noqa: BLE001 - many X servers report no mode
            nominal = None
        if hz:
            self.frame_period = 1.0 / hz
        return FrameAudit(self.frame_period, hz, nominal, None if hz else FRAME_HZ_WITHOUT_VSYNC)

    def idle_frame(self) -> None:
        """A frame period of a wait that does not flip (noise on): keep the window responsive and
        count the tick in the audit, so a stall of that loop shows as dropped frames."""
        self.pump()
        self.audit.idle(core.getTime() - self.t0)

    def frames_lost(self, start: float, end: float, window: str) -> int:
        """Frames lost in the stimulus window [start, end] (session times); registers it and
        writes the frames so far to the plain frames file (once per trial, after its window)."""
        lost = self.audit.window(window, start / self.speed, end / self.speed)
        self.audit.flush()
        return lost

    # -- keys --------------------------------------------------------------------------------
    def _on_text(self, text: str) -> None:
        if self.view is not None and self.view.entry:
            self.queue.add_text(text)

    def _on_text_motion(self, motion) -> None:
        if self.view is not None and self.view.entry and motion == MOTION_BACKSPACE:
            self.queue.add_backspace()

    def frame(self) -> None:
        """One frame of a wait (experiment.devices.keyqueue.InputSource): flip, then poll."""
        self.flip()
        self.poll()

    def poll(self) -> list[KeyPress]:
        """New key presses since the last poll, in order; they are also added to the pending
        queue that every wait takes from. Raises on withdraw/abort/stop."""
        if self.stop_flag is not None and self.stop_flag.is_set():
            raise Aborted("stop requested (SIGINT/SIGTERM)")
        pressed = self.kb.getKeys(waitRelease=False, clear=False)
        released = self.kb.getKeys(waitRelease=True, clear=True)   # includes taps between two polls
        out = []
        for r in pressed + released:
            if id(r) in self._seen:
                continue
            self._seen.add(id(r))
            out.append(KeyPress(r.name, self.to_session(r.tDown)))
        for r in released:
            self._seen.discard(id(r))
        out.sort(key=lambda k: k.t)
        for k in out:
            if k.key == self.keys["abort"]:
                raise Aborted("experimenter abort key")
            if k.key == self.keys["withdraw"]:
                raise Withdrawn("withdraw key")
        self.queue.add(out)
        return out

    def close(self) -> None:
        try:
            self.win.close()
        except Exception:  # noqa: BLE001 - closing is best effort at exit
            pass


def _open_window(windowed: bool, screen: int, hidden: bool):
    """The PsychoPy window; `hidden`: created unmapped (pyglet's `visible=False`, which PsychoPy
    does not pass on), so nothing shows on the participant screen until Display.start()."""
    from psychopy.visual.backends import pygletbackend
    pyglet = pygletbackend.pyglet             # the module PsychoPy creates its window through
    platform_window = pyglet.window.Window

    class HiddenWindow(platform_window):
        def __init__(self, *args, **kwargs):
            kwargs["visible"] = False
            super().__init__(*args, **kwargs)
    if hidden:
        pyglet.window.Window = HiddenWindow      # only while PsychoPy creates this one window
    try:
        return visual.Window(size=(1024, 768), fullscr=not windowed, screen=screen, color=(-0.6, -0.6, -0.6),
                             units="height", allowGUI=windowed, checkTiming=False, winType="pyglet")
    except Exception as e:  # noqa: BLE001 - any failure to open a window is a device error
        raise DeviceError(f"cannot open the participant window ({e}); is a display available (DISPLAY)?") from None
    finally:
        pyglet.window.Window = platform_window


def _set(stim, text: str) -> None:
    if stim.text != text:     # re-layout only when the text changes
        stim.text = text


class RealClock:
    def __init__(self, d: Display):
        self.d = d

    def now(self) -> float:
        return self.d.now()

    def wait_until(self, t: float) -> None:
        while self.d.now() < t:
            self.d.flip()
            self.d.poll()    # presses stay pending; the next wait drops those before its `since`


class RealScreen:
    def __init__(self, d: Display):
        self.d = d

    def show(self, view: View) -> float:
        self.d.set_view(view)
        return self.d.flip()

    def begin_phase(self, phase_id: str, role: str) -> None:
        self.d.poll()
        self.d.queue.clear()     # drop keys pressed between phases
        self.d.audit.flush(sync=True)

    def info(self) -> dict:
        w = self.d.win
        return {"backend": "psychopy", "size": [int(v) for v in w.size], "fullscreen": bool(w._isFullScr),
                "frame_pacing_hz": FRAME_HZ_WITHOUT_VSYNC, "display": os.environ.get("DISPLAY"),
                "t0_unix": self.d.t0_unix,
                "speed": self.d.speed}

    def frames_lost(self, start: float, end: float, window: str) -> int | None:
        return self.d.frames_lost(start, end, window)

    def timing(self) -> dict:
        return self.d.audit.summary()

    def frame_log(self) -> bytes | None:
        return self.d.audit.tsv_gz()

    def frame_record(self, path) -> str | None:
        if path is not None:
            self.d.audit.stream_to(path)
        else:
            self.d.audit.end_stream()
        return self.d.audit.stream_error


class RealKeyboard(QueuedKeyboard):
    """wait_key and read_text take from the Display's pending queue (experiment.devices.keyqueue),
    one frame per loop; pyglet delivers typed characters during the flip."""

    def __init__(self, d: Display):
        super().__init__(d)
        self.d = d

    def wait_response(self, matcher, until, on_complete=None, since=None):
        return wait_response_polling(self.d, matcher, until, on_complete, since)


POLL_INTERVAL = 0.0005     # s between keyboard polls while waiting for an escape response


def wait_response_polling(d: Display, matcher, until, on_complete=None, since=None) -> Response:
    """Poll the keyboard queue in a tight loop (no flips) until `matcher` completes or `until`;
    `on_complete(press)` runs right after the poll that saw the completing key."""
    resp = Response(None)
    next_pump = 0.0
    rushed = core.rush(True)          # real-time scheduling while we wait (needs the permission; else no-op)
    try:
        while True:
            if _take_keys(d, matcher, resp, on_complete, since):
                return resp
            now = d.now()
            if now >= until:
                return resp
            if now >= next_pump:
                d.idle_frame()
                next_pump = now + d.frame_period
            time.sleep(POLL_INTERVAL)
    finally:
        if rushed:
            core.rush(False)


def wait_response_per_frame(d: Display, matcher, until, on_complete=None, since=None) -> Response:
    """The usual frame loop, for comparison (benchmarks/bench_escape_latency.py): flip (paced
    to 60 Hz), then check the keys once per frame."""
    resp = Response(None)
    while d.now() < until:
        d.flip()
        if _take_keys(d, matcher, resp, on_complete, since):
            return resp
    return resp


def _take_keys(d: Display, matcher, resp: Response, on_complete, since) -> bool:
    """Poll, then feed the pending presses to `matcher` in order; True (with resp.done set) once
    the response is complete (later presses stay pending)."""
    d.poll()
    return take_response(d.queue, matcher, resp, on_complete, since)


class SimulatedInput:
    """Visual simulation: the real window and clock, answers from a simulated participant
    delivered at their sampled times (typed into the box letter by letter)."""

    def __init__(self, d: Display, participant):
        self.d, self.participant = d, participant

    def _run_until(self, t: float | None) -> None:
        while t is None or self.d.now() < t:
            self.d.flip()
            self.d.poll()
            self.d.queue.clear()      # the answers come from the simulated participant

    def wait_key(self, keys, until=None, since=None):
        self.participant.see(self.d.view, self.d.now())
        got = self.participant.press(list(keys), self.d.now(), until)
        self._run_until(got.t if got else until)
        return self._deliver(got)

    def read_text(self, until, view, extra_keys=(), since=None):
        got = self.participant.answer_text(self.d.now(), until, list(extra_keys))
        if isinstance(got, TextEntry):
            start = got.first_key if got.first_key is not None else got.t
            self._run_until(start)
            while self.d.now() < got.t:        # show the word being typed
                share = (self.d.now() - start) / max(1e-6, got.t - start)
                self.d.entry_text_override = got.text[: int(len(got.text) * share) + 1]
                self.d.flip()
                self.d.poll()
                self.d.queue.clear()
            self.d.entry_text_override = None
        else:
            self._run_until(got.t if got else until)
        return self._deliver(got)

    def wait_response(self, matcher, until, on_complete=None, since=None):
        def advance(t: float) -> float:
            self._run_until(t)
            return self.d.now()
        return deliver_planned(self.participant, matcher, until, on_complete,
                               self.d.now() if since is None else since, advance, self.d.keys["withdraw"])

    def _deliver(self, got):
        if isinstance(got, KeyPress) and got.key == self.d.keys["withdraw"]:
            raise Withdrawn("withdraw key (simulated)")
        return got


class SimulatedScreen(RealScreen):
    """The real screen that also lets the simulated participant see each view."""

    def __init__(self, d: Display, participant):
        super().__init__(d)
        self.participant = participant

    def show(self, view: View) -> float:
        t = super().show(view)
        self.participant.see(view, t)
        return t

    def begin_phase(self, phase_id: str, role: str) -> None:
        super().begin_phase(phase_id, role)
        self.participant.enter_phase(role)
