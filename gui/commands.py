"""The command lines the launcher starts as child processes (no Qt here).

The launcher never runs a session in its own process: every session is `lhlab run` in a
child, so a crash of the task (or of PsychoPy) never takes the launcher down, and a crash of
the launcher never takes the session down. The child is started as
`<this python> -m experiment.cli ...`, which works with or without the `lhlab` console
script on PATH and always uses the same installation as the launcher.
"""

from __future__ import annotations

import sys
from pathlib import Path

PILOT_PROFILE = "default"


def lhlab_argv(*args: str) -> list[str]:
    """[program, arg, ...] for one `lhlab` subcommand."""
    return [sys.executable, "-m", "experiment.cli", *map(str, args)]


def run_argv(protocol: Path, participant: str, condition: str, data_dir: Path, *, screen: int = 0,
             windowed: bool = False, experimenter: str = "", yoked_to: str | None = None,
             simulate: str | None = None, speed: float = 1.0) -> list[str]:
    """`lhlab run` for one session; paths are made absolute (the child's folder does not matter)."""
    args = ["run", str(Path(protocol).resolve()), "--participant", participant, "--condition", condition,
            "--data-dir", str(Path(data_dir).resolve()), "--screen", str(screen)]
    if windowed:
        args.append("--windowed")
    if experimenter.strip():
        args += ["--experimenter", experimenter.strip()]
    if yoked_to:
        args += ["--yoked-to", yoked_to]
    if simulate:
        args += ["--simulate", simulate, "--mode", "visual"]
        if speed != 1:
            args += ["--speed", f"{speed:g}"]
    return lhlab_argv(*args)


def analyze_argv(study_dir: Path, out: Path | None = None, include_pilot: bool = False) -> list[str]:
    args = ["analyze", str(Path(study_dir).resolve())]
    if out is not None:
        args += ["--out", str(Path(out).resolve())]
    if include_pilot:
        args.append("--include-pilot")
    return lhlab_argv(*args)
