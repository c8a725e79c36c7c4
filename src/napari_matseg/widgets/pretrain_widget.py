"""Pretrain: self-supervised pretraining on the user's own micrographs, in the background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                            QLineEdit, QListWidget, QPushButton, QRadioButton,
                            QSpinBox, QWidget)

from ..core.errors import InputError, MatsegError
from ..core.pretrain import PretrainConfig, Pretrainer
from .layers import IMAGE_KEY, micrograph_layers, scribble_layers
from .job_controls import JobControls
from .session import ModelEntry, registry_for
from .scrolling import scrolling_layout

METHOD_NOTES = {
    "MatSSL": ("matssl", "contrastive views of each micrograph, gated fusion of all encoder stages"),
    "PSCL": ("pscl", "contrast of images and of patches; spreads the classes painted on one image "
                     "to similar patches of the others (needs a scribble layer)"),
    "SMS": ("sms", "masked reconstruction; masks the tiles the model restores worst"),
}


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
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(METHOD_NOTES))
        self.method_note = QLabel("")
        self.method_note.setWordWrap(True)
        self.annotated_combo = QComboBox()
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
        mform.addRow(self.job.button_row())
        mform.addRow(self.progress)
        mform.addRow(self.status)
        mform.addRow(self.plot)
        layout = scrolling_layout(self)
        layout.addWidget(source)
        layout.addWidget(method)
        layout.addStretch()

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
    def trainer(self) -> Pretrainer | None:
        return self.job.controller

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
        self._method, note = METHOD_NOTES[label]
        self.method_note.setText(note)
        self.annotated_combo.setEnabled(self._method == "pscl")

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
        return [(name, np.asarray(self.viewer.layers[name].data)) for name in names]

    def _labelled(self):
        name = self.annotated_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise InputError("PSCL needs a scribble layer: paint strokes on one image first")
        layer = self.viewer.layers[name]
        image_name = layer.metadata.get(IMAGE_KEY)
        if image_name not in self.viewer.layers:
            raise InputError(f"the image of '{name}' is no longer open")
        return np.asarray(self.viewer.layers[image_name].data), np.asarray(layer.data).copy()

    def config(self) -> PretrainConfig:
        return PretrainConfig(method=self._method, max_seconds=60.0 * self.budget.value())

    def start(self):
        """Start pretraining in a worker thread; returns it (None when the inputs are unusable)."""
        if self.job.running:
            return None
        try:
            sources = self._sources()
            labelled = self._labelled() if self._method == "pscl" else None
        except MatsegError as exc:
            show_error(str(exc))
            return None
        config = self.config()

        def make_trainer():
            from ..core.imageio import read_image
            from ..core.pretrain import MicrographPool

            images, names = [], []
            for i, source in enumerate(sources):
                if isinstance(source, tuple):
                    names.append(source[0])
                    images.append(source[1])
                else:
                    names.append(Path(source).name)
                    images.append(read_image(source))
                yield ("reading", i + 1, len(sources))
            yield Pretrainer(MicrographPool(images, names=names), config, labelled)

        from .workers import pretrain_job

        return self.job.launch(pretrain_job(make_trainer), self._on_event, self._show_finished,
                               "reading the micrographs…")

    def stop(self) -> None:
        self.job.stop()

    def _on_event(self, event) -> None:
        if isinstance(event, tuple):
            self.status.setText(f"reading micrograph {event[1]} of {event[2]}")
            return
        if isinstance(event, Pretrainer):
            self.progress.setRange(0, 1000)
            self.status.setText("starting…")
            return
        self.progress.setValue(int(1000 * event.progress))
        if event.kind == "step":
            self.job.show_step(event)
        elif event.kind == "message":
            self.status.setText(event.message)

    def _show_finished(self, trainer) -> None:
        if trainer is None or trainer.steps_done == 0:
            self.status.setText("nothing was pretrained")
            return
        bundle = trainer.to_bundle()
        name = f"pretrained {trainer.config.method} ({len(trainer.pool)} images)"
        self.result = self.registry.add(ModelEntry(name, bundle))
        self.save_button.setEnabled(True)
        self.status.setText(f"done: {trainer.steps_done} steps in {trainer.elapsed:.0f} s. "
                            f"'{name}' is now a starting model in Annotate & Train.")

    def save(self, path: str | None = None):
        """Write the pretrained model as a bundle (asks for a file when ``path`` is None)."""
        return self.job.save(self.result, path, "Save pretrained model", "pretrained.matseg")
