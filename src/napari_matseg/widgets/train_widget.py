"""Annotate & Train: paint strokes, train in the background, watch live previews."""

from __future__ import annotations

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton,
                            QSpinBox, QVBoxLayout, QWidget)

from ..core.errors import MatsegError
from ..core.finetune import FinetuneConfig, Finetuner
from ..core.infoband import detect_info_band
from ..core.scribbles import check_scribbles
from ..core.imageio import to_grey
from .class_table import ClassTableWidget
from .layers import (apply_classes, class_table, default_classes, micrograph_layers,
                     new_scribble_layer, scribble_layers, show_info_band, show_result_layer)
from .job_controls import JobControls
from .model_picker import ModelPicker
from .scrolling import scrolling_layout
from .session import ModelEntry, registry_for


class AnnotateTrainWidget(QWidget):
    """Dock widget: choose image, paint classes, train, preview, save."""

    column_share = 3  # of a column shared with other MatSeg docks (scrolling.share_column)

    def __init__(self, napari_viewer):
        super().__init__()
        import timm  # noqa: F401  (imported here, not in the worker, where it would hold the GIL)

        self.viewer = napari_viewer
        self.registry = registry_for(napari_viewer)
        self.model_entry: ModelEntry | None = None
        self._training_image = self._training_scribbles = None
        self._classes_for_run: list[dict] = []

        self.image_combo = QComboBox()
        self.scribble_combo = QComboBox()
        self.new_layer_button = QPushButton("New scribble layer")
        self.classes = ClassTableWidget()
        self.models = ModelPicker(self.registry, self)
        self.model_combo = self.models.combo
        self.load_model = self.models.load
        self.band_check = QCheckBox("exclude the information band")
        self.band_check.setChecked(True)
        self.band_label = QLabel("")
        self.budget = QSpinBox()
        self.budget.setRange(5, 3600)
        self.budget.setValue(int(FinetuneConfig().max_seconds))
        self.budget.setSuffix(" s")
        self.job = JobControls(self, "Train", "Training",
                               "paint strokes of each class, then press Train")
        self.train_button, self.stop_button = self.job.start_button, self.job.stop_button
        self.save_button, self.progress = self.job.save_button, self.job.progress
        self.status, self.plot = self.job.status, self.job.plot

        data = QGroupBox("Image and strokes")
        form = QFormLayout(data)
        form.addRow("image", self.image_combo)
        form.addRow("scribbles", self.scribble_combo)
        form.addRow(self.new_layer_button)
        form.addRow(self.band_check, self.band_label)
        classes = QGroupBox("Classes (label 1, 2, …)")
        QVBoxLayout(classes).addWidget(self.classes)
        train = QGroupBox("Training")
        tform = QFormLayout(train)
        tform.addRow("start from", self.model_combo)
        tform.addRow("time budget", self.budget)
        tform.addRow(self.job.button_row())
        tform.addRow(self.progress)
        tform.addRow(self.status)
        tform.addRow(self.plot)
        layout = scrolling_layout(self)
        for box in (data, classes, train):
            layout.addWidget(box)
        layout.addStretch()

        self.new_layer_button.clicked.connect(self.new_scribble_layer)
        self.train_button.clicked.connect(self.start_training)
        self.save_button.clicked.connect(lambda: self.save_model())
        self.image_combo.currentTextChanged.connect(self._image_changed)
        self.scribble_combo.currentTextChanged.connect(self._scribbles_changed)
        self.band_check.toggled.connect(lambda _: self._image_changed(self.image_combo.currentText()))
        self.classes.changed.connect(self._classes_edited)
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self._refresh_layers)
        events.removed.connect(self._layer_removed)
        self.destroyed.connect(lambda *_: self.stop_training())
        self._refresh_layers()

    @property
    def worker(self):
        return self.job.worker

    @property
    def tuner(self) -> Finetuner | None:
        return self.job.controller

    # layers -------------------------------------------------------------------------------
    def _set_items(self, combo: QComboBox, names: list[str]) -> None:
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        if current in names:
            combo.setCurrentText(current)
        combo.blockSignals(False)
        if combo.currentText() != current:
            combo.currentTextChanged.emit(combo.currentText())

    def _refresh_layers(self, *_):
        self._set_items(self.image_combo, [layer.name for layer in micrograph_layers(self.viewer)])
        self._set_items(self.scribble_combo,
                        [layer.name for layer in scribble_layers(self.viewer, self.image_combo.currentText())])

    def image_layer(self):
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def scribble_layer(self):
        name = self.scribble_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _image_changed(self, _name: str) -> None:
        self._set_items(self.scribble_combo,
                        [layer.name for layer in scribble_layers(self.viewer, self.image_combo.currentText())])
        self.band_label.setText(self._band_text())

    def info_band(self):
        """Return the band setting passed to core: ``"auto"`` or 0 (no band)."""
        return "auto" if self.band_check.isChecked() else 0

    def _band_text(self) -> str:
        """Detect the band of the chosen image, outline it in the viewer, and describe it."""
        layer = self.image_layer()
        if layer is None:
            return ""
        try:
            grey = to_grey(np.asarray(layer.data))
        except MatsegError:
            return "not a 2-D image"
        rows = grey.shape[0] - detect_info_band(grey) if self.band_check.isChecked() else 0
        show_info_band(self.viewer, layer, rows)
        if not self.band_check.isChecked():
            return ""
        return f"{rows} rows detected (outlined)" if rows else "none detected"

    def _scribbles_changed(self, _name: str) -> None:
        layer = self.scribble_layer()
        if layer is not None:
            self.classes.set_classes(class_table(layer) or default_classes(2))

    def _classes_edited(self, classes: list[dict]) -> None:
        layer = self.scribble_layer()
        if layer is not None:
            apply_classes(layer, classes)

    def new_scribble_layer(self):
        image = self.image_layer()
        if image is None:
            show_warning("Open a micrograph first: there is no image layer to paint on.")
            return None
        classes = self.classes.classes() or default_classes(2)
        if f"{image.name} prediction" not in self.viewer.layers:
            # Created now, empty, so that the first live preview only swaps data: creating a
            # layer costs the GUI thread about 100 ms, too long a pause in the middle of training.
            show_result_layer(self.viewer, f"{image.name} prediction",
                              np.zeros(image.data.shape[:2], np.uint8), image, classes, opacity=0.5)
        layer = new_scribble_layer(self.viewer, image, classes)
        self._refresh_layers()
        self.scribble_combo.setCurrentText(layer.name)
        self.viewer.layers.selection.active = layer
        return layer

    def _layer_removed(self, event) -> None:
        name = getattr(event.value, "name", None)
        if self.worker is not None and name in (self._training_image, self._training_scribbles):
            show_warning(f"Layer '{name}' was removed: training stopped, the best model so far is kept.")
            self.stop_training()

    # training ---------------------------------------------------------------------------------
    def _training_inputs(self):
        image, scribbles = self.image_layer(), self.scribble_layer()
        if image is None:
            raise MatsegError("Open a micrograph first: there is no image layer.")
        if scribbles is None:
            raise MatsegError("Press 'New scribble layer' and paint a few strokes of each class first.")
        if image.rgb and not np.allclose(np.ptp(np.asarray(image.data)[..., :3], axis=-1), 0):
            show_info("A colour image: training on its luminance.")
        return image, scribbles

    def start_training(self):
        """Start fine-tuning in a worker thread; returns the worker (None if inputs are unusable)."""
        if self.job.running:
            return None
        try:
            image_layer, scribble_layer = self._training_inputs()
        except MatsegError as exc:
            show_error(str(exc))
            return None
        classes = self.classes.classes()
        entry = self.models.entry()
        start = entry.bundle if entry is not None and entry.bundle is not None else None
        if start is not None and start.kind == "segmentation" and len(start.class_names) != len(classes):
            show_error(f"The model '{entry.name}' predicts {len(start.class_names)} classes but the "
                       f"class table has {len(classes)}: start from the default model or match the classes.")
            return None
        image = np.asarray(image_layer.data)
        labels = np.asarray(scribble_layer.data).copy()
        try:
            check_scribbles(to_grey(image), labels)
        except MatsegError as exc:
            show_error(str(exc))
            return None
        if labels.size and int(labels.max()) > len(classes):
            show_error(f"The strokes use label {int(labels.max())} but the class table lists "
                       f"{len(classes)} classes: add a class row for every label you paint.")
            return None
        config = FinetuneConfig(max_seconds=float(self.budget.value()), max_steps=100_000)
        band = self.info_band()

        def make_tuner():
            model = start.model if start is not None and start.kind == "segmentation" else None
            preprocess = start.preprocess if start is not None else None
            pretrained = start if start is not None and start.kind == "pretrained" else None
            return Finetuner(image, labels, num_classes=len(classes), model=model, config=config,
                             preprocess=preprocess, info_band=band, pretrained=pretrained,
                             steps_before=start.trained_steps if start is not None else 0)

        from .workers import train_job

        self._classes_for_run = classes
        self._training_image, self._training_scribbles = image_layer.name, scribble_layer.name
        return self.job.launch(train_job(make_tuner), self._on_event, self._show_finished,
                               "preparing the model…")

    def stop_training(self) -> None:
        self.job.stop()

    def _on_event(self, event) -> None:
        if isinstance(event, Finetuner):
            self.progress.setRange(0, int(self.budget.value()))
            return
        self.progress.setValue(min(int(event.elapsed), self.progress.maximum()))
        if event.kind == "step":
            self.job.show_step(event)
        elif event.kind == "eval":
            self.plot.add(event.step, event.loss, event.val_loss)
            if event.preview is not None:
                self._show_preview(event.preview)

    def _show_preview(self, preview: np.ndarray) -> None:
        like = self.viewer.layers[self._training_image] if self._training_image in self.viewer.layers else None
        if like is None:
            return
        show_result_layer(self.viewer, f"{like.name} prediction", preview, like,
                          self._classes_for_run, opacity=0.5)

    def _show_finished(self, tuner) -> None:
        if tuner is None or tuner.best_state is None:
            self.status.setText("no model was trained")
            return
        names = [c["name"] for c in self._classes_for_run]
        colours = [c["colour"] for c in self._classes_for_run]
        bundle = tuner.to_bundle(names, colours)
        self.model_entry = self.registry.add(
            ModelEntry(f"trained on {self._training_image}", bundle), make_current=True)
        self.models.select(self.model_entry.name)
        self.save_button.setEnabled(True)
        p = tuner.provenance
        text = (f"done: {p.get('steps')} steps in {p.get('seconds', 0):.0f} s, best at step "
                f"{tuner.best_step} ({p.get('stop_reason')}). Paint more and Train again to "
                "continue from this model.")
        warnings = "; ".join(tuner.diagnose(names).warnings)
        if warnings:
            text += f"\nCheck before trusting it: {warnings}."
            show_warning(f"napari-matseg: the trained model looks unreliable: {warnings}")
        self.status.setText(text)

    def save_model(self, path: str | None = None):
        """Write the current model as a bundle (asks for a file when ``path`` is None)."""
        return self.job.save(self.model_entry, path, "Save model", "model.matseg")
