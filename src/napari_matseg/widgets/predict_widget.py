"""Predict & Inspect: apply a model to image layers or a folder; phase fractions and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                            QLineEdit, QMessageBox, QPushButton, QWidget)

from .. import api
from ..core.bundle import AS_TRAINED
from ..core.errors import MatsegError
from ..core.imageio import list_images, write_labels
from .check_list import CheckList
from .job_controls import JobControls
from .layers import (DIAGNOSIS_KEY, IMAGE_KEY, ROLE_KEY, layer_pixel_size, micrograph_layers,
                     show_result_layer, uncertainty_colormap)
from .model_picker import ModelPicker
from .phase_table import PhaseTable
from .scrolling import scrolling_layout, shrinkable_combo
from .session import ModelEntry, registry_for
from .train_widget import result_name

AS_PREDICTED = "as predicted"


class PredictInspectWidget(QWidget):
    """Dock widget: run a model on images, show phases, uncertainty and area fractions."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.registry = registry_for(napari_viewer)
        self.models = ModelPicker(self.registry, self, accepts=lambda e: e.bundle is not None
                                  and e.bundle.kind == "segmentation", expect="segmentation")
        self.model_combo = self.models.combo
        self.load_model = self.models.load
        self._bundle_in_use = None
        self._output_dir: str | None = None
        self.images = CheckList(90)
        self.tta = QCheckBox("average over flips (more accurate, slower)")
        self.tta.setChecked(api.PredictOptions.tta)
        self.band_check = QCheckBox("exclude the information band")
        self.band_check.setChecked(True)
        self.min_area = QLineEdit()
        self.min_area.setPlaceholderText("keep all regions")
        self.min_area.setToolTip(
            "Regions of a class smaller than this many pixels take the class around them.\n"
            "'500' applies to every class; 'MA=500 defect=2000' to the named classes "
            "(names or numbers 1..K).")
        self.job = JobControls(self, "Predict selected layers", "Prediction",
                               "choose a model and tick images", plot=False, save=False)
        self.predict_button = self.job.start_button
        self.cancel_button = self.job.stop_button
        self.cancel_button.setText("Cancel")
        self.folder_button = QPushButton("Predict a folder…")
        self.boundary_lines = shrinkable_combo()
        self._lines_choice: str | None = None  # what the user picked there; None: not yet
        self.boundary_lines.setToolTip(
            "Draw this class as a closed network of lines as wide as it was painted, not as the "
            "band the network predicts.\nFor grain boundaries whose grain size you will measure: "
            "grains that a wide band swallows come back (docs/user-guide.md).\nA class named "
            "'…boundar…' is chosen for you; pick 'as predicted' to keep the band.")
        self.adapt_check = QCheckBox("adapt the model to the folder first")
        self.adapt_check.setToolTip(
            f"Before predicting a folder, continue training the model on its strokes while it "
            f"learns from up to {api.ADAPT_IMAGES} of the folder's micrographs; the adapted "
            "model is added to the model list. Only for a model trained in this window (its "
            "strokes are needed). On MetalDAM it did not beat the model alone "
            "(docs/benchmarks.md), so it is off unless you tick it.")
        self._adapting = None  # (entry, sources, output folder, job) while a model adapts
        self.progress, self.status = self.job.progress, self.job.status
        self.table = PhaseTable()
        self.copy_button = QPushButton("Copy")
        self.csv_button = QPushButton("CSV…")
        self.csv_button.setToolTip("Export the phase fractions as a CSV file")
        self.export_button = QPushButton("Label images…")
        self.export_button.setToolTip("Export every phases layer as a label image (class colours, "
                                      "names and pixel size)")

        model_box = QGroupBox("Model and images")
        form = QFormLayout(model_box)
        form.addRow("model", self.model_combo)
        form.addRow("images", self.images)
        form.addRow(self.tta)
        form.addRow(self.band_check)
        form.addRow("min region (px)", self.min_area)
        form.addRow("boundaries as lines", self.boundary_lines)
        form.addRow(self.adapt_check)
        layout, footer = scrolling_layout(self)
        layout.addWidget(model_box)
        layout.addStretch()
        buttons = QHBoxLayout()
        for b in (self.predict_button, self.folder_button, self.cancel_button):
            buttons.addWidget(b)
        footer.addLayout(buttons)
        footer.addWidget(self.progress)
        footer.addWidget(self.job.status_area)
        footer.addWidget(self.table, 1)
        row = QHBoxLayout()
        for b in (self.copy_button, self.csv_button, self.export_button):
            row.addWidget(b)
        footer.addLayout(row)

        self.predict_button.clicked.connect(lambda: self.predict_layers())
        self.folder_button.clicked.connect(lambda: self.predict_folder())
        self.copy_button.clicked.connect(self.table.copy)
        self.csv_button.clicked.connect(lambda: self.export_csv())
        self.export_button.clicked.connect(lambda: self.export_labels())
        self.table.class_selected.connect(self.highlight_class)
        self.registry.current_changed.connect(self._current_model_changed)
        self.model_combo.currentTextChanged.connect(lambda _name: self._offer_adapting())
        self.model_combo.currentTextChanged.connect(lambda _name: self._refresh_boundary_classes())
        self.registry.changed.connect(self._refresh_boundary_classes)
        self.boundary_lines.currentIndexChanged.connect(self._lines_chosen)
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed):
            ev.connect(self._refresh_images)
        self.destroyed.connect(lambda *_: self.cancel())
        self._refresh_images()
        if self.registry.current is not None:
            self._current_model_changed(self.registry.current)
        self._offer_adapting()
        self._refresh_boundary_classes()

    @property
    def worker(self):
        return self.job.worker

    def _current_model_changed(self, entry) -> None:
        if self.models.accepts(entry):
            self.models.select(entry.name)

    def _offer_adapting(self) -> None:
        """Offer to adapt only a model whose strokes are known (trained in this window)."""
        entry = self.models.entry()
        can = entry is not None and bool(entry.strokes)
        self.adapt_check.setEnabled(can)
        if not can:
            self.adapt_check.setChecked(False)

    def _lines_chosen(self, _index: int) -> None:
        self._lines_choice = self.boundary_lines.currentText()

    def _refresh_boundary_classes(self) -> None:
        """List the current model's classes to draw as lines: the user's pick is kept ('as
        predicted', or a class the model has), else a class whose name says boundary is chosen,
        else none."""
        bundle = self.bundle()
        names = list(bundle.class_names) if bundle is not None else []
        chosen = self._lines_choice
        if chosen != AS_PREDICTED and chosen not in names:
            chosen = next((n for n in names if "boundar" in n.lower()), None)
        self.boundary_lines.blockSignals(True)
        self.boundary_lines.clear()
        self.boundary_lines.addItems([AS_PREDICTED, *names])
        self.boundary_lines.setCurrentIndex(names.index(chosen) + 1 if chosen in names else 0)
        self.boundary_lines.blockSignals(False)

    def _refresh_images(self, *_) -> None:
        """List the image layers; a newly opened one is ticked, the user's unticks are kept."""
        self.images.set_items([layer.name for layer in micrograph_layers(self.viewer)])

    def selected_images(self) -> list[str]:
        return self.images.checked()

    def bundle(self):
        entry = self.models.entry()
        return entry.bundle if entry is not None else None

    def options(self) -> api.PredictOptions:
        return api.PredictOptions(tta=self.tta.isChecked(),
                                  min_region_area=self.min_area.text().strip() or None,
                                  info_band=AS_TRAINED if self.band_check.isChecked() else 0,
                                  boundary_lines=(self.boundary_lines.currentText()
                                                  if self.boundary_lines.currentIndex() > 0 else None))

    def _start(self, sources, output: api.OutputFolder | None = None):
        bundle = self.bundle()
        if bundle is None:
            show_error("Choose a model: train one in 'Annotate & Train' or load a .matseg file.")
            return None
        if not sources:
            show_warning("Tick at least one image layer to predict.")
            return None
        if self.job.running:
            return None
        try:
            job = api.predict(bundle, sources, self.options(), output=output)
        except MatsegError as exc:
            show_error(str(exc))
            return None
        self._bundle_in_use = bundle
        self._output_dir = str(output.path) if output is not None else None
        self.folder_button.setEnabled(False)
        return self.job.launch(job, self._on_event, self._on_finished)

    def predict_layers(self, names: list[str] | None = None):
        """Predict the ticked image layers (or ``names``) in a worker; returns the worker."""
        names = names if names is not None else self.selected_images()
        sources = [api.ImageSource(n, data=np.asarray(self.viewer.layers[n].data),
                                   pixel_size=layer_pixel_size(self.viewer.layers[n]))
                   for n in names if n in self.viewer.layers]
        return self._start(sources)

    def predict_folder(self, folder: str | None = None, output: str | None = None,
                       overwrite: bool | None = None):
        """Predict every image of a folder, writing label images and a CSV to ``output``; when
        results are already there, asks before replacing them (``overwrite`` answers)."""
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
            target = api.OutputFolder(Path(output), "png", overwrite=bool(overwrite))
            api.outputs.plan_outputs(target, [str(f) for f in files])
        except MatsegError as exc:
            if "already exist" not in str(exc) or overwrite is not None:
                show_error(str(exc))
                return None
            answer = QMessageBox.question(self, "Replace results?", f"{exc}\n\nReplace them?")
            if answer != QMessageBox.Yes:
                return None
            target = api.OutputFolder(Path(output), "png", overwrite=True)
        sources = [api.ImageSource(str(f), path=f) for f in files]
        if self.adapt_check.isChecked():
            return self._adapt_then_predict(files, sources, target, Path(folder).name)
        return self._start(sources, target)

    def _adapt_then_predict(self, files, sources, target, folder_name: str):
        """Adapt the chosen model to ``files`` in a worker, then predict them with it."""
        entry = self.models.entry()
        if self.job.running or entry is None or not entry.strokes:
            return None
        try:
            job = api.adapt(entry.bundle, entry.strokes, files,
                            info_band="auto" if self.band_check.isChecked() else 0)
        except MatsegError as exc:
            show_error(str(exc))
            return None
        self._adapting = (entry, sources, target, job, folder_name)
        self.folder_button.setEnabled(False)
        return self.job.launch(job, lambda _event: None, self._adapted)

    def _adapted(self, bundle) -> None:
        """Add the adapted model to the list, choose it, and predict the folder with it; a
        stopped or failed adaptation predicts nothing."""
        entry, sources, target, job, folder_name = self._adapting
        self._adapting = None
        self.folder_button.setEnabled(True)
        if bundle is None or job.stopping or job.error is not None:
            return
        adapted = self.registry.add(ModelEntry(f"{entry.name}, adapted to {folder_name}", bundle,
                                               strokes=entry.strokes))
        self.models.select(adapted.name)
        self._start(sources, target)

    def cancel(self) -> None:
        self.job.stop()

    def _on_event(self, event) -> None:
        if event.kind is not api.EventKind.RESULT:
            return
        if event.failed:
            show_error(f"{Path(event.name).name}: {event.error}")
            return
        bundle, name, prediction = self._bundle_in_use, event.name, event.prediction
        classes = [{"name": n, "colour": c} for n, c in zip(bundle.class_names, bundle.class_colours)]
        pixel_size = None
        if self._output_dir is None and name in self.viewer.layers:
            like = self.viewer.layers[name]
            pixel_size = layer_pixel_size(like)
            phases = show_result_layer(self.viewer, result_name(name), prediction.labels, like,
                                       classes, opacity=0.6)
            phases.metadata[DIAGNOSIS_KEY] = bundle.provenance.get("diagnosis")
            show_result_layer(self.viewer, f"{name} uncertainty", prediction.uncertainty, like,
                              kind="image", colormap=uncertainty_colormap(), contrast_limits=(0, 1),
                              visible=False, blending="translucent")
        shown = Path(name).name if self._output_dir else name
        self.table.replace_image(shown, api.phase_rows(shown, prediction.labels, bundle.class_names,
                                                       name if self._output_dir else "", pixel_size))

    def _on_finished(self, summary) -> None:
        self.folder_button.setEnabled(True)
        if summary is not None and summary.csv is not None:
            self.status.setText(self.status.text() + f"\nwritten to {self._output_dir}")

    def highlight_class(self, image: str, label: int) -> None:
        name = result_name(image)
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
        api.write_csv(path, self.table.rows, api.PHASE_COLUMNS)
        return path

    def export_labels(self, folder: str | None = None, file_format: str = "tif"):
        """Write every phases layer as a label image (class colours, pixel size) into ``folder``,
        named as :func:`napari_matseg.api.predict` names them; never replaces a file (a second
        export gets new names)."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder for label images")
            if not folder:
                return []
        layers = [layer for layer in self.viewer.layers
                  if layer.metadata.get(ROLE_KEY) == "result-labels"]
        try:
            plans = api.outputs.plan_outputs(
                api.OutputFolder(folder, format=file_format, overwrite=True),
                [layer.metadata.get(IMAGE_KEY, layer.name) for layer in layers])
        except MatsegError as exc:
            show_error(str(exc))
            return []
        written = []
        for layer, plan in zip(layers, plans):
            classes = layer.metadata.get("matseg_classes", [])
            image = layer.metadata.get(IMAGE_KEY)
            like = self.viewer.layers[image] if image in self.viewer.layers else None
            path = api.outputs.free_path(plan["labels"])
            written.append(write_labels(path, np.asarray(layer.data), [c["name"] for c in classes],
                                        [c["colour"] for c in classes],
                                        layer_pixel_size(like) if like is not None else None))
        if written:
            show_info(f"{len(written)} label image(s) written to {folder}")
        else:
            show_warning("Nothing to export: predict some images first.")
        return written
