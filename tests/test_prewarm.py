"""The prewarmed session runner (issue 14): the launcher keeps one `python -m experiment.runner`
waiting with PsychoPy imported and the participant window hidden; Start hands it the session,
and falls back to a fresh `lhlab run` when it was killed. Which path ran is asserted here; how
much faster it is, is measured by benchmarks/bench_launcher.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtCore import QSettings  # noqa: E402

from conftest import REPO  # noqa: E402
from gui.launcher import LauncherWindow  # noqa: E402


class Dialogs:
    """Answers every dialog without blocking, and records them."""

    def __init__(self):
        self.shown = []

    def _record(self, parent, title, text, detail=""):
        self.shown.append((title, text))
    error = warning = info = _record

    def confirm(self, parent, title, text, detail="", yes="Yes", no="Cancel"):
        return True


def log_text(w) -> str:
    return w.log.toPlainText()


def session_record(tmp_path: Path, label: str, n: int) -> dict:
    ses = tmp_path / "data" / "_pilot" / "demo" / f"sub-{label}" / f"ses-{n}"
    return json.loads((ses / f"sub-{label}_ses-{n}_session.json").read_text())


@pytest.mark.window
def test_start_uses_the_prewarmed_runner_and_falls_back_when_it_was_killed(qtbot, x_display, tmp_path):
    protocols = tmp_path / "study-files" / "protocols"
    protocols.mkdir(parents=True)
    (protocols.parent / "stimuli").symlink_to(REPO / "stimuli")
    (protocols / "demo.yaml").write_text((REPO / "protocols" / "demo.yaml").read_text())
    dialogs = Dialogs()
    w = LauncherWindow(settings=QSettings(str(tmp_path / "launcher.ini"), QSettings.Format.IniFormat),
                       dialogs=dialogs, data_dir=tmp_path / "data", protocols_dir=protocols, stop_timeout_s=10)
    qtbot.addWidget(w)
    w.speed_spin.setValue(10)
    w.windowed_check.setChecked(True)
    runner = w.runner
    runner.enable_prewarm(lambda: (w.options.screen, w.options.windowed))
    try:
        # 1. a prewarmed runner waits, holding nothing: no pilot folder exists yet
        qtbot.waitUntil(lambda: runner.spare_ready, timeout=40000)
        prewarmed_pid = runner.spare_pid()
        assert prewarmed_pid and "prewarmed runner ready" in log_text(w)
        assert not (tmp_path / "data" / "_pilot" / "demo" / "sub-PILOT001").exists()

        # 2. Start: the session runs in that very process, through the usual events
        first = {}
        runner.lineEvent.connect(lambda ev: first.setdefault(ev["event"], runner.pid()))
        w.act_pilot.trigger()
        assert runner.prewarmed_start and runner.pid() == prewarmed_pid
        qtbot.waitUntil(lambda: "page" in first, timeout=30000)
        assert first["session_start"] == first["page"] == prewarmed_pid
        assert f"session sent to the prewarmed runner, pid {prewarmed_pid}" in log_text(w)
        w.act_abort.trigger()
        qtbot.waitUntil(lambda: not runner.is_running(), timeout=15000)
        assert w.last_result["status"] == "aborted" and w.last_result["prewarmed"]
        record = session_record(tmp_path, "PILOT001", 1)
        assert record["status"] == "aborted" and record["process"]["pid"] == prewarmed_pid
        assert record["devices"]["participant_window"]["prewarmed"] is True
        assert (tmp_path / "data" / "_pilot" / "demo" / "sub-PILOT001" / "ses-1" / "beh").is_dir()

        # 3. after the session a new runner is prewarmed; kill it: Start falls back and says so
        qtbot.waitUntil(lambda: runner.spare_pid() not in (None, prewarmed_pid), timeout=10000)
        killed = runner.spare_pid()
        os.kill(killed, signal.SIGKILL)
        qtbot.waitUntil(lambda: "was killed by a signal" in log_text(w), timeout=10000)
        first.clear()
        w.act_pilot.trigger()
        assert runner.is_running() and not runner.prewarmed_start
        assert runner.argv[1:4] == ["-m", "experiment.cli", "run"]
        assert "starting the session in a fresh lhlab run instead" in log_text(w)
        qtbot.waitUntil(lambda: "page" in first, timeout=30000)
        assert first["page"] not in (killed, prewarmed_pid)
        w.act_abort.trigger()
        qtbot.waitUntil(lambda: not runner.is_running(), timeout=15000)
        assert w.last_result["status"] == "aborted" and not w.last_result["prewarmed"]
        record = session_record(tmp_path, "PILOT002", 1)
        assert record["status"] == "aborted" and record["devices"]["participant_window"]["prewarmed"] is False
        assert not dialogs.shown
    finally:
        runner.close_spare()
        if runner.child.is_running():
            runner.child.proc.kill()
            runner.child.proc.waitForFinished(5000)


FAKE_RUNNER = """
import json, os, sys
print(json.dumps({"event": "runner_ready", "pid": os.getpid(), "prepare_s": 0.0}), flush=True)
sys.stdin.readline()
"""


def test_changing_the_participant_screen_replaces_the_waiting_runner(qtbot, monkeypatch):
    """A stand-in runner (no PsychoPy): the launcher's option change starts one for the new screen."""
    from gui import session_runner
    monkeypatch.setattr(session_runner, "runner_argv",
                        lambda screen, windowed: [sys.executable, "-c", FAKE_RUNNER, str(screen), str(windowed)])
    runner = session_runner.SessionRunner()
    log = []
    runner.output.connect(log.append)
    options = {"screen": 0, "windowed": False}
    runner.enable_prewarm(lambda: (options["screen"], options["windowed"]))
    try:
        qtbot.waitUntil(lambda: runner.spare_ready, timeout=10000)
        first = runner.spare_pid()
        runner.prewarm_options_changed()                 # nothing changed: the runner stays
        assert runner.spare_pid() == first
        options["screen"] = 1
        runner.prewarm_options_changed()
        qtbot.waitUntil(lambda: runner.spare_ready and runner.spare_pid() not in (None, first), timeout=10000)
        assert runner.spare.argv[-2:] == ["1", "False"]
        assert not [line for line in log if "the next session starts in a fresh lhlab run" in line]
    finally:
        runner.close_spare()


def test_runner_refuses_a_bad_request_and_writes_nothing(tmp_path):
    """A request that is not `lhlab run` arguments: one stderr line, exit 2, no folder (no display
    needed: without one the runner waits without a window)."""
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    data = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "experiment.runner"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60,
                          input=json.dumps({"run": ["protocols/demo.yaml", "--participant", "P1", "--data-dir",
                                                    str(data)]}) + "\n")
    assert proc.returncode == 2, proc.stderr
    assert "the following arguments are required: --condition" in proc.stderr
    assert "Traceback" not in proc.stderr and "no prewarmed window" in proc.stderr
    assert [json.loads(line)["event"] for line in proc.stdout.splitlines()] == ["runner_ready"]
    assert not data.exists()
