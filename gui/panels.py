"""The launcher's right-hand panels: the live session and the notes. Display only; the window
decides what to show (from gui.progress.LiveProgress and the registry)."""

from __future__ import annotations

from PyQt6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QPlainTextEdit, QProgressBar, QPushButton, \
    QVBoxLayout

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

    def show_starting(self, kind: str, label: str, session, condition: str) -> None:
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


class NotesPanel(QGroupBox):
    """A participant's note and one per session: a target list, the text, Save."""

    def __init__(self, parent=None):
        super().__init__("Notes", parent)
        self.target = QComboBox()
        self.edit = QPlainTextEdit()
        self.edit.setPlaceholderText("Notes about this session (what happened, anything unusual). "
                                     "Ctrl+S saves; switching participant saves too.")
        self.save_button = QPushButton("Save note (Ctrl+S)")
        layout = QVBoxLayout(self)
        layout.addWidget(self.target)
        layout.addWidget(self.edit)
        layout.addWidget(self.save_button)
