"""The launcher: the experimenter's window on the control screen.

Pick a study (a protocol file in the protocols folder; its data in DATA_DIR/<study-id>/), see
and add participants (the registry assigns conditions), start a session after a preflight,
follow it live, abort it, write notes, run a pilot, open the data, run the analysis.

This module is the window shell: actions, menus, toolbars, layout, settings, the choice of
study, which actions are enabled, the log and closing. The parts live in their own modules:

    gui.session_flow       SessionFlow: new participant, start / pilot / abort / finish
    gui.notes              NotesPanel: participant and session notes (widget and saving)
    gui.participants_view  ParticipantsTabs: the Participants and Pilot runs tables
    gui.data_actions       DataActions: open the data folder, run the analysis
    gui.study_bar          StudyBar: study list, folders, what is wrong with the study
    gui.panels             display only: the live-session panel, session options, the log
    gui.lab_view           LabView: every station's live session, progress, yoke queue, sync (dock)
    gui.study_log          StudyLog: the log saved in DATA_DIR/<study>/lhlab/logs/
    gui.models             StudyModel (registry of one study folder), the table model

The window is a thin view: the registry (gui.models.StudyModel over experiment.registry)
owns participants and sessions, the checks live in experiment.preflight (gui.preflight adds
the display check), every session is a child `lhlab run` (gui.session_runner), and every
dialog goes through `Dialogs` (gui.dialogs) so tests never block on a modal box.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from PyQt6.QtCore import QByteArray, QSettings, Qt
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QDockWidget, QLabel, QMainWindow, QSplitter, QTableView, QToolBar, QVBoxLayout, QWidget

from experiment.errors import BadInput, ProtocolError
from gui.data_actions import DataActions
from gui.dialogs import Dialogs
from gui.lab_view import LabView
from gui.models import StudyModel, pilot_data_dir
from gui.notes import NotesPanel
from gui.panels import LogView, SessionOptions, SessionPanel
from gui.participants_view import EMPTY_PILOT, EMPTY_STUDY, ParticipantsTabs
from gui.session_flow import SessionFlow
from gui.session_runner import ChildProcess, SessionRunner
from gui.study_bar import StudyBar, list_protocols
from gui.study_log import StudyLog

SETTINGS_ORG, SETTINGS_APP = "lhlab", "launcher"
SHORTCUTS = (("Ctrl+N", "New participant"), ("Ctrl+R", "Start session (selected participant)"),
             ("Ctrl+P", "Run pilot (simulated participant, real window)"), ("Ctrl+.", "Abort the running session"),
             ("F5", "Refresh (re-read protocol and data)"), ("Ctrl+S", "Save note"),
             ("Ctrl+D", "Open data folder"), ("Ctrl+Shift+A", "Analyze the study"),
             ("Ctrl+O", "Choose protocols folder"), ("Ctrl+Shift+O", "Choose data folder"), ("Ctrl+Q", "Quit"))


class LauncherWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, dialogs: Dialogs | None = None,
                 data_dir: Path | None = None, protocols_dir: Path | None = None,
                 stop_timeout_s: float | None = None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings(SETTINGS_ORG, SETTINGS_APP)
        self.dialogs = dialogs or Dialogs()
        self.protocols_dir = Path(protocols_dir or self.settings.value("protocols_dir", "")
                                  or _default_protocols()).absolute()
        self.data_dir = Path(data_dir or self.settings.value("data_dir", "") or Path("data")).absolute()
        self.protocol_path: Path | None = None
        self.protocol = None
        self.protocol_problems: list[str] = []
        self.study = StudyModel(self)
        self.pilot = StudyModel(self, pilot=True)
        self.runner = SessionRunner(self)
        if stop_timeout_s is not None:
            self.runner.stop_timeout_s = stop_timeout_s
        self.analysis = ChildProcess(self)
        self.log = LogView()
        self.study_log = StudyLog(on_problem=lambda text: self.statusBar().showMessage(text, 15000))
        self.log.sink = self.study_log.write
        self.flow = SessionFlow(self)
        self.data_actions = DataActions(self)

        self.setWindowTitle("lhlab launcher")
        self._build_actions()
        self._build_ui()
        self._connect()
        self._restore_settings()
        self.reload_protocols(select=self.settings.value("study", "") or None)
        self.update_actions()

    @property
    def last_result(self) -> dict | None:
        """How the last session ended (gui.session_runner's `finished` dict), None while one runs."""
        return self.flow.last_result

    # ================================================================ construction
    def _action(self, text: str, shortcut: str, slot, tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{tip} ({shortcut})")
        action.setStatusTip(tip)
        action.triggered.connect(lambda checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.act_new = a("New participant", "Ctrl+N", self.flow.new_participant,
                         "Register a participant; the registry assigns the condition")
        self.act_start = a("Start session", "Ctrl+R", self.flow.start_session,
                           "Check everything, then run the selected participant's session on the participant screen")
        self.act_pilot = a("Run pilot", "Ctrl+P", self.flow.run_pilot,
                           "Run a simulated participant in the real participant window (data go to the pilot folder)")
        self.act_abort = a("Abort", "Ctrl+.", self.flow.abort_session,
                           "Stop the running session gracefully; its data so far are kept and it is marked aborted")
        self.act_refresh = a("Refresh", "F5", self.refresh, "Re-read the protocol and the session records on disk")
        self.act_open = a("Open data folder", "Ctrl+D", self.data_actions.open_data_folder,
                          "Open the study's data folder")
        self.act_analyze = a("Analyze", "Ctrl+Shift+A", self.data_actions.analyze,
                             "Run lhlab analyze on the study folder into a new dated folder (report.html and tables)")
        self.act_include_pilots = QAction("Include pilot sessions in the analysis", self)
        self.act_include_pilots.setCheckable(True)
        self.act_include_pilots.setStatusTip("Analyze pilot and simulated sessions of the study folder too "
                                             "(a folder holding only those is analysed with them anyway)")
        self.act_save_note = a("Save note", "Ctrl+S", self.save_note, "Save the note of the selected session")
        self.act_protocols = a("Protocols folder…", "Ctrl+O", self.choose_protocols_dir,
                               "Choose the folder with the protocol files")
        self.act_data = a("Data folder…", "Ctrl+Shift+O", self.choose_data_dir, "Choose the data folder")
        self.act_quit = a("Quit", "Ctrl+Q", self.close, "Close the launcher")
        self.act_keys = a("Keyboard shortcuts", "F1", self.show_shortcuts, "List the keyboard shortcuts")

    def _build_ui(self) -> None:
        menu = self.menuBar()
        m = menu.addMenu("&File")
        for act in (self.act_protocols, self.act_data, self.act_quit):
            m.addAction(act)
        m = menu.addMenu("&Session")
        for act in (self.act_new, self.act_start, self.act_pilot, self.act_abort, self.act_refresh, self.act_save_note):
            m.addAction(act)
        m = menu.addMenu("&Data")
        for act in (self.act_open, self.act_analyze, self.act_include_pilots):
            m.addAction(act)
        menu.addMenu("&Help").addAction(self.act_keys)

        # study bar: study, protocols folder, data folder (gui.study_bar)
        self.study_bar = StudyBar(self.act_protocols, self.act_data)
        self.study_combo, self.protocols_edit, self.data_edit = \
            self.study_bar.combo, self.study_bar.protocols_edit, self.study_bar.data_edit
        bar = QToolBar("Study", self)
        bar.setObjectName("study-bar")
        bar.setMovable(False)
        bar.addWidget(self.study_bar)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.addToolBarBreak()

        # action bar
        tools = QToolBar("Actions", self)
        tools.setObjectName("action-bar")
        tools.setMovable(False)
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for act in (self.act_new, self.act_start, self.act_pilot, self.act_abort):
            tools.addAction(act)
        tools.addSeparator()
        for act in (self.act_refresh, self.act_open, self.act_analyze):
            tools.addAction(act)
        tools.addSeparator()
        self.options = SessionOptions()
        self.options.add_to(tools)
        for name in ("screen_combo", "windowed_check", "speed_spin", "experimenter_edit"):
            setattr(self, name, getattr(self.options, name))
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tools)

        # left: banner + tables (gui.participants_view)
        self.banner = self.study_bar.banner
        self.tables = self.tabs = ParticipantsTabs(self.study, self.pilot)
        for name in ("study_table", "study_stack", "pilot_table", "pilot_stack"):
            setattr(self, name, getattr(self.tables, name))
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.banner)
        lay.addWidget(self.tables)

        # right: session progress (gui.panels) + notes (gui.notes)
        self.session_panel = SessionPanel()
        self.session_panel.abort_button.clicked.connect(lambda checked=False: self.flow.abort_session())
        for name in ("who_label", "state_label", "phase_label", "trial_label", "elapsed_label", "event_label",
                     "progress_bar", "abort_button"):
            setattr(self, name, getattr(self.session_panel, name))
        self.notes = NotesPanel(self.dialogs, self.log.add, self.statusBar().showMessage)
        self.note_target, self.note_edit, self.note_save = self.notes.target, self.notes.edit, self.notes.save_button
        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.addWidget(self.session_panel)
        rlay.addWidget(self.notes, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.setCentralWidget(self.splitter)

        dock = QDockWidget("Log", self)
        dock.setObjectName("log-dock")
        dock.setWidget(self.log)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.log_dock = dock
        self.lab = LabView()
        lab = QDockWidget("Lab monitor", self)
        lab.setObjectName("lab-dock")
        lab.setWidget(self.lab)
        lab.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, lab)
        self.splitDockWidget(lab, dock, Qt.Orientation.Horizontal)
        self.lab_dock = lab

        self.session_status = QLabel("idle")
        self.statusBar().addPermanentWidget(self.session_status)
        self.options.fill_screens(self.settings)

    def _connect(self) -> None:
        self.study_combo.currentIndexChanged.connect(lambda i: self._study_chosen())
        self.runner.stateChanged.connect(lambda s: self.update_actions())
        self.study.syncProblems.connect(lambda p: self._sync_problems(self.study, p))
        self.pilot.syncProblems.connect(lambda p: self._sync_problems(self.pilot, p))
        self.notes.editingChanged.connect(self.update_actions)
        self.tables.selectionChanged.connect(self._selection_changed)
        self.tables.reloaded.connect(self._after_reload)

    # ================================================================ settings
    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 780)
        state = self.settings.value("window_state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        else:
            self.resizeDocks([self.lab_dock], [250], Qt.Orientation.Vertical)
            self.resizeDocks([self.lab_dock, self.log_dock], [880, 400], Qt.Orientation.Horizontal)
        split = self.settings.value("splitter")
        if isinstance(split, QByteArray) and not split.isEmpty():
            self.splitter.restoreState(split)
        else:
            self.splitter.setSizes([760, 480])
        self.options.restore(self.settings)
        self._show_paths()

    def _show_paths(self) -> None:
        self.study_bar.show_paths(self.protocols_dir, self.data_dir)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("window_state", self.saveState())
        s.setValue("splitter", self.splitter.saveState())
        s.setValue("protocols_dir", str(self.protocols_dir))
        s.setValue("data_dir", str(self.data_dir))
        s.setValue("study", str(self.protocol_path) if self.protocol_path else "")
        self.options.save(s)
        s.sync()

    # ================================================================ study selection
    def reload_protocols(self, select: str | None = None) -> None:
        """List the protocols folder into the study list; keep (or choose) the selection."""
        keep = select or (str(self.protocol_path) if self.protocol_path else None)
        self.study_bar.list_studies(list_protocols(self.protocols_dir), keep)
        self._study_chosen()

    def _study_chosen(self) -> None:
        self.notes.autosave()
        path = self.study_combo.currentData()
        self.protocol_path = Path(path) if path else None
        self.load_study()

    def load_study(self) -> None:
        """(Re)load the chosen protocol and open its study and pilot registries."""
        self.protocol, self.protocol_problems = None, []
        if self.protocol_path is not None:
            from experiment.protocol import load_protocol
            try:
                self.protocol = load_protocol(self.protocol_path)
            except ProtocolError as e:
                self.protocol_problems = list(e.problems)
            except (BadInput, OSError) as e:
                self.protocol_problems = [f"{self.protocol_path}: {e}"]
        self.tables.protocol_invalid = bool(self.protocol_problems)
        self.study.set_study(self.protocol, self.data_dir if self.protocol else None)
        self.pilot.set_study(self.protocol, self.data_dir if self.protocol else None)
        self.lab.set_study(self.study.study_dir)
        self.study_log.set_study(self.study.study_dir, f"{datetime.now():%Y-%m-%d %H:%M:%S}  launcher opened "
                                 f"{self.protocol_path} (pid {os.getpid()})")
        title = self.protocol.title if self.protocol else (self.protocol_path.name if self.protocol_path else "")
        self.setWindowTitle(f"lhlab launcher – {title}" if title else "lhlab launcher")
        self._update_banner()
        self.update_actions()
        if self.protocol is not None:
            self.statusBar().showMessage(f"Study {self.protocol.study_id}: {len(self.study.rows)} participants, "
                                         f"data in {self.study.study_dir}", 8000)

    def _update_banner(self) -> None:
        self.study_bar.show_problems(self.protocols_dir, self.protocol_path, self.protocol_problems,
                                     self.study.error, self.pilot.error)

    def choose_protocols_dir(self) -> None:
        if self.runner.is_running():
            return self.refuse_while_running("change the protocols folder")
        path = self.dialogs.choose_folder(self, "Protocols folder", self.protocols_dir)
        if path:
            self.set_protocols_dir(path)

    def choose_data_dir(self) -> None:
        if self.runner.is_running():
            return self.refuse_while_running("change the data folder")
        path = self.dialogs.choose_folder(self, "Data folder", self.data_dir)
        if path:
            self.set_data_dir(path)

    def set_protocols_dir(self, path: Path) -> None:
        self.protocols_dir = Path(path).absolute()
        self._show_paths()
        self.reload_protocols()

    def set_data_dir(self, path: Path) -> None:
        self.data_dir = Path(path).absolute()
        self._show_paths()
        self.load_study()

    def refresh(self) -> None:
        """F5: re-list the protocols, re-validate the chosen one, sync the registries with the disk."""
        label = self.selected_label()
        self.reload_protocols()
        if label:
            self.tables.select(self.study, label)
        self.statusBar().showMessage(f"Refreshed at {datetime.now():%H:%M:%S}", 4000)

    # ================================================================ tables and notes
    def _after_reload(self, model: StudyModel) -> None:
        label = self.notes.label_in(model)       # keep the participant whose note is open selected
        if label:
            self.tables.select(model, label)

    def _selection_changed(self) -> None:
        model, _ = self.tables.current()
        label = self.tables.selected_label(model)
        shown = self.session_panel.shown
        if shown and not self.runner.is_running() and shown != ("pilot" if model.pilot else "session", label):
            self.session_panel.clear()        # never another participant's session beside this one
        if self.notes.is_showing(model, label):
            self.update_actions()
            return
        self.notes.autosave()
        self.notes.show_notes(model, label)
        self.update_actions()

    def selected_label(self) -> str | None:
        """The participant selected in the Participants table."""
        return self.tables.selected_label(self.study)

    def _select(self, view: QTableView, label: str) -> None:
        self.tables.select(self.pilot if view is self.pilot_table else self.study, label)

    def save_note(self, quiet: bool = False) -> bool:
        return self.notes.save(quiet)

    # ================================================================ actions
    def update_actions(self) -> None:
        running = self.runner.is_running()
        ready = self.protocol is not None and self.study.error is None
        analysing = self.analysis.is_running()
        self.act_new.setEnabled(ready)
        self.act_start.setEnabled(ready and not running and not analysing)
        self.act_pilot.setEnabled(self.protocol is not None and self.pilot.error is None and not running
                                  and not analysing)
        self.act_abort.setEnabled(running and self.runner.state != "stopping")
        self.abort_button.setEnabled(self.act_abort.isEnabled())
        self.act_open.setEnabled(self.protocol is not None)
        self.act_analyze.setEnabled(ready and not running and not analysing)
        for w in (self.study_combo, self.act_protocols, self.act_data, self.screen_combo, self.windowed_check):
            w.setEnabled(not running)
        self.note_save.setEnabled(self.notes.key is not None)
        self.act_save_note.setEnabled(self.notes.key is not None)
        state = self.runner.state
        if running and self.runner.progress is not None:
            p = self.runner.progress
            who = f"{p.participant or self.runner.meta.get('label')} ses-{p.session or self.runner.meta.get('session')}"
            pilot = self.runner.meta.get("model") is self.pilot
            self.session_status.setText(f"{'PILOT ' if pilot else ''}{who}: {state}")
        else:
            self.session_status.setText("no session running")

    def refuse_while_running(self, what: str) -> None:
        self.dialogs.warning(self, "A session is running", f"You cannot {what} while a session is running.",
                             "Wait for the session to end, or abort it with Ctrl+. first.")

    # ================================================================ misc
    def show_shortcuts(self) -> None:
        self.dialogs.info(self, "Keyboard shortcuts", "\n".join(f"{k:<14} {v}" for k, v in SHORTCUTS))

    def _sync_problems(self, model: StudyModel, problems: list[str]) -> None:
        which = "pilot" if model.pilot else "study"
        for line in problems:
            self.log.add(f"{which} folder: {line}")
        self.statusBar().showMessage(f"{len(problems)} problem(s) in the {which} folder: see the log", 10000)

    def closeEvent(self, event) -> None:
        if self.runner.is_running():
            if self.flow.close_when_idle or self.dialogs.confirm(
                    self, "A session is running", "A session is running. Abort it and close the launcher?",
                    "The session is stopped gracefully (its data are kept); the launcher closes when it has ended.",
                    yes="Abort and close", no="Keep running"):
                self.flow.close_when_idle = True
                if self.runner.state != "stopping":
                    self.runner.abort()
            event.ignore()
            return
        if self.analysis.is_running():
            self.analysis.stop()
        self.notes.autosave()
        self.save_settings()
        self.lab.shutdown()
        self.study.close()
        self.pilot.close()
        event.accept()


def _default_protocols() -> Path:
    here = Path("protocols")
    if here.is_dir():
        return here.absolute()
    return Path(__file__).resolve().parent.parent / "protocols"


__all__ = ["EMPTY_PILOT", "EMPTY_STUDY", "LauncherWindow", "list_protocols", "pilot_data_dir"]
