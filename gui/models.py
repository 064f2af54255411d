"""Qt models over experiment.registry: the study (registry + protocol) and its participants table.

`StudyModel` owns the open Registry of one study folder and is the only place the window
touches it; `ParticipantsModel` is the table the window shows. Both are thin: assignment,
yoking and session state are the registry's business (experiment/registry.py).

A study folder is DATA_DIR/<study-id>/ (experiment.datafile.study_dir). The registry is only
created when the first participant is added (or when sessions are already on disk), so
looking at a study never writes into an empty data folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QObject, QSortFilterProxyModel, Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont

from experiment import datafile
from experiment.errors import BadInput, LhlabError
from experiment.registry import Participant, Registry, SessionEntry
from experiment.registry.live import is_full as study_full     # the registry's rule, not a copy
from experiment.registry.vocab import PILOT_FOLDER


STATUS_COLORS = {"registered": None, "running": "#1565c0", "complete": "#2e7d32", "aborted": "#e65100",
                 "withdrawn": "#6d4c41", "declined": "#757575", "crashed": "#c62828"}


SORT_ROLE = Qt.ItemDataRole.UserRole          # the value a column sorts by (numbers as numbers)
STALE_AFTER_S = 15.0                           # a station silent this long is LOST


@dataclass(frozen=True)
class LabSnapshot:
    """What the lab monitor shows, read from the registry in one go (gui.lab_view).

    `sessions`: Registry.live_sessions() rows (station, label, condition, session, phase,
    trial, elapsed_s, last_beat, state); `progress`: condition -> (completed, planned n or
    None); `yoke_queue`: (label, condition) waiting for a partner; `unsynced`: finished
    sessions not yet in the central folder ('sub-P001 ses-1'), None when no central folder
    is set; `problem`: one line saying why the registry could not be read (None: it could)."""

    sessions: list = field(default_factory=list)
    progress: dict = field(default_factory=dict)
    yoke_queue: list = field(default_factory=list)
    unsynced: list | None = None
    problem: str | None = None
    taken_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def full(self) -> bool:
        """Every condition has reached its planned n (never when a condition has none)."""
        return study_full(self.progress)


def central_configured() -> bool:
    """Whether a central folder is set (LHLAB_CENTRAL or lab.json), i.e. whether 'not synced' means anything."""
    from experiment.registry.central import central_folder
    try:
        central_folder(None)
    except BadInput:
        return False
    return True


def unsynced_sessions(reg) -> list[str]:
    """Finished sessions of this station's study folder that the registry has no central copy of."""
    return [f"sub-{s.label} ses-{s.number}" for s in reg.sessions()
            if s.status not in ("running", "erased") and not s.central]


def lab_snapshot(reg, stale_after_s: float = STALE_AFTER_S, central: bool | None = None) -> LabSnapshot:
    """Read everything the lab monitor shows from `reg` (a Registry). Never raises: a registry
    that cannot be read gives a snapshot whose `problem` says why, in one line."""
    try:
        central = central_configured() if central is None else central
        return LabSnapshot(sessions=list(reg.live_sessions(stale_after_s=stale_after_s)),
                           progress=dict(reg.progress_by_condition()), yoke_queue=list(reg.yoke_queue()),
                           unsynced=unsynced_sessions(reg) if central else None)
    except (BadInput, LhlabError) as e:
        return LabSnapshot(problem=str(e))
    except Exception as e:  # noqa: BLE001 - a background poll: one line in the view, never a dead thread
        return LabSnapshot(problem=f"cannot read the registry ({type(e).__name__}: {e}); press F5 to retry")


def pilot_data_dir(data_dir: Path) -> Path:
    """Where pilot runs of every study of `data_dir` go (study ids cannot start with '_')."""
    return Path(data_dir) / PILOT_FOLDER


class StudyModel(QObject):
    """One study folder's registry, opened lazily, refreshed from the session records on disk."""

    changed = pyqtSignal()            # participants reloaded
    syncProblems = pyqtSignal(list)   # lines worth showing (unreadable records, condition mismatch)

    def __init__(self, parent: QObject | None = None, pilot: bool = False):
        super().__init__(parent)
        self.pilot = pilot
        self.protocol = None
        self.data_dir: Path | None = None
        self.registry: Registry | None = None
        self.error: str | None = None     # why the registry cannot be used (shown instead of the table)
        self.rows: list[Participant] = []

    # -- which study -------------------------------------------------------------------------
    @property
    def study_dir(self) -> Path | None:
        if self.protocol is None or self.data_dir is None:
            return None
        return datafile.study_dir(self.run_data_dir, self.protocol.study_id)

    @property
    def run_data_dir(self) -> Path | None:
        """The --data-dir for `lhlab run` (the pilot folder for pilots)."""
        if self.data_dir is None:
            return None
        return pilot_data_dir(self.data_dir) if self.pilot else self.data_dir

    def set_study(self, protocol, data_dir: Path | None) -> None:
        """Switch to `protocol`'s study in `data_dir` (None: no study)."""
        self.close()
        self.protocol, self.data_dir = protocol, (Path(data_dir) if data_dir else None)
        self.error = None
        self.refresh()

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()
            self.registry = None
        self.rows = []

    def _open(self, create: bool) -> Registry | None:
        if self.registry is not None:
            return self.registry
        study = self.study_dir
        if study is None:
            return None
        if not create and not Registry.exists(study) and not any(study.glob("sub-*")):
            return None
        self.registry = Registry.open(study, self.protocol)
        return self.registry

    # -- reading -----------------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Sync the registry with the session records on disk and reload the rows."""
        problems: list[str] = []
        try:
            reg = self._open(create=False)
            if reg is not None:
                problems = reg.sync_sessions()
                self.rows = reg.participants()
            else:
                self.rows = []
            self.error = None
        except (BadInput, LhlabError) as e:
            self.close()
            self.error = str(e)
        self.changed.emit()
        if problems:
            self.syncProblems.emit(problems)
        return problems

    def participant(self, label: str) -> Participant | None:
        return next((p for p in self.rows if p.label == label), None)

    @property
    def yoked(self) -> bool:
        """Whether the study has a yoked condition (the Partner column means something)."""
        return self.protocol is not None and any(c.yoked_to for c in self.protocol.conditions.values())

    def progress(self) -> dict[str, tuple[int, int | None]]:
        """condition -> (completed sessions, planned n or None); {} before the first participant."""
        if self.registry is None:
            return {}
        try:
            return dict(self.registry.progress_by_condition())
        except (BadInput, LhlabError):
            return {}

    def is_full(self) -> bool:
        """Every condition has reached its planned n: a new participant needs an override reason."""
        return study_full(self.progress())

    def sessions(self, label: str) -> list[SessionEntry]:
        return self.registry.sessions(label) if self.registry is not None else []

    def is_pilot_session(self, label: str, session: int) -> bool:
        try:
            return bool(datafile.read_session(datafile.session_json_path(self.study_dir, label, session)).get("pilot"))
        except (OSError, ValueError, TypeError):
            return False

    # -- changing ----------------------------------------------------------------------------
    def add_participant(self, external_id: str | None = None, condition: str | None = None,
                        reason: str | None = None, override_full: str | None = None) -> Participant:
        """Register a participant; the registry assigns the condition (or logs the manual one).
        `override_full`: why a participant is added to a full study (the registry refuses
        without it and keeps it in the assignment log)."""
        if self.protocol is None:
            raise BadInput("no study is selected; pick a protocol in the study list first")
        reg = self._open(create=True)
        participant = reg.add_participant(self.protocol, external_id=external_id or None, condition=condition,
                                          reason=reason, override_reason=override_full or None)
        self.rows = reg.participants()
        self.changed.emit()
        return participant

    def replaced_by(self, label: str) -> str | None:
        """Whom `label` replaces: the participant who declined consent in the block slot the
        registry gave `label` (None for a first assignment)."""
        if self.registry is None:
            return None
        try:
            mine = [a for a in self.registry.assignment_log() if a.label == label]
        except LhlabError:
            return None             # the log line only loses its note; the participant is added
        return mine[-1].replaces if mine else None

    def record_crash(self, label: str, session: int | None) -> None:
        """The session's process is gone without ending it: write `crashed` into its record now
        (datafile.settle_crashed) rather than at the next run. Raises OSError/ValueError."""
        if self.study_dir is None:
            return
        path = datafile.session_json_path(self.study_dir, label, session)
        if path.exists():
            datafile.settle_crashed(path)

    def set_note(self, label: str, session: int | None, text: str) -> None:
        if self.registry is None:
            raise BadInput("this study has no registry yet; add a participant first")
        self.registry.set_note(label, session, text)
        if session is None:     # keep the rows current (tooltips) without resetting the table
            self.rows = [self.registry.participant(label) if p.label == label else p for p in self.rows]

    def note(self, label: str, session: int | None) -> str:
        """The stored note (read from the registry, never from a stale copy)."""
        if self.registry is None:
            return ""
        if session is None:
            try:
                return self.registry.participant(label).notes
            except BadInput:
                return ""
        entry = next((s for s in self.sessions(label) if s.number == session), None)
        return entry.notes if entry else ""


class ParticipantsModel(QAbstractTableModel):
    """The participants table: label, external id, condition, partner, status, sessions, registered."""

    COLUMNS = ("Label", "External id", "Condition", "Partner", "Status", "Sessions", "Registered")

    def __init__(self, study: StudyModel, parent: QObject | None = None):
        super().__init__(parent)
        self.study = study
        study.changed.connect(self._reload)

    def _reload(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.study.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def column(self, name: str) -> int:
        return self.COLUMNS.index(name)

    def participant(self, row: int) -> Participant | None:
        return self.study.rows[row] if 0 <= row < len(self.study.rows) else None

    def row_of(self, label: str) -> int:
        return next((i for i, p in enumerate(self.study.rows) if p.label == label), -1)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        p = self.participant(index.row()) if index.isValid() else None
        if p is None:
            return None
        col = self.COLUMNS[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return {"Label": p.label, "External id": p.external_id or "", "Condition": p.condition,
                    "Partner": p.yoked_to or "", "Status": p.status, "Sessions": p.sessions,
                    "Registered": _short_time(p.created)}[col]
        if role == SORT_ROLE:
            return {"Label": p.label, "External id": (p.external_id or "").casefold(), "Condition": p.condition,
                    "Partner": p.yoked_to or "", "Status": p.status, "Sessions": p.sessions,
                    "Registered": p.created or ""}[col]
        if role == Qt.ItemDataRole.ForegroundRole and col == "Status" and STATUS_COLORS.get(p.status):
            return QBrush(QColor(STATUS_COLORS[p.status]))
        if role == Qt.ItemDataRole.FontRole and col in ("Label", "Status"):
            font = QFont()
            font.setBold(col == "Label" or p.status == "running")
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and col == "Sessions":
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            bits = [f"{p.label}: {p.condition}" + (f", yoked to {p.yoked_to}" if p.yoked_to else ""),
                    f"status {p.status}, {p.sessions} session(s)",
                    "training complete" if p.training_complete else "training not complete"]
            if p.notes:
                bits.append(f"note: {p.notes}")
            return "\n".join(bits)
        return None


class ParticipantsProxy(QSortFilterProxyModel):
    """The table as shown: sorted by a clicked column, filtered by the filter box (any column,
    case-insensitive). `participant(row)` and `row_of(label)` speak in the rows shown."""

    def __init__(self, source: ParticipantsModel, parent: QObject | None = None):
        super().__init__(parent)
        self.setSourceModel(source)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def participant(self, row: int) -> Participant | None:
        source = self.mapToSource(self.index(row, 0))
        return self.sourceModel().participant(source.row()) if source.isValid() else None

    def row_of(self, label: str) -> int:
        row = self.sourceModel().row_of(label)
        return -1 if row < 0 else self.mapFromSource(self.sourceModel().index(row, 0)).row()


def _short_time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso
