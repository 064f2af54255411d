"""Display-only parts of the launcher: the live-session panel, the session options in the
toolbar and the log. The window and gui.session_flow decide what to show (from
gui.progress.LiveProgress and the registry); the notes panel is gui.notes."""

from __future__ import annotations

from datetime import datetime

from PyQt6.QtCore import QSettings
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QLineEdit, \
    QPlainTextEdit, QProgressBar, QPushButton, QToolBar, QVBoxLayout

from gui.progress import LiveProgress, format_duration

IDLE_HINT = "Select a participant and press Ctrl+R to start a session."


class SessionPanel(QGroupBox):
    """Who runs, status, phase (n of N), trial (n of N), elapsed, last event, a progress bar, Abort."""

    def __init__(self, parent=None):
        super().__init__("Live session", parent)
        self.who_label = QLabel("No session running.")
        self.who_label.setWordWrap(True)
        self.state_label = QLabel("idle")
        self.phase_label = QLabel("-")
        self.trial_label = QLabel("-")
        self.elapsed_label = QLabel("-")
        self.event_label = QLabel(IDLE_HINT)
        self.event_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.abort_button = QPushButton("Abort session (Ctrl+.)")
        form = QFormLayout()
        form.addRow("Session:", self.who_label)
        form.addRow("Status:", self.state_label)
        form.addRow("Phase:", self.phase_label)
        form.addRow("Trial:", self.trial_label)
        form.addRow("Elapsed:", self.elapsed_label)
        form.addRow("Last event:", self.event_label)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.abort_button)
        self.shown: tuple[str, str] | None = None     # (kind 'session'|'pilot', label) on show

    def clear(self) -> None:
        """Back to idle: nothing of another participant's session stays on show."""
        self.shown = None
        self.who_label.setText("No session running.")
        self.state_label.setText("idle")
        for w in (self.phase_label, self.trial_label, self.elapsed_label):
            w.setText("-")
        self.event_label.setText(IDLE_HINT)
        self.progress_bar.setValue(0)

    def show_starting(self, kind: str, label: str, session, condition: str) -> None:
        self.shown = (kind, label)
        pilot = "PILOT (simulated) " if kind == "pilot" else ""
        self.who_label.setText(f"{pilot}{label} · session {session} · {condition}")
        self.state_label.setText("starting: opening the participant window…")
        for w in (self.phase_label, self.trial_label, self.elapsed_label):
            w.setText("-")
        self.event_label.setText("starting")
        self.progress_bar.setValue(0)

    def show_progress(self, p: LiveProgress) -> None:
        self.phase_label.setText(p.phase_text())
        self.trial_label.setText(p.trial_text())
        self.event_label.setText(p.last_event)
        self.progress_bar.setValue(int(p.fraction() * 1000))

    def show_elapsed(self, p: LiveProgress, now: float) -> None:
        if p.child_elapsed is None:
            self.elapsed_label.setText(f"starting for {now - p.started_at:.1f} s")
            return
        expected = f" (expected up to {format_duration(p.expected_s)})" if p.expected_s else ""
        self.elapsed_label.setText(format_duration(p.elapsed(now)) + expected)

    def show_state(self, text: str) -> None:
        self.state_label.setText(text)

    def show_finished(self, status: str, how: str, p: LiveProgress | None) -> None:
        self.state_label.setText(f"{status} ({how})")
        self.event_label.setText(p.last_event if p else "-")
        if p is not None and status == "complete":
            self.progress_bar.setValue(1000)


class SessionOptions:
    """The toolbar's session options: participant screen, windowed, pilot speed, experimenter id."""

    def __init__(self):
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

    def add_to(self, tools: QToolBar) -> None:
        tools.addWidget(QLabel(" Participant screen: "))
        tools.addWidget(self.screen_combo)
        tools.addWidget(self.windowed_check)
        tools.addWidget(QLabel("  Pilot speed: "))
        tools.addWidget(self.speed_spin)
        tools.addWidget(QLabel("  Experimenter: "))
        tools.addWidget(self.experimenter_edit)

    # -- values for `lhlab run` ------------------------------------------------------------------
    @property
    def screen(self) -> int:
        return self.screen_combo.currentData() or 0

    @property
    def windowed(self) -> bool:
        return self.windowed_check.isChecked()

    @property
    def experimenter(self) -> str:
        return self.experimenter_edit.text().strip()

    @property
    def speed(self) -> float:
        return self.speed_spin.value()

    @staticmethod
    def screens_known() -> int | None:
        """How many monitors there are, None when Qt cannot tell (offscreen platform in tests)."""
        if QGuiApplication.platformName() in ("offscreen", "minimal"):
            return None
        return len(QGuiApplication.screens())

    # -- settings --------------------------------------------------------------------------------
    def fill_screens(self, settings: QSettings) -> None:
        self.screen_combo.clear()
        screens = QGuiApplication.screens()
        for i, s in enumerate(screens):
            g = s.geometry()
            self.screen_combo.addItem(f"{i}: {s.name() or 'screen'} {g.width()}×{g.height()}", i)
        if not screens:
            self.screen_combo.addItem("0", 0)
        default = 1 if len(screens) > 1 else 0
        saved = settings.value("screen", default)
        try:
            saved = int(saved)
        except (TypeError, ValueError):
            saved = default
        self.screen_combo.setCurrentIndex(saved if 0 <= saved < self.screen_combo.count() else default)
        # With one monitor a full-screen participant window would hide the launcher: start windowed.
        self.windowed_check.setChecked(len(screens) <= 1)

    def restore(self, settings: QSettings) -> None:
        self.experimenter_edit.setText(str(settings.value("experimenter", "") or ""))
        try:
            self.speed_spin.setValue(float(settings.value("pilot_speed", 1) or 1))
        except (TypeError, ValueError):
            self.speed_spin.setValue(1)

    def save(self, settings: QSettings) -> None:
        settings.setValue("screen", self.screen)
        settings.setValue("experimenter", self.experimenter)
        settings.setValue("pilot_speed", self.speed)


class LogView(QPlainTextEdit):
    """The launcher's log: one time-stamped line per entry, tagged with where it came from:
    `launcher` (what the window did), `run` (the `lhlab run` child: its events and output),
    `analyze` (the `lhlab analyze` child)."""

    SOURCES = ("launcher", "run", "analyze")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        self.sink = None            # also called with every line (gui.study_log.StudyLog.write)

    def add(self, text: str, source: str = "launcher") -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        line = f"{stamp}  {source:<8} {text}"
        self.appendPlainText(line)
        if self.sink is not None:
            self.sink(line)
