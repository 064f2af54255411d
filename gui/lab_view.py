"""The lab monitor: every station's live session, progress toward the planned n per condition,
the yoke queue, the sessions not yet in the central folder, and a banner when the study is full.

Everything comes from the study's registry (gui.models.lab_snapshot over
Registry.live_sessions / progress_by_condition / yoke_queue / sessions), read every
REFRESH_MS in a worker thread (a daemon Python thread) that holds its own registry
connection, so a slow or unreachable server never freezes the window (and SQLite's
connection stays in the thread that made it). A station whose heartbeat stopped is LOST (red), not running: the registry
decides that from the heartbeat's age.
"""

from __future__ import annotations

import queue
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont
from PyQt6.QtWidgets import (QAbstractItemView, QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                             QProgressBar, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from experiment.errors import BadInput, LhlabError
from experiment.registry import Registry
from gui.models import STALE_AFTER_S, LabSnapshot, lab_snapshot
from gui.progress import format_duration

REFRESH_MS = 2000
COLUMNS = ("Station", "Participant", "Condition", "Phase", "Trial", "Elapsed", "Heartbeat", "State")
LOST_COLOR, LOST_BACKGROUND, FINISHED_COLOR = "#c62828", "#ffebee", "#757575"
FULL_TEXT = ("STUDY FULL: every condition has reached its planned n. A new participant needs a typed reason "
             "(it is kept with their session).")
NO_REGISTRY = "No participants yet: the lab view fills in when the first participant is added."


def open_existing(study_dir: Path):
    """The study's registry, or None while it has none (looking never creates one)."""
    if not Registry.exists(study_dir):
        return None
    return Registry.open(study_dir)


class _Fetcher:
    """The worker thread: owns its registry connection (SQLite's stays in the thread that made
    it), answers each study folder put on its queue with a snapshot through `deliver`. A
    daemon thread: a window that goes away without shutdown() never blocks or aborts the exit."""

    def __init__(self, open_registry: Callable[[Path], object], deliver: Callable[[object, LabSnapshot], None]):
        self._open, self._deliver = open_registry, deliver
        self._reg = None
        self._dir: Path | None = None
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="lab-monitor", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return self.close()
            snap = self.fetch(item)
            try:
                self._deliver(item, snap)
            except RuntimeError:        # the view is gone
                return self.close()

    def fetch(self, study_dir) -> LabSnapshot:
        if study_dir != self._dir:
            self.close()
            self._dir = study_dir
        if study_dir is None:
            return LabSnapshot()
        if self._reg is None:
            try:
                self._reg = self._open(study_dir)
            except (BadInput, LhlabError) as e:
                return LabSnapshot(problem=str(e))
            except Exception as e:  # noqa: BLE001 - one line in the view, never a dead thread
                return LabSnapshot(problem=f"cannot open the registry ({type(e).__name__}: {e})")
            if self._reg is None:
                return LabSnapshot(problem=NO_REGISTRY)
        snap = lab_snapshot(self._reg)
        if snap.problem:          # reconnect next time (a server back up)
            self.close()
        return snap

    def close(self) -> None:
        reg, self._reg = self._reg, None
        if reg is not None:
            try:
                reg.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass


_STOP = object()


class LabView(QWidget):
    """The lab monitor widget. `set_study(dir)` picks the study; it refreshes itself every REFRESH_MS."""

    updated = pyqtSignal(object)                  # LabSnapshot, after it is shown
    _ready = pyqtSignal(object, object)           # (study_dir, LabSnapshot) from the worker thread

    def __init__(self, parent: QWidget | None = None, open_registry: Callable[[Path], object] = open_existing,
                 interval_ms: int = REFRESH_MS):
        super().__init__(parent)
        self.study_dir: Path | None = None
        self.snapshot: LabSnapshot | None = None
        self._busy = False
        self._ready.connect(self._show)            # queued: emitted in the worker thread
        self._fetcher = _Fetcher(open_registry, self._ready.emit)

        self.full_banner = QLabel(FULL_TEXT)
        self.full_banner.setWordWrap(True)
        self.full_banner.setStyleSheet("QLabel { background: #c62828; color: white; font-weight: bold; "
                                       "padding: 6px; }")
        self.full_banner.hide()
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("QLabel { color: #555; }")

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip(f"Every station's session in this study; LOST: no heartbeat for "
                              f"{STALE_AFTER_S:.0f} s (the station may have crashed or lost the network)")

        self.progress_box = QGroupBox("Progress (completed / planned)")
        self.progress_grid = QGridLayout(self.progress_box)
        self.progress_grid.setContentsMargins(6, 4, 6, 4)
        self.bars: dict[str, QProgressBar] = {}
        self.yoke_label = QLabel("")
        self.yoke_label.setWordWrap(True)
        self.unsynced_label = QLabel("")
        self.unsynced_label.setWordWrap(True)
        self.unsynced_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        side = QVBoxLayout()
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.progress_box)
        side.addWidget(self.yoke_label)
        side.addWidget(self.unsynced_label)
        side.addStretch(1)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.table, 1)
        side_box = QWidget()
        side_box.setLayout(side)
        side_box.setMaximumWidth(300)
        body.addWidget(side_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.full_banner)
        layout.addLayout(body, 1)
        layout.addWidget(self.status_label)

        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # -- driving ---------------------------------------------------------------------------------
    def set_study(self, study_dir: Path | None) -> None:
        if study_dir != self.study_dir:
            self.study_dir = study_dir
            self.snapshot = None
            self._busy = False            # an answer for the old study is dropped in _show
            self.refresh()

    def refresh(self) -> None:
        """Ask the worker for a new snapshot (skipped while one is on its way)."""
        if self._busy:
            return
        self._busy = True
        self._fetcher.queue.put(self.study_dir)

    def shutdown(self) -> None:
        """Stop polling and close the worker's registry connection (in its own thread)."""
        self.timer.stop()
        self._fetcher.queue.put(_STOP)
        self._fetcher.thread.join(5)

    # -- showing ---------------------------------------------------------------------------------
    def _show(self, study_dir, snap: LabSnapshot) -> None:
        if study_dir != self.study_dir:
            return
        self._busy = False
        self.snapshot = snap
        self._fill_table(snap.sessions, snap.taken_at)
        self._fill_progress(snap.progress)
        self.full_banner.setVisible(snap.full)
        waiting = [f"{label} ({condition})" for label, condition in snap.yoke_queue]
        self.yoke_label.setText("Waiting for a yoke partner: " + ", ".join(waiting) if waiting
                                else "Yoke queue: nobody is waiting for a partner.")
        if snap.unsynced is None:
            self.unsynced_label.setText("Central folder: not set on this PC (LHLAB_CENTRAL or \"central\" in "
                                        "lab.json), so sessions stay here only.")
            self.unsynced_label.setStyleSheet("")
        elif snap.unsynced:
            self.unsynced_label.setText(f"Not yet in the central folder ({len(snap.unsynced)}): "
                                        + ", ".join(snap.unsynced) + ". Run lhlab sync when the share is back.")
            self.unsynced_label.setStyleSheet("QLabel { color: #e65100; }")
        else:
            self.unsynced_label.setText("Central folder: every finished session is there.")
            self.unsynced_label.setStyleSheet("")
        if snap.problem:
            self.status_label.setText(snap.problem)
            bad = snap.problem != NO_REGISTRY
            self.status_label.setStyleSheet("QLabel { color: #c62828; }" if bad else "QLabel { color: #555; }")
        else:
            lost = sum(1 for s in snap.sessions if s.state == "lost")
            running = sum(1 for s in snap.sessions if s.state == "running")
            self.status_label.setText(f"{running} running, {lost} lost · updated "
                                      f"{snap.taken_at.astimezone():%H:%M:%S}")
            self.status_label.setStyleSheet("QLabel { color: #555; }")
        self.updated.emit(snap)

    def _fill_table(self, sessions: list, now: datetime) -> None:
        self.table.setRowCount(len(sessions))
        for row, s in enumerate(sessions):
            state = {"lost": "LOST", "running": "running", "finished": "finished"}.get(s.state, s.state)
            values = (s.station, f"{s.label} ses-{s.session}" if s.session else s.label, s.condition,
                      s.phase or "-", "-" if s.trial is None else str(s.trial), format_duration(s.elapsed_s),
                      _ago(s.last_beat, now), state)
            for col, text in enumerate(values):
                item = QTableWidgetItem(str(text))
                item.setToolTip(f"last heartbeat {_beat(s.last_beat, now)}")
                if s.state == "lost":
                    item.setForeground(QBrush(QColor(LOST_COLOR)))
                    item.setBackground(QBrush(QColor(LOST_BACKGROUND)))
                    item.setToolTip(f"No heartbeat from {s.station} since {_beat(s.last_beat, now)}: the "
                                    "session is not running there any more (crash, power or network); go and look")
                elif s.state == "finished":
                    item.setForeground(QBrush(QColor(FINISHED_COLOR)))
                if col == len(values) - 1 and s.state == "lost":
                    font = QFont()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, col, item)

    def _fill_progress(self, progress: dict) -> None:
        if list(progress) != list(self.bars):
            while self.progress_grid.count():
                item = self.progress_grid.takeAt(0)
                if item.widget():
                    item.widget().deleteLater()
            self.bars = {}
            for i, condition in enumerate(progress):
                self.progress_grid.addWidget(QLabel(condition), i, 0)
                bar = QProgressBar()
                bar.setMinimumWidth(120)
                self.progress_grid.addWidget(bar, i, 1)
                self.bars[condition] = bar
            if not progress:
                self.progress_grid.addWidget(QLabel("-"), 0, 0)
        for condition, (done, planned) in progress.items():
            bar = self.bars[condition]
            if planned:
                bar.setRange(0, planned)
                bar.setValue(min(done, planned))
                bar.setFormat(f"{done} / {planned}")
            else:                  # nothing to fill toward: an empty bar with the count
                bar.setRange(0, 1)
                bar.setValue(0)
                bar.setFormat(f"{done} (no planned n)")
            bar.setToolTip(f"{condition}: {done} completed session(s)"
                           + (f" of {planned} planned" if planned else "; the protocol sets no planned n"))

    def progress_text(self) -> dict[str, str]:
        """condition -> what its bar says ('3 / 10'), as the experimenter reads it."""
        return {c: bar.text() for c, bar in self.bars.items()}

    def rows(self) -> list[list[str]]:
        """The live table's cells, row by row."""
        return [[self.table.item(r, c).text() for c in range(self.table.columnCount())]
                for r in range(self.table.rowCount())]


def _when(iso: str | None) -> datetime | None:
    try:
        when = datetime.fromisoformat(iso or "")
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _ago(iso: str | None, now: datetime) -> str:
    """'4 s ago', '01:04 ago'."""
    when = _when(iso)
    if when is None:
        return iso or "-"
    ago = max(0, int((now - when).total_seconds()))
    return f"{format_duration(ago) if ago >= 60 else f'{ago} s'} ago"


def _beat(iso: str | None, now: datetime) -> str:
    """'14:03:07 (4 s ago)' in local time."""
    when = _when(iso)
    return f"{when.astimezone():%H:%M:%S} ({_ago(iso, now)})" if when else (iso or "-")
