"""The hardware seam: every task talks to these interfaces and nothing else.

Implementations: `experiment.devices.window` (a real PsychoPy window and keyboard),
`experiment.devices.audio` (PsychoPy sound, calibrated noise) and
`experiment.devices.virtual` (a virtual clock, a recording screen, a keyboard fed by a
simulated participant, a silent speaker that accounts what would have played). Task code is
written once against the interfaces below, so pilot data come from the same code that runs
in the lab. Every implementation implements every method: tasks never probe a device.

Times are seconds on the session clock (`Clock.now()`), which starts at 0 when the session
starts. Every blocking call may raise `Withdrawn` or `Aborted` (see `experiment.errors`):
the withdraw and abort keys are handled by the devices, never by a task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol


@dataclass(frozen=True)
class View:
    """What the participant sees: a description, not drawing code.

    `kind` tells a simulated participant what situation it is in ("text", "anagram",
    "feedback", "rating", ...); the real screen only draws the fields.
    """

    kind: str
    text: str = ""                 # main text (instructions, feedback, question)
    letters: str = ""              # anagram letters, drawn large and spaced
    footer: str = ""               # small line at the bottom (e.g. how to withdraw)
    entry: bool = False            # show the typing box
    scale: tuple[int, int] | None = None   # rating scale range (low, high)
    scale_labels: tuple[str, str] = ("", "")
    marker: int | None = None      # current rating value
    light: str = ""                # "success" / "failure" light (noise tasks)
    options: tuple[tuple[str, str], ...] = ()   # (key shown, label) lines of a choice question, listed under the text
    selected: int | None = None    # index of the highlighted option
    message: str = ""              # a line between the question and the answer (why an answer was refused)
    data: dict = field(default_factory=dict)  # extra facts a simulated participant may see


@dataclass(frozen=True)
class KeyPress:
    key: str       # key name, PsychoPy spelling ("space", "return", "a", "f12")
    t: float       # session time of the key going down


@dataclass(frozen=True)
class TextEntry:
    text: str      # what was typed, stripped of the trailing newline
    t: float       # session time of the Enter key going down
    first_key: float | None = None   # session time of the first typed key (None if unknown)


@dataclass(frozen=True)
class Burst:
    """A prepared noise burst: exactly `seconds` long, so it ends by itself if nothing stops it."""
    level_dba: float
    seconds: float
    seed: int
    level_dbfs: float | None = None
    sound: str = "noise"            # "noise" (white noise) or "tone" (a sine at tone_hz)
    tone_hz: float | None = None


@dataclass
class Response:
    """What happened during one `Keyboard.wait_response`."""

    done: KeyPress | None                       # the press that completed the response
    presses: list[KeyPress] = field(default_factory=list)   # every press, in order
    first: KeyPress | None = None               # first press of a response key


class Matcher(Protocol):
    """A response made of key presses (experiment.tasks.noise_common.ResponseMatcher)."""

    sequence: list[str]

    @property
    def key_set(self) -> set[str]: ...

    def feed(self, press: KeyPress) -> bool:
        """True when this press completes the response."""


class Clock(Protocol):
    def now(self) -> float:
        """Session time in seconds."""

    def wait_until(self, t: float) -> None:
        """Return at session time `t`, keeping the screen alive and the stop keys working."""


class Screen(Protocol):
    def show(self, view: View) -> float:
        """Put `view` on the screen; return the session time it became visible."""

    def begin_phase(self, phase_id: str, role: str) -> None:
        """A new phase starts (a simulated participant learns the situation it is in)."""

    def info(self) -> dict:
        """Provenance: size, refresh rate, backend."""

    def frames_lost(self, start: float, end: float, window: str) -> int | None:
        """Frames dropped during one trial's stimulus window [start, end] (session times) of kind
        `window` ("letters", "noise", "cards"), which the timing audit then reports; None when the
        screen has no frames (data-only simulation). See experiment.devices.frames."""

    def timing(self) -> dict:
        """The timing audit's summary for the session record: refresh measured/nominal, frames,
        dropped frames overall and per stimulus window, worst frame ({"audited": False} without frames)."""

    def frame_log(self) -> bytes | None:
        """Every frame interval of the session as a gzip TSV (experiment.devices.frames.FRAME_COLUMNS),
        None without frames."""

    def frame_record(self, path: Path | None) -> str | None:
        """Append every frame event to the new plain TSV `path` as the session goes (at least once
        per trial, fsynced at each phase start), so a killed session keeps its frames; `None`:
        write the rest, fsync and close it. Returns why writing it stopped early (a full disk),
        else None. Screens without frames write nothing."""


class Keyboard(Protocol):
    def wait_key(self, keys: list[str], until: float | None = None,
                 since: float | None = None) -> KeyPress | None:
        """The next press of one of `keys` made at or after session time `since` (usually the
        onset of the screen that asks), before `until` (None: no limit).

        No press is lost: presses arrive in a pending queue and each wait takes the oldest first
        (experiment.devices.keyqueue), so a burst of presses between two polls is answered one
        by one; presses before `since` and of other keys are used up without effect."""

    def read_text(self, until: float, view: View, extra_keys: tuple[str, ...] = (),
                  since: float | None = None) -> TextEntry | KeyPress | None:
        """Text typed into the entry box of `view` and submitted with Enter, a press of one of
        `extra_keys` (e.g. a skip key), or None at `until`. Keys before `since` are dropped;
        several answers typed in one burst come back one per call.

        The screen keeps showing `view` with the typed text while the participant types.
        """

    def wait_response(self, matcher: Matcher, until: float,
                      on_complete: Callable[[KeyPress], None] | None = None,
                      since: float | None = None) -> Response:
        """Feed every key press (from session time `since`) to `matcher` until it completes or
        `until`; call `on_complete(press)` the moment it completes. The real keyboard polls its
        event queue in a tight loop, not once per frame, so the noise stops within a
        millisecond of the key."""


class Speaker(Protocol):
    """The audio output. Sessions without noise get one that refuses to play."""

    def info(self) -> dict:
        """Provenance: backend, device, sample rate, latency settings."""

    def prepare(self, level_dba: float, seconds: float, seed: int, ramp: float = 0.005,
                sound: str = "noise", tone_hz: float | None = None) -> Burst:
        """Generate the noise or the tone (checked against the lab limits and the calibration of
        that sound); nothing plays yet."""

    def start(self, burst: Burst, at: float | None = None) -> float:
        """Play the prepared burst from session time `at` (as soon as possible if None); return its onset."""

    def stop(self) -> float:
        """Stop now; return the session time of the stop command."""

    def finish(self) -> tuple[float | None, float | None, float | None]:
        """(onset, offset, stop command) of the last burst in session time; accounts its dose once."""

    def silence(self) -> None:
        """Stop whatever plays (withdrawal, abort, crash, end of phase)."""

    def dose_record(self) -> dict | None:
        """The running NIOSH dose of this session (experiment.noise.DoseMeter), None without audio."""

    def xruns(self) -> int:
        """Output underruns so far (each one is a gap in the sound)."""

    def timing(self) -> dict:
        """The audio part of the timing audit: device settings (backend, latency class, buffer,
        sample rate) and, per burst, scheduled vs reported onset/offset and underruns."""

    def close(self) -> None:
        """Release the output (silence first)."""
