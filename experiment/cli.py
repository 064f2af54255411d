"""`lhlab` subcommands. Bad input: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path

from experiment.errors import (EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_COMPLETE, EXIT_DECLINED, EXIT_ERROR,
                               EXIT_WITHDRAWN, BadInput, LhlabError, ProtocolError)
from experiment.datafile import DEFAULT_DATA_DIR
from experiment.suggest import hint



RUN_EPILOG = f"""\
exit codes:
  {EXIT_COMPLETE:<4} complete: every phase and the debriefing were done
  {EXIT_ERROR:<4} crashed: a bug or a device failure; the data so far are kept
  {EXIT_BAD_INPUT:<4} refused: bad protocol, arguments or data folder; nothing was written
  {EXIT_ABORTED:<4} aborted: the experimenter pressed Escape, or SIGINT/SIGTERM
  {EXIT_WITHDRAWN:<4} withdrawn: the participant pressed F12
  {EXIT_DECLINED:<4} declined: the participant declined consent (a consent phase); only the
       consent record was written
  130  interrupted (Ctrl-C) before the session was set up

keys (the defaults; a protocol may change them under `keys:`):
  F12     the participant withdraws, at any time: the session ends `withdrawn`
          (exit {EXIT_WITHDRAWN}) and the debriefing is still shown (F12 again ends it);
          on the consent screen it declines (exit {EXIT_DECLINED}, no debriefing)
  Escape  the experimenter aborts at once: the session ends `aborted` (exit {EXIT_ABORTED}),
          no debriefing
  Space   continue to the next instruction page

progress on stdout: one JSON object per line, e.g.
  {{"event": "trial", "time": 1764600000.5, "elapsed": 73.2, "participant": "p1",
   "session": 1, "phase": "training", "role": "training", "trial": 3, "of": 20,
   "outcome": "solved", "rt": 4.21}}
every event has: event, time (Unix time, s), elapsed (s since the start),
participant, session; from the first phase on also phase and role
(phase "debriefing" during the debriefing).
  event          its other fields
  session_start  condition, study, data (the session folder), phases (phase ids),
                 expected_s (longest expected duration)
  phase_start    task, trials (how many)
  page           kind (text, consent or debriefing): an instruction, consent or
                 debriefing page
  trial_start    trial, of
  trial          trial, of, outcome, rt (s; null without a response; no rt for
                 ratings)
  phase_end      trials_done
  debriefing     (none): the debriefing starts
  session_end    status (complete, aborted, withdrawn, declined or crashed), reason
Other lines on stdout (e.g. PsychoPy warnings) are not JSON; errors go to stderr.
"""


class _Version(argparse.Action):
    """`lhlab --version`: looked up only when asked for (and without importing PsychoPy)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())         # on stdout, like argparse's own version action
        parser.exit()


def version_text() -> str:
    """'lhlab 0.1.0 (Python 3.11.9, psychopy-lib 2026.2.5)', from the installed distributions' metadata."""
    import platform

    from experiment.versions import package_version
    psychopy = package_version("psychopy-lib")
    return (f"lhlab {package_version('lhlab') or '(not installed: run from a source tree)'} "
            f"(Python {platform.python_version()}, "
            f"{'psychopy-lib ' + psychopy if psychopy else 'psychopy-lib not installed'})")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{name: parser} of `lhlab`'s subcommands."""
    for action in parser._actions:       # argparse has no public accessor for its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def build_parser() -> argparse.ArgumentParser:
    """The one definition of `lhlab`'s command line (also read by the launcher)."""
    ap = argparse.ArgumentParser(prog="lhlab", description="Run learned-helplessness experiments.",
                                 epilog="`lhlab COMMAND --help` describes a command; `lhlab run --help` also "
                                        "lists the exit codes, the keys and the progress events.")
    ap.add_argument("--version", action=_Version, help="print the versions of lhlab, Python and PsychoPy, and exit")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check protocol files; exit 2 with file:line: field: message lines")
    p.add_argument("protocols", nargs="+", type=Path, metavar="PROTOCOL", help="protocol file(s) (YAML) to check")

    p = sub.add_parser("plan", help="print the seeded trial-by-trial schedule and expected duration")
    p.add_argument("protocol", type=Path, help="the protocol file (YAML)")
    p.add_argument("--condition", required=True, help="the condition to plan (one of the protocol's conditions)")
    p.add_argument("--seed", type=int, default=1, help="schedule seed (default: 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("run", help="run one participant's session", epilog=RUN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("protocol", type=Path, help="the protocol file (YAML)")
    p.add_argument("--participant", required=True, help="pseudonymous label (letters and digits)")
    p.add_argument("--condition", required=True, help="the participant's condition (one of the protocol's conditions)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help=f"data folder; the study's folder is created in it (default: {DEFAULT_DATA_DIR})")
    p.add_argument("--session", type=int, help="session number (default: the next free one)")
    p.add_argument("--seed", type=int, help="schedule seed (default: random, recorded)")
    p.add_argument("--experimenter", default="", help="experimenter id, recorded with the session")
    p.add_argument("--simulate", metavar="PROFILE", help="simulated participant profile, e.g. default or "
                                                         "'default,helplessness_effect=0.3'")
    p.add_argument("--mode", choices=("data-only", "visual"), default="data-only",
                   help="with --simulate: data-only (virtual clock, no window; the default) or visual "
                        "(the real window and clock, keys pressed by the simulated participant)")
    p.add_argument("--speed", type=float, default=1.0, help="compress waits by this factor (simulation; marks pilot)")
    p.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    p.add_argument("--screen", type=int, default=0, help="monitor index for the participant window")
    p.add_argument("--pilot", action="store_true", help="mark the data as pilot data")
    p.add_argument("--check", action="store_true",
                   help="dry run: print every preflight check (the launcher's), write nothing; exit 0 or 2")
    p.add_argument("--yoked-to", metavar="LABEL", help="yoked condition: the escapable partner whose recorded "
                                                       "noise durations and intervals are replayed")
    p.add_argument("--override-full", metavar="REASON", help="add this new participant although every condition "
                                                             "reached its planned n (study.planned_n); the reason "
                                                             "is kept in the assignment log")

    from experiment import calibration as calibrate_cmd    # lhlab calibrate (experiment/calibration.py)
    calibrate_cmd.add_parser(sub)

    p = sub.add_parser("tasks", help="reference of every task type: parameters (with defaults) and data columns")

    p = sub.add_parser("status", help="list the sessions of a study folder with their real status")
    p.add_argument("study_dir", type=Path, help="the study folder (DATA_DIR/<study-id>)")
    from experiment import cohort
    cohort.add_parser(sub)
    for name, command in CORE_COMMANDS.items():
        sub.choices[name].set_defaults(func=command)
    for ep in sorted(entry_points(group=EXTENSION_GROUP), key=lambda e: e.name):
        ep.load()(sub)         # analysis/cli.py (analyze), gui/cli.py (launch), ...
    from experiment.registry import commands as registry_commands   # lhlab registry; --registry (experiment/registry/)
    registry_commands.add_subcommands(sub)
    return ap


# Subcommands outside the core (`lhlab analyze` in analysis/, `lhlab launch` in gui/) are
# entry points of this distribution (pyproject.toml): each names an `add_parser(subparsers)`
# that sets `func`. So the core never imports the layers built on it, and a missing layer is a
# missing command, not a broken core.
EXTENSION_GROUP = "lhlab.commands"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)     # the only top-level options are flags
    if command is not None and command not in subcommands(parser):
        print(f"lhlab: {command!r} is not an lhlab command; {hint(command, subcommands(parser))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = parser.parse_args(argv)
    return call(args.func, args)


def call(func, args) -> int:
    """`func(args)` with lhlab's exit codes: bad input is one stderr line and exit 2, other lhlab
    errors one line and exit 1 (also the prewarmed runner's, experiment.runner)."""
    try:
        return func(args)
    except ProtocolError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    except BadInput as e:
        print(f"lhlab {args.command}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except LhlabError as e:
        print(f"lhlab {args.command}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"lhlab {args.command}: interrupted", file=sys.stderr)
        return 130


def cmd_validate(args) -> int:
    from experiment.protocol import load_protocol
    problems = []
    for path in args.protocols:
        try:
            proto = load_protocol(path)
            print(f"{path}: ok ({proto.study_id}: {len(proto.conditions)} conditions, {len(proto.phases)} phases)")
        except ProtocolError as e:
            problems.extend(e.problems)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def cmd_plan(args) -> int:
    from experiment.protocol import load_protocol, plan
    proto = load_protocol(args.protocol)
    _check_condition(proto, args.condition, args.protocol)
    schedule = plan(proto, args.condition, args.seed)
    total = sum(e for _, _, e in schedule)
    if args.json:
        print(json.dumps({"study": proto.study_id, "condition": args.condition, "seed": args.seed,
                          "expected_max_s": total,
                          "phases": [{"id": ph.id, "task": ph.task, "role": ph.role, "expected_max_s": e,
                                      "trials": trials} for ph, trials, e in schedule]}, indent=1))
        return 0
    print(f"{proto.title} [{proto.study_id}] condition={args.condition} seed={args.seed}")
    for ph, trials, expected in schedule:
        print(f"\n{ph.id} ({ph.task}, {ph.role}): {len(trials)} trials, up to {expected / 60:.1f} min")
        for n, t in enumerate(trials, 1):
            print(f"  {n:3d}  " + "  ".join(f"{k}={v}" for k, v in t.items() if k != "page" and not isinstance(v, (dict, list)))
                  + (f"  page: {t['page'][:60]!r}" if "page" in t else ""))
    print(f"\nExpected duration: up to {total / 60:.1f} min (every trial to its time limit), "
          f"plus the debriefing.")
    return 0


def _check_condition(proto, condition: str, path: Path) -> None:
    if condition not in proto.conditions:
        raise BadInput(f"--condition: {condition!r} is not a condition of {path}; {hint(condition, proto.conditions)}")


def cmd_run(args) -> int:
    # Signals first: SIGINT/SIGTERM end the session gracefully, even during device start-up.
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return run_session(args, stop)


def run_session(args, stop: threading.Event, prewarmed=None) -> int:
    """`lhlab run` after its signal handlers: preflight, then the session. Also what a prewarmed
    runner (experiment.runner) calls with its hidden window as `prewarmed`: one code path."""
    from experiment import datafile
    from experiment.preflight import SessionRequest, check_protocol_file, preflight
    from experiment.registry.commands import apply_registry_option
    from experiment.session import Session
    apply_registry_option(args)          # --registry URL (also when the prewarmed runner calls this)
    if args.check:
        check, proto = check_protocol_file(args.protocol)
        if proto is None:
            print(f"NO  {check.name}: {check.message}")
            return EXIT_BAD_INPUT
    else:
        from experiment.protocol import load_protocol
        proto = load_protocol(args.protocol)
    req = SessionRequest(protocol=proto, participant=args.participant, condition=args.condition,
                         data_dir=args.data_dir, session=args.session, seed=args.seed,
                         experimenter=args.experimenter, simulate=args.simulate, mode=args.mode,
                         speed=args.speed, pilot=args.pilot, yoked_to=args.yoked_to,
                         override_full=getattr(args, "override_full", None))
    pf = preflight(req)
    if args.check:       # the launcher's verdict, for a script: nothing is written either way
        print("\n".join([f"OK  {check.name}: {check.message}", pf.report()]))
        return 0 if pf.ok else EXIT_BAD_INPUT
    if not pf.ok:
        raise BadInput(pf.problems[0].message)
    prepared = pf.prepared
    for n, path in datafile.sessions_of(prepared.study, req.participant):
        if path.exists():
            try:
                datafile.settle_crashed(path)     # an earlier session that crashed says so in its file
            except OSError:
                pass        # a full disk: the reserve below refuses the session with one line
    devices, info, closer = _open_devices(args, prepared, stop, prewarmed)
    from experiment.registry import station     # heartbeats, then registry + central copy (never the session's fault)

    def say(line: str) -> None:
        print(f"lhlab run: {line}", file=sys.stderr, flush=True)
    session = writer = None
    try:
        session = Session(prepared, devices, stop, sys.stdout, info)
        writer = station.heartbeat(prepared, say)
        if writer is not None:
            session.progress.listeners.append(writer.event)
        code = session.run()
        if code == EXIT_ERROR:      # the details are in the session JSON; the experimenter gets one line
            print(f"lhlab run: sub-{req.participant} ses-{prepared.session} crashed: "
                  f"{(session.record.get('exit') or {}).get('reason')}", file=sys.stderr)
        return code
    finally:
        closer()
        if session is not None and session.record:
            station.after_session(prepared, session.record, writer, say)


def _open_devices(args, prepared, stop, prewarmed=None):
    """(clock, screen, keyboard, speaker), extra provenance, and a function that closes them."""
    from experiment.devices.virtual import data_only_devices
    from experiment.simulation.participant import participant_for
    proto = prepared.request.protocol
    participant = None
    if args.simulate:
        participant = participant_for(prepared)
        if args.mode == "data-only":
            if prewarmed is not None:
                prewarmed.close()
            return data_only_devices(participant, proto.keys, stop), {}, lambda: None
    from experiment.devices import lab    # imports PsychoPy: real devices only
    return lab.open_devices(proto.keys, stop, windowed=args.windowed, screen=args.screen,
                            participant=participant, speed=args.speed, audio=prepared.audio, prewarmed=prewarmed)


def cmd_tasks(args) -> int:
    """Markdown reference generated from the tasks' own declarations, so it cannot drift."""
    from experiment.tasks import TASKS
    from experiment.tasks.base import COMMON_COLUMNS
    print("# lhlab task reference\n\nGenerated by `lhlab tasks` from the task declarations.\n")
    print("Every phase also takes `task`, `role` and `instructions` (text or list of texts shown first).\n")
    for name, task in sorted(TASKS.items()):
        role = (f"Role: `{task.default_role}` (always)" if task.fixed_role else
                f"Default role: `{task.default_role}`")
        print(f"## {name}\n\n{task.summary} {role}.\n")
        print("| parameter | kind | default | meaning |\n|---|---|---|---|")
        for prm in task.params:
            default = "(required)" if prm.required else f"`{prm.default!r}`"
            limits = ", ".join(f"{sym} {v:g}" for sym, v in (("≥", prm.low), (">", prm.above), ("≤", prm.high))
                               if v is not None)
            print(f"| `{prm.name}` | {prm.kind} | {default} | {prm.help}{' (' + limits + ')' if limits else ''} |")
        extra = [c for c in task.columns if c not in COMMON_COLUMNS]
        print("\nData columns (after the common ones: " + ", ".join(c.name for c in COMMON_COLUMNS) + "):\n")
        for c in extra:
            print(f"- `{c.name}`{f' ({c.units})' if c.units else ''}: {c.description}")
        print()
    return 0


def cmd_status(args) -> int:
    from experiment import datafile
    if not (args.study_dir / "dataset_description.json").is_file():
        raise BadInput(f"{args.study_dir} is not an lhlab study folder (no dataset_description.json)")
    try:
        for _, path in ((n, p) for sub in sorted(args.study_dir.glob("sub-*"))
                        for n, p in datafile.sessions_of(args.study_dir, sub.name[4:])):
            if path.exists():
                datafile.settle_crashed(path)
        datafile.update_participants_tsv(args.study_dir)
    except OSError as e:        # a full or read-only disk: list what is there without writing
        print(f"lhlab status: {args.study_dir}: could not update the records ({e.strerror}); "
              "listing them read-only", file=sys.stderr)
    from experiment.identifiers import printable     # values from the folder never drive the terminal
    from experiment.registry import central
    synced = central.synced_sessions(args.study_dir)    # None: no central folder configured
    print("participant\tsession\tcondition\tstatus\tstarted\treason" + ("\tsynced" if synced is not None else ""))
    for rec in datafile.all_sessions(args.study_dir):
        fields = (f"sub-{rec.get('participant')}", f"ses-{rec.get('session')}", rec.get("condition"),
                  rec["effective_status"], rec.get("started", ""), (rec.get("exit") or {}).get("reason", ""))
        if synced is not None:
            fields += ("-" if rec["effective_status"] == "running" else
                       "yes" if (rec.get("participant"), rec.get("session")) in synced else "no",)
        print("\t".join(printable(f) for f in fields))
    return 0


def _calibrate(args) -> int:
    from experiment import calibration
    return calibration.run(args)


def _simulate(args) -> int:
    from experiment import cohort
    return cohort.run(args)


CORE_COMMANDS = {"validate": cmd_validate, "plan": cmd_plan, "run": cmd_run, "status": cmd_status,
                 "tasks": cmd_tasks, "simulate": _simulate, "calibrate": _calibrate}


if __name__ == "__main__":
    sys.exit(main())
