"""The launcher's two participant tables: the study's participants and the pilot runs.

One tab per StudyModel (gui.models); each table sits on a stack with a hint shown while it is
empty, sorts by a clicked column and is filtered by the filter box in the tabs' corner.
Everything here is about the view: which model a tab shows, which row is selected. Row
numbers are the rows shown (gui.models.ParticipantsProxy), never the registry's order.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QStackedWidget, QTableView, QTabWidget

from gui.models import ParticipantsModel, ParticipantsProxy, StudyModel

EMPTY_STUDY = "No participants yet: press Ctrl+N to add the first one."
EMPTY_PILOT = ("No pilot runs yet: press Ctrl+P to run a simulated participant in the real participant window.\n"
               "Pilot data go to DATA/_pilot/<study>/ and never mix with the study's data.")
NO_STUDY = "No study selected: pick a protocol in the Study list."
INVALID_STUDY = "This protocol does not validate (see above)."
BROKEN_REGISTRY = "This study's registry cannot be used (see above)."


class ParticipantsTabs(QTabWidget):
    """Tab 0: `study` (Participants), tab 1: `pilot` (Pilot runs).

    `selectionChanged` fires when the selected participant or the tab changes; `reloaded(model)`
    after a model's rows were reloaded and the table shows them.
    """

    selectionChanged = pyqtSignal()
    reloaded = pyqtSignal(object)

    def __init__(self, study: StudyModel, pilot: StudyModel, parent=None):
        super().__init__(parent)
        self.study, self.pilot = study, pilot
        self.protocol_invalid = False           # the chosen protocol file does not validate
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMinimumWidth(180)
        self.filter_edit.setToolTip("Show only the participants whose row contains this text (any column)")
        self.setCornerWidget(self.filter_edit, Qt.Corner.TopRightCorner)
        self.study_table, self.study_stack = self._table(study, EMPTY_STUDY)
        self.pilot_table, self.pilot_stack = self._table(pilot, EMPTY_PILOT)
        self.addTab(self.study_stack, "Participants")
        self.addTab(self.pilot_stack, "Pilot runs")
        self.currentChanged.connect(lambda i: self.selectionChanged.emit())

    def _table(self, model: StudyModel, empty_text: str) -> tuple[QTableView, QStackedWidget]:
        view = QTableView()
        proxy = ParticipantsProxy(ParticipantsModel(model, self), self)
        view.setModel(proxy)
        self.filter_edit.textChanged.connect(proxy.setFilterFixedString)
        view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)     # registration order
        view.setSortingEnabled(True)
        view.horizontalHeader().setSortIndicatorClearable(True)
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
        model.changed.connect(lambda: self._after_reload(model, view, stack))
        view.selectionModel().selectionChanged.connect(lambda *_: self.selectionChanged.emit())
        return view, stack

    def _after_reload(self, model: StudyModel, view: QTableView, stack: QStackedWidget) -> None:
        if model.protocol is None:
            view.empty_label.setText(INVALID_STUDY if self.protocol_invalid else NO_STUDY)
        elif model.error:
            view.empty_label.setText(BROKEN_REGISTRY)
        else:
            view.empty_label.setText(EMPTY_PILOT if model.pilot else EMPTY_STUDY)
        stack.setCurrentIndex(1 if model.rows else 0)
        view.setColumnHidden(ParticipantsModel.COLUMNS.index("Partner"), not model.yoked)
        count = len(model.rows)
        self.setTabText(self.index_of(model), ("Pilot runs" if model.pilot else "Participants")
                        + (f" ({count})" if count else ""))
        self.reloaded.emit(model)

    # -- which model, which view -----------------------------------------------------------------
    def index_of(self, model: StudyModel) -> int:
        return 1 if model is self.pilot else 0

    def view_of(self, model: StudyModel) -> QTableView:
        return self.pilot_table if model is self.pilot else self.study_table

    def current(self) -> tuple[StudyModel, QTableView]:
        """The model and the table of the tab in front."""
        model = self.pilot if self.currentIndex() == 1 else self.study
        return model, self.view_of(model)

    def show_model(self, model: StudyModel) -> None:
        self.setCurrentIndex(self.index_of(model))

    # -- selection -------------------------------------------------------------------------------
    def select(self, model: StudyModel, label: str) -> None:
        view = self.view_of(model)
        row = view.model().row_of(label)
        if row < 0 and self.filter_edit.text() and model.participant(label) is not None:
            self.filter_edit.clear()             # the filter hid them: show everyone rather than lose them
            row = view.model().row_of(label)
        if row >= 0:
            view.selectRow(row)
            view.scrollTo(view.model().index(row, 0))

    def selected_label(self, model: StudyModel | None = None) -> str | None:
        """The participant selected in `model`'s table (the study's by default)."""
        view = self.view_of(model or self.study)
        rows = view.selectionModel().selectedRows()
        if not rows:
            return None
        p = view.model().participant(rows[0].row())
        return p.label if p else None
