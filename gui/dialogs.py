"""Every dialog the launcher opens goes through one `Dialogs` object, so tests (and a future
kiosk mode) can replace it and nothing ever blocks on a modal box nobody will click."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import Qt, QUrl
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel,
                             QLineEdit, QMessageBox, QRadioButton, QVBoxLayout, QWidget)


@dataclass(frozen=True)
class NewParticipantRequest:
    external_id: str | None
    condition: str | None        # None: the registry assigns one
    reason: str | None           # required with a manual condition
    override_full: str | None = None     # required when the study is full: why one more participant


class NewParticipantDialog(QDialog):
    """External id (optional); automatic assignment, or a condition by hand with a typed reason.

    `initial`: what was typed last time (the dialog reopens with it after a refusal, with the
    refusal in `problem`); `full`: the study is full, so a typed override reason is required."""

    def __init__(self, parent: QWidget | None, conditions: list[str], hint: str = "",
                 initial: NewParticipantRequest | None = None, problem: str = "", full: bool = False):
        super().__init__(parent)
        self.full = full
        self.setWindowTitle("New participant")
        self.external = QLineEdit()
        self.external.setPlaceholderText("optional, e.g. the participant-pool code (never a name)")
        self.auto = QRadioButton("Assign the condition automatically (balanced permuted blocks)")
        self.manual = QRadioButton("Choose the condition by hand")
        self.auto.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.auto)
        group.addButton(self.manual)
        self.condition = QComboBox()
        self.condition.addItems(conditions)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("required: why, e.g. 'replaces P004 whose data were lost'")
        form = QFormLayout()
        form.addRow("External id:", self.external)
        form.addRow(self.auto)
        form.addRow(self.manual)
        form.addRow("Condition:", self.condition)
        form.addRow("Reason:", self.reason)
        self.override = QLineEdit()
        self.override.setPlaceholderText("required: why one more, e.g. 'replaces P012 who withdrew'")
        self.full_label = QLabel("The study is full: every condition has reached its planned n. "
                                 "Type why this participant is added anyway; the reason is kept with the session.")
        self.full_label.setWordWrap(True)
        self.full_label.setStyleSheet("QLabel { color: #c62828; font-weight: bold; }")
        if full:
            form.addRow(self.full_label)
            form.addRow("Why one more:", self.override)
        self.problem = QLabel(problem)
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("QLabel { color: #c62828; }")
        self.problem.setVisible(bool(problem))
        form.addRow(self.problem)
        self.info = QLabel(hint)
        self.info.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add participant")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.info)
        layout.addWidget(self.buttons)
        if initial is not None:
            self.external.setText(initial.external_id or "")
            if initial.condition:
                self.manual.setChecked(True)
                self.condition.setCurrentText(initial.condition)
            self.reason.setText(initial.reason or "")
            self.override.setText(initial.override_full or "")
        for signal in (self.manual.toggled, self.reason.textChanged, self.override.textChanged):
            signal.connect(self._update)
        self._update()

    def _update(self, *_) -> None:
        manual = self.manual.isChecked()
        self.condition.setEnabled(manual)
        self.reason.setEnabled(manual)
        why = ""
        if manual and not self.reason.text().strip():
            why = "A condition chosen by hand needs a reason; it is kept in the assignment log"
        elif self.full and not self.override.text().strip():
            why = "The study is full: type why this participant is added anyway"
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not why)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setToolTip(why)

    def request(self) -> NewParticipantRequest:
        manual = self.manual.isChecked()
        return NewParticipantRequest(external_id=self.external.text().strip() or None,
                                     condition=self.condition.currentText() if manual else None,
                                     reason=self.reason.text().strip() if manual else None,
                                     override_full=self.override.text().strip() or None if self.full else None)


class Dialogs:
    """The real dialogs. Replace (or subclass) in tests; every method returns without user input there."""

    def error(self, parent: QWidget | None, title: str, text: str, detail: str = "") -> None:
        self._box(parent, QMessageBox.Icon.Critical, title, text, detail)

    def warning(self, parent: QWidget | None, title: str, text: str, detail: str = "") -> None:
        self._box(parent, QMessageBox.Icon.Warning, title, text, detail)

    def info(self, parent: QWidget | None, title: str, text: str, detail: str = "") -> None:
        self._box(parent, QMessageBox.Icon.Information, title, text, detail)

    def confirm(self, parent: QWidget | None, title: str, text: str, detail: str = "",
                yes: str = "Yes", no: str = "Cancel") -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=parent)
        box.setTextFormat(Qt.TextFormat.PlainText)
        ok = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(no, QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(cancel)
        if detail:
            box.setDetailedText(detail)
        box.exec()
        return box.clickedButton() is ok

    def new_participant(self, parent: QWidget | None, conditions: list[str], hint: str = "",
                        initial: NewParticipantRequest | None = None, problem: str = "", full: bool = False) \
            -> NewParticipantRequest | None:
        dialog = NewParticipantDialog(parent, conditions, hint, initial, problem, full)
        return dialog.request() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def choose_folder(self, parent: QWidget | None, title: str, start: Path) -> Path | None:
        path = QFileDialog.getExistingDirectory(parent, title, str(start))
        return Path(path) if path else None

    def open_path(self, path: Path) -> bool:
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    @staticmethod
    def _box(parent, icon, title: str, text: str, detail: str) -> None:
        box = QMessageBox(icon, title, text, parent=parent)
        box.setTextFormat(Qt.TextFormat.PlainText)
        if detail:
            box.setDetailedText(detail)
        box.exec()
