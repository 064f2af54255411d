"""`lhlab launch`: registered as an entry point (pyproject.toml, group lhlab.commands), so the
core's command line never imports gui/. No Qt is imported until the command runs."""

from __future__ import annotations

from pathlib import Path

from experiment.datafile import DEFAULT_DATA_DIR


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("launch", help="the launcher window (PyQt6) on a protocols folder and a data folder")
    p.add_argument("--data-dir", type=Path, help=f"data folder (default: the last one used, else {DEFAULT_DATA_DIR})")
    p.add_argument("--protocols", type=Path,
                   help="protocol files folder (default: the last one used, else ./protocols)")
    p.set_defaults(func=run)


def run(args) -> int:
    from gui.app import main as launch      # Qt is imported here, when the window is wanted
    return launch(args.data_dir, args.protocols)
