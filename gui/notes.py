"""The notes panel: a participant's note and one per session, stored in the registry.

The panel shows the notes of one participant of one study (`show_notes(model, label)`): a
target list (the participant note, then each session), the text and Save. It remembers which note is
being edited, saves it before switching to another one (switching participant, tab, session or
study saves too) and reads every note back from the registry, never from a stale copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QComboBox, QGroupBox, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from experiment.errors import BadInput, LhlabError
from gui.models import StudyModel


@dataclass(frozen=True)
class NoteKey:
    """The note being edited: `session` None is the participant's own note."""
    model: StudyModel
    label: str
    session: int | None


class NotesPanel(QGroupBox):
    """Target list, text, Save. `editingChanged` fires when the edited note (or none) changes."""

    editingChanged = pyqtSignal()

    def __init__(self, dialogs, log: Callable[[str], None], status: Callable[[str, int], None],
                 parent: QWidget | None = None):
        super().__init__("Notes", parent)
        self.dialogs, self._log, self._status = dialogs, log, status
        self.target = QComboBox()
        self.edit = QPlainTextEdit()
        self.edit.setPlaceholderText("Notes about this session (what happened, anything unusual). "
                                     "Ctrl+S saves; switching participant saves too.")
        self.save_button = QPushButton("Save note (Ctrl+S)")
        layout = QVBoxLayout(self)
        layout.addWidget(self.target)
        layout.addWidget(self.edit)
        layout.addWidget(self.save_button)
        self.key: NoteKey | None = None        # the note in the editor, None: nothing editable
        self.dirty = False                     # typed since it was loaded or saved
        self._model: StudyModel | None = None
        self._label: str | None = None
        self.save_button.clicked.connect(lambda checked=False: self.save())
        self.target.currentIndexChanged.connect(lambda i: self._target_changed())
        self.edit.textChanged.connect(self._typed)

    # -- what is shown -------------------------------------------------------------------------
    def is_showing(self, model: StudyModel, label: str | None) -> bool:
        return self.key is not None and self.key.model is model and self.key.label == label

    def label_in(self, model: StudyModel) -> str | None:
        """The participant whose note is edited, if it belongs to `model`."""
        return self.key.label if self.key is not None and self.key.model is model else None

    def show_notes(self, model: StudyModel, label: str | None) -> None:
        """List `label`'s notes (the latest session selected); None: nothing to edit."""
        self.target.blockSignals(True)
        self.target.clear()
        if label:
            self.target.addItem(f"{label}: participant note", None)
            for s in model.sessions(label):
                when = s.started[:16].replace("T", " ") if s.started else ""
                self.target.addItem(f"{label} session {s.number} · {s.status} · {when}", s.number)
            self.target.setCurrentIndex(self.target.count() - 1)
        self.target.blockSignals(False)
        self._model, self._label = model, label
        self.key = None
        self._target_changed()

    def pick_session(self, session: int) -> None:
        index = self.target.findData(session)
        if index >= 0:
            self.target.setCurrentIndex(index)

    def _target_changed(self) -> None:
        self.autosave()
        model, label = self._model, self._label
        self.edit.blockSignals(True)
        if model is not None and label and self.target.count():
            self.key = NoteKey(model, label, self.target.currentData())
            self.edit.setPlainText(model.note(label, self.key.session))
            self.edit.setEnabled(True)
        else:
            self.key = None
            self.edit.setPlainText("")
            self.edit.setEnabled(False)
        self.edit.blockSignals(False)
        self.dirty = False
        self.editingChanged.emit()

    # -- saving --------------------------------------------------------------------------------
    def _typed(self) -> None:
        self.dirty = True

    def discard_changes(self) -> None:
        """Forget what was typed since the last save (nothing is written)."""
        self.dirty = False

    def autosave(self) -> None:
        if self.dirty and self.key is not None:
            self.save(quiet=True)

    def save(self, quiet: bool = False) -> bool:
        if self.key is None:
            return False
        key, text = self.key, self.edit.toPlainText()
        try:
            key.model.set_note(key.label, key.session, text)
        except (BadInput, LhlabError) as e:
            self.dialogs.error(self.window(), "Note not saved", str(e),
                               "Copy the text somewhere safe, press F5 and try again.")
            return False
        self.dirty = False
        where = f"{key.label} session {key.session}" if key.session else f"{key.label}"
        self._status(f"Note saved for {where}", 5000)
        if not quiet:
            self._log(f"note saved for {where}")
        return True
