"""A prewarmed `lhlab run`: PsychoPy imported and the participant window opened hidden, waiting
for one session request on stdin, so Start -> first frame skips the ~2 s of start-up.

    python -m experiment.runner [--screen N] [--windowed]     (started by the launcher, not by people)

stdout: one JSON line `{"event": "runner_ready", "pid": ..., "prepare_s": ..., "window": "hidden"}`
once it is ready, then exactly what `lhlab run` prints. stdin: one JSON line, the arguments of
`lhlab run` as they would be typed after `run`:

    {"run": ["protocols/demo.yaml", "--participant", "P001", "--condition", "control", ...]}

The request goes through the same parser, preflight and session code as `lhlab run`
(experiment.cli.run_session), and the runner exits with `lhlab run`'s exit code when the session
ends; the launcher (gui.session_runner) then starts a new one. While it waits, the runner holds
no participant and no data: nothing is written until a request arrives (PsychoPy's own files in
$HOME aside). Before it reads a request it ends at once, writing nothing, on SIGTERM/SIGINT
(exit 3, `lhlab run`'s "aborted": a request already sent while it was starting up was aborted
before it began) or with exit 0 when stdin closes (the launcher went away); a request that is
not valid JSON or not valid `lhlab run` arguments is one stderr line and exit 2.

Hidden, not "not yet opened": opening the window costs 0.2-0.5 s, showing a hidden one ~1 ms
(measured on Xvfb; benchmarks/bench_launcher.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from experiment.errors import EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_ERROR


class _Quit(Exception):
    """SIGTERM/SIGINT before a request: nothing to finish."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiment.runner",
                                 description="A prewarmed lhlab run waiting for one session request on stdin "
                                             "(started by the launcher).")
    ap.add_argument("--screen", type=int, default=0, help="monitor index of the participant window")
    ap.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    opts = ap.parse_args(argv)

    stop = threading.Event()
    serving = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        if not serving.is_set():
            raise _Quit()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    display = None
    try:
        t0 = time.perf_counter()
        display = _prewarm(opts)
        print(json.dumps({"event": "runner_ready", "time": round(time.time(), 4), "pid": os.getpid(),
                          "prepare_s": round(time.perf_counter() - t0, 3), "screen": opts.screen,
                          "windowed": opts.windowed, "window": "hidden"}), flush=True)
        line = sys.stdin.readline()
        serving.set()
    except _Quit:
        _close(display)
        return EXIT_ABORTED
    if not line.strip():
        _close(display)            # the launcher closed our stdin: nobody will ask
        return 0
    args = _parse_request(line)
    if isinstance(args, int):
        _close(display)
        return args
    from experiment import cli
    return cli.call(lambda a: cli.run_session(a, stop, prewarmed=display), args)


def _prewarm(opts):
    """Import what a session needs and open the hidden window (None if it cannot be opened here:
    the request then opens its own, and says why the way `lhlab run` does)."""
    from experiment import cli, preflight, session  # noqa: F401 - imported now, not on Start
    cli.build_parser()                      # imports the subcommands' modules (registry, entry points)
    import sqlite3  # noqa: F401 - the default registry
    from experiment.simulation import participant  # noqa: F401 - pilots (visual simulation)
    from experiment.versions import session_versions
    session_versions(real_devices=True)     # warms its package-metadata lookups
    try:
        from experiment.devices import lab  # noqa: F401 - opens the devices of the request
        from experiment.devices.window import Display
        display = Display({}, None, opts.windowed, opts.screen, 1.0, hidden=True)
        display.warm_up()
    except Exception as e:  # noqa: BLE001 - e.g. no display: the request then fails as `lhlab run` would
        print(f"lhlab runner: no prewarmed window ({type(e).__name__}: {e})", file=sys.stderr, flush=True)
        return None
    try:
        from experiment.devices import audio  # noqa: F401 - noise protocols: PsychoPy's sound module
    except Exception as e:  # noqa: BLE001 - a session that needs audio reports it when it opens it
        print(f"lhlab runner: audio module not preloaded ({type(e).__name__}: {e})", file=sys.stderr, flush=True)
    return display


def _parse_request(line: str):
    """The `lhlab run` arguments (argparse Namespace) of one request line, or an exit code."""
    try:
        request = json.loads(line)
    except ValueError as e:
        print(f"lhlab runner: the session request is not JSON ({e}); send {{\"run\": [...lhlab run arguments]}}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    run = request.get("run") if isinstance(request, dict) else None
    if not isinstance(run, list) or not all(isinstance(a, str) for a in run):
        print("lhlab runner: the session request must be {\"run\": [...lhlab run arguments as strings]}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    from experiment import cli
    try:
        return cli.build_parser().parse_args(["run", *run])
    except SystemExit as e:          # argparse printed usage and the error line
        return EXIT_BAD_INPUT if e.code else 0


def _close(display) -> None:
    if display is not None:
        display.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a bug in start-up: one line, no data involved
        print(f"lhlab runner: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
