"""This PC's lab settings: `lab.json` in the per-machine settings folder.

One reader for every key (noise limits, audio output, registry server, central data folder),
so every part of lhlab finds the same file ($LHLAB_LAB_CONFIG, else
$XDG_CONFIG_HOME/lhlab/lab.json) and reports a damaged one in the same single line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from experiment.errors import BadInput


def config_dir() -> Path:
    """Per-machine settings: $XDG_CONFIG_HOME/lhlab (default ~/.config/lhlab)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lhlab"


def lab_config_path() -> Path:
    return Path(os.environ.get("LHLAB_LAB_CONFIG") or config_dir() / "lab.json")


def lab_config() -> dict:
    """The machine's lab.json ({} if there is none). Keys: limits, audio_device, latency_class,
    pulse_latency_msec, audio_route, audio_buffer_frames, audio_suggested_latency_ms, registry, central."""
    path = lab_config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:     # RecursionError: absurdly nested JSON
        raise BadInput(f"{path}: cannot read the lab settings ({type(e).__name__}: {str(e)[:200]}); fix or "
                       "delete the file") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: must be a JSON object")
    return data


def station() -> str:
    """This PC's name in the lab monitor: `"station"` in lab.json, else the host name."""
    import socket

    from experiment.identifiers import check_free_text
    value = lab_config().get("station")
    if value is None:
        return socket.gethostname() or "station"
    problem = check_free_text(value, '"station"')
    if problem or not value.strip() or len(value) > 64:
        raise BadInput(f"{lab_config_path()}: {problem or 'station must be a name of 1 to 64 characters'}; "
                       "fix it (e.g. \"cubicle-2\") or remove it to use the host name")
    return value.strip()


AUDIO_ROUTES = ("auto", "jack", "pulse")


def audio_route() -> dict:
    """How psychtoolbox reaches the sound server: {"route", "buffer_frames", "suggested_latency_ms"}.

    route ($LHLAB_AUDIO_ROUTE, else lab.json "audio_route", default "auto"):
      "jack"  psychtoolbox's PortAudio as a JACK client inside the PipeWire graph (PipeWire's libjack,
              package pipewire-jack): its buffer is the graph quantum;
      "pulse" ALSA's `default`/`pulse` device through the PulseAudio protocol (PulseAudio or pipewire-pulse),
              client buffer from pulse_latency_msec;
      "auto"  "jack" when the server is PipeWire and pipewire-jack is installed, else "pulse".
    quantum ("audio_quantum", $LHLAB_AUDIO_QUANTUM; default 64, 0: do not ask): on the JACK route the graph
    buffer in frames lhlab asks PipeWire for while its output is open (PIPEWIRE_LATENCY quantum/48000);
    PipeWire grants it between its min-quantum (default 32) and max-quantum unless clock.force-quantum pins it.
    buffer_frames / suggested_latency_ms ("audio_buffer_frames", "audio_suggested_latency_ms";
    $LHLAB_AUDIO_BUFFER_FRAMES, $LHLAB_AUDIO_SUGGESTED_LATENCY_MS): psychtoolbox's buffersize and
    suggestedLatency for the output (None: psychtoolbox chooses)."""
    cfg = lab_config()
    route = str(os.environ.get("LHLAB_AUDIO_ROUTE") or cfg.get("audio_route") or "auto").strip().lower()
    if route not in AUDIO_ROUTES:
        raise BadInput(f"audio_route must be one of {', '.join(AUDIO_ROUTES)} (got {route!r}); fix "
                       f"{lab_config_path()} or LHLAB_AUDIO_ROUTE")

    def number(key: str, env: str, lo: float, hi: float, kind=float):
        raw = os.environ.get(env) or cfg.get(key)
        if raw in (None, "", 0, "0"):
            return None
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(raw, bool) or not lo <= value <= hi:
            raise BadInput(f"{key} must be a number from {lo:g} to {hi:g} (got {raw!r}); fix {lab_config_path()} "
                           f"or {env}")
        return value
    quantum = cfg.get("audio_quantum", 64) if os.environ.get("LHLAB_AUDIO_QUANTUM") in (None, "") \
        else os.environ["LHLAB_AUDIO_QUANTUM"]
    if quantum in (0, "0", None):
        quantum = None
    else:
        try:
            quantum = int(quantum)
        except (TypeError, ValueError):
            quantum = -1
        if not 16 <= quantum <= 8192:
            raise BadInput(f"audio_quantum must be a number of frames from 16 to 8192, or 0 (got "
                           f"{cfg.get('audio_quantum', os.environ.get('LHLAB_AUDIO_QUANTUM'))!r}); fix {lab_config_path()} "
                           "or LHLAB_AUDIO_QUANTUM")
    return {"route": route, "quantum": quantum,
            "buffer_frames": number("audio_buffer_frames", "LHLAB_AUDIO_BUFFER_FRAMES", 16, 8192, int),
            "suggested_latency_ms": number("audio_suggested_latency_ms", "LHLAB_AUDIO_SUGGESTED_LATENCY_MS", 0.5, 500)}
