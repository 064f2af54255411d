"""The launcher's study bar: the study list (the protocol files of the protocols folder), the
protocols and data folders, and the banner saying what is wrong with the chosen study.
Display only: the window owns the folders and the chosen protocol."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget

from experiment.errors import BadInput, ProtocolError


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


class StudyBar(QWidget):
    """Study: [list]  Protocols: [folder] Change…  Data: [folder] Change…  (+ `banner`, placed by the window)."""

    def __init__(self, choose_protocols: QAction, choose_data: QAction, parent: QWidget | None = None):
        super().__init__(parent)
        self.protocols_edit = QLineEdit()
        self.protocols_edit.setReadOnly(True)
        self.data_edit = QLineEdit()
        self.data_edit.setReadOnly(True)
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(30)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setToolTip("The study = a protocol file in the protocols folder; its data live in "
                              "DATA/<study-id>/")
        self.combo.currentIndexChanged.connect(
            lambda i: self.combo.setToolTip(self.combo.itemData(i, Qt.ItemDataRole.ToolTipRole) or ""))
        slay = QHBoxLayout(self)
        slay.setContentsMargins(4, 2, 4, 2)
        slay.addWidget(QLabel("Study:"))
        slay.addWidget(self.combo, 10)
        slay.addSpacing(12)
        slay.addWidget(QLabel("Protocols:"))
        slay.addWidget(self.protocols_edit, 1)
        slay.addWidget(_tool_button(choose_protocols, "Change…"))
        slay.addSpacing(12)
        slay.addWidget(QLabel("Data:"))
        slay.addWidget(self.data_edit, 1)
        slay.addWidget(_tool_button(choose_data, "Change…"))
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet("QLabel { background: #fff3e0; color: #5d4037; border: 1px solid #ffb74d; "
                                  "padding: 6px; }")
        self.banner.hide()

    def show_paths(self, protocols_dir: Path, data_dir: Path) -> None:
        for edit, path in ((self.protocols_edit, protocols_dir), (self.data_edit, data_dir)):
            edit.setText(str(path))
            edit.setToolTip(str(path))
            edit.setCursorPosition(len(str(path)))      # the folder names, at the end, stay visible

    def list_studies(self, entries: list[tuple[Path, object | None, list[str]]], keep: str | None) -> None:
        """Fill the list (without signals) from list_protocols(), by title (files that do not
        validate last, by name); select `keep`, else the demo, else the first. Each entry shows
        its whole title (the open list is as wide as the longest); the file is in its tooltip."""
        combo = self.combo
        combo.blockSignals(True)
        combo.clear()
        entries = sorted(entries, key=lambda e: (e[1] is None, (e[1].title if e[1] else e[0].name).casefold()))
        for path, proto, problems in entries:
            combo.addItem(proto.title if proto else f"{path.name}  (invalid)", str(path))
            tip = f"{proto.title}\n{path}" if proto else (problems[0] if problems else str(path))
            combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        metrics = combo.view().fontMetrics()
        widest = max((metrics.horizontalAdvance(combo.itemText(i)) for i in range(combo.count())), default=0)
        combo.view().setMinimumWidth(widest + 40)
        index = combo.findData(keep) if keep else -1
        if index < 0 and entries:
            index = next((i for i, (_, p, _) in enumerate(entries) if p is not None and p.study_id == "demo"), 0)
        combo.setCurrentIndex(index)
        combo.setToolTip(combo.itemData(index, Qt.ItemDataRole.ToolTipRole) if index >= 0 else "")
        combo.blockSignals(False)

    def show_problems(self, protocols_dir: Path, protocol_path: Path | None, protocol_problems: list[str],
                      study_error: str | None, pilot_error: str | None) -> None:
        """The banner: what keeps the chosen study from being used (hidden when nothing does)."""
        lines = []
        if not protocols_dir.is_dir():
            lines.append(f"The protocols folder {protocols_dir} does not exist: choose it with Ctrl+O.")
        elif self.combo.count() == 0:
            lines.append(f"No protocol files (*.yaml) in {protocols_dir}: choose the protocols folder with Ctrl+O.")
        if protocol_problems:
            lines.append(f"{protocol_path.name} does not validate; fix it, then press F5:")
            lines += [f"    {p}" for p in protocol_problems[:10]]
        for error, what in ((study_error, "study"), (pilot_error, "pilot")):
            if error:
                lines.append(f"The {what} registry cannot be used: {error}")
        self.banner.setText("\n".join(lines))
        self.banner.setVisible(bool(lines))


def _tool_button(action: QAction, text: str) -> QToolButton:
    """A small button for `action` with its own short text (enabled with the action)."""
    button = QToolButton()
    button.setText(text)
    button.setToolTip(action.toolTip())
    button.clicked.connect(lambda checked=False: action.trigger())
    action.changed.connect(lambda: button.setEnabled(action.isEnabled()))
    return button
