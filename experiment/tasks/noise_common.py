"""What the noise tasks need from the devices beyond experiment.devices, without PsychoPy.

Two more device capabilities (both implemented by the real devices in psychopy_devices and
the simulated ones in simulated):

Speaker (noise):
    prepare(level_dba, seconds, seed) -> Burst   generate the noise; nothing plays yet
    start(burst, at) -> float                    play it from session time `at` (onset)
    stop() -> float                              stop now; returns the stop command's time
    offset() -> float                            session time the burst ended (stop or its end)
    dose_record() -> dict                        the running NIOSH dose (experiment.noise.DoseMeter)
A burst is exactly `seconds` long: if nothing stops it, it ends by itself, so a hung program
can never play longer than the burst it prepared (and no burst exceeds the lab maximum).

Keyboard (responses):
    wait_response(matcher, until, on_complete=None) -> Response
        Feeds every key press to `matcher` until it is complete or `until`; calls
        `on_complete(press)` the moment it completes (the real keyboard polls its event
        queue in a tight loop, not once per frame, so the noise stops within a millisecond).

Also here: the escape-response matcher (one key, N presses, a key sequence) and the
PulseAudio facts a calibration is bound to.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from experiment.devices import KeyPress

KEY_RE = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Burst:
    level_dba: float
    seconds: float
    seed: int
    level_dbfs: float | None = None


@dataclass
class Response:
    """What happened during one wait_response."""

    done: KeyPress | None                       # the press that completed the response
    presses: list[KeyPress] = field(default_factory=list)   # every press, in order
    first: KeyPress | None = None               # first press of a response key


def parse_keys(text: str) -> list[str]:
    return [k for k in str(text).split() if k]


class ResponseMatcher:
    """One key, the same key N times, or a sequence of keys, pressed after `reset()`.

    Keys outside the response are recorded but change nothing; within a sequence a wrong
    response key restarts it (counting itself if it is the first key)."""

    def __init__(self, keys: list[str], presses: int = 1):
        if not keys:
            raise ValueError("an escape response needs at least one key")
        self.keys = list(keys)
        self.presses = presses if len(keys) == 1 else 1
        self.sequence = self.keys * self.presses
        self.reset()

    @classmethod
    def from_params(cls, params: dict) -> "ResponseMatcher":
        return cls(parse_keys(params["escape_keys"]), params.get("escape_presses", 1))

    def reset(self) -> None:
        self.progress = 0

    @property
    def key_set(self) -> set[str]:
        return set(self.keys)

    def feed(self, press: KeyPress) -> bool:
        """True when this press completes the response."""
        if press.key not in self.key_set:
            return False
        if press.key == self.sequence[self.progress]:
            self.progress += 1
        else:
            self.progress = 1 if press.key == self.sequence[0] else 0
        if self.progress >= len(self.sequence):
            self.progress = 0
            return True
        return False

    def describe(self) -> str:
        if len(self.keys) > 1:
            return " then ".join(k.upper() for k in self.keys)
        return self.keys[0].upper() + (f" {self.presses} times" if self.presses > 1 else "")

    def spec(self) -> dict:
        return {"keys": list(self.keys), "presses": self.presses}


# -- the output a calibration is bound to -------------------------------------------------------

def _pactl(*args: str) -> str | None:
    if not shutil.which("pactl"):
        return None
    try:
        out = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def output_identity(device: str) -> dict:
    """{device, pulse_sink, output_volume}: the configured output, and, where it goes through
    PulseAudio/PipeWire, the sink it plays to and that sink's volume (None when unknown)."""
    info = {"device": device, "pulse_sink": None, "output_volume": None}
    if device in ("default", "pulse", "pipewire") or device.startswith("pulse"):
        sink = _pactl("get-default-sink")
        if sink:
            info["pulse_sink"] = sink
            vol = _pactl("get-sink-volume", sink)
            mute = _pactl("get-sink-mute", sink)
            if vol:
                pct = re.findall(r"(\d+)%", vol)
                info["output_volume"] = "/".join(pct) + "%" + (" muted" if mute and "yes" in mute else "")
    return info


def configured_device() -> str:
    """The audio output noise plays on: $LHLAB_AUDIO_DEVICE, else lab.json's audio_device, else
    the system default output ("default": on most Linux PCs PulseAudio/PipeWire's default sink)."""
    import os

    from experiment.noise import lab_config
    return os.environ.get("LHLAB_AUDIO_DEVICE") or str(lab_config().get("audio_device") or "default")


def configured_latency_class() -> int:
    """psychtoolbox latency class, default 1: "the lowest latency possible under the constraint
    of reliable playback" (psychtoolbox). Classes 2-4 take exclusive control and use smaller
    buffers (~5 ms less latency) but underrun under CPU load on PulseAudio-backed devices
    (measured: 112 underruns in 12 s with both cores busy, against 7 for class 1)."""
    from experiment.noise import lab_config
    return int(lab_config().get("latency_class", 1))


def noise_levels(proto, condition: str) -> list[float]:
    """The noise levels (dB(A)) the condition's phases play; [] when it plays no noise."""
    from experiment.tasks import TASKS
    out = []
    for ph in proto.phase_sequence(condition):
        task = TASKS[ph.task]
        if hasattr(task, "exposure"):
            out += [level for level, seconds in task.exposure(ph.params) if seconds > 0]
    return out
