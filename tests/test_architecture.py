"""The import rules of DESIGN.md, enforced by import-linter's contracts in pyproject.toml:
gui/ and analysis/ build on experiment/ (never the other way, and not on each other),
PsychoPy only in experiment/devices/window.py and audio.py, Qt only in gui/, no import
cycles inside a package. Plus: the commands that need neither PsychoPy nor Qt start
without loading them, and no task code probes a device for what it can do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(root), "PATH": ""})


def test_import_contracts_are_kept():
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "4 kept, 0 broken" in out.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("experiment/noise.py", "import PyQt6", "Qt only in gui/"),
    ("experiment/datafile.py", "import psychopy", "PsychoPy only in the window and audio device modules"),
    ("experiment/protocol.py", "import analysis.cli", "the core imports neither"),
    ("experiment/noise.py", "import experiment.session", "No import cycles"),
])
def test_the_contracts_catch_a_violation(tmp_path, module, line, broken):
    """The contracts bite: a copy of the code with one forbidden import breaks exactly that contract."""
    for name in ("experiment", "gui", "analysis"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    out = lint(tmp_path)
    assert out.returncode != 0
    assert re.search(re.escape(broken) + r".*BROKEN", out.stdout.replace("\n", " ")), out.stdout[-2000:]


def test_no_device_is_probed():
    """Every device implements the whole seam (experiment/devices/seam.py): nothing asks
    `hasattr`/`getattr` of a speaker, keyboard, screen or clock."""
    probes = []
    for path in sorted((ROOT / "experiment").rglob("*.py")):
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\b(hasattr|getattr)\(\s*[\w.]*(speaker|keyboard|screen|clock|device)", text):
                probes.append(f"{path.relative_to(ROOT)}:{n}: {text.strip()}")
    assert not probes, "\n".join(probes)


def test_core_commands_load_neither_psychopy_nor_qt(tmp_path):
    code = f"""
import sys
from experiment.cli import main
assert main(["validate", "protocols/unsolvable-anagrams.yaml"]) == 0
assert main(["plan", "protocols/demo.yaml", "--condition", "solvable"]) == 0
assert main(["run", "protocols/demo.yaml", "--participant", "a1", "--condition", "solvable",
             "--data-dir", r"{tmp_path}", "--simulate", "default"]) == 0
assert main(["run", "protocols/demo.yaml", "--participant", "a2", "--condition", "solvable",
             "--data-dir", r"{tmp_path}", "--check"]) == 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("psychopy", "PyQt6", "psychtoolbox", "pandas"))
print("LOADED", loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout, out.stdout[-500:]
