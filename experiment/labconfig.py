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
    pulse_latency_msec, registry, central."""
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
