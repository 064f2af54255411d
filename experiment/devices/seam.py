"""The hardware seam: every task talks to these four interfaces and nothing else.

Two implementations exist: `experiment.psychopy_devices` (a real PsychoPy window, keyboard
and sound) and `experiment.simulated` (a virtual clock and a simulated participant). Task
code is written once against the interfaces below, so pilot data come from the same code
that runs in the lab.

Times are seconds on the session clock (`Clock.now()`), which starts at 0 when the session
starts. Every blocking call may raise `Withdrawn` or `Aborted` (see `experiment.errors`):
the withdraw and abort keys are handled by the devices, never by a task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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


class Keyboard(Protocol):
    def wait_key(self, keys: list[str], until: float | None = None) -> KeyPress | None:
        """First press of one of `keys` before session time `until` (None: no limit)."""

    def read_text(self, until: float, view: View) -> TextEntry | None:
        """Text typed into the entry box of `view` and submitted with Enter, or None at `until`.

        The screen keeps showing `view` with the typed text while the participant types.
        """


class Speaker(Protocol):
    def info(self) -> dict:
        """Provenance: backend, device, sample rate."""
