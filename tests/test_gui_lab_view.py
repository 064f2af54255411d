"""The launcher's lab monitor (gui.lab_view) as an experimenter sees it: every station's
session with LOST in red when its heartbeats stopped, progress toward the planned n, the yoke
queue, what is not yet in the central folder, the 'study full' banner and the reason a full
study asks for; read in a worker thread, so a slow registry never freezes the window.

The first tests feed the view a small fake registry (exact numbers, a slow server); the last
ones run the launcher over a real registry (heartbeats written with experiment.registry.live)."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from conftest import run_lhlab  # noqa: E402
from experiment.errors import BadInput  # noqa: E402
from experiment.registry.core import SessionEntry  # noqa: E402
from experiment.registry.live import LiveSession  # noqa: E402
from gapmeter import GapMeter  # noqa: E402
from gui.dialogs import NewParticipantDialog, NewParticipantRequest  # noqa: E402
from gui.lab_view import FULL_TEXT, LOST_COLOR, LabView  # noqa: E402
from test_gui_launcher import make_launcher, protocols_copy  # noqa: E402, F401


def _ago(seconds: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


class FakeRegistry:
    """The registry's lab-monitor API with fixed answers (and an optional delay)."""

    def __init__(self, sessions=(), progress=None, queue=(), entries=(), delay_s=0.0, fail=None):
        self.sessions_live, self.progress, self.queue = list(sessions), dict(progress or {}), list(queue)
        self.entries, self.delay_s, self.fail, self.closed = list(entries), delay_s, fail, False

    def live_sessions(self, stale_after_s=15.0):
        time.sleep(self.delay_s)
        if self.fail:
            raise BadInput(self.fail)
        return self.sessions_live

    def progress_by_condition(self):
        return self.progress

    def yoke_queue(self):
        return self.queue

    def sessions(self, label=None):
        return self.entries

    def close(self):
        self.closed = True


@pytest.fixture
def lab_view(qtbot, tmp_path):
    views = []

    def make(reg, interval_ms=60000):
        view = LabView(open_registry=lambda study: reg, interval_ms=interval_ms)
        qtbot.addWidget(view)
        view.resize(900, 300)
        view.show()
        views.append(view)
        with qtbot.waitSignal(view.updated, timeout=5000):
            view.set_study(tmp_path / "study")
        return view

    yield make
    for view in views:
        view.shutdown()


def test_a_station_whose_heartbeat_stopped_shows_lost_in_red(lab_view):
    reg = FakeRegistry(sessions=[
        LiveSession("cubicle-1", "P001", "escapable", 1, "training", 12, 301.0, _ago(2), "running"),
        LiveSession("cubicle-2", "P002", "inescapable", 1, "test", 3, 95.0, _ago(40), "lost"),
        LiveSession("cubicle-3", "P003", "control", 1, "debriefing", None, 600.0, _ago(5), "finished", "complete")])
    view = lab_view(reg)
    rows = view.rows()
    assert [r[0] for r in rows] == ["cubicle-1", "cubicle-2", "cubicle-3"]
    assert rows[0][1:6] == ["P001 ses-1", "escapable", "training", "12", "05:01"] and rows[0][7] == "running"
    assert rows[1][7] == "LOST" and rows[1][1] == "P002 ses-1" and rows[1][6] == "40 s ago"
    assert rows[2][7] == "finished"
    lost_color = view.table.item(1, 7).foreground().color().name()
    assert lost_color == LOST_COLOR and view.table.item(0, 7).foreground().color().name() != LOST_COLOR
    assert "1 running, 1 lost" in view.status_label.text()


def test_progress_yoke_queue_and_unsynced_sessions(lab_view, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("LHLAB_CENTRAL", str(tmp_path / "share"))
    entries = [SessionEntry("P001", 1, None, None, "complete", "sub-P001/ses-1", "E1", True, "", "/share/x", "ab"),
               SessionEntry("P002", 1, None, None, "complete", "sub-P002/ses-1", "E1", True, ""),
               SessionEntry("P003", 1, None, None, "running", "sub-P003/ses-1", "E1", False, "")]
    reg = FakeRegistry(progress={"escapable": (3, 10), "inescapable": (2, 10), "control": (4, None)},
                       queue=[("P001", "escapable"), ("P005", "inescapable")], entries=entries)
    view = lab_view(reg)
    assert view.progress_text() == {"escapable": "3 / 10", "inescapable": "2 / 10", "control": "4 (no planned n)"}
    assert view.full_banner.isHidden()
    assert view.yoke_label.text() == "Waiting for a yoke partner: P001 (escapable), P005 (inescapable)"
    assert view.unsynced_label.text().startswith("Not yet in the central folder (1): sub-P002 ses-1.")

    reg.progress, reg.queue, reg.entries = {"escapable": (10, 10), "inescapable": (11, 10), "control": (4, 4)}, [], []
    view.refresh()
    qtbot.waitUntil(lambda: view.progress_text().get("escapable") == "10 / 10", timeout=5000)
    assert view.progress_text() == {"escapable": "10 / 10", "inescapable": "11 / 10", "control": "4 / 4"}
    assert not view.full_banner.isHidden() and view.full_banner.text() == FULL_TEXT
    assert view.yoke_label.text() == "Yoke queue: nobody is waiting for a partner."
    assert view.unsynced_label.text() == "Central folder: every finished session is there."


def test_a_slow_registry_never_freezes_the_window_and_a_broken_one_is_one_line(lab_view, qtbot):
    reg = FakeRegistry(delay_s=0.0)
    view = lab_view(reg, interval_ms=100)
    reg.delay_s = 0.8                   # a server far away: each read takes 0.8 s
    meter = GapMeter()
    with qtbot.waitSignal(view.updated, timeout=5000):
        pass
    qtbot.wait(900)
    assert meter.max_gap < 0.3, f"the window froze for {meter.max_gap:.2f} s while the registry was read"
    reg.delay_s, reg.fail = 0.0, "registry server db.lab:5432 is not reachable (connection refused)"
    qtbot.waitUntil(lambda: "not reachable" in view.status_label.text(), timeout=5000)
    assert view.status_label.text() == reg.fail and "#c62828" in view.status_label.styleSheet()


# -- the launcher over a real registry -------------------------------------------------------------------
def planned_protocols(tmp_path: Path, planned: int = 1) -> Path:
    folder = protocols_copy(tmp_path)
    text = (folder / "demo.yaml").read_text().replace("  block_size: 2\n", f"  block_size: 2\n  planned_n: {planned}\n")
    (folder / "demo.yaml").write_text(text)
    return folder


def test_launcher_lab_view_full_study_and_a_lost_station(make_launcher, qtbot, tmp_path, monkeypatch):
    from experiment.registry.live import beat
    monkeypatch.delenv("LHLAB_CENTRAL", raising=False)
    protocols = planned_protocols(tmp_path)
    run_lhlab("simulate", protocols / "demo.yaml", "--participants", 2, "--data-dir", tmp_path / "data",
              "--seed", 5, check_rc=0)
    # simulated sessions never count toward the planned n: these two stand in for real participants' sessions
    with sqlite3.connect(tmp_path / "data" / "demo" / "registry.sqlite") as db:
        db.execute("UPDATE sessions SET pilot = 0")
    w, dialogs = make_launcher(protocols=protocols)
    beat(w.study.registry, {"label": "P002", "session": 2, "station": "cubicle-7", "condition": "unsolvable",
                            "phase": "test", "trial": 4, "elapsed": 130.0, "started": _ago(200),
                            "last_beat": _ago(60), "status": "running"})

    def seen() -> bool:
        w.lab.refresh()                   # skipped while a read is on its way
        return any(r[0] == "cubicle-7" for r in w.lab.rows())
    qtbot.waitUntil(seen, timeout=5000)
    assert w.lab_dock.isVisible() and w.lab.isVisible()
    [row] = [r for r in w.lab.rows() if r[0] == "cubicle-7"]
    assert row[1:5] == ["P002 ses-2", "unsolvable", "test", "4"] and row[7] == "LOST"
    assert w.lab.progress_text() == {"solvable": "1 / 1", "unsolvable": "1 / 1"}
    assert w.lab.full_banner.isVisible()

    # the study is full: New participant needs a typed reason
    dialogs.requests += [NewParticipantRequest(None, None, None)]          # no reason typed
    w.act_new.trigger()
    initial, problem, full = dialogs.reopened[0]
    assert full and initial is None
    initial, problem, full = dialogs.reopened[1]
    assert full and initial == NewParticipantRequest(None, None, None) and "type why" in problem
    assert len(w.study.rows) == 2
    dialogs.requests += [NewParticipantRequest("POOL-9", None, None, "replaces P001 (fire alarm)")]
    w.act_new.trigger()
    assert [p.label for p in w.study.rows] == ["P001", "P002", "P003"]
    log = {a.label: a for a in w.study.registry.assignment_log()}
    assert log["P003"].override_full == "replaces P001 (fire alarm)"
    assert "study full, added because: replaces P001 (fire alarm)" in w.log.toPlainText()


def test_the_full_study_dialog_requires_a_reason_and_keeps_what_was_typed(qtbot):
    typed = NewParticipantRequest("POOL-3", "unsolvable", "replaces P004", "the pilot room's first real one")
    dialog = NewParticipantDialog(None, ["solvable", "unsolvable"], initial=typed,
                                  problem="Not added: external id 'POOL-3' is already registered as P001", full=True)
    qtbot.addWidget(dialog)
    dialog.show()
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert dialog.external.text() == "POOL-3" and dialog.manual.isChecked()
    assert dialog.condition.currentText() == "unsolvable" and dialog.reason.text() == "replaces P004"
    assert dialog.problem.isVisible() and "already registered as P001" in dialog.problem.text()
    assert dialog.full_label.isVisible() and ok.isEnabled() and dialog.request() == typed
    dialog.override.setText("   ")
    assert not ok.isEnabled(), "a full study must not take a participant without a typed reason"


def test_pilots_are_never_refused_by_the_planned_n(make_launcher, tmp_path, monkeypatch):
    from gui import preflight
    protocols = planned_protocols(tmp_path)
    run_lhlab("simulate", protocols / "demo.yaml", "--participants", 2, "--data-dir", tmp_path / "data" / "_pilot",
              "--seed", 5, check_rc=0)          # two pilots done: the pilot folder reached the planned n
    monkeypatch.setattr(preflight, "check_display", lambda *a, **k: preflight.Check("display", True, "test"))
    w, dialogs = make_launcher(protocols=protocols)
    started = []
    monkeypatch.setattr(w.flow, "_launch", lambda model, argv, label, *rest: started.append(label))
    assert [p.label for p in w.pilot.rows] == ["PILOT001", "PILOT002"]     # pilots' own label prefix
    assert not w.pilot.is_full()                 # pilot sessions never count toward the planned n
    w.act_pilot.trigger()
    assert started == ["PILOT003"] and not dialogs.titles("error")
    assert not w.pilot.registry.assignment_log()[-1].override_full
