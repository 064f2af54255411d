"""Shared fixtures. Tests never touch the real home folder and bring their own X server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
LHLAB = [sys.executable, "-m", "experiment.cli"]

# A private home for PsychoPy, Mesa, PulseAudio and matplotlib, for this process and children.
_HOME = Path(tempfile.mkdtemp(prefix="lhlab-test-home-"))
for var, sub in (("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                 ("MPLCONFIGDIR", "mpl"), ("XDG_RUNTIME_DIR", "run")):
    os.environ[var] = str(_HOME / sub)
    (_HOME / sub).mkdir(parents=True, exist_ok=True)
os.chmod(_HOME / "run", 0o700)
os.environ["PYTHONUNBUFFERED"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def x_display():
    """An Xvfb display for real PsychoPy windows (DISPLAY is set for children too)."""
    from x11tools import Xvfb
    server = Xvfb()
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = server.display
    yield server.display
    server.stop()
    if old is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = old


def run_lhlab(*args, check_rc: int | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the real command line in a child process."""
    proc = subprocess.run([*LHLAB, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw)
    if check_rc is not None:
        assert proc.returncode == check_rc, f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


SHIPPED_CONTACT = "[LAB NAME], [RESPONSIBLE RESEARCHER], [E-MAIL ADDRESS]"
LAB_CONTACT = "Memory Lab, Dr. A. Example, memory.lab@example.org"


def lab_copy(protocol: Path, folder: Path) -> Path:
    """A shipped protocol as a lab runs it with real participants: a copy whose consent names the
    lab (real sessions are refused while it says [LAB NAME]), in folder/protocols/ beside a link
    to the repository's stimuli/ (the protocols name their stimuli as ../stimuli/...)."""
    text = Path(protocol).read_text(encoding="utf-8")
    assert SHIPPED_CONTACT in text, f"{protocol} has no placeholder contact to fill in"
    (folder / "protocols").mkdir(parents=True, exist_ok=True)
    if not (folder / "stimuli").exists():
        (folder / "stimuli").symlink_to(REPO / "stimuli", target_is_directory=True)
    copy = folder / "protocols" / Path(protocol).name
    copy.write_text(text.replace(SHIPPED_CONTACT, LAB_CONTACT), encoding="utf-8")
    return copy


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def lhlab():
    return run_lhlab


# -- the registry's PostgreSQL server (tests/pgserver.py): one per test run, shared by every module --
@pytest.fixture(scope="session")
def pg_server():
    from pgserver import PgServer, pg_bin
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed: apt-get install postgresql (scripts/setup.sh does it)")
    server = PgServer()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def pg_database(pg_server):
    return pg_server.create_database("lhlab_tests")


@pytest.fixture
def pg_url(pg_server, pg_database, monkeypatch):
    """An empty lab database on the test server; the registry of every Registry.open in this test."""
    pg_server.reset("lhlab_tests")
    monkeypatch.setenv("LHLAB_REGISTRY", pg_database)
    return pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, monkeypatch):
    """Each registry backend in turn (LHLAB_REGISTRY set for the test)."""
    if request.param == "sqlite":
        monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
        return "sqlite"
    return request.getfixturevalue("pg_url")
