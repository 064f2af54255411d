"""The real launcher (Qt's xcb platform, not offscreen) on the private Xvfb display runs a
short simulated pilot in the real PsychoPy window; while the test phase runs, the window is
saved as test-artifacts/launcher.png (and as docs/launcher.png, the README screenshot, when
LHLAB_UPDATE_DOCS=1 is set: a test run never changes tracked files by itself), and the
whole X screen (launcher + participant window) as test-artifacts/launcher-screen.png.

The launcher runs in a child process (this file is also its driver: `python
tests/test_gui_screenshot.py drive ...`) because the test process's Qt is offscreen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS_PNG = REPO / "docs" / "launcher.png"


@pytest.mark.window
def test_real_launcher_screenshot(x_display, tmp_path):
    from conftest import ARTIFACTS, run_lhlab
    data = tmp_path / "data"
    run_lhlab("simulate", "protocols/demo.yaml", "--participants", 5, "--data-dir", data, "--seed", 7, check_rc=0)
    run_lhlab("simulate", "protocols/demo.yaml", "--participants", 1, "--data-dir", data, "--seed", 8,
              "--profile", "default,withdraw_rate=1", check_rc=0)
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=x_display,
               LHLAB_LAUNCHER_SETTINGS=str(tmp_path / "launcher.ini"))
    outputs = [ARTIFACTS / "launcher.png"] + ([DOCS_PNG] if os.environ.get("LHLAB_UPDATE_DOCS") == "1" else [])
    proc = subprocess.run([sys.executable, str(Path(__file__)), "drive", str(data), str(REPO / "protocols"),
                           str(ARTIFACTS / "launcher-screen.png"), *map(str, outputs)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["platform"] == "xcb"
    assert summary["rows"] == 8 and summary["statuses"].count("complete") == 5
    assert "withdrawn" in summary["statuses"] and summary["statuses"].count("registered") == 2
    assert summary["phase_at_shot"].startswith("test (test, anagram)") and " of 5" in summary["trial_at_shot"]
    assert summary["status"] == "aborted" and summary["max_gap_s"] < 0.5
    lab = {row[0]: row for row in summary["lab"]}           # the lab monitor: a running and a lost station
    assert lab["cubicle-2"][1] == "P007 ses-1" and lab["cubicle-2"][7] == "running"
    assert lab["cubicle-3"][1] == "P008 ses-1" and lab["cubicle-3"][7] == "LOST"
    for path in outputs:
        assert path.stat().st_size > 20000, path
    assert _png_size(outputs[0]) == tuple(summary["size"])


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# ---------------------------------------------------------------------------------------------- driver
def drive(data: Path, protocols: Path, screen_png: Path, outputs: list[Path]) -> int:
    sys.path[:0] = [str(REPO), str(HERE)]
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from gui.app import build
    from gui.dialogs import NewParticipantRequest

    class AutoDialogs:
        """Answers yes, adds participants without asking, prints what it would have shown."""

        def __init__(self):
            self.requests = [NewParticipantRequest("POOL-0412", None, None), NewParticipantRequest(None, None, None)]

        def _show(self, parent, title, text, detail=""):
            print(f"dialog: {title}: {text}", file=sys.stderr)
        error = warning = info = _show

        def confirm(self, *args, **kw):
            return True

        def new_participant(self, *args, **kw):
            return self.requests.pop(0)

        def open_path(self, path):
            return True

        def choose_folder(self, *args):
            return None

    app, w = build(data, protocols, ["lhlab launch"], dialogs=AutoDialogs())
    gaps = {"last": time.monotonic(), "max": 0.0}

    def tick():
        now = time.monotonic()
        gaps["max"], gaps["last"] = max(gaps["max"], now - gaps["last"]), now
    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)

    def wait(condition, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            app.processEvents()
            if condition():
                return True
            time.sleep(0.005)
        return False

    w.move(0, 0)
    w.resize(1280, 800)
    w.show()
    wait(lambda: w.isVisible(), 5)
    w.experimenter_edit.setText("E1")
    w.act_new.trigger()
    w.act_new.trigger()
    w.windowed_check.setChecked(True)
    w.speed_spin.setValue(50)
    gaps["last"], gaps["max"] = time.monotonic(), 0.0
    w.act_pilot.trigger()
    p = lambda: w.runner.progress                                              # noqa: E731
    if not wait(lambda: p() and p().phase == "test" and (p().trial or 0) >= 2, 60):
        print(f"the pilot never reached the test phase: {w.event_label.text()}", file=sys.stderr)
        return 1
    w.tabs.setCurrentIndex(0)                    # the study's participants, with the pilot's progress
    w._select(w.study_table, "P006")
    w.note_edit.setPlainText("Withdrew during the test phase (simulated); debriefing shown.")
    _other_stations(w.study.registry)            # the lab monitor with two more rooms
    w.lab.refresh()
    wait(lambda: any(r[0] == "cubicle-2" for r in w.lab.rows()), 5)
    wait(lambda: False, 0.3)
    phase, trial = w.phase_label.text(), w.trial_label.text()
    shot = w.grab()
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert shot.save(str(path), "PNG"), path
    try:
        from x11tools import Keys, save_png
        keys = Keys(os.environ["DISPLAY"])
        save_png(keys.screenshot(), screen_png)
        keys.close()
    except Exception as e:  # noqa: BLE001 - the whole-screen picture is a bonus
        print(f"no whole-screen screenshot: {e}", file=sys.stderr)
    gaps["last"] = time.monotonic()              # the screenshots above blocked the loop, not the launcher
    w.note_edit.setPlainText("")
    w.notes.discard_changes()
    w.act_abort.trigger()
    wait(lambda: not w.runner.is_running(), 20)
    result = w.last_result or {}
    lab = w.lab.rows()
    print(json.dumps({"platform": QApplication.platformName(), "rows": len(w.study.rows), "lab": lab,
                      "statuses": [r.status for r in w.study.rows], "phase_at_shot": phase, "trial_at_shot": trial,
                      "status": result.get("status"), "max_gap_s": round(gaps["max"], 3),
                      "size": [shot.width(), shot.height()]}))
    w.close()
    return 0


def _other_stations(reg) -> None:
    """Heartbeats as two other stations' `lhlab run` would write them (experiment.registry.live):
    P007 running in cubicle-2, and P008 in cubicle-3, silent for a minute (LOST)."""
    from datetime import datetime, timedelta, timezone

    from experiment.registry.live import beat

    def ago(s: float) -> str:
        return (datetime.now(timezone.utc) - timedelta(seconds=s)).isoformat(timespec="milliseconds")
    for label, station, phase, trial, elapsed, last in (("P007", "cubicle-2", "practice", 2, 52.0, 1),
                                                        ("P008", "cubicle-3", "test", 3, 480.0, 64)):
        condition = reg.participant(label).condition
        beat(reg, {"label": label, "session": 1, "station": station, "condition": condition, "phase": phase,
                   "trial": trial, "elapsed": elapsed, "started": ago(elapsed + last), "last_beat": ago(last),
                   "status": "running"})


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "drive":
    sys.exit(drive(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), [Path(a) for a in sys.argv[5:]]))
