"""The analysis never touches hardware or the GUI, and `lhlab` stays fast to start.

(Which core modules analysis/ may use is the layer contract in pyproject's import-linter
section, run by tests/test_architecture.py; here: no devices, no Qt, no PsychoPy.)"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("psychopy", "PyQt6", "gui", "experiment.devices", "experiment.session")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names if node.module == "experiment")
    return out


def test_analysis_imports_no_devices_session_qt_or_psychopy():
    for path in sorted((ROOT / "analysis").glob("*.py")):
        mods = imported_modules(path)
        bad = {m for m in mods if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
        assert not bad, (path.name, bad)


def test_lhlab_parser_does_not_load_the_analysis_stack():
    code = ("import sys, experiment.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'scipy') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_analyze_help_lists_the_exclusion_flags():
    r = subprocess.run([sys.executable, "-m", "experiment.cli", "analyze", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0
    for flag in ("--out", "--include-pilot", "--include-withdrawn", "--include-incomplete", "--include-broken-yokes",
                 "--check-rule", "--session-rule"):
        assert flag in r.stdout
