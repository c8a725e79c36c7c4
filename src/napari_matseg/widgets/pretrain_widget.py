"""Pretrain: self-supervised pretraining on the user's own micrographs, in the background."""

from __future__ import annotations

import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                            QLineEdit, QListWidget, QPushButton, QRadioButton,
                            QSpinBox, QWidget)

from .. import api
from ..core.errors import InputError, MatsegError
from ..core.pretrain import methods
from .layers import IMAGE_KEY, micrograph_layers, scribble_layers
from .job_controls import JobControls
from .session import ModelEntry, registry_for
from .scrolling import scrolling_layout, shrinkable_combo


class PretrainWidget(QWidget):
    """Dock widget: pick micrographs (a folder or open layers), a method and a budget; pretrain;
    the result joins the Train widget's list of starting models."""

    def __init__(self, napari_viewer):
        super().__init__()
        import timm  # noqa: F401  (imported on the GUI thread, not in the worker)

        self.viewer = napari_viewer
        self.registry = registry_for(napari_viewer)
        self.result: ModelEntry | None = None
        self._method = "matssl"

        self.from_folder = QRadioButton("a folder")
        self.from_layers = QRadioButton("open image layers")
        self.from_folder.setChecked(True)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("folder of micrographs (TIFF, PNG, JPEG, BMP)")
        self.browse = QPushButton("Browse…")
        self.layer_list = QListWidget()
        self.layer_list.setSelectionMode(QListWidget.MultiSelection)
        self.layer_list.setMaximumHeight(90)
        self.method_specs = {spec.label: spec for spec in methods().values()}
        self.method_combo = shrinkable_combo()
        self.method_combo.addItems(list(self.method_specs))
        self.method_note = QLabel("")
        self.method_note.setWordWrap(True)
        self.annotated_combo = shrinkable_combo()
        self.budget = QSpinBox()
        self.budget.setRange(1, 24 * 60)
        self.budget.setValue(10)
        self.budget.setSuffix(" min")
        self.job = JobControls(self, "Pretrain", "Pretraining",
                               "choose unlabeled micrographs of your material, then Pretrain")
        self.start_button, self.stop_button = self.job.start_button, self.job.stop_button
        self.save_button, self.progress = self.job.save_button, self.job.progress
        self.status, self.plot = self.job.status, self.job.plot

        source = QGroupBox("Unlabeled micrographs")
        sform = QFormLayout(source)
        radios = QHBoxLayout()
        radios.addWidget(self.from_folder)
        radios.addWidget(self.from_layers)
        sform.addRow(radios)
        row = QHBoxLayout()
        row.addWidget(self.folder)
        row.addWidget(self.browse)
        sform.addRow(row)
        sform.addRow(self.layer_list)
        method = QGroupBox("Method")
        mform = QFormLayout(method)
        mform.addRow("method", self.method_combo)
        mform.addRow(self.method_note)
        mform.addRow("scribbles (PSCL)", self.annotated_combo)
        mform.addRow("time budget", self.budget)
        mform.addRow(self.plot)
        layout, footer = scrolling_layout(self)
        layout.addWidget(source)
        layout.addWidget(method)
        layout.addStretch()
        footer.addLayout(self.job.button_row())
        footer.addWidget(self.progress)
        footer.addWidget(self.job.status_area)

        self.browse.clicked.connect(self._browse)
        self.method_combo.currentTextChanged.connect(self._method_changed)
        self.start_button.clicked.connect(self.start)
        self.save_button.clicked.connect(lambda: self.save())
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed):
            ev.connect(self._refresh_layers)
        self.destroyed.connect(lambda *_: self.stop())
        self._refresh_layers()
        self._method_changed(self.method_combo.currentText())

    @property
    def worker(self):
        return self.job.worker

    @property
    def trainer(self):
        """The running pretraining loop (None before it has started)."""
        job = self.job.job
        return job.trainer if job is not None else None

    def _refresh_layers(self, *_):
        chosen = {i.text() for i in self.layer_list.selectedItems()}
        self.layer_list.clear()
        for layer in micrograph_layers(self.viewer):
            self.layer_list.addItem(layer.name)
            if layer.name in chosen:
                self.layer_list.item(self.layer_list.count() - 1).setSelected(True)
        current = self.annotated_combo.currentText()
        self.annotated_combo.clear()
        self.annotated_combo.addItems([layer.name for layer in scribble_layers(self.viewer)])
        if current:
            self.annotated_combo.setCurrentText(current)

    def _method_changed(self, label: str) -> None:
        spec = self.method_specs[label]
        self._method = spec.name
        self.method_note.setText(spec.description)
        self.annotated_combo.setEnabled(spec.needs_labels)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of unlabeled micrographs")
        if path:
            self.folder.setText(path)
            self.from_folder.setChecked(True)

    def _sources(self) -> list:
        """Return the image paths or arrays to pretrain on; raise InputError when there are none."""
        from ..core.imageio import list_images

        if self.from_folder.isChecked():
            text = self.folder.text().strip()
            if not text:
                raise InputError("choose a folder of micrographs (or use open image layers)")
            return list(list_images([text]))
        names = [i.text() for i in self.layer_list.selectedItems()]
        if not names:
            raise InputError("select at least one image layer to pretrain on")
        return [api.ImageSource(name, data=np.asarray(self.viewer.layers[name].data)) for name in names]

    def _labelled(self):
        name = self.annotated_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise InputError("PSCL needs a scribble layer: paint strokes on one image first")
        layer = self.viewer.layers[name]
        image_name = layer.metadata.get(IMAGE_KEY)
        if image_name not in self.viewer.layers:
            raise InputError(f"the image of '{name}' is no longer open")
        return np.asarray(self.viewer.layers[image_name].data), np.asarray(layer.data).copy()

    def config(self) -> api.PretrainConfig:
        return api.PretrainConfig(method=self._method,
                                  budget=api.Budget(steps=None, max_seconds=60.0 * self.budget.value()))

    def start(self):
        """Start pretraining in a worker thread; returns it (None when the inputs are unusable)."""
        if self.job.running:
            return None
        try:
            sources = self._sources()
            labelled = self._labelled() if self.method_specs[self.method_combo.currentText()].needs_labels else None
            job = api.pretrain(sources, self._method, config=self.config(), labelled=labelled,
                               info_band="auto")
        except MatsegError as exc:
            show_error(str(exc))
            return None
        return self.job.launch(job, lambda event: None, self._show_finished)

    def stop(self) -> None:
        self.job.stop()

    def _show_finished(self, bundle) -> None:
        if bundle is None:
            return
        method = bundle.provenance.get("pretraining_method")
        name = f"pretrained {method} ({bundle.provenance.get('images')} images)"
        self.result = self.registry.add(ModelEntry(name, bundle))
        self.save_button.setEnabled(True)
        self.status.setText(self.status.text() + f"\n'{name}' is now a starting model in Annotate & Train.")

    def save(self, path: str | None = None):
        """Write the pretrained model as a bundle (asks for a file when ``path`` is None)."""
        return self.job.save(self.result, path, "Save pretrained model", "pretrained.matseg")
