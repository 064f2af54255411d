"""`lhlab simulate`: a whole simulated study through the registry and the real session code.

Each simulated participant is registered like a real one (generated label, permuted-block
assignment, yoking), then runs a data-only session through experiment.session, so the study
folder looks exactly like one filled in the lab (marked pilot/simulated in every session
record). Seeds: the registry's block seed is --seed (for a new study) and every session's seed
is derived from --seed and the participant's label, so a study simulated into an empty folder
is reproduced file for file by the same command. Several `simulate` processes and launchers
may use one study folder at once: the registry serialises assignment and every session gets
its own folder (os.mkdir fails if taken).
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from experiment.errors import EXIT_ABORTED, EXIT_COMPLETE, EXIT_ERROR, BadInput


@dataclass(frozen=True)
class Outcome:
    """What happened to one simulated participant."""

    label: str
    condition: str
    yoked_to: str | None
    session: int | None
    status: str             # complete | withdrawn | aborted | crashed | refused
    message: str = ""


def session_seed(seed: int, label: str) -> int:
    """The session seed of `label` in a study simulated with `seed` (stable across runs)."""
    digest = hashlib.sha256(f"lhlab-simulate:{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def add_parser(subparsers) -> None:
    """Add the `simulate` subcommand to `lhlab`'s subparsers."""
    from experiment.datafile import DEFAULT_DATA_DIR
    p = subparsers.add_parser("simulate", help="a whole simulated study (data-only) through the registry",
                              description="Register and run N simulated participants (data-only, marked pilot) "
                                          "in the study folder of DATA_DIR: one line per participant on stdout, "
                                          "then a summary; a progress bar with ETA on stderr when it is a terminal.")
    p.add_argument("protocol", type=Path, help="the protocol file (YAML)")
    p.add_argument("--participants", type=int, required=True, metavar="N", help="how many participants to add")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help=f"data folder; the study's folder is created in it (default: {DEFAULT_DATA_DIR})")
    p.add_argument("--seed", type=int, help="study seed (default: random, printed); same seed, same study")
    p.add_argument("--profile", default="default",
                   help="simulated participant profile, e.g. default or 'default,helplessness_effect=0.3'")


def run(args: argparse.Namespace) -> int:
    """`lhlab simulate`: print one line per participant and a summary; exit 0 if no session crashed."""
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    from experiment.protocol import load_protocol
    from experiment.simulation.participant import parse_profile
    if args.participants < 1:
        raise BadInput(f"--participants must be >= 1 (got {args.participants})")
    proto = load_protocol(args.protocol)
    parse_profile(args.profile)           # refuse a bad profile before anything is written
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    t0 = time.monotonic()
    bar = None
    if sys.stderr.isatty():     # stdout may be read by a program; the bar is for a person watching
        from tqdm import tqdm
        bar = tqdm(total=args.participants, desc="simulate", unit=" participants", file=sys.stderr)
    try:
        outcomes = simulate(proto, args.data_dir, args.participants, seed, args.profile, stop, sys.stdout, bar)
    finally:
        if bar is not None:
            bar.close()
    _summary(proto, args.data_dir, outcomes, seed, args.participants, time.monotonic() - t0, sys.stdout)
    if stop.is_set():
        return EXIT_ABORTED
    return EXIT_ERROR if any(o.status in ("crashed", "refused") for o in outcomes) else EXIT_COMPLETE


def simulate(protocol, data_dir: Path, n: int, seed: int, profile: str = "default",
             stop: threading.Event | None = None, out: TextIO | None = None, bar=None) -> list[Outcome]:
    """Register and run `n` simulated participants (data-only) in `data_dir`'s study folder.

    Stops early (between or inside sessions, which end `aborted`) when `stop` is set.
    Writes one line per participant to `out` if given, and advances `bar` (a tqdm progress bar) if given.
    """
    from experiment import datafile
    from experiment.registry import Registry
    stop = stop or threading.Event()
    study = datafile.study_dir(Path(data_dir), protocol.study_id)
    # A folder without its record yet is a session starting right now (e.g. another simulate).
    real = [r for r in datafile.all_sessions(study)
            if "problem" not in r and not (r.get("pilot") or r.get("simulated"))] if study.exists() else []
    if real:
        raise BadInput(f"{study} holds real participants' sessions (e.g. sub-{real[0].get('participant')}); "
                       "simulated participants would take their balanced slots and partners: "
                       "simulate into another --data-dir")
    outcomes: list[Outcome] = []
    with Registry.open(study, protocol, seed=seed) as reg:
        if reg.seed != seed and out is not None:
            print(f"note: {study} was created with block seed {reg.seed}; assignment continues that sequence, "
                  f"--seed {seed} seeds the sessions", file=sys.stderr)
        for _ in range(n):
            if stop.is_set():
                break
            p = reg.add_participant(protocol)
            outcome = _run_one(protocol, Path(data_dir), p, seed, profile, stop)
            outcomes.append(outcome)
            if out is not None:
                partner = f"  yoked to {outcome.yoked_to}" if outcome.yoked_to else ""
                where = f"ses-{outcome.session}" if outcome.session else "-"
                line = (f"{outcome.label:<6} {outcome.condition:<14} {outcome.status:<9} {where}{partner}"
                        + (f"  ({outcome.message})" if outcome.message else ""))
                if bar is not None:
                    bar.write(line, file=out)      # above the bar, not through it
                    out.flush()
                else:
                    print(line, file=out, flush=True)
            if bar is not None:
                bar.update(1)
            why = _machine_problem(study, outcome)
            if why:      # a full or broken data folder: every further participant would only take a slot
                print(f"lhlab simulate: stopped after {outcome.label} (the rest would fail alike and take "
                      f"slots): {why}", file=sys.stderr, flush=True)
                break
        reg.sync_sessions()        # registry statuses and participants.tsv, under the registry lock
    return outcomes


def _machine_problem(study: Path, outcome: Outcome) -> str | None:
    """Why no further simulated session can succeed here (data folder refused, or a session
    crashed: data-only sessions have no devices to fail, so the machine or disk did), or None."""
    from experiment import datafile
    if outcome.status == "refused" and outcome.message.startswith("data folder"):
        return outcome.message
    if outcome.status != "crashed":
        return None
    try:
        rec = datafile.read_session(datafile.session_json_path(study, outcome.label, outcome.session))
        return f"its session crashed ({(rec.get('exit') or {}).get('reason') or 'no reason recorded'})"
    except (OSError, ValueError, TypeError):
        return "its session crashed"


def _run_one(protocol, data_dir: Path, p, seed: int, profile: str, stop: threading.Event) -> Outcome:
    from experiment.errors import STATUS_FOR_EXIT
    from experiment.preflight import SessionRequest, prepare
    from experiment.session import run_data_only
    req = SessionRequest(protocol=protocol, participant=p.label, condition=p.condition, data_dir=data_dir,
                         seed=session_seed(seed, p.label), simulate=profile, mode="data-only",
                         yoked_to=p.yoked_to, pilot=True)
    try:
        prepared = prepare(req)
    except BadInput as e:
        return Outcome(p.label, p.condition, p.yoked_to, None, "refused", str(e))
    try:
        code = run_data_only(prepared, stop)
    except BadInput as e:          # another process took this session number meanwhile
        return Outcome(p.label, p.condition, p.yoked_to, prepared.session, "refused", str(e))
    status = STATUS_FOR_EXIT[code]
    return Outcome(p.label, p.condition, p.yoked_to, prepared.session, status)


def _summary(protocol, data_dir: Path, outcomes: list[Outcome], seed: int, asked: int, seconds: float,
             out: TextIO) -> None:
    from experiment import datafile
    by_condition = Counter(o.condition for o in outcomes)
    by_status = Counter(o.status for o in outcomes)
    conditions = ", ".join(f"{c} {by_condition[c]}" for c in protocol.conditions)
    statuses = ", ".join(f"{s} {k}" for s, k in sorted(by_status.items()))
    stopped = f" (stopped after {len(outcomes)} of {asked})" if len(outcomes) < asked else ""
    print(f"{len(outcomes)} simulated participants{stopped} in {datafile.study_dir(data_dir, protocol.study_id)}: "
          f"{conditions}; {statuses or 'none run'}; seed {seed}; {seconds:.1f} s", file=out, flush=True)
