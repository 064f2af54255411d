"""`lhlab registry init|check|migrate TARGET` and the `--registry URL` option.

TARGET is a PostgreSQL URL (the lab server) or a study folder (its SQLite registry).
`--registry URL` on `run`, `status`, `analyze`, `launch`, `export`, `erase` and `sync` means
the same as LHLAB_REGISTRY=URL for that process (and what it starts); location.py says how the
registry is chosen otherwise.
`simulate` is the exception: it uses a server only when `--registry` names one.
Every failure is one line on stderr with exit code 2, passwords masked.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiment.errors import EXIT_BAD_INPUT, BadInput
from experiment.labconfig import lab_config_path
from experiment.registry import admin, location

REGISTRY_OPTION_ON = ("run", "status", "analyze", "simulate", "launch")


def add_registry_option(parser: argparse.ArgumentParser, simulate: bool = False) -> None:
    default = ("default: SQLite in the study folder, whatever LHLAB_REGISTRY or lab.json say, so simulated "
               "participants never enter a lab server's study by accident") if simulate else \
        f"default from {location.ENV_VAR} or ~/.config/lhlab/lab.json, else 'sqlite'"
    parser.add_argument("--registry", metavar="URL",
                        help=f"registry: 'sqlite' (a file in the study folder) or postgresql://USER@HOST/DB "
                             f"(password from ~/.pgpass); {default}")


def add_subcommands(subparsers) -> None:
    """Add `lhlab registry ...`, and `--registry` to the commands that open a registry."""
    p = subparsers.add_parser("registry", help="set up, check or upgrade a registry (a PostgreSQL server or a "
                                               "study folder's SQLite file)")
    sub = p.add_subparsers(dest="registry_command", required=True)
    target = "postgresql://USER@HOST/DATABASE (password from ~/.pgpass) or a study folder (SQLite)"
    q = sub.add_parser("init", help="prepare a lab server (or a study folder) for lhlab")
    q.add_argument("target", help=target)
    q = sub.add_parser("check", help="list the studies on a server with their schema versions; exit 2 if any "
                                     "needs lhlab registry migrate")
    q.add_argument("target", help=target)
    q = sub.add_parser("migrate", help="upgrade every study's schema to this lhlab's; with --from, copy a study "
                                       "folder's SQLite registry to the server")
    q.add_argument("target", help=target)
    q.add_argument("--from", dest="from_study", type=Path, metavar="STUDY_DIR",
                   help="a study folder whose registry.sqlite moves to the server")
    p.set_defaults(func=run)
    p = subparsers.add_parser("export", help="a shareable copy of a study folder: no registry, no external ids, "
                                             "no notes")
    p.add_argument("study_dir", type=Path, metavar="STUDY", help="the study folder (DATA_DIR/<study-id>)")
    p.add_argument("out", type=Path, metavar="OUT", help="a new folder for the copy")
    add_registry_option(p)
    p.set_defaults(func=_with_registry_option(_export))
    p = subparsers.add_parser("sync", help="copy this PC's finished sessions to the study's central folder, "
                                           "checksummed (resumable; never overwrites)")
    p.add_argument("study_dir", type=Path, metavar="STUDY", help="the study folder (DATA_DIR/<study-id>)")
    p.add_argument("--to", type=Path, metavar="CENTRAL", help="the central data folder (default: LHLAB_CENTRAL, "
                                                             "or \"central\" in ~/.config/lhlab/lab.json)")
    add_registry_option(p)
    p.set_defaults(func=_with_registry_option(_sync))
    p = subparsers.add_parser("erase", help="erase a participant who withdrew consent: data, derived rows, "
                                            "identity key and notes (the assignment stays logged as erased)")
    p.add_argument("study_dir", type=Path, metavar="STUDY", help="the study folder (DATA_DIR/<study-id>)")
    p.add_argument("label", help="the participant's label, e.g. P007")
    p.add_argument("--reason", required=True, help="why (kept in the registry's audit table)")
    add_registry_option(p)
    p.set_defaults(func=_with_registry_option(_erase))
    for name in REGISTRY_OPTION_ON:
        if name in subparsers.choices:
            parser = subparsers.choices[name]
            add_registry_option(parser, simulate=name == "simulate")
            parser.set_defaults(func=_with_registry_option(parser.get_default("func"), local_default=name == "simulate"))


def _with_registry_option(func, local_default: bool = False):
    def run_with_registry(args: argparse.Namespace) -> int:
        if local_default and not getattr(args, "registry", None):
            # Simulated participants never land in a lab server's study by accident (a station
            # configured for the server would otherwise give them the real study's slots and
            # partners): `simulate` uses a server only when --registry names it.
            os.environ[location.ENV_VAR] = location.SQLITE
        apply_registry_option(args)
        return func(args)
    return run_with_registry


def apply_registry_option(args: argparse.Namespace) -> None:
    """`--registry URL` (checked) becomes LHLAB_REGISTRY for this process and its children."""
    url = getattr(args, "registry", None)
    if url:
        location.parse(url, "--registry")
        os.environ[location.ENV_VAR] = url


def _target(text: str) -> location.Location | Path:
    if "://" in text or text.lower() in ("sqlite", "sqlite:"):
        loc = location.parse(text, "registry URL")
        if loc.kind == "postgresql":
            return loc
        raise BadInput("for SQLite, give the study folder (its registry.sqlite), e.g. data/my-study")
    path = Path(text)
    if not path.is_dir():
        raise BadInput(f"{text}: neither a postgresql:// URL nor a study folder")
    return path


def run(args: argparse.Namespace) -> int:
    target = _target(args.target)
    command = args.registry_command
    if isinstance(target, Path):
        if getattr(args, "from_study", None):
            raise BadInput("--from copies a study to a server: give a postgresql:// URL as the target")
        return _run_sqlite(command, target)
    if command == "init":
        print(f"{target.shown}: ready ({admin.server_init(target)}); stations use --registry {target.shown}, "
              f"{location.ENV_VAR}, or \"registry\" in {lab_config_path()}")
        return 0
    if command == "migrate" and args.from_study:
        print(admin.import_sqlite(target, args.from_study))
        return 0
    if command == "migrate":
        lines = admin.server_migrate(target)
        print("\n".join(lines) if lines else f"{target.shown}: no studies yet")
        return 0
    studies = admin.server_studies(target)
    for s in studies:
        print(f"{s.key}\t{s.participants} participants\t{s.verdict}")
    bad = [s for s in studies if s.version != admin.schema.SCHEMA_VERSION]
    if bad:
        print(f"lhlab registry check: {len(bad)} of {len(studies)} studies on {target.shown} cannot be used by this "
              f"lhlab: {bad[0].key}: {bad[0].verdict}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not studies:
        print(f"{target.shown}: reachable, no studies yet")
    return 0


def _run_sqlite(command: str, study: Path) -> int:
    from experiment.registry.sqlite import REGISTRY_FILE, SQLiteRegistry
    if command == "check":
        s = admin.sqlite_state(study)
        print(f"{study / REGISTRY_FILE}\t{s.participants} participants\t{s.verdict}")
        return 0 if s.version == admin.schema.SCHEMA_VERSION else EXIT_BAD_INPUT
    before = admin.sqlite_state(study).version if (study / REGISTRY_FILE).is_file() else 0
    SQLiteRegistry.connect(study, None, None).close()     # creates, or upgrades in place
    after = admin.sqlite_state(study).version
    print(f"{study / REGISTRY_FILE}: schema {after}" + (f" (was {before})" if before and before != after else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    from experiment.registry import dataset
    files, size = dataset.export_study(args.study_dir, args.out)
    print(f"{args.out}: {files} files, {size / 1e6:.1f} MB; no registry, identity key or notes")
    return 0


def _erase(args: argparse.Namespace) -> int:
    from experiment.registry import dataset
    print("\n".join(dataset.erase(args.study_dir, args.label, args.reason)))
    return 0


def _sync(args: argparse.Namespace) -> int:
    from experiment.registry import central
    report = central.sync(args.study_dir, args.to)
    print(f"{len(report.copied)} sessions copied, {len(report.already)} already there"
          + (f", {len(report.running)} running (next time)" if report.running else ""))
    if report.registry_down:
        print(f"the registry was not updated ({report.registry_down}); the next lhlab sync records the copies",
              file=sys.stderr)
    for line in report.problems:
        print(f"lhlab sync: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT if report.problems else 0
