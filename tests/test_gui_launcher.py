"""The launcher window (offscreen Qt) over a real registry and real `lhlab run` children.

Dialogs are replaced by a recorder, settings go to a temp .ini file, and sessions that open
the participant window run on the private Xvfb display (x_display) as windowed pilots."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtCore import QSettings, Qt  # noqa: E402

from conftest import REPO, run_lhlab  # noqa: E402
from gui.dialogs import NewParticipantDialog, NewParticipantRequest  # noqa: E402
from gui.launcher import EMPTY_STUDY, LauncherWindow  # noqa: E402
from gapmeter import GapMeter  # noqa: E402


class RecordingDialogs:
    """Stands in for gui.dialogs.Dialogs: records every dialog, answers from queues, never blocks."""

    def __init__(self):
        self.shown: list[tuple] = []
        self.confirm_answer = True
        self.on_confirm = None             # called with the title before answering
        self.requests: list[NewParticipantRequest] = []
        self.opened: list[Path] = []
        self.folders: list[Path] = []
        self.reopened: list[tuple] = []        # (initial, problem, full) of each New participant dialog
        self.reasons: list[str] = []           # answers to ask_reason
        self.open_ok = True

    def _record(kind):
        def method(self, parent, title, text, detail=""):
            self.shown.append((kind, title, text, detail))
        return method

    error, warning, info = _record("error"), _record("warning"), _record("info")

    def confirm(self, parent, title, text, detail="", yes="Yes", no="Cancel"):
        self.shown.append(("confirm", title, text, detail))
        if self.on_confirm:
            self.on_confirm(title)
        return self.confirm_answer

    def new_participant(self, parent, conditions, hint="", initial=None, problem="", full=False):
        """A reopened dialog (after a refusal) with nothing queued is cancelled."""
        self.shown.append(("new_participant", "New participant", hint, problem))
        self.reopened.append((initial, problem, full))
        if self.requests:
            return self.requests.pop(0)
        return None if initial is not None else NewParticipantRequest(None, None, None)

    def ask_reason(self, parent, title, text):
        self.shown.append(("ask_reason", title, text, ""))
        return self.reasons.pop(0) if self.reasons else None

    def choose_folder(self, parent, title, start):
        return self.folders.pop(0) if self.folders else None

    def open_path(self, path):
        self.opened.append(Path(path))
        return self.open_ok

    def titles(self, kind: str) -> list[str]:
        return [s[1] for s in self.shown if s[0] == kind]

    def last(self, kind: str) -> tuple:
        return [s for s in self.shown if s[0] == kind][-1]


def protocols_copy(tmp_path: Path) -> Path:
    """A private protocols folder with demo.yaml (its ../stimuli paths still resolve)."""
    folder = tmp_path / "study-files" / "protocols"
    folder.mkdir(parents=True)
    (folder.parent / "stimuli").symlink_to(REPO / "stimuli")
    (folder / "demo.yaml").write_text((REPO / "protocols" / "demo.yaml").read_text())
    return folder


@pytest.fixture
def make_launcher(qtbot, tmp_path):
    windows = []

    def make(protocols: Path | None = None, data: Path | None = None, settings: Path | None = None):
        dialogs = RecordingDialogs()
        ini = QSettings(str(settings or tmp_path / "launcher.ini"), QSettings.Format.IniFormat)
        w = LauncherWindow(settings=ini, dialogs=dialogs, data_dir=data or tmp_path / "data",
                           protocols_dir=protocols or protocols_copy(tmp_path), stop_timeout_s=10)
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        return w, dialogs

    yield make
    for w in windows:                       # never leave a child behind
        if w.runner.child.is_running():
            w.runner.child.proc.kill()
            w.runner.child.proc.waitForFinished(5000)


def pilot_row(w, label="PILOT001"):
    return next(p for p in w.pilot.rows if p.label == label)


# ----------------------------------------------------------------------------------------------
def test_empty_state_new_participant_and_shortcuts(make_launcher, qtbot, tmp_path):
    w, dialogs = make_launcher()
    assert w.study_combo.currentText().startswith("lhlab demo") and w.protocol.study_id == "demo"
    assert w.study_stack.currentIndex() == 0 and w.study_table.empty_label.text() == EMPTY_STUDY
    assert not (tmp_path / "data" / "demo").exists(), "looking at a study must not write anything"
    assert not w.act_abort.isEnabled() and w.act_start.isEnabled()
    shortcuts = {a.text(): a.shortcut().toString() for a in (w.act_new, w.act_start, w.act_pilot, w.act_abort,
                                                            w.act_refresh, w.act_save_note, w.act_open)}
    assert shortcuts == {"New participant": "Ctrl+N", "Start session": "Ctrl+R", "Run pilot": "Ctrl+P",
                         "Abort": "Ctrl+.", "Refresh": "F5", "Save note": "Ctrl+S", "Open data folder": "Ctrl+D"}

    w.activateWindow()
    qtbot.waitUntil(lambda: w.isActiveWindow(), timeout=3000)
    dialogs.requests.append(NewParticipantRequest("POOL-17", None, None))
    qtbot.keyClick(w.study_table, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)      # Ctrl+N
    qtbot.waitUntil(lambda: len(w.study.rows) == 1, timeout=3000)
    w.act_new.trigger()
    rows = w.study.rows
    assert [p.label for p in rows] == ["P001", "P002"] and rows[0].external_id == "POOL-17"
    assert sorted(p.condition for p in rows) == ["solvable", "unsolvable"]       # one block of 2
    assert w.study_stack.currentIndex() == 1 and w.tabs.tabText(0) == "Participants (2)"
    assert w.selected_label() == "P002"                      # the new participant is selected, ready for Ctrl+R
    model = w.study_table.model()
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(5)] == \
        ["Label", "External id", "Condition", "Partner", "Status"]
    assert model.data(model.index(0, 4)) == "registered" and model.data(model.index(0, 1)) == "POOL-17"

    dialogs.requests.append(NewParticipantRequest("POOL-17", None, None))      # the same person again
    w.act_new.trigger()
    # refused: the dialog comes back with what was typed and why (then cancelled here)
    initial, problem, full = dialogs.reopened[-1]
    assert initial == NewParticipantRequest("POOL-17", None, None) and "already registered as P001" in problem
    assert len(w.study.rows) == 2 and not dialogs.titles("error")


def test_manual_condition_needs_a_typed_reason(make_launcher, qtbot):
    dialog = NewParticipantDialog(None, ["solvable", "unsolvable"])
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert ok.isEnabled() and dialog.request() == NewParticipantRequest(None, None, None)
    dialog.manual.setChecked(True)
    assert not ok.isEnabled(), "a manual condition without a reason must not be accepted"
    dialog.condition.setCurrentText("unsolvable")
    dialog.reason.setText("  ")
    assert not ok.isEnabled()
    dialog.reason.setText("replaces P004 whose data were lost")
    dialog.external.setText(" X9 ")
    assert ok.isEnabled()
    assert dialog.request() == NewParticipantRequest("X9", "unsolvable", "replaces P004 whose data were lost")

    w, dialogs = make_launcher()
    dialogs.requests.append(dialog.request())
    w.act_new.trigger()
    log = w.study.registry.assignment_log()
    assert [(a.label, a.condition, a.rule, a.reason) for a in log] == \
        [("P001", "unsolvable", "manual", "replaces P004 whose data were lost")]


def test_settings_remember_study_folders_and_geometry(make_launcher, tmp_path):
    ini = tmp_path / "remember.ini"
    data = tmp_path / "elsewhere"
    w, dialogs = make_launcher(settings=ini)
    dialogs.folders.append(data)
    w.act_data.trigger()
    w.experimenter_edit.setText("E7")
    w.resize(760, 700)          # fits the offscreen 800x800 screen
    size = (w.width(), w.height())
    w.close()
    protocols = w.protocols_dir
    settings = QSettings(str(ini), QSettings.Format.IniFormat)
    w2 = LauncherWindow(settings=settings, dialogs=RecordingDialogs())
    try:
        assert w2.data_dir == data and w2.protocols_dir == protocols
        assert w2.protocol_path == w.protocol_path and w2.experimenter_edit.text() == "E7"
        assert (w2.width(), w2.height()) == size != (1280, 780)
    finally:
        w2.close()


def test_preflight_refuses_with_what_to_do(make_launcher, monkeypatch, tmp_path):
    w, dialogs = make_launcher()
    w.act_new.trigger()
    label = w.selected_label()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("LHLAB_MIN_FREE_MB", str(10**12))
    w.act_start.trigger()
    kind, title, text, detail = dialogs.last("error")
    assert title == "Cannot start the session"
    assert "display: no X display: DISPLAY is not set" in text
    assert "lhlab needs 1000000000000 MB" in text and "protocol" not in text.split("•")[0]
    assert "• experimenter: no experimenter id: type yours in the Experimenter box" in text    # a real session
    checklist = text.split("Checks:\n")[1]           # the whole checklist is in the message, not behind a button
    assert "OK  protocol: demo.yaml is valid" in checklist and "NO  experimenter" in checklist and not detail
    assert not w.runner.is_running() and not dialogs.titles("confirm")

    # A participant who already completed a session is never run twice by accident.
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("gui.preflight.check_display", lambda *a, **k: __import__("gui.preflight").preflight.Check(
        "display", True, "test"))
    monkeypatch.delenv("LHLAB_MIN_FREE_MB")
    p = w.study.participant(label)
    run_lhlab("run", w.protocol_path, "--participant", label, "--condition", p.condition, "--data-dir",
              tmp_path / "data", "--simulate", "default", check_rc=0)
    w.refresh()
    assert w.study.participant(label).status == "complete" and w.selected_label() == label
    w.act_start.trigger()
    kind, title, text, detail = dialogs.last("error")
    assert f"participant: sub-{label} already has a complete session (ses-1)" in text      # lhlab run's wording
    assert "use a new participant label" in text
    assert not w.runner.is_running()


@pytest.mark.window
def test_pilot_shows_progress_aborts_and_keeps_files(make_launcher, qtbot, x_display, tmp_path):
    w, dialogs = make_launcher()
    w.speed_spin.setValue(10)
    w.windowed_check.setChecked(True)
    seen = []
    w.runner.lineEvent.connect(lambda ev: seen.append((ev["event"], w.phase_label.text(), w.trial_label.text())))
    meter = GapMeter()
    w.act_pilot.trigger()
    assert w.runner.is_running() and w.runner.kind == "pilot" and w.tabs.currentIndex() == 1
    assert "--simulate default --mode visual --speed 10" in " ".join(w.runner.argv)
    qtbot.waitUntil(lambda: ("trial_start", "practice (practice, anagram)  ·  phase 2 of 6", "1 of 2") in seen,
                    timeout=30000)
    assert pilot_row(w).status == "running"                 # the table follows (synced at session_start)
    assert re.match(r"\d\d:\d\d", w.elapsed_label.text()) and "trial 1 of 2" in w.event_label.text()
    assert w.act_abort.isEnabled() and not w.act_start.isEnabled() and not w.study_combo.isEnabled()
    assert w.note_target.currentText() == "PILOT001: participant note"
    w.note_edit.setPlainText("fidgeted during practice")      # typed while the session runs, not saved

    t_abort = time.monotonic()
    w.act_abort.trigger()
    assert dialogs.last("confirm")[1] == "Abort session"
    qtbot.waitUntil(lambda: not w.runner.is_running(), timeout=15000)
    stop_s = time.monotonic() - t_abort
    assert w.last_result["status"] == "aborted" and w.last_result["code"] == 3 and not w.last_result["killed"]
    assert pilot_row(w).status == "aborted" and w.pilot_table.model().data(w.pilot_table.model().index(0, 4)) == "aborted"
    assert "ended: aborted (exit code 3)" in w.statusBar().currentMessage()
    assert meter.max_gap < 0.5, f"the launcher froze for {meter.max_gap:.2f} s"
    assert stop_s < 5
    assert not dialogs.titles("error") and not dialogs.titles("warning")

    # files: the pilot folder, never the study's
    ses = tmp_path / "data" / "_pilot" / "demo" / "sub-PILOT001" / "ses-1"
    record = json.loads((ses / "sub-PILOT001_ses-1_session.json").read_text())
    assert record["status"] == "aborted" and record["pilot"] and record["simulated"]["mode"] == "visual"
    assert (ses / "beh" / "sub-PILOT001_ses-1_task-welcome_beh.tsv").exists()
    assert (ses / "beh" / "sub-PILOT001_ses-1_task-practice_beh.tsv").exists()
    assert not (tmp_path / "data" / "demo").exists() and not w.study.rows

    # the note typed during the session was saved when it ended, not thrown away
    assert w.pilot.registry.participant("PILOT001").notes == "fidgeted during practice"
    # a note for that session, stored in the (pilot) registry
    assert w.note_target.currentData() == 1 and "session 1 · aborted" in w.note_target.currentText()
    w.note_edit.setPlainText("pilot aborted on purpose")
    assert w.save_note()
    assert [s.notes for s in w.pilot.sessions("PILOT001")] == ["pilot aborted on purpose"]


@pytest.mark.window
def test_child_killed_shows_crashed_and_launcher_survives(make_launcher, qtbot, x_display, tmp_path):
    w, dialogs = make_launcher()
    w.speed_spin.setValue(10)
    w.windowed_check.setChecked(True)
    meter = GapMeter()
    w.act_pilot.trigger()
    qtbot.waitUntil(lambda: w.runner.progress.first_frame_at is not None, timeout=30000)
    os.kill(w.runner.pid(), signal.SIGKILL)
    qtbot.waitUntil(lambda: not w.runner.is_running(), timeout=10000)
    assert w.last_result["status"] == "crashed" and w.last_result["by_signal"]
    assert pilot_row(w).status == "crashed"
    assert "ended: crashed (killed by a signal)" in w.statusBar().currentMessage()
    kind, title, text, detail = dialogs.last("error")
    assert title == "Session crashed" and "run again as a new session" in text
    record = json.loads((tmp_path / "data/_pilot/demo/sub-PILOT001/ses-1/sub-PILOT001_ses-1_session.json").read_text())
    assert record["status"] == "crashed" and "finished trials are on disk" in record["exit"]["reason"]
    assert meter.max_gap < 0.5, f"the launcher froze for {meter.max_gap:.2f} s"
    assert w.act_pilot.isEnabled() and w.act_start.isEnabled() and not w.act_abort.isEnabled()


@pytest.mark.window
def test_protocol_broken_after_preflight_is_refused_with_the_reason(make_launcher, qtbot, x_display, tmp_path):
    protocols = protocols_copy(tmp_path)
    w, dialogs = make_launcher(protocols=protocols)
    w.act_new.trigger()
    label = w.selected_label()

    def break_protocol(title):        # between the preflight and the start, someone edits the file
        if title == "Start session":
            text = (protocols / "demo.yaml").read_text().replace("time_limit: 20", "time_limit: -5", 1)
            (protocols / "demo.yaml").write_text(text)
    dialogs.on_confirm = break_protocol
    w.experimenter_edit.setText("E1")
    w.act_start.trigger()
    assert "OK  experimenter: E1" in dialogs.last("confirm")[2]
    assert w.runner.is_running() and w.runner.kind == "session"
    assert f"--participant {label}" in " ".join(w.runner.argv) and "--simulate" not in w.runner.argv
    qtbot.waitUntil(lambda: not w.runner.is_running(), timeout=20000)
    assert w.last_result["status"] == "refused" and w.last_result["code"] == 2
    kind, title, text, _ = dialogs.last("error")
    assert title == "Session refused" and re.search(r"demo\.yaml:\d+: phases\.practice\.time_limit", text), text
    assert w.study.participant(label).status == "registered"
    assert not (tmp_path / "data" / "demo" / f"sub-{label}").exists()
    w.act_refresh.trigger()
    assert "does not validate" in w.banner.text() and not w.act_start.isEnabled()


def test_open_folder_and_analyze(make_launcher, qtbot, tmp_path):
    w, dialogs = make_launcher()
    run_lhlab("simulate", w.protocol_path, "--participants", 4, "--data-dir", tmp_path / "data", "--seed", 3,
              check_rc=0)
    w.act_refresh.trigger()
    assert [p.status for p in w.study.rows] == ["complete"] * 4
    w.act_open.trigger()
    assert dialogs.opened == [tmp_path / "data" / "demo"]
    assert w.act_analyze.isEnabled()
    w.act_analyze.trigger()
    assert not w.act_analyze.isEnabled() and not w.act_start.isEnabled()
    qtbot.waitUntil(lambda: not w.analysis.is_running(), timeout=60000)
    analyses = tmp_path / "data" / "demo" / "derivatives" / "lhlab-analysis"
    first = analyses / "latest" / "report.html"
    assert first.exists() and "Analysis done" in w.statusBar().currentMessage()
    assert dialogs.last("confirm")[1] == "Analysis done" and dialogs.opened[-1].resolve() == first.resolve()
    assert "--include-pilot" not in w.analysis.argv
    # a second run (pilots included) gets its own dated folder; the first report stays as it was
    before = first.resolve().read_bytes()
    w.act_include_pilots.setChecked(True)
    w.act_analyze.trigger()
    assert "--include-pilot" in w.analysis.argv
    qtbot.waitUntil(lambda: not w.analysis.is_running(), timeout=60000)
    runs = sorted(p for p in analyses.iterdir() if not p.is_symlink())
    assert len(runs) == 2 and (runs[0] / "report.html").read_bytes() == before
    assert (analyses / "latest").resolve() == runs[1].resolve()


@pytest.mark.window
def test_closing_during_a_session_aborts_it_first(make_launcher, qtbot, x_display, tmp_path):
    w, dialogs = make_launcher()
    w.speed_spin.setValue(10)
    w.windowed_check.setChecked(True)
    w.act_pilot.trigger()
    qtbot.waitUntil(lambda: w.runner.progress.participant is not None, timeout=30000)
    dialogs.confirm_answer = False
    w.close()                                         # "keep running"
    assert w.isVisible() and w.runner.is_running() and w.runner.state != "stopping"
    dialogs.confirm_answer = True
    w.close()                                         # "abort and close": the window waits for the child
    assert w.isVisible() and w.runner.state == "stopping"
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=15000)
    assert w.last_result["status"] == "aborted"
    record = json.loads((tmp_path / "data/_pilot/demo/sub-PILOT001/ses-1/sub-PILOT001_ses-1_session.json").read_text())
    assert record["status"] == "aborted"


def test_launch_without_a_display_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = run_lhlab("launch", "--data-dir", tmp_path, env=env)
    assert proc.returncode == 2 and proc.stderr.startswith("lhlab launch: no display") and not proc.stdout
    proc = run_lhlab("launch", "--protocols", tmp_path / "nope", env=dict(env, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 2 and "is not a folder" in proc.stderr


def test_notes_are_kept_when_switching_participants_or_tabs(make_launcher):
    w, dialogs = make_launcher()
    for _ in range(3):
        w.act_new.trigger()
    w._select(w.study_table, "P002")
    assert w.note_target.currentText() == "P002: participant note" and w.note_edit.isEnabled()
    w.note_edit.setPlainText("came 10 min late")
    w.act_new.trigger()                                   # selects P004: P002's note is saved first
    assert w.selected_label() == "P004" and w.note_edit.toPlainText() == ""
    assert w.study.registry.participant("P002").notes == "came 10 min late"
    w._select(w.study_table, "P002")
    assert w.note_edit.toPlainText() == "came 10 min late"
    w.note_edit.setPlainText("came 10 min late; wore glasses")
    w.tabs.setCurrentIndex(1)                             # switching tabs saves too
    assert not w.note_edit.isEnabled()
    assert w.study.registry.participant("P002").notes == "came 10 min late; wore glasses"
    w.tabs.setCurrentIndex(0)
    assert w.selected_label() == "P002" and w.note_edit.toPlainText() == "came 10 min late; wore glasses"
    w.act_refresh.trigger()
    assert w.selected_label() == "P002" and w.note_edit.toPlainText() == "came 10 min late; wore glasses"


def test_log_lines_say_where_they_came_from(make_launcher):
    w, dialogs = make_launcher()
    w.act_new.trigger()                                   # the launcher's own doing
    w.runner.output.emit("stdout: a line of lhlab run")   # the session child
    w.analysis.stdoutLine.emit("a line of lhlab analyze")
    lines = w.log.toPlainText().splitlines()
    assert re.match(r"\d\d:\d\d:\d\d  launcher added P001: condition ", lines[0]), lines
    assert re.search(r"  run      stdout: a line of lhlab run$", lines[-2]), lines
    assert re.search(r"  analyze  a line of lhlab analyze$", lines[-1]), lines


# ---------------------------------------------------------------------------------------------- polish (issue 13)
def test_participants_table_filters_and_sorts(make_launcher, qtbot):
    w, dialogs = make_launcher()
    dialogs.requests += [NewParticipantRequest(x, None, None) for x in ("POOL-A", "POOL-B", "OTHER-C")]
    for _ in range(3):
        w.act_new.trigger()
    view, model = w.study_table, w.study_table.model()
    shown = lambda: [model.data(model.index(r, 0)) for r in range(model.rowCount())]     # noqa: E731
    assert shown() == ["P001", "P002", "P003"]
    qtbot.keyClicks(w.tables.filter_edit, "pool")               # any column, any case
    assert shown() == ["P001", "P002"]
    w.tables.filter_edit.setText("other-c")
    assert shown() == ["P003"]
    w.tables.filter_edit.clear()
    view.sortByColumn(0, Qt.SortOrder.DescendingOrder)           # a click on the Label header
    assert shown() == ["P003", "P002", "P001"]
    w._select(view, "P002")                                      # selection speaks in the rows shown
    assert w.selected_label() == "P002" and w.note_target.currentText() == "P002: participant note"
    w.tables.filter_edit.setText("POOL-B")
    w.act_new.trigger()                                          # the new one is shown and selected anyway
    assert w.tables.filter_edit.text() == "" and w.selected_label() == "P004" and len(shown()) == 4


def test_partner_column_only_for_yoked_studies(make_launcher, tmp_path):
    protocols = protocols_copy(tmp_path)
    (protocols / "noise.yaml").write_text((REPO / "protocols" / "hiroto-seligman-noise-anagrams.yaml").read_text())
    w, dialogs = make_launcher(protocols=protocols)
    partner = w.study_table.model().sourceModel().column("Partner")
    assert w.protocol.study_id == "demo" and w.study_table.isColumnHidden(partner)
    w.study_combo.setCurrentIndex(w.study_combo.findData(str(protocols / "noise.yaml")))
    assert w.protocol.study_id != "demo" and not w.study_table.isColumnHidden(partner)


def test_study_list_by_whole_title(make_launcher, tmp_path):
    protocols = protocols_copy(tmp_path)
    for name in ("hiroto-seligman-noise-anagrams.yaml", "unsolvable-anagrams.yaml"):
        (protocols / name).write_text((REPO / "protocols" / name).read_text())
    w, dialogs = make_launcher(protocols=protocols)
    combo = w.study_combo
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts == sorted(texts, key=str.casefold) and texts[0].startswith("Hiroto & Seligman (1975) experiment 3")
    assert all("[" not in t for t in texts)                        # titles, not file names
    widest = max(combo.view().fontMetrics().horizontalAdvance(t) for t in texts)
    assert combo.view().minimumWidth() >= widest, "the open list must show each whole title"
    assert "demo.yaml" in combo.toolTip() and combo.currentText() == w.protocol.title


def test_open_data_folder_failure_is_an_error(make_launcher):
    w, dialogs = make_launcher()
    dialogs.open_ok = False
    w.act_open.trigger()
    kind, title, text, _ = dialogs.last("error")
    assert title == "Cannot open the data folder" and str(w.data_dir) in text
    assert "could not open" in w.log.toPlainText() and not re.search(r"launcher opened ", w.log.toPlainText())


def test_live_panel_clears_when_another_participant_is_selected(make_launcher):
    w, dialogs = make_launcher()
    for _ in range(2):
        w.act_new.trigger()
    w.session_panel.show_starting("session", "P001", 1, "solvable")      # P001's session has ended
    w.session_panel.show_finished("complete", "exit code 0", None)
    w._select(w.study_table, "P001")
    assert "P001" in w.who_label.text()
    w._select(w.study_table, "P002")
    assert w.who_label.text() == "No session running." and w.state_label.text() == "idle"


def test_launcher_log_is_saved_with_the_study_and_never_overwritten(make_launcher, tmp_path):
    from gui.study_log import log_path
    w, dialogs = make_launcher()
    study = tmp_path / "data" / "demo"
    assert not study.exists()                      # looking writes nothing
    w.act_new.trigger()                            # the registry creates the study folder
    path = log_path(study)
    assert path.parent == study / "lhlab" / "logs"
    first = path.read_text()
    assert "launcher opened" in first and "added P001: condition" in first
    w.close()
    w2, _ = make_launcher(protocols=w.protocols_dir)     # a second launcher the same day appends
    w2.act_new.trigger()
    text = path.read_text()
    assert text.startswith(first) and "added P002" in text and text.count("launcher opened") == 2
    from experiment.datafile import ensure_dataset_files
    ensure_dataset_files(study, "demo")            # what the first session writes: the log is not BIDS data
    assert "lhlab/" in (study / ".bidsignore").read_text().splitlines()
