"""The import rules of DESIGN.md, enforced: PsychoPy only in experiment/psychopy_devices.py,
Qt only in gui/, the core never imports gui or analysis; and the commands that need neither
(validate, plan, data-only run) start without loading them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


SOURCES = sorted(p for pkg in ("experiment", "gui", "analysis") for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_import_direction(path):
    mods = imports(path)
    rel = path.relative_to(ROOT).as_posix()
    if rel != "experiment/psychopy_devices.py":
        assert not mods & {"psychopy", "psychtoolbox", "pyglet"}, f"{rel} imports PsychoPy; only psychopy_devices may"
    if not rel.startswith("gui/"):
        assert "PyQt6" not in mods, f"{rel} imports Qt; Qt lives in gui/"
    if rel.startswith("experiment/") and rel != "experiment/cli.py":
        assert not mods & {"gui", "analysis"}, f"{rel}: the core must not import gui or analysis"


def test_core_commands_load_neither_psychopy_nor_qt(tmp_path):
    code = f"""
import sys
from experiment.cli import main
assert main(["validate", "protocols/unsolvable-anagrams.yaml"]) == 0
assert main(["plan", "protocols/demo.yaml", "--condition", "solvable"]) == 0
assert main(["run", "protocols/demo.yaml", "--participant", "a1", "--condition", "solvable",
             "--data-dir", r"{tmp_path}", "--simulate", "default"]) == 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("psychopy", "PyQt6", "psychtoolbox", "pandas"))
print("LOADED", loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout, out.stdout[-500:]
