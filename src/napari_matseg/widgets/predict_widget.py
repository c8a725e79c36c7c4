"""Predict & Inspect: apply a model to image layers or a folder; phase fractions and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                            QLabel, QLineEdit, QListWidget, QListWidgetItem, QProgressBar, QPushButton,
                            QVBoxLayout, QWidget)
from qtpy.QtCore import Qt

from ..core.cleanup import parse_min_area
from ..core.errors import MatsegError
from ..core.imageio import list_images, write_labels
from .layers import IMAGE_KEY, ROLE_KEY, micrograph_layers, show_result_layer
from .phase_table import PhaseTable, fraction_rows
from .session import registry_for
from .model_picker import ModelPicker
from .scrolling import scrolling_layout


class PredictInspectWidget(QWidget):
    """Dock widget: run a model on images, show phases, uncertainty and area fractions."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.registry = registry_for(napari_viewer)
        self.worker = None
        self.models = ModelPicker(self.registry, self, accepts=lambda e: e.bundle is not None
                                  and e.bundle.kind == "segmentation", expect="segmentation")
        self.model_combo = self.models.combo
        self.load_model = self.models.load
        self.images = QListWidget()
        self.images.setMaximumHeight(110)
        self.tta = QCheckBox("average over flips (slower, smoother)")
        self.band_check = QCheckBox("exclude the information band")
        self.band_check.setChecked(True)
        self.min_area = QLineEdit()
        self.min_area.setPlaceholderText("keep all regions")
        self.min_area.setToolTip(
            "Regions of a class smaller than this many pixels take the class around them.\n"
            "'500' applies to every class; 'MA=500 defect=2000' to the named classes "
            "(names or numbers 1..K).")
        self.predict_button = QPushButton("Predict selected layers")
        self.folder_button = QPushButton("Predict a folder…")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = PhaseTable()
        self.copy_button = QPushButton("Copy")
        self.csv_button = QPushButton("Export CSV…")
        self.export_button = QPushButton("Export label images…")

        model_box = QGroupBox("Model and images")
        form = QFormLayout(model_box)
        form.addRow("model", self.model_combo)
        form.addRow("images", self.images)
        form.addRow(self.tta)
        form.addRow(self.band_check)
        form.addRow("min region (px)", self.min_area)
        row = QHBoxLayout()
        for b in (self.predict_button, self.folder_button, self.cancel_button):
            row.addWidget(b)
        form.addRow(row)
        form.addRow(self.progress)
        form.addRow(self.status)
        table_box = QGroupBox("Phase fractions")
        tlayout = QVBoxLayout(table_box)
        tlayout.addWidget(self.table)
        row = QHBoxLayout()
        for b in (self.copy_button, self.csv_button, self.export_button):
            row.addWidget(b)
        tlayout.addLayout(row)
        layout = scrolling_layout(self)
        layout.addWidget(model_box)
        layout.addWidget(table_box)

        self.predict_button.clicked.connect(lambda: self.predict_layers())
        self.folder_button.clicked.connect(lambda: self.predict_folder())
        self.cancel_button.clicked.connect(self.cancel)
        self.copy_button.clicked.connect(self.table.copy)
        self.csv_button.clicked.connect(lambda: self.export_csv())
        self.export_button.clicked.connect(lambda: self.export_labels())
        self.table.class_selected.connect(self.highlight_class)
        self.registry.current_changed.connect(lambda e: self.models.select(e.name))
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed):
            ev.connect(self._refresh_images)
        self.destroyed.connect(lambda *_: self.cancel())
        self._refresh_images()

    def _refresh_images(self, *_) -> None:
        checked = {self.images.item(i).text() for i in range(self.images.count())
                   if self.images.item(i).checkState() == Qt.Checked}
        self.images.clear()
        for layer in micrograph_layers(self.viewer):
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if layer.name in checked or not checked else Qt.Unchecked)
            self.images.addItem(item)

    def selected_images(self) -> list[str]:
        return [self.images.item(i).text() for i in range(self.images.count())
                if self.images.item(i).checkState() == Qt.Checked]

    def bundle(self):
        entry = self.models.entry()
        return entry.bundle if entry is not None else None

    def _start(self, items, output_dir=None):
        bundle = self.bundle()
        if bundle is None:
            show_error("Choose a model: train one in 'Annotate & Train' or load a .matseg file.")
            return None
        if not items:
            show_warning("Tick at least one image layer to predict.")
            return None
        from .workers import predict_job

        try:
            min_area = parse_min_area(self.min_area.text(), bundle.class_names) or None
        except MatsegError as exc:
            show_error(str(exc))
            return None
        config = bundle.predict_config(tta=self.tta.isChecked(), keep_probabilities=False,
                                       min_region_area=min_area)
        band = "auto" if self.band_check.isChecked() else 0
        self._bundle_in_use = bundle
        self.worker = predict_job(bundle.model, bundle.preprocess, items, config, band, output_dir)
        self.progress.setRange(0, len(items))
        self.progress.setValue(0)
        self.worker.yielded.connect(self._on_result)
        self.worker.errored.connect(lambda exc: show_error(f"Prediction failed: {exc}"))
        self.worker.finished.connect(self._on_finished)
        self.predict_button.setEnabled(False)
        self.folder_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._output_dir = output_dir
        self.worker.start()
        return self.worker

    def predict_layers(self, names: list[str] | None = None):
        """Predict the ticked image layers (or ``names``) in a worker; returns the worker."""
        names = names if names is not None else self.selected_images()
        items = [(n, np.asarray(self.viewer.layers[n].data)) for n in names if n in self.viewer.layers]
        return self._start(items)

    def predict_folder(self, folder: str | None = None, output: str | None = None):
        """Predict every image of a folder, writing label images and a CSV to ``output``."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder of micrographs")
            if not folder:
                return None
        if output is None:
            output = QFileDialog.getExistingDirectory(self, "Folder for the results")
            if not output:
                return None
        try:
            files = list_images([folder])
        except MatsegError as exc:
            show_error(str(exc))
            return None
        Path(output).mkdir(parents=True, exist_ok=True)
        return self._start([(str(f), str(f)) for f in files], output_dir=output)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def _on_result(self, result) -> None:
        name, prediction = result
        self.progress.setValue(self.progress.value() + 1)
        if isinstance(prediction, str):
            show_error(f"{Path(name).name}: {prediction}")
            return
        bundle = self._bundle_in_use
        classes = [{"name": n, "colour": c} for n, c in zip(bundle.class_names, bundle.class_colours)]
        pixel_area, unit = None, "µm"
        if self._output_dir is None and name in self.viewer.layers:
            like = self.viewer.layers[name]
            show_result_layer(self.viewer, f"{name} phases", prediction.labels, like, classes,
                              opacity=0.6)
            show_result_layer(self.viewer, f"{name} uncertainty", prediction.uncertainty, like,
                              kind="image", colormap="magma", contrast_limits=(0, 1), visible=False,
                              blending="additive")
            scale = np.asarray(like.scale[-2:], float)
            if not np.allclose(scale, 1.0):
                pixel_area = float(scale[0] * scale[1])
                units = getattr(like, "units", None)
                unit = str(units[-1]) if units is not None else "unit"
                unit = {"micrometer": "µm", "nanometer": "nm", "pixel": "unit"}.get(unit, unit)
        self.table.replace_image(Path(name).name if self._output_dir else name,
                                 fraction_rows(Path(name).name if self._output_dir else name,
                                               prediction.labels, bundle.class_names, pixel_area, unit))

    def _on_finished(self) -> None:
        self.worker = None
        self.predict_button.setEnabled(True)
        self.folder_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self._output_dir:
            csv_path = Path(self._output_dir) / "phase_fractions.csv"
            self.table.write_csv(str(csv_path))
            self.status.setText(f"results written to {self._output_dir}")
        else:
            self.status.setText(f"{self.progress.value()} image(s) segmented")

    def highlight_class(self, image: str, label: int) -> None:
        name = f"{image} phases"
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.selected_label = label
            layer.show_selected_label = True
            layer.visible = True

    def export_csv(self, path: str | None = None):
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export phase fractions", "phase_fractions.csv",
                                                  "CSV (*.csv)")
            if not path:
                return None
        self.table.write_csv(path)
        return path

    def export_labels(self, folder: str | None = None, file_format: str = "tif"):
        """Write every '<image> phases' layer as a label image into ``folder``."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder for label images")
            if not folder:
                return []
        written = []
        for layer in self.viewer.layers:
            if layer.metadata.get(ROLE_KEY) == "result-labels" and layer.name.endswith(" phases"):
                stem = layer.metadata.get(IMAGE_KEY, layer.name)
                written.append(write_labels(Path(folder) / f"{stem}_labels.{file_format}", layer.data))
        if written:
            show_info(f"{len(written)} label image(s) written to {folder}")
        else:
            show_warning("Nothing to export: predict some images first.")
        return written
