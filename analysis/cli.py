"""`lhlab analyze STUDY_DIR [--out DIR] [...]`: from a study folder to report.html and CSV tables."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from experiment.errors import BadInput, LhlabError


def add_parser(subparsers) -> None:
    """Add the `analyze` subcommand to `lhlab`'s subparsers."""
    p = subparsers.add_parser(
        "analyze", help="measures, statistics, plots and report.html for a study folder",
        description="Load every session of STUDY_DIR, compute per-participant measures, compare the groups "
                    "(the helpless group's test-phase deficit), and write report.html plus every table as CSV. "
                    "Pilot/simulated data, incomplete and withdrawn sessions and broken yokes are excluded "
                    "unless an --include flag says otherwise (a folder holding only pilot/simulated sessions is "
                    "analysed with them, every page marked SIMULATED DATA); every exclusion is listed in the "
                    "report. The protocol's analysis: section names the primary outcome, reported first as "
                    "confirmatory; every other measure is Holm-adjusted and exploratory.")
    p.set_defaults(func=run)
    p.add_argument("study_dir", type=Path, help="the study folder (DATA_DIR/<study-id>)")
    p.add_argument("--out", type=Path, help="output folder (default: STUDY_DIR/derivatives/lhlab-analysis)")
    p.add_argument("--include-pilot", action="store_true", help="analyse pilot and simulated sessions too")
    p.add_argument("--include-withdrawn", action="store_true", help="keep participants who withdrew")
    p.add_argument("--include-incomplete", action="store_true", help="keep aborted, crashed or running sessions")
    p.add_argument("--include-broken-yokes", action="store_true", help="keep yoked participants whose yoke failed")
    p.add_argument("--check-rule", action="append", default=[], metavar="WHO:MEASURE<OP>VALUE",
                   help="manipulation-check exclusion, e.g. 'helpless:check_control>=8' (WHO: condition kind, "
                        "condition or *); repeatable")
    p.add_argument("--session-rule", choices=("first", "first-complete"), default="first",
                   help="which session of a participant is analysed (default: first)")
    p.add_argument("--by", choices=("condition", "condition_kind"), default="condition",
                   help="group by condition (default) or by condition kind")
    p.add_argument("--shuttle-criterion", type=int, default=None, metavar="N",
                   help="only for shuttle data that do not record criterion_reached (older files): N "
                        "escapes/avoidances in a row (default 3); refused when the task recorded its criterion")
    p.add_argument("--yoke-tolerance", type=float, default=None, metavar="S",
                   help="largest difference in total noise time between yoked partners, s (default 0.05); "
                        "refused for a study without yoked participants")
    p.add_argument("--protocol", type=Path, metavar="FILE",
                   help="the protocol whose analysis: section (primary outcome, alpha) applies, when the file the "
                        "sessions name has moved (default: that file)")
    p.add_argument("--max-dropped-frames", type=float, default=None, metavar="PERCENT",
                   help="exclude a participant whose analysed session dropped more than PERCENT %% of its frames "
                        "(the session's timing audit; sessions without one are never excluded by it); refused for "
                        "a study where no session recorded a timing audit")
    p.add_argument("--trial-models", choices=("auto", "on", "off"), default="auto",
                   help="trial-level models of the test phase (mixed model of log latency, logistic model of "
                        "failures): auto = up to 10,000 participants (default), on, off")
    p.add_argument("--no-plots", action="store_true", help="skip the figures (faster)")
    p.add_argument("--no-trials-csv", action="store_true", help="do not write the (large) trials.csv")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    """Run the analysis; 0 on success. Bad input raises BadInput (exit 2 via lhlab's main)."""
    from analysis.exclusions import CheckRule, ExclusionRules
    from analysis.loading import check_study_dir, print_problems
    from analysis.pipeline import Options, analyze, default_out, stderr_progress, write_outputs
    if args.shuttle_criterion is not None and args.shuttle_criterion < 1:
        raise BadInput(f"--shuttle-criterion must be >= 1 (got {args.shuttle_criterion})")
    if args.yoke_tolerance is not None and args.yoke_tolerance < 0:
        raise BadInput(f"--yoke-tolerance must be >= 0 (got {args.yoke_tolerance})")
    if args.max_dropped_frames is not None and not 0 <= args.max_dropped_frames <= 100:
        raise BadInput(f"--max-dropped-frames is a percentage from 0 to 100 (got {args.max_dropped_frames:g})")
    rules = ExclusionRules(pilot=not args.include_pilot, withdrawn=not args.include_withdrawn,
                           incomplete=not args.include_incomplete, broken_yoke=not args.include_broken_yokes,
                           checks=tuple(CheckRule.parse(r) for r in args.check_rule))
    study = check_study_dir(args.study_dir)
    out = args.out if args.out is not None else default_out(study)
    _check_out(out)
    _matplotlib_config()
    progress = None if args.quiet else stderr_progress
    result = analyze(study, Options(rules=rules, session_rule=args.session_rule, between=args.by,
                                    shuttle_criterion=args.shuttle_criterion, yoke_tolerance=args.yoke_tolerance,
                                    trial_models=args.trial_models,
                                    protocol=args.protocol, max_dropped_frames=args.max_dropped_frames),
                     progress=progress)
    problems = result.tables["load_problems"]
    if len(problems):
        print(f"lhlab analyze: {len(problems)} load problem(s); these files/rows were skipped:", file=sys.stderr)
        print_problems(problems)
    for w in result.warnings:
        print(f"lhlab analyze: warning: {w}", file=sys.stderr)
    fresh = not out.exists()
    try:
        report = write_outputs(result, out, plots=not args.no_plots, trials_csv=not args.no_trials_csv,
                               progress=progress)
    except OSError as e:        # a full disk or a vanished folder: one line, no half-written folder left
        if fresh:
            import shutil
            shutil.rmtree(out, ignore_errors=True)
        what = "nothing was kept" if fresh else "the files there are incomplete"
        raise LhlabError(f"could not write the outputs to {out} ({e.strerror or e}); {what}: free space or "
                         "choose another --out and run lhlab analyze again") from None
    if not args.quiet:
        planned = _planned_n_line(study)
        if planned:
            print(f"lhlab analyze: {planned}", file=sys.stderr)
    n_ex = result.tables["exclusions"]["participant_id"].nunique()
    mark = f" [{result.data_mark}]" if result.data_mark else ""
    print(f"{report}  ({len(result.included)} participants analysed, {n_ex} excluded, "
          f"{len(problems)} load problem(s)){mark}")
    return 0


def _planned_n_line(study: Path) -> str | None:
    """Progress toward study.planned_n from the study's registry (--registry), or None."""
    from experiment.registry import Registry
    try:
        if not Registry.exists(study):
            return None
        with Registry.open(study) as reg:
            progress = reg.progress_by_condition()
    except BadInput as e:
        return f"warning: planned n not read from the registry ({e})"
    if not any(n for _, n in progress.values()):
        return None
    return "planned n (registry, complete sessions): " + ", ".join(
        f"{c} {done}/{n if n is not None else '-'}" for c, (done, n) in progress.items())


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file; pass a folder")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write to {probe}; pass --out with a writable folder")


def _matplotlib_config() -> None:
    """matplotlib needs a writable config/cache folder; use a temporary one if HOME's is not."""
    if "MPLCONFIGDIR" in os.environ:
        return
    home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "matplotlib"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return
    except OSError:
        pass
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="lhlab-mpl-")
