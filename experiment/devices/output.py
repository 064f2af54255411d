"""Which audio output the noise plays on, and the mixer facts a calibration is bound to.

No PsychoPy here: `lhlab run --check` and the launcher ask these questions before any
device is opened.
"""

from __future__ import annotations

import os
import re

from experiment import os_specific
from experiment.errors import DeviceError
from experiment.labconfig import lab_config


def output_identity(device: str) -> dict:
    """{device, pulse_sink, output_volume}: the configured output, and, where it goes through
    PulseAudio/PipeWire, the sink it plays to and that sink's volume (None when unknown)."""
    info = {"device": device, "pulse_sink": None, "output_volume": None}
    if device in ("default", "pulse", "pipewire") or device.startswith("pulse"):
        sink = os_specific.pactl("get-default-sink")
        if sink:
            info["pulse_sink"] = sink
            vol = os_specific.pactl("get-sink-volume", sink)
            mute = os_specific.pactl("get-sink-mute", sink)
            if vol:
                pct = re.findall(r"(\d+)%", vol)
                info["output_volume"] = "/".join(pct) + "%" + (" muted" if mute and "yes" in mute else "")
    return info


def configured_device() -> str:
    """The audio output noise plays on: $LHLAB_AUDIO_DEVICE, else lab.json's audio_device, else
    the system default output ("default": on most Linux PCs PulseAudio/PipeWire's default sink)."""
    return os.environ.get("LHLAB_AUDIO_DEVICE") or str(lab_config().get("audio_device") or "default")


def configured_pulse_latency_msec() -> float | None:
    """The buffer a PulseAudio-protocol client asks the sound server for, in ms ($LHLAB_PULSE_LATENCY_MSEC,
    else lab.json's pulse_latency_msec; None: the server's default, ~10-20 ms). On PipeWire with a
    small quantum, 3 ms brings key -> silence at the sink under 4 ms (benchmarks/bench_escape_latency.py);
    on PulseAudio itself requests of 2-3 ms stall the stream, so leave it unset there."""
    raw = os.environ.get("LHLAB_PULSE_LATENCY_MSEC") or lab_config().get("pulse_latency_msec")
    if raw in (None, "", 0, "0"):
        return None
    try:
        ms = float(raw)
    except (TypeError, ValueError):
        ms = float("nan")
    if not 0.5 <= ms <= 500:
        raise DeviceError(f"pulse_latency_msec must be a number of milliseconds from 0.5 to 500 (got {raw!r}); "
                          "fix lab.json or LHLAB_PULSE_LATENCY_MSEC")
    return ms


def configured_latency_class() -> int:
    """psychtoolbox latency class, default 1: "the lowest latency possible under the constraint
    of reliable playback" (psychtoolbox). Classes 2-4 take exclusive control and use smaller
    buffers (~5 ms less latency) but underrun under CPU load on PulseAudio-backed devices
    (measured: 112 underruns in 12 s with both cores busy, against 7 for class 1)."""
    return int(lab_config().get("latency_class", 1))
