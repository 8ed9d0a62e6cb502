"""The PACS dialogs: settings with a test-connection button, and a study search to open studies from.

Queries and tests run on the window's background tasks; the dialogs only show what comes back.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
    QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from ..core.pacs.pacs_client import PacsConfig, Study, StudyQuery, check_connection, find_studies

PROTOCOLS = [("DICOMweb (QIDO-RS / WADO-RS)", "dicomweb"), ("DIMSE (C-FIND / C-GET)", "dimse")]
MODALITIES = [("CR or DX", ""), ("CR", "CR"), ("DX", "DX")]
COLUMNS = ["Patient ID", "Patient name", "Study date", "Modalities", "Accession", "Description"]


class PacsSettingsDialog(QDialog):
    """Edit a :class:`PacsConfig`; Test Connection tries it (C-ECHO, or a one-study QIDO query)."""

    def __init__(self, config: PacsConfig, tasks, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("PACS Settings")
        self.tasks = tasks
        self.protocol = QComboBox()
        for text, key in PROTOCOLS:
            self.protocol.addItem(text, key)
        self.protocol.setCurrentIndex(max(0, self.protocol.findData(config.protocol)))
        self.url, self.host = QLineEdit(config.url), QLineEdit(config.host)
        self.port = QSpinBox(minimum=1, maximum=65535, value=int(config.port))
        self.called, self.calling = QLineEdit(config.called_aet), QLineEdit(config.calling_aet)
        self.outcome = QLabel("")
        self.outcome.setWordWrap(True)
        self.test_button = QPushButton("Test Connection")
        self.test_button.clicked.connect(self.test_connection)
        form = QFormLayout()
        for label, widget in (("Protocol", self.protocol), ("DICOMweb URL", self.url), ("Host", self.host),
                              ("Port", self.port), ("PACS AE title", self.called), ("This AE title", self.calling)):
            form.addRow(label, widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.test_button)
        row.addWidget(self.outcome, 1)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addLayout(row)
        col.addWidget(buttons)

    def config(self) -> PacsConfig:
        return PacsConfig(self.protocol.currentData(), self.url.text().strip(), self.host.text().strip(),
                          self.port.value(), self.called.text().strip(), self.calling.text().strip())

    def test_connection(self) -> None:
        self.outcome.setText("Testing...")
        self.test_button.setEnabled(False)
        task = self.tasks.start(lambda _cancel, c: check_connection(c), self.config(), name="pacs-test")
        task.done.connect(lambda text: self._tested(f"OK: {text}"))
        task.failed.connect(lambda text: self._tested(f"Failed: {text}"))

    def _tested(self, text: str) -> None:
        self.outcome.setText(text)
        self.test_button.setEnabled(True)


class OpenFromPacsDialog(QDialog):
    """Search the PACS by patient, date, modality and accession number; the chosen rows are :meth:`chosen`."""

    def __init__(self, config: PacsConfig, tasks, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Open from PACS ({config.url if config.protocol == 'dicomweb' else config.peer})")
        self.config, self.tasks = config, tasks
        self.studies: list[Study] = []
        self.patient_id, self.patient_name = QLineEdit(), QLineEdit(placeholderText="e.g. DOE^J*")
        self.study_date = QLineEdit(placeholderText="YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.accession = QLineEdit()
        self.modality = QComboBox()
        for text, key in MODALITIES:
            self.modality.addItem(text, key)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.status = QLabel("")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._update_open)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        for label, widget in (("Patient ID", self.patient_id), ("Patient name", self.patient_name),
                              ("Study date", self.study_date), ("Modality", self.modality),
                              ("Accession number", self.accession)):
            form.addRow(label, widget)
        row = QHBoxLayout()
        row.addWidget(self.search_button)
        row.addWidget(self.status, 1)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addLayout(row)
        col.addWidget(self.table, 1)
        col.addWidget(self.buttons)
        self.resize(820, 520)
        self._update_open()

    def query(self) -> StudyQuery:
        return StudyQuery(self.patient_id.text().strip(), self.patient_name.text().strip(),
                          self.study_date.text().strip().replace("/", "").replace(" ", ""),
                          self.modality.currentData(), self.accession.text().strip())

    def search(self) -> None:
        self.status.setText("Searching...")
        self.search_button.setEnabled(False)
        task = self.tasks.start(lambda _cancel, c, q: find_studies(c, q), replace(self.config), self.query(),
                                name="pacs-find")
        task.done.connect(self._show)
        task.failed.connect(self._failed)

    def _failed(self, text: str) -> None:
        self.status.setText(f"Search failed: {text}")
        self.search_button.setEnabled(True)

    def _show(self, studies: list[Study]) -> None:
        self.studies = list(studies)
        self.table.setRowCount(len(self.studies))
        for i, s in enumerate(self.studies):
            values = (s.patient_id, s.patient_name, s.study_date, ", ".join(s.modalities), s.accession, s.description)
            for j, v in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(v))
        self.table.resizeColumnsToContents()
        self.status.setText(f"{len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'} with radiographs")
        self.search_button.setEnabled(True)
        self._update_open()

    def chosen(self) -> list[Study]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.studies[r] for r in rows]

    def _update_open(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(bool(self.chosen()))


def choose_studies(parent, config: PacsConfig, tasks) -> list[Study]:
    """Show the search dialog; the studies chosen (empty when cancelled). Tests patch this function."""
    dialog = OpenFromPacsDialog(config, tasks, parent)
    return dialog.chosen() if dialog.exec() == QDialog.DialogCode.Accepted else []


def edit_settings(parent, config: PacsConfig, tasks) -> PacsConfig | None:
    """Show the settings dialog; the new settings, or None when cancelled. Tests patch this function."""
    dialog = PacsSettingsDialog(config, tasks, parent)
    return dialog.config() if dialog.exec() == QDialog.DialogCode.Accepted else None
