"""`lhlab power PROTOCOL --per-group A:B:STEP --studies N [--profile P ...] [--dask URL]`.

Everything is checked before any work starts (bad input: one line, exit 2, nothing written);
the output folder is written once, at the end, with the finished cells (Ctrl+C keeps them).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path

from experiment.errors import EXIT_ABORTED, BadInput

MIN_STUDIES = 10
MAX_WORK = 10_000           # cells x studies above this needs --yes
NULL_PROFILE = "no-effect"


def add_parser(subparsers) -> None:
    """Add the `power` subcommand to `lhlab`'s subparsers."""
    p = subparsers.add_parser(
        "power", help="power curves by simulation: how many participants per group the study needs",
        description="Simulate --studies studies for every group size of --per-group and every --profile, "
                    "run each through lhlab's task code (in memory) and the planned test `lhlab analyze` "
                    "reports (the protocol's analysis: primary outcome; secondary measures Holm-adjusted), "
                    "and report power with its 95% Monte-Carlo interval, the false-positive rate under the "
                    "no-effect profile (always included), and the smallest n per group reaching --target. "
                    "Writes power.csv, smallest_n.csv, studies.csv, power_curve.svg/png, power.html and "
                    "power.json into --out. The same command gives the same numbers, for any --workers.")
    p.add_argument("protocol", type=Path, help="the protocol file (YAML); it must declare analysis: primary")
    p.add_argument("--per-group", default="10:80:10", metavar="A:B:STEP",
                   help="participants per group: A:B:STEP (A to B inclusive), a list 10,20,40, or one number "
                        "(default: 10:80:10)")
    p.add_argument("--studies", type=int, default=200, metavar="N",
                   help=f"simulated studies per group size and profile (at least {MIN_STUDIES}; default 200)")
    p.add_argument("--profile", action="append", metavar="PROFILE",
                   help="simulated participant profile, repeatable: classic, replication, default, strong, or "
                        "with overrides as in --simulate, e.g. 'replication,solve_sigma=0.9' (default: "
                        "replication); no-effect is always added for the false-positive rate")
    p.add_argument("--target", type=float, default=0.8, help="the power to reach (default 0.8)")
    p.add_argument("--seed", type=int, default=1, help="run seed (default 1); same seed, same numbers")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: power-<study id> in the current folder)")
    p.add_argument("--workers", type=int, metavar="K",
                   help="processes on this machine (default: every core); with --dask local, the cluster's workers")
    p.add_argument("--dask", metavar="URL",
                   help="run the studies on a Dask distributed cluster: its scheduler (tcp://HOST:8786; the "
                        "workers need lhlab and the protocol at the same path) or 'local' for a LocalCluster")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--yes", action="store_true",
                   help=f"run even when group sizes x profiles x studies exceeds {MAX_WORK}")
    p.set_defaults(func=run)


def parse_grid(spec: str) -> list[int]:
    """'10:80:10' -> [10, 20, ..., 80]; '10,20,40' -> [10, 20, 40]; '30' -> [30]."""
    try:
        if ":" in spec:
            parts = [int(x) for x in spec.split(":")]
            if len(parts) != 3 or parts[2] < 1:
                raise ValueError
            grid = list(range(parts[0], parts[1] + 1, parts[2]))
        else:
            grid = [int(x) for x in spec.split(",")]
    except ValueError:
        raise BadInput(f"--per-group {spec!r}: give A:B:STEP (e.g. 10:80:10), a list (10,20,40) or one "
                       "number of participants per group") from None
    if not grid:
        raise BadInput(f"--per-group {spec!r}: no group size in that range (A must be <= B)")
    if min(grid) < 2:
        raise BadInput(f"--per-group {spec!r}: every group needs at least 2 participants (got {min(grid)})")
    if max(grid) > 5000:
        raise BadInput(f"--per-group {spec!r}: at most 5000 participants per group")
    return sorted(set(grid))


def _profiles(given: list[str] | None) -> list[str]:
    from experiment.simulation.participant import parse_profile
    profiles = list(dict.fromkeys((given or ["replication"]) + [NULL_PROFILE]))
    for spec in profiles:
        try:
            parse_profile(spec)
        except BadInput as e:
            raise BadInput(str(e).replace("--simulate", "--profile")) from None
    return profiles


def _primary(proto) -> None:
    from experiment.analysis_plan import measure_names
    if not isinstance(proto.raw.get("analysis"), dict):
        known = ", ".join(measure_names(proto.phases)) or "(no test phase with a known task)"
        raise BadInput(f"{proto.path} declares no primary outcome; power is computed for the planned test. "
                       f"Add to the protocol:  analysis: {{primary: <test phase>.<measure>, alpha: 0.05}}  "
                       f"(measures: {known})")


def run(args: argparse.Namespace) -> int:
    """`lhlab power`: 0 when done, EXIT_ABORTED when stopped early (finished cells written)."""
    from experiment.protocol import load_protocol

    from analysis import power, power_report, power_run
    grid = parse_grid(args.per_group)
    if args.studies < MIN_STUDIES:
        raise BadInput(f"--studies must be at least {MIN_STUDIES} (got {args.studies}): fewer studies give "
                       "a power estimate with a Monte-Carlo interval wider than +-0.3")
    if not 0 < args.target < 1:
        raise BadInput(f"--target must be between 0 and 1, e.g. 0.8 (got {args.target})")
    if args.workers is not None and args.workers < 1:
        raise BadInput(f"--workers must be >= 1 (got {args.workers})")
    proto = load_protocol(args.protocol)
    _primary(proto)
    profiles = _profiles(args.profile)
    work = len(grid) * len(profiles) * args.studies
    if work > MAX_WORK and not args.yes:
        raise BadInput(f"{len(grid)} group sizes x {len(profiles)} profiles x {args.studies} studies = {work} "
                       f"simulated studies (more than {MAX_WORK}); pass --yes to run them, or shrink the grid")
    out = args.out if args.out is not None else Path(f"power-{proto.study_id}")
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file; pass a folder")
    path = str(proto.path.resolve())
    spec = power.analysis_spec(path, proto.sha256)
    client, close = (None, lambda: None)
    if args.dask:
        client, close = power_run.dask_client(args.dask, args.workers)

    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *a: stop.set())
    tasks = [power.StudyTask(path, proto.sha256, prof, n, i, args.seed)
             for prof in profiles for n in grid for i in range(args.studies)]
    bar = None
    if sys.stderr.isatty():             # the bar is for a person watching; scripts get clean streams
        from tqdm import tqdm
        bar = tqdm(total=len(tasks), desc="power", unit=" studies", file=sys.stderr)
    try:
        result = power_run.run_tasks(tasks, workers=args.workers, client=client,
                                     progress=bar.update if bar is not None else None, stop=stop)
    finally:
        if bar is not None:
            bar.close()
        close()
        signal.signal(signal.SIGTERM, old)
    results = power.results_frame(result.chunks)
    finished = set(result.finished_cells)
    keep = [(p, n) in finished for p, n in zip(results["profile"], results["n_per_group"])]
    results = results[keep].reset_index(drop=True)
    summary = power.summarise(results)
    smallest = power.smallest_n(summary, args.target)
    meta = {"title": proto.title, "study": proto.study_id, "protocol": path, "sha256": proto.sha256,
            "primary": spec.primary, "declared": spec.declared, "alpha": spec.alpha, "target": args.target,
            "studies": args.studies, "per_group": grid, "profiles": profiles, "seed": args.seed,
            "stopped": result.stopped, "seconds": result.seconds,
            "command": "lhlab power " + " ".join(shlex.quote(a) for a in sys.argv[2:])
            if len(sys.argv) > 2 else "lhlab power"}
    paths = power_report.write_outputs(out, meta, results, summary, smallest)
    if args.json:
        import json
        print(json.dumps(power_report.summary_json(meta, summary, smallest), indent=1))
    else:
        _print_summary(meta, summary, smallest, paths["power.html"])
    if result.stopped:
        print(f"lhlab power: stopped; {len(finished)} finished cell(s) written to {out}", file=sys.stderr)
        return EXIT_ABORTED
    return 0


def _print_summary(meta, summary, smallest, page: Path) -> None:
    prim = summary[summary["plan"] == "primary"]
    print(f"{meta['title']}: primary outcome {meta['declared']} (alpha {meta['alpha']:g}), "
          f"{meta['studies']} studies per point, seed {meta['seed']}, {meta['seconds']:.0f} s")
    for profile, g in prim.groupby("profile", sort=False):
        cells = "  ".join(f"n={r.n_per_group}: {r.power:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in g.itertuples())
        print(f"  {profile:<12} {cells}")
    for row in smallest[smallest["plan"] == "primary"].itertuples():
        if row.profile == NULL_PROFILE:
            null = prim[prim["profile"] == NULL_PROFILE]
            rate = null["rejections"].sum() / max(1, null["studies"].sum())
            print(f"  false-positive rate under {NULL_PROFILE}: {rate:.3f} (alpha {meta['alpha']:g})")
        elif row.n_per_group != row.n_per_group:       # NaN: no group size of the grid reached it
            best = prim[prim["profile"] == row.profile].sort_values("n_per_group").iloc[-1]
            print(f"  {row.profile}: power {meta['target']:g} not reached in this grid "
                  f"(n={best['n_per_group']} per group: {best['power']:.2f})")
        else:
            print(f"  {row.profile}: power {meta['target']:g} at {int(row.n_per_group)} per group")
    print(page)
