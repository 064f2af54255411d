"""The launcher: the experimenter's window on the control screen.

Pick a study (a protocol file in the protocols folder; its data in DATA_DIR/<study-id>/), see
and add participants (the registry assigns conditions), start a session after a preflight,
follow it live, abort it, write notes, run a pilot, open the data, run the analysis.

The window is a thin view: the registry (gui.models.StudyModel over experiment.registry)
owns participants and sessions, the checks live in gui.preflight, every session is a child
`lhlab run` (gui.session_runner), and every dialog goes through `Dialogs` (gui.dialogs) so
tests never block on a modal box.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from PyQt6.QtCore import QByteArray, QSettings, Qt, QTimer
from PyQt6.QtGui import QAction, QGuiApplication, QKeySequence
from PyQt6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDockWidget, QDoubleSpinBox, QHBoxLayout,
                             QHeaderView, QLabel, QLineEdit, QMainWindow, QPlainTextEdit, QSplitter, QStackedWidget,
                             QTableView, QTabWidget, QToolBar, QToolButton, QVBoxLayout, QWidget)

from experiment import datafile
from experiment.errors import BadInput, LhlabError, ProtocolError
from gui import commands, preflight
from gui.dialogs import Dialogs
from gui.models import ParticipantsModel, StudyModel, pilot_data_dir
from gui.panels import NotesPanel, SessionPanel
from gui.progress import describe
from gui.session_runner import ChildProcess, SessionRunner

SETTINGS_ORG, SETTINGS_APP = "lhlab", "launcher"
EMPTY_STUDY = "No participants yet: press Ctrl+N to add the first one."
EMPTY_PILOT = ("No pilot runs yet: press Ctrl+P to run a simulated participant in the real participant window.\n"
               "Pilot data go to DATA/_pilot/<study>/ and never mix with the study's data.")
SHORTCUTS = (("Ctrl+N", "New participant"), ("Ctrl+R", "Start session (selected participant)"),
             ("Ctrl+P", "Run pilot (simulated participant, real window)"), ("Ctrl+.", "Abort the running session"),
             ("F5", "Refresh (re-read protocol and data)"), ("Ctrl+S", "Save note"),
             ("Ctrl+D", "Open data folder"), ("Ctrl+Shift+A", "Analyze the study"),
             ("Ctrl+O", "Choose protocols folder"), ("Ctrl+Shift+O", "Choose data folder"), ("Ctrl+Q", "Quit"))


def list_protocols(folder: Path) -> list[tuple[Path, object | None, list[str]]]:
    """(path, protocol or None, problems) for every *.yaml/*.yml in `folder`, sorted by name."""
    from experiment.protocol import load_protocol
    out = []
    if not folder.is_dir():
        return out
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            out.append((path, load_protocol(path), []))
        except ProtocolError as e:
            out.append((path, None, list(e.problems)))
        except (BadInput, OSError) as e:
            out.append((path, None, [f"{path}: {e}"]))
        except Exception as e:  # noqa: BLE001 - one broken file must not keep the launcher from opening
            out.append((path, None, [f"{path}: cannot be read ({type(e).__name__}: {e}); "
                                     f"run `lhlab validate {path}`"]))
    return out


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
        self._close_when_idle = False
        self._note_key: tuple[str, str, int | None] | None = None   # (model, label, session) being edited
        self._note_dirty = False
        self.last_result: dict | None = None

        self.setWindowTitle("lhlab launcher")
        self._build_actions()
        self._build_ui()
        self._connect()
        self._restore_settings()
        self.reload_protocols(select=self.settings.value("study", "") or None)
        self._update_actions()

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
        self.act_new = a("New participant", "Ctrl+N", self.new_participant,
                         "Register a participant; the registry assigns the condition")
        self.act_start = a("Start session", "Ctrl+R", self.start_session,
                           "Check everything, then run the selected participant's session on the participant screen")
        self.act_pilot = a("Run pilot", "Ctrl+P", self.run_pilot,
                           "Run a simulated participant in the real participant window (data go to the pilot folder)")
        self.act_abort = a("Abort", "Ctrl+.", self.abort_session,
                           "Stop the running session gracefully; its data so far are kept and it is marked aborted")
        self.act_refresh = a("Refresh", "F5", self.refresh, "Re-read the protocol and the session records on disk")
        self.act_open = a("Open data folder", "Ctrl+D", self.open_data_folder, "Open the study's data folder")
        self.act_analyze = a("Analyze", "Ctrl+Shift+A", self.analyze,
                             "Run lhlab analyze on the study folder (report.html and tables)")
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
        for act in (self.act_open, self.act_analyze):
            m.addAction(act)
        menu.addMenu("&Help").addAction(self.act_keys)

        # study bar: protocols folder, study, data folder
        self.protocols_edit = QLineEdit()
        self.protocols_edit.setReadOnly(True)
        self.data_edit = QLineEdit()
        self.data_edit.setReadOnly(True)
        self.study_combo = QComboBox()
        self.study_combo.setMinimumContentsLength(30)
        self.study_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.study_combo.setToolTip("The study = a protocol file in the protocols folder; its data live in "
                                    "DATA/<study-id>/")
        studybar = QWidget()
        slay = QHBoxLayout(studybar)
        slay.setContentsMargins(4, 2, 4, 2)
        slay.addWidget(QLabel("Study:"))
        slay.addWidget(self.study_combo, 3)
        slay.addSpacing(12)
        slay.addWidget(QLabel("Protocols:"))
        slay.addWidget(self.protocols_edit, 2)
        slay.addWidget(_tool_button(self.act_protocols, "Change…"))
        slay.addSpacing(12)
        slay.addWidget(QLabel("Data:"))
        slay.addWidget(self.data_edit, 2)
        slay.addWidget(_tool_button(self.act_data, "Change…"))
        bar = QToolBar("Study", self)
        bar.setObjectName("study-bar")
        bar.setMovable(False)
        bar.addWidget(studybar)
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
        self.screen_combo = QComboBox()
        self.screen_combo.setToolTip("The monitor the participant's window opens on (full screen)")
        self.windowed_check = QCheckBox("Windowed")
        self.windowed_check.setToolTip("Open the participant window as a window instead of full screen "
                                       "(for testing; not remembered)")
        self.speed_spin = QDoubleSpinBox()
        self.speed_spin.setRange(1, 50)
        self.speed_spin.setDecimals(0)
        self.speed_spin.setSuffix("×")
        self.speed_spin.setToolTip("Pilot speed: compress the waits of simulated pilots (1× = real time)")
        self.experimenter_edit = QLineEdit()
        self.experimenter_edit.setPlaceholderText("id")
        self.experimenter_edit.setMaximumWidth(90)
        self.experimenter_edit.setToolTip("Experimenter id, recorded with each session")
        tools.addWidget(QLabel(" Participant screen: "))
        tools.addWidget(self.screen_combo)
        tools.addWidget(self.windowed_check)
        tools.addWidget(QLabel("  Pilot speed: "))
        tools.addWidget(self.speed_spin)
        tools.addWidget(QLabel("  Experimenter: "))
        tools.addWidget(self.experimenter_edit)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tools)

        # left: banner + tables
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet("QLabel { background: #fff3e0; color: #5d4037; border: 1px solid #ffb74d; "
                                  "padding: 6px; }")
        self.banner.hide()
        self.study_table, self.study_stack = self._table(self.study, EMPTY_STUDY)
        self.pilot_table, self.pilot_stack = self._table(self.pilot, EMPTY_PILOT)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.study_stack, "Participants")
        self.tabs.addTab(self.pilot_stack, "Pilot runs")
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.banner)
        lay.addWidget(self.tabs)

        # right: session progress + notes (gui.panels)
        self.session_panel = SessionPanel()
        self.session_panel.abort_button.clicked.connect(lambda checked=False: self.abort_session())
        for name in ("who_label", "state_label", "phase_label", "trial_label", "elapsed_label", "event_label",
                     "progress_bar", "abort_button"):
            setattr(self, name, getattr(self.session_panel, name))
        self.notes_panel = NotesPanel()
        self.note_target, self.note_edit = self.notes_panel.target, self.notes_panel.edit
        self.note_save = self.notes_panel.save_button
        self.note_save.clicked.connect(lambda checked=False: self.save_note())
        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.addWidget(self.session_panel)
        rlay.addWidget(self.notes_panel, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.setCentralWidget(self.splitter)

        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        dock = QDockWidget("Log", self)
        dock.setObjectName("log-dock")
        dock.setWidget(self.log)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.log_dock = dock

        self.session_status = QLabel("idle")
        self.statusBar().addPermanentWidget(self.session_status)
        self._fill_screens()

    def _table(self, study: StudyModel, empty_text: str) -> tuple[QTableView, QStackedWidget]:
        model = ParticipantsModel(study, self)
        view = QTableView()
        view.setModel(model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setAlternatingRowColors(True)
        view.verticalHeader().hide()
        view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        view.horizontalHeader().setStretchLastSection(True)
        empty = QLabel(empty_text)
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty.setWordWrap(True)
        empty.setStyleSheet("QLabel { color: #666; font-size: 13pt; }")
        stack = QStackedWidget()
        stack.addWidget(empty)
        stack.addWidget(view)
        view.empty_label = empty
        study.changed.connect(lambda: self._after_reload(study, view, stack))
        view.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        return view, stack

    def _fill_screens(self) -> None:
        self.screen_combo.clear()
        screens = QGuiApplication.screens()
        for i, s in enumerate(screens):
            g = s.geometry()
            self.screen_combo.addItem(f"{i}: {s.name() or 'screen'} {g.width()}×{g.height()}", i)
        if not screens:
            self.screen_combo.addItem("0", 0)
        default = 1 if len(screens) > 1 else 0
        saved = self.settings.value("screen", default)
        try:
            saved = int(saved)
        except (TypeError, ValueError):
            saved = default
        self.screen_combo.setCurrentIndex(saved if 0 <= saved < self.screen_combo.count() else default)
        # With one monitor a full-screen participant window would hide the launcher: start windowed.
        self.windowed_check.setChecked(len(screens) <= 1)

    def _connect(self) -> None:
        self.study_combo.currentIndexChanged.connect(lambda i: self._study_chosen())
        self.runner.lineEvent.connect(self._on_event)
        self.runner.output.connect(lambda line: self._log(line, "child"))
        self.runner.warning.connect(self._on_runner_warning)
        self.runner.stateChanged.connect(lambda s: self._update_actions())
        self.runner.finished.connect(self._on_finished)
        self.analysis.stderrLine.connect(lambda line: self._log(line, "analyze"))
        self.analysis.stdoutLine.connect(lambda line: self._log(line, "analyze"))
        self.analysis.finished.connect(self._on_analysis_finished)
        self.study.syncProblems.connect(lambda p: self._sync_problems("study", p))
        self.pilot.syncProblems.connect(lambda p: self._sync_problems("pilot", p))
        self.note_target.currentIndexChanged.connect(lambda i: self._note_target_changed())
        self.note_edit.textChanged.connect(self._note_changed)
        self.tabs.currentChanged.connect(lambda i: self._selection_changed())
        self.ticker = QTimer(self)
        self.ticker.setInterval(250)
        self.ticker.timeout.connect(self._tick)

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
            self.resizeDocks([self.log_dock], [150], Qt.Orientation.Vertical)
        split = self.settings.value("splitter")
        if isinstance(split, QByteArray) and not split.isEmpty():
            self.splitter.restoreState(split)
        else:
            self.splitter.setSizes([760, 480])
        self.experimenter_edit.setText(str(self.settings.value("experimenter", "") or ""))
        try:
            self.speed_spin.setValue(float(self.settings.value("pilot_speed", 1) or 1))
        except (TypeError, ValueError):
            self.speed_spin.setValue(1)
        self._show_paths()

    def _show_paths(self) -> None:
        for edit, path in ((self.protocols_edit, self.protocols_dir), (self.data_edit, self.data_dir)):
            edit.setText(str(path))
            edit.setToolTip(str(path))
            edit.setCursorPosition(0)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("window_state", self.saveState())
        s.setValue("splitter", self.splitter.saveState())
        s.setValue("protocols_dir", str(self.protocols_dir))
        s.setValue("data_dir", str(self.data_dir))
        s.setValue("study", str(self.protocol_path) if self.protocol_path else "")
        s.setValue("screen", self.screen_combo.currentData() or 0)
        s.setValue("experimenter", self.experimenter_edit.text().strip())
        s.setValue("pilot_speed", self.speed_spin.value())
        s.sync()

    # ================================================================ study selection
    def reload_protocols(self, select: str | None = None) -> None:
        """List the protocols folder into the study list; keep (or choose) the selection."""
        keep = select or (str(self.protocol_path) if self.protocol_path else None)
        entries = list_protocols(self.protocols_dir)
        self.study_combo.blockSignals(True)
        self.study_combo.clear()
        for path, proto, problems in entries:
            text = f"{proto.title} [{path.name}]" if proto else f"{path.name}  (invalid)"
            self.study_combo.addItem(text, str(path))
            if problems:
                self.study_combo.setItemData(self.study_combo.count() - 1, problems[0], Qt.ItemDataRole.ToolTipRole)
        index = self.study_combo.findData(keep) if keep else -1
        if index < 0 and entries:
            index = next((i for i, (_, p, _) in enumerate(entries) if p is not None and p.study_id == "demo"), 0)
        self.study_combo.setCurrentIndex(index)
        self.study_combo.blockSignals(False)
        self._study_chosen()

    def _study_chosen(self) -> None:
        self._autosave_note()
        path = self.study_combo.currentData()
        self.protocol_path = Path(path) if path else None
        self._load_study()

    def _load_study(self) -> None:
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
        self.study.set_study(self.protocol, self.data_dir if self.protocol else None)
        self.pilot.set_study(self.protocol, self.data_dir if self.protocol else None)
        title = self.protocol.title if self.protocol else (self.protocol_path.name if self.protocol_path else "")
        self.setWindowTitle(f"lhlab launcher – {title}" if title else "lhlab launcher")
        self._update_banner()
        self._update_actions()
        if self.protocol is not None:
            self.statusBar().showMessage(f"Study {self.protocol.study_id}: {len(self.study.rows)} participants, "
                                         f"data in {self.study.study_dir}", 8000)

    def _update_banner(self) -> None:
        lines = []
        if not self.protocols_dir.is_dir():
            lines.append(f"The protocols folder {self.protocols_dir} does not exist: choose it with Ctrl+O.")
        elif self.study_combo.count() == 0:
            lines.append(f"No protocol files (*.yaml) in {self.protocols_dir}: choose the protocols folder with Ctrl+O.")
        if self.protocol_problems:
            lines.append(f"{self.protocol_path.name} does not validate; fix it, then press F5:")
            lines += [f"    {p}" for p in self.protocol_problems[:10]]
        for model, what in ((self.study, "study"), (self.pilot, "pilot")):
            if model.error:
                lines.append(f"The {what} registry cannot be used: {model.error}")
        self.banner.setText("\n".join(lines))
        self.banner.setVisible(bool(lines))

    def choose_protocols_dir(self) -> None:
        if self.runner.is_running():
            return self._refuse_while_running("change the protocols folder")
        path = self.dialogs.choose_folder(self, "Protocols folder", self.protocols_dir)
        if path:
            self.set_protocols_dir(path)

    def choose_data_dir(self) -> None:
        if self.runner.is_running():
            return self._refuse_while_running("change the data folder")
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
        self._load_study()

    def refresh(self) -> None:
        """F5: re-list the protocols, re-validate the chosen one, sync the registries with the disk."""
        label = self.selected_label()
        self.reload_protocols()
        if label:
            self._select(self.study_table, label)
        self.statusBar().showMessage(f"Refreshed at {datetime.now():%H:%M:%S}", 4000)

    # ================================================================ tables
    def _after_reload(self, study: StudyModel, view: QTableView, stack: QStackedWidget) -> None:
        if study.protocol is None:
            view.empty_label.setText("No study selected: pick a protocol in the Study list." if not
                                     self.protocol_problems else "This protocol does not validate (see above).")
        elif study.error:
            view.empty_label.setText("This study's registry cannot be used (see above).")
        else:
            view.empty_label.setText(EMPTY_PILOT if study.pilot else EMPTY_STUDY)
        stack.setCurrentIndex(1 if study.rows else 0)
        count = len(study.rows)
        self.tabs.setTabText(1 if study.pilot else 0, ("Pilot runs" if study.pilot else "Participants")
                             + (f" ({count})" if count else ""))
        label = self._note_key[1] if self._note_key and self._note_key[0] == ("pilot" if study.pilot else "study") \
            else None
        if label:
            self._select(view, label)

    def _select(self, view: QTableView, label: str) -> None:
        row = view.model().row_of(label)
        if row >= 0:
            view.selectRow(row)
            view.scrollTo(view.model().index(row, 0))

    def selected_label(self, view: QTableView | None = None) -> str | None:
        view = view or self.study_table
        rows = view.selectionModel().selectedRows()
        if not rows:
            return None
        p = view.model().participant(rows[0].row())
        return p.label if p else None

    def _current_view(self) -> tuple[str, QTableView, StudyModel]:
        if self.tabs.currentIndex() == 1:
            return "pilot", self.pilot_table, self.pilot
        return "study", self.study_table, self.study

    def _selection_changed(self) -> None:
        which, view, model = self._current_view()
        label = self.selected_label(view)
        if self._note_key and self._note_key[:2] == (which, label):
            self._update_actions()
            return
        self._autosave_note()
        self._fill_note_targets(which, model, label)
        self._update_actions()

    # ================================================================ actions
    def _update_actions(self) -> None:
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
        self.note_save.setEnabled(self._note_key is not None)
        self.act_save_note.setEnabled(self._note_key is not None)
        state = self.runner.state
        if running and self.runner.progress is not None:
            p = self.runner.progress
            who = f"{p.participant or self.runner.meta.get('label')} ses-{p.session or self.runner.meta.get('session')}"
            self.session_status.setText(f"{'PILOT ' if self.runner.kind == 'pilot' else ''}{who}: {state}")
        else:
            self.session_status.setText("no session running")

    def _refuse_while_running(self, what: str) -> None:
        self.dialogs.warning(self, "A session is running", f"You cannot {what} while a session is running.",
                             "Wait for the session to end, or abort it with Ctrl+. first.")

    def _screens_known(self) -> int | None:
        if QGuiApplication.platformName() in ("offscreen", "minimal"):
            return None        # no real monitors: cannot tell (tests)
        return len(QGuiApplication.screens())

    def new_participant(self) -> None:
        if self.protocol is None:
            return self.dialogs.error(self, "No study selected", "Pick a valid protocol in the Study list first.")
        hints = []
        for name, cond in self.protocol.conditions.items():
            if cond.yoked_to:
                partner = self.study.registry.free_partner(name) if self.study.registry else None
                hints.append(f"{name} is yoked to {cond.yoked_to}: "
                             + (f"next partner {partner}." if partner else "no partner has finished training yet, "
                                "so the registry will assign another condition now and keep the yoked slot waiting."))
        request = self.dialogs.new_participant(self, list(self.protocol.conditions), "\n".join(hints))
        if request is None:
            return
        try:
            p = self.study.add_participant(request.external_id, request.condition, request.reason)
        except (BadInput, LhlabError) as e:
            return self.dialogs.error(self, "Participant not added", str(e))
        self.tabs.setCurrentIndex(0)
        self._select(self.study_table, p.label)
        how = f"by hand ({request.reason})" if request.condition else "by the registry"
        self._log(f"added {p.label}: condition {p.condition}{' yoked to ' + p.yoked_to if p.yoked_to else ''}, "
                  f"assigned {how}")
        self.statusBar().showMessage(f"{p.label} added: {p.condition}. Press Ctrl+R to start the session.", 10000)

    def start_session(self) -> None:
        """Preflight, confirm, then `lhlab run` for the participant selected in the Participants tab."""
        if self.runner.is_running():
            return self._refuse_while_running("start another session")
        if self.analysis.is_running():
            return self.dialogs.warning(self, "Analysis running", "The analysis is still running.",
                                        "Wait for it to finish (it would slow down the participant's screen).")
        label = self.selected_label(self.study_table)
        if not label:
            self.tabs.setCurrentIndex(0)
            return self.dialogs.info(self, "No participant selected",
                                     "Select a participant in the Participants table first, or press Ctrl+N to add one.")
        self.study.refresh()
        p = self.study.participant(label)
        if p is None:
            return self.dialogs.error(self, "Participant not found", f"{label} is no longer in the registry; press F5.")
        pf = self._preflight(label, p.condition, p.yoked_to)
        if pf is None:
            return
        screen = self.screen_combo.currentData() or 0
        windowed = self.windowed_check.isChecked()
        experimenter = self.experimenter_edit.text().strip()
        text = (f"Start session {pf.session} of {label}?\n\nCondition: {p.condition}"
                + (f" (yoked to {p.yoked_to})" if p.yoked_to else "")
                + f"\nParticipant screen: {screen}, {'windowed' if windowed else 'full screen'}"
                + f"\nExperimenter: {experimenter or '(not set)'}\nData: {self.study.study_dir}")
        if not self.dialogs.confirm(self, "Start session", text, pf.report(), yes="Start"):
            return
        argv = commands.run_argv(self.protocol_path, label, p.condition, self.data_dir, screen=screen,
                                 windowed=windowed, experimenter=experimenter, yoked_to=p.yoked_to)
        self._launch(argv, "session", {"model": "study", "label": label, "session": pf.session,
                                       "condition": p.condition})

    def _preflight(self, label: str | None, condition: str | None, yoked_to: str | None,
                   pilot: bool = False) -> preflight.Preflight | None:
        """Run the checks; on failure show what to fix and return None."""
        model = self.pilot if pilot else self.study
        screen = self.screen_combo.currentData() or 0
        pf = preflight.preflight(self.protocol_path, model.run_data_dir, label, condition, yoked_to=yoked_to,
                                 experimenter=self.experimenter_edit.text().strip(),
                                 simulate=commands.PILOT_PROFILE if pilot else None,
                                 screens=self._screens_known(), screen=screen)
        for note in pf.notes:
            self._log(f"preflight note: {note}")
        if pf.protocol is not None and self.protocol is not None and pf.protocol.sha256 != self.protocol.sha256:
            self._log(f"{self.protocol_path.name} changed on disk; reloading the study")
            keep = self.selected_label()
            self._load_study()
            if keep:
                self._select(self.study_table, keep)
            if model.error:
                pf.checks.append(preflight.Check("registry", False, model.error))
        if not pf.ok:
            problems = "\n\n".join(f"• {c.name}: {c.message}" for c in pf.problems)
            self._log("preflight failed: " + " | ".join(f"{c.name}: {c.message}" for c in pf.problems))
            self.statusBar().showMessage(f"Cannot start: {pf.problems[0].name} — {pf.problems[0].message}", 15000)
            self.dialogs.error(self, "Cannot start the session", f"Fix this first:\n\n{problems}", pf.report())
            return None
        return pf

    def run_pilot(self) -> None:
        """A simulated participant (`--simulate default --mode visual`) in the real participant window.
        Pilot participants live in DATA/_pilot/<study>/ with their own registry."""
        if self.runner.is_running():
            return self._refuse_while_running("start a pilot")
        if self.protocol is None:
            return self.dialogs.error(self, "No study selected", "Pick a valid protocol in the Study list first.")
        pf = self._preflight(None, None, None, pilot=True)
        if pf is None:
            return
        try:
            p = self.pilot.add_participant()
        except (BadInput, LhlabError) as e:
            return self.dialogs.error(self, "Pilot not started", str(e),
                                      f"The pilot folder is {self.pilot.study_dir}; delete it to start pilots afresh.")
        if self._preflight(p.label, p.condition, p.yoked_to, pilot=True) is None:    # now with its label and yoke
            return
        screen = self.screen_combo.currentData() or 0
        argv = commands.run_argv(self.protocol_path, p.label, p.condition, self.pilot.run_data_dir, screen=screen,
                                 windowed=self.windowed_check.isChecked(),
                                 experimenter=self.experimenter_edit.text().strip(), yoked_to=p.yoked_to,
                                 simulate=commands.PILOT_PROFILE, speed=self.speed_spin.value())
        self.tabs.setCurrentIndex(1)
        self._select(self.pilot_table, p.label)
        self._launch(argv, "pilot", {"model": "pilot", "label": p.label, "session": 1, "condition": p.condition})

    def _launch(self, argv: list[str], kind: str, meta: dict) -> None:
        self.last_result = None
        self.runner.start(argv, kind, meta)
        self.ticker.start()
        self.session_panel.show_starting(kind, meta["label"], meta["session"], meta["condition"])
        self._log(f"start {kind} {meta['label']} ses-{meta['session']}: " + " ".join(argv[1:]))
        self.statusBar().showMessage(f"Starting {kind} {meta['label']}…", 5000)
        self._update_actions()

    def abort_session(self) -> None:
        if not self.runner.is_running():
            return
        meta = self.runner.meta
        if not self.dialogs.confirm(self, "Abort session", f"Abort {meta.get('label')}'s session now?\n\n"
                                    "The trials done so far stay on disk and the session is marked aborted.",
                                    yes="Abort session", no="Keep running"):
            return
        self._log(f"abort requested (SIGTERM to pid {self.runner.pid()})")
        self.session_panel.show_state("stopping…")
        self.runner.abort()
        self._update_actions()

    # ================================================================ live session
    def _on_event(self, ev: dict) -> None:
        p = self.runner.progress
        kind = ev.get("event")
        who = f"{ev.get('participant', '?')} ses-{ev.get('session', '?')}"
        if kind not in ("trial_start",):
            self._log(f"{who}  {describe(ev)}")
        if kind == "session_start":
            self.runner.meta["session"] = ev.get("session", self.runner.meta.get("session"))
            self.session_panel.show_state("running" + (f" (pid {self.runner.pid()})" if self.runner.pid() else ""))
            model = self.pilot if self.runner.kind == "pilot" else self.study
            model.refresh()          # shows 'running' in the table
        self.session_panel.show_progress(p)
        self._tick()
        self._update_actions()

    def _tick(self) -> None:
        p = self.runner.progress
        if p is None or not self.runner.is_running():
            self.ticker.stop()
            return
        self.session_panel.show_elapsed(p, time.monotonic())

    def _on_runner_warning(self, text: str) -> None:
        self._log(f"WARNING: {text}")
        self.dialogs.warning(self, "Session killed", f"The session did not stop gracefully: {text}.",
                             "Finished trials are on disk; the session is recorded as crashed. "
                             "Check the log for its last output.")

    def _on_finished(self, result: dict) -> None:
        self.ticker.stop()
        self.last_result = result
        meta, p = result["meta"], result["progress"]
        label, session = (p.participant if p and p.participant else meta.get("label")), \
            (p.session if p and p.session else meta.get("session"))
        model = self.pilot if meta.get("model") == "pilot" else self.study
        status, code = result["status"], result["code"]
        if status == "crashed" and p and p.participant and model.study_dir is not None:
            try:      # the file itself says it crashed, now rather than at the next run
                path = datafile.session_json_path(model.study_dir, p.participant, p.session)
                if path.exists():
                    datafile.settle_crashed(path)
            except (OSError, ValueError) as e:
                self._log(f"could not mark the session crashed on disk: {e}")
        model.refresh()
        how = f"exit code {code}" if code is not None else "did not start"
        if result["by_signal"]:
            how = "killed by a signal" + (" after the stop timeout" if result["killed"] else "")
        tail = result["stderr_tail"]
        summary = f"{'Pilot ' if result['kind'] == 'pilot' else ''}{label} ses-{session} ended: {status} ({how})"
        if tail and status not in ("complete", "aborted", "withdrawn"):
            summary += f" — {tail[-1]}"
        self.session_panel.show_finished(status, how, p)
        self.statusBar().showMessage(summary, 0)
        self._log(summary)
        for line in tail[-15:] if status not in ("complete", "aborted", "withdrawn") else []:
            self._log(f"stderr: {line}", "child")
        self._update_actions()
        if status == "refused":
            self.dialogs.error(self, "Session refused", f"lhlab run refused to start {label}'s session; nothing "
                               f"was written.\n\n{chr(10).join(tail[-5:]) or '(no message)'}",
                               "Fix what the message says (then F5) and start the session again.")
        elif status in ("crashed", "failed to start"):
            self.dialogs.error(self, "Session crashed",
                               f"{label}'s session ended unexpectedly ({how}).\n\nThe trials finished before the "
                               f"crash are on disk and the session is recorded as crashed. The participant can be "
                               f"run again as a new session (Ctrl+R).",
                               "Last output of the session process:\n" + "\n".join(tail[-20:]))
        if label and session and status != "refused":
            tab = 1 if meta.get("model") == "pilot" else 0
            self.tabs.setCurrentIndex(tab)
            self._select(self.pilot_table if tab else self.study_table, label)
            self._select_note_target(session)
        if self._close_when_idle:
            self.close()

    # ================================================================ notes
    def _fill_note_targets(self, which: str, model: StudyModel, label: str | None) -> None:
        self.note_target.blockSignals(True)
        self.note_target.clear()
        if label:
            self.note_target.addItem(f"{label}: participant note", None)
            for s in model.sessions(label):
                when = s.started[:16].replace("T", " ") if s.started else ""
                self.note_target.addItem(f"{label} session {s.number} · {s.status} · {when}", s.number)
            self.note_target.setCurrentIndex(self.note_target.count() - 1)
        self.note_target.blockSignals(False)
        self._note_key = None
        self._note_target_changed(which, label)

    def _note_target_changed(self, which: str | None = None, label: str | None = None) -> None:
        self._autosave_note()
        if which is None:
            which, view, _ = self._current_view()
            label = self.selected_label(view)
        model = self.pilot if which == "pilot" else self.study
        self.note_edit.blockSignals(True)
        if label and self.note_target.count():
            session = self.note_target.currentData()
            self._note_key = (which, label, session)
            self.note_edit.setPlainText(model.note(label, session))
            self.note_edit.setEnabled(True)
        else:
            self._note_key = None
            self.note_edit.setPlainText("")
            self.note_edit.setEnabled(False)
        self.note_edit.blockSignals(False)
        self._note_dirty = False
        self._update_actions()

    def _select_note_target(self, session: int) -> None:
        which, view, model = self._current_view()
        self._fill_note_targets(which, model, self.selected_label(view))
        index = self.note_target.findData(session)
        if index >= 0:
            self.note_target.setCurrentIndex(index)

    def _note_changed(self) -> None:
        self._note_dirty = True

    def _autosave_note(self) -> None:
        if self._note_dirty and self._note_key is not None:
            self.save_note(quiet=True)

    def save_note(self, quiet: bool = False) -> bool:
        if self._note_key is None:
            return False
        which, label, session = self._note_key
        model = self.pilot if which == "pilot" else self.study
        text = self.note_edit.toPlainText()
        try:
            model.set_note(label, session, text)
        except (BadInput, LhlabError) as e:
            self.dialogs.error(self, "Note not saved", str(e), "Copy the text somewhere safe, press F5 and try again.")
            return False
        self._note_dirty = False
        where = f"{label} session {session}" if session else f"{label}"
        self.statusBar().showMessage(f"Note saved for {where}", 5000)
        if not quiet:
            self._log(f"note saved for {where}")
        return True

    # ================================================================ data
    def open_data_folder(self) -> None:
        which, _, model = self._current_view()
        folder = model.study_dir if model.study_dir and model.study_dir.exists() else self.data_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return self.dialogs.error(self, "Cannot open the data folder", f"{folder}: {e.strerror}",
                                      "Choose another data folder (Ctrl+Shift+O).")
        if not self.dialogs.open_path(folder):
            self.dialogs.warning(self, "Cannot open the data folder", f"No file manager opened {folder}.",
                                 "Open it by hand; the path is selectable in this message.")
        self._log(f"opened {folder}")

    def analyze(self) -> None:
        if self.runner.is_running():
            return self._refuse_while_running("run the analysis (it would slow down the participant's screen)")
        study = self.study.study_dir
        if study is None or not (study / "dataset_description.json").exists():
            return self.dialogs.info(self, "Nothing to analyze yet", f"{study} has no sessions yet.",
                                     "Run some sessions first (or `lhlab simulate` for a simulated study).")
        self._log(f"analyze {study}")
        self.statusBar().showMessage(f"Analyzing {study}…")
        self.analysis.start(commands.analyze_argv(study))
        self._update_actions()

    def _on_analysis_finished(self, code, by_signal: bool) -> None:
        self._update_actions()
        study = self.study.study_dir
        report = study / "derivatives" / "lhlab-analysis" / "report.html" if study else None
        if code == 0:
            self.statusBar().showMessage(f"Analysis done: {report}", 0)
            self._log(f"analysis done: {report}")
            if report and report.exists() and self.dialogs.confirm(self, "Analysis done", f"Report: {report}",
                                                                   yes="Open report", no="Close"):
                self.dialogs.open_path(report)
        else:
            tail = list(self.analysis.stderr_tail)
            self.statusBar().showMessage(f"Analysis failed (exit {code})" + (f": {tail[-1]}" if tail else ""), 0)
            self.dialogs.error(self, "Analysis failed", f"lhlab analyze ended with exit code {code}.\n\n"
                               + "\n".join(tail[-5:]), "\n".join(tail))

    # ================================================================ misc
    def show_shortcuts(self) -> None:
        self.dialogs.info(self, "Keyboard shortcuts", "\n".join(f"{k:<14} {v}" for k, v in SHORTCUTS))

    def _sync_problems(self, which: str, problems: list[str]) -> None:
        for line in problems:
            self._log(f"{which} folder: {line}")
        self.statusBar().showMessage(f"{len(problems)} problem(s) in the {which} folder: see the log", 10000)

    def _log(self, text: str, source: str = "") -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self.log.appendPlainText(f"{stamp}  {text}")

    def closeEvent(self, event) -> None:
        if self.runner.is_running():
            if self._close_when_idle or self.dialogs.confirm(
                    self, "A session is running", "A session is running. Abort it and close the launcher?",
                    "The session is stopped gracefully (its data are kept); the launcher closes when it has ended.",
                    yes="Abort and close", no="Keep running"):
                self._close_when_idle = True
                if self.runner.state != "stopping":
                    self.runner.abort()
            event.ignore()
            return
        if self.analysis.is_running():
            self.analysis.stop()
        self._autosave_note()
        self.save_settings()
        self.study.close()
        self.pilot.close()
        event.accept()


def _tool_button(action: QAction, text: str) -> QToolButton:
    """A small button for `action` with its own short text (enabled with the action)."""
    button = QToolButton()
    button.setText(text)
    button.setToolTip(action.toolTip())
    button.clicked.connect(lambda checked=False: action.trigger())
    action.changed.connect(lambda: button.setEnabled(action.isEnabled()))
    return button


def _default_protocols() -> Path:
    here = Path("protocols")
    if here.is_dir():
        return here.absolute()
    return Path(__file__).resolve().parent.parent / "protocols"


__all__ = ["LauncherWindow", "list_protocols", "pilot_data_dir"]
