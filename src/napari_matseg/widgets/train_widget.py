"""Annotate & Train: paint strokes on one or several images, train in the background, watch live
previews. Every decision about training is the API's; this widget gathers inputs and shows
events."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                            QPushButton, QSpinBox, QVBoxLayout, QWidget)

from .. import api
from ..core.bundle import AS_TRAINED
from ..core.errors import MatsegError
from ..core.infoband import detect_info_band
from ..core.imageio import to_grey
from .check_list import CheckList
from .class_table import ClassTableWidget
from .job_controls import JobControls
from .live import LiveInputs, LiveRefit, StrokeWatcher
from .live_training import StrokeFeeder
from .layers import (apply_classes, centre_on, class_table, default_classes, image_scribbles,
                     micrograph_layers, new_scribble_layer, painted_pixels, scribble_layers,
                     show_guidance, show_info_band, show_result_layer)
from .model_picker import ModelPicker
from .scrolling import scrolling_layout, shrinkable_combo
from .session import ModelEntry, registry_for


def result_name(image_name: str) -> str:
    """Return the name of an image's phases layer (training previews, then predictions)."""
    return f"{image_name} phases"


class AnnotateTrainWidget(QWidget):
    """Dock widget: choose images, paint classes, train, preview, save."""

    column_share = 3  # of a column shared with other MatSeg docks (scrolling.share_column)

    def __init__(self, napari_viewer):
        super().__init__()
        import sklearn.ensemble  # noqa: F401  (imported here, not in the worker, where it
        import timm  # noqa: F401                 would hold the GIL before the first preview)

        self.viewer = napari_viewer
        self.registry = registry_for(napari_viewer)
        self.model_entry: ModelEntry | None = None
        self._training_images: list[str] = []
        self._training_layers: set[str] = set()
        self._classes_for_run: list[dict] = []
        self._seconds_per_step: float | None = None  # measured at the last run
        self._regions: list[tuple[str, object]] = []  # (image, region) to paint next, best first
        self._region_index = -1
        self._done_text = ""  # the last training's status, shown above its suggestions
        self._after_training = False
        self._live_run = False  # the running (or last) training is live training
        self._live_drawn: dict[str, tuple[object, np.ndarray]] = {}  # its previews, as drawn
        self._run_job = None  # the last training job: its images are what it trained on
        self._start_entry = None  # a continued run's start model, kept when the run ends

        self.image_combo = shrinkable_combo()
        self.image_combo.setToolTip("The image to paint on: New scribble layer adds strokes to it")
        self.scribble_combo = shrinkable_combo()
        self.new_layer_button = QPushButton("New scribble layer")
        self.new_layer_button.setToolTip("Add an empty Labels layer to paint on the chosen image")
        self.training_list = CheckList(84, default=self._has_strokes)
        self.training_list.setToolTip("Images whose strokes train the model; images with strokes "
                                      "are ticked when they appear")
        self.learn_list = CheckList(84, default=lambda _name: api.UnlabeledConfig().enabled)
        self.learn_list.setToolTip(
            "Open micrographs without a scribble layer that Train also learns from (semi-supervised: the "
            "network's confident predictions on them teach it, strokes always win). Unticked by "
            "default: on MetalDAM it did not beat strokes alone (docs/benchmarks.md). Not used by "
            "'keep training as I paint'.")
        self.classes = ClassTableWidget()
        self.models = ModelPicker(self.registry, self)
        self.model_combo = self.models.combo
        self.load_model = self.models.load
        self.band_check = QCheckBox("exclude the information band")
        self.band_check.setChecked(True)
        self.band_label = QLabel("")
        self.live_check = QCheckBox("Live preview")
        self.live_check.setChecked(True)
        self.live_check.setToolTip("After every stroke or erase, refit the quick classifier on "
                                   "the ticked images' strokes and redraw their phases (a trained "
                                   "model's phases are left as they are)")
        self.live_status = QLabel("")
        self.live_train_check = QCheckBox("keep training as I paint")
        self.live_train_check.setToolTip(
            "With Live preview on, Train starts a network that keeps fine-tuning while you paint: "
            "it takes new strokes at each evaluation, idles when nothing changes, and ends on Stop")
        self.live_status.setWordWrap(True)
        self.steps = QSpinBox()
        self.steps.setRange(1, 100_000)
        self.steps.setValue(api.FIRST_FIT_STEPS)
        self.steps.setSuffix(" steps")
        self.steps.setToolTip("Optimiser steps: the unit of the budget (the same default as "
                              "'matseg finetune')")
        self.time_cap = QSpinBox()
        self.time_cap.setRange(0, 24 * 3600)
        self.time_cap.setValue(0)
        self.time_cap.setSpecialValueText("no time cap")
        self.time_cap.setSuffix(" s")
        self.time_cap.setToolTip("Stop after this many seconds even if the steps are not done; "
                                 "the model then says it was cut short")
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        self.suggest_button = QPushButton("Where to paint next")
        self.suggest_button.setToolTip("Outline the unpainted regions where the current model is "
                                       "least sure, and go to the first")
        self.next_button = QPushButton("Next region ▸")
        self.next_button.setEnabled(False)
        self.job = JobControls(self, "Train", "Training",
                               "paint strokes of each class, then press Train")
        self.train_button, self.stop_button = self.job.start_button, self.job.stop_button
        self.save_button, self.progress = self.job.save_button, self.job.progress
        self.status, self.plot = self.job.status, self.job.plot

        data = QGroupBox("Images and strokes")
        form = QFormLayout(data)
        form.addRow("paint on", self.image_combo)
        form.addRow("scribbles", self.scribble_combo)
        form.addRow(self.new_layer_button)
        form.addRow("train on", self.training_list)
        form.addRow("learn from", self.learn_list)
        form.addRow(self.band_check)
        form.addRow(self.band_label)
        form.addRow(self.live_check, self.live_status)
        classes = QGroupBox("Classes (label 1, 2, …; pick a row to paint it)")
        QVBoxLayout(classes).addWidget(self.classes)
        train = QGroupBox("Training")
        tform = QFormLayout(train)
        tform.addRow("start from", self.model_combo)
        budget = QHBoxLayout()
        budget.addWidget(self.steps)
        budget.addWidget(self.time_cap)
        tform.addRow("budget", budget)
        tform.addRow(self.estimate)
        tform.addRow(self.live_train_check)
        tform.addRow(self.plot)
        guide = QHBoxLayout()
        guide.addWidget(self.suggest_button)
        guide.addWidget(self.next_button)
        tform.addRow(guide)
        layout, footer = scrolling_layout(self)
        for box in (data, classes, train):
            layout.addWidget(box)
        layout.addStretch()
        footer.addLayout(self.job.button_row())
        footer.addWidget(self.progress)
        footer.addWidget(self.job.status_area)

        self.new_layer_button.clicked.connect(self.new_scribble_layer)
        self.suggest_button.clicked.connect(lambda: self.suggest_regions())
        self.next_button.clicked.connect(self.next_region)
        self.steps.valueChanged.connect(lambda _: self._show_estimate())
        self.train_button.clicked.connect(self.start_training)
        self.save_button.clicked.connect(lambda: self.save_model())
        self.image_combo.currentTextChanged.connect(self._image_changed)
        self.scribble_combo.currentTextChanged.connect(self._scribbles_changed)
        self.band_check.toggled.connect(lambda _: self._image_changed(self.image_combo.currentText()))
        self.classes.changed.connect(self._classes_edited)
        self.classes.chosen.connect(self._paint_class)
        self.model_combo.currentTextChanged.connect(self._start_changed)
        self.registry.current_changed.connect(lambda entry: self.models.select(entry.name))
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self._refresh_layers)
        events.removed.connect(self._layer_removed)
        self.strokes = StrokeWatcher(napari_viewer)
        self.strokes.changed.connect(self._strokes_changed)
        self.live = LiveRefit(napari_viewer, self._live_inputs, result_name)
        self.live.refitted.connect(self._live_refitted)
        self.live.failed.connect(lambda text: self.live_status.setText(f"failed: {text}"))
        self.live_check.toggled.connect(self._live_toggled)
        self.feeder = StrokeFeeder(self._annotated_images, parent=self)
        self.training_list.itemChanged.connect(lambda _item: self._feed_live())
        self.feeder.failed.connect(lambda text: self.live_status.setText(
            f"live training kept its strokes: {text}"))
        self.destroyed.connect(lambda *_: self._closing())
        self._refresh_layers()

    def _closing(self) -> None:
        self.strokes.close()
        self.live.close()
        self.stop_training()

    @property
    def worker(self):
        return self.job.worker

    @property
    def tuner(self):
        """The running fine-tune (None before it has started training)."""
        job = self.job.job
        return job.tuner if job is not None else None

    # layers -------------------------------------------------------------------------------
    def _set_items(self, combo: QComboBox, names: list[str]) -> None:
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        for i, name in enumerate(names):
            combo.setItemData(i, name, Qt.ToolTipRole)
        if current in names:
            combo.setCurrentText(current)
        combo.blockSignals(False)
        if combo.currentText() != current:
            combo.currentTextChanged.emit(combo.currentText())

    def _refresh_layers(self, *_):
        self._set_items(self.image_combo, [layer.name for layer in micrograph_layers(self.viewer)])
        self._set_items(self.scribble_combo,
                        [layer.name for layer in scribble_layers(self.viewer, self.image_combo.currentText())])
        self._refresh_training_list()
        self.strokes.watch_layers()

    def _has_strokes(self, image_name: str) -> bool:
        layer = self._scribbles_of(image_name)
        return layer is not None and painted_pixels(layer) > 0

    def _refresh_training_list(self, *_):
        """List every image that has a scribble layer, with its painted pixels; ticked: as the
        user set it, else when it has strokes."""
        names, texts, tips = [], [], []
        for image in micrograph_layers(self.viewer):
            layer = self._scribbles_of(image.name)
            if layer is not None:
                painted = painted_pixels(layer)
                names.append(image.name)
                texts.append(f"{image.name} · {painted:,} px")
                tips.append(f"{painted:,} pixels painted in '{layer.name}'")
        self.training_list.set_items(names, texts, tips)
        self.learn_list.set_items([image.name for image in micrograph_layers(self.viewer)
                                   if image.name not in names])

    def _strokes_changed(self) -> None:
        """Strokes were painted or erased: update the painted counts, and refit the live
        preview when Live is on."""
        self._refresh_training_list()
        if self.live_check.isChecked():
            self.live.request()
        self._feed_live()

    def _feed_live(self) -> None:
        """Hand the ticked images' strokes to live training, when it runs."""
        if isinstance(self.job.job, api.LiveTrainingJob):
            self.feeder.request(self.job.job)

    def _live_toggled(self, on: bool) -> None:
        self.live_train_check.setEnabled(on)
        if on:
            self.live.request()
        else:
            self.live.cancel()
            self.live_status.setText("")

    def _live_inputs(self) -> LiveInputs | None:
        """Return the ticked images with a copy of their strokes, and those in view."""
        images, show = [], []
        for name in self.training_list.checked():
            scribbles = self._scribbles_of(name)
            if scribbles is None or name not in self.viewer.layers:
                continue
            layer = self.viewer.layers[name]
            images.append(api.AnnotatedImage(np.asarray(layer.data), np.asarray(scribbles.data).copy(),
                                             name, info_band=self.info_band()))
            if layer.visible:
                show.append(name)
        if not show:
            return None
        return LiveInputs(images, [item.name for item in images], show, self.classes.classes())

    def _live_refitted(self, result) -> None:
        self.live_status.setText(f"refitted in {result.seconds:.2f} s")

    def learning_images(self) -> list[api.UnlabeledImage]:
        """Return the ticked 'learn from' micrographs (nobody painted them) for the API."""
        self._refresh_training_list()
        return [api.UnlabeledImage(np.asarray(self.viewer.layers[name].data), name,
                                   info_band=self.info_band())
                for name in self.learn_list.checked() if name in self.viewer.layers]

    def training_images(self) -> list[str]:
        """Return the names of the ticked images (refreshing the painted counts first)."""
        self._refresh_training_list()
        return self.training_list.checked()

    def _scribbles_of(self, image_name: str):
        preferred = (self.scribble_combo.currentText()
                     if image_name == self.image_combo.currentText() else None)
        return image_scribbles(self.viewer, image_name, preferred)

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
        """Return the band setting passed to the API: ``"auto"`` or 0 (no band)."""
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
            stored = class_table(layer)
            if stored and stored != self.classes.classes():
                self.classes.set_classes(stored)
            elif not self.classes.classes():
                self.classes.set_classes(default_classes(2))
        self._refresh_training_list()

    def _classes_edited(self, classes: list[dict]) -> None:
        """One class table serves every scribble layer (and the phases layers of training)."""
        for layer in scribble_layers(self.viewer):
            apply_classes(layer, classes)

    def _paint_class(self, label: int) -> None:
        """Paint with the class picked in the table (napari's own picker shows only numbers)."""
        layer = self.scribble_layer()
        if layer is not None:
            layer.selected_label = label
            layer.mode = "paint"
            self.viewer.layers.selection.active = layer

    def _start_changed(self, _name: str) -> None:
        """Show the start model's classes and the budget the API would use from it."""
        entry = self.models.entry()
        bundle = entry.bundle if entry is not None else None
        self.steps.setValue(api.default_finetune_budget(bundle).steps)
        if api.continues_training(bundle):
            classes = [{"name": n, "colour": c}
                       for n, c in zip(bundle.class_names, bundle.class_colours)]
            if classes != self.classes.classes():
                self.classes.set_classes(classes)
                self._classes_edited(classes)

    def new_scribble_layer(self):
        image = self.image_layer()
        if image is None:
            show_warning("Open a micrograph first: there is no image layer to paint on.")
            return None
        classes = self.classes.classes() or default_classes(2)
        if not self.classes.classes():
            self.classes.set_classes(classes)
        if result_name(image.name) not in self.viewer.layers:
            # Created now, empty, so that the first live preview only swaps data: creating a
            # layer costs the GUI thread about 100 ms, too long a pause in the middle of training.
            show_result_layer(self.viewer, result_name(image.name),
                              np.zeros(image.data.shape[:2], np.uint8), image, classes, opacity=0.5)
        layer = new_scribble_layer(self.viewer, image, classes)
        self._refresh_layers()
        self.scribble_combo.setCurrentText(layer.name)
        self.viewer.layers.selection.active = layer
        return layer

    def _layer_removed(self, event) -> None:
        name = getattr(event.value, "name", None)
        if self.worker is not None and name in self._training_layers:
            show_warning(f"Layer '{name}' was removed: training stopped, the best model so far is kept.")
            self.stop_training()

    # training ---------------------------------------------------------------------------------
    def _annotated_images(self) -> list[api.AnnotatedImage]:
        """Return the ticked images with a copy of their strokes; raise MatsegError with what
        to do when there is nothing to train on."""
        if not micrograph_layers(self.viewer):
            raise MatsegError("Open a micrograph first: there is no image layer.")
        names = self.training_images()
        if not names:
            if not self.training_list.count():
                raise MatsegError("Press 'New scribble layer' and paint a few strokes of each class first.")
            painted = [image.name for image in micrograph_layers(self.viewer)
                       if (layer := self._scribbles_of(image.name)) is not None and painted_pixels(layer)]
            if not painted:
                raise MatsegError("nothing is painted: paint a few strokes of each class first")
            raise MatsegError("Tick at least one image with strokes under 'train on'.")
        images = []
        for name in names:
            image_layer, scribbles = self.viewer.layers[name], self._scribbles_of(name)
            data = np.asarray(image_layer.data)
            if image_layer.rgb and not np.allclose(np.ptp(data[..., :3], axis=-1), 0):
                show_info(f"{name} is a colour image: training on its luminance.")
            images.append(api.AnnotatedImage(data, np.asarray(scribbles.data).copy(), name,
                                             info_band=self.info_band()))
        return images

    def budget(self) -> api.Budget:
        """Return the budget set in the dock: steps, with the time cap when one is set."""
        cap = self.time_cap.value()
        return api.Budget(steps=self.steps.value(), max_seconds=float(cap) if cap else None)

    def start_training(self):
        """Start fine-tuning in a worker thread; returns the worker (None if inputs are unusable)."""
        if self.job.running:
            return None
        classes = self.classes.classes()
        entry = self.models.entry()
        live = self.live_train_check.isChecked() and self.live_check.isChecked()
        try:
            images = self._annotated_images()
            names, colours = [c["name"] for c in classes], [c["colour"] for c in classes]
            start = entry.bundle if entry is not None else None
            job = (api.live_training(images, names, colours, start=start, preview=True) if live
                   else api.finetune(images, names, colours, start=start, budget=self.budget(),
                                     preview=True, unlabeled=self.learning_images()))
        except MatsegError as exc:
            show_error(str(exc))
            return None
        self._classes_for_run = classes
        self._start_entry = entry if api.continues_training(start) else None
        self._live_run, self._live_drawn = live, {}
        self._training_images = [item.name for item in images]
        self._run_job = job
        self._training_layers = set(self._training_images) | {
            self._scribbles_of(name).name for name in self._training_images}
        for name in self._training_images:
            self._ensure_result_layer(name)
        worker = self.job.launch(job, self._on_event, self._show_finished)
        if live:
            self.save_button.setEnabled(True)  # saves the model kept so far
        return worker

    def stop_training(self) -> None:
        self.job.stop()

    def _ensure_result_layer(self, name: str) -> None:
        like = self.viewer.layers[name] if name in self.viewer.layers else None
        if like is not None and result_name(name) not in self.viewer.layers:
            show_result_layer(self.viewer, result_name(name), np.zeros(like.data.shape[:2], np.uint8),
                              like, self._classes_for_run, opacity=0.5)

    def _on_event(self, event) -> None:
        if event.kind is api.EventKind.PREVIEW:
            for name, preview in event.previews.items():
                if name not in self._training_images:  # an image ticked during live training
                    self._training_images.append(name)
                    self._ensure_result_layer(name)
                if self._live_run:
                    self._show_live_phases(name, preview)
                else:
                    self._show_phases(name, preview)
                if event.name == "quick":
                    self.live.claim(name)

    def _show_live_phases(self, name: str, labels: np.ndarray) -> None:
        """Draw a live training preview, unless the user painted on the phases layer since
        live training or the live preview last drew it (a long run must not undo corrections)."""
        layer = self.live._phases_layer(name)
        drawn = self._live_drawn.get(name)
        ours = drawn is not None and layer is not None and layer.data is drawn[0] \
            and np.array_equal(layer.data, drawn[1])
        if layer is not None and not ours and not self.live.may_draw(name):
            return
        self._show_phases(name, labels)
        layer = self.live._phases_layer(name)
        if layer is not None:
            self._live_drawn[name] = (layer.data, np.array(layer.data, copy=True))

    def _show_phases(self, name: str, labels: np.ndarray) -> None:
        like = self.viewer.layers[name] if name in self.viewer.layers else None
        if like is not None:
            show_result_layer(self.viewer, result_name(name), labels, like, self._classes_for_run,
                              opacity=0.5)

    def _show_finished(self, bundle) -> None:
        if bundle is None:
            return
        name = f"trained on {', '.join(self._training_images)}"
        before = self._start_entry
        if before is not None and before.bundle is not bundle \
                and not api.predicts_alike(bundle, before.bundle):
            # the model this round started from, to go back to when the round made it worse
            self.registry.add(replace(before, name=f"{name} (before the last round)"))
        self.model_entry = self.registry.add(
            ModelEntry(name, bundle, strokes=list(self._run_job.images)), make_current=True)
        self.save_button.setEnabled(True)
        p = bundle.provenance
        if p.get("steps") and not self._live_run:  # a live run's time includes its idling
            self._seconds_per_step = float(p.get("seconds", 0)) / p["steps"]
            self._show_estimate()
        self._done_text = self.status.text() + ("\nPaint more (on these or other images, where "
                                                "the outlines suggest) and press Train again to "
                                                "continue from this model.")
        self.suggest_regions(self._training_images, after_training=True)

    def _show_estimate(self) -> None:
        """Say how long the budget's steps will take here, at the pace of the last run."""
        if self._seconds_per_step is None:
            self.estimate.setText("")
            return
        seconds = self.steps.value() * self._seconds_per_step
        self.estimate.setText(f"≈ {api.format_seconds(seconds)} on this machine, at the pace of "
                              "the last run")

    # where to paint next ---------------------------------------------------------------------
    def suggest_regions(self, names: list[str] | None = None, after_training: bool = False):
        """Predict ``names`` (default: the ticked images) with the current model, show its phases
        and outline the regions most worth painting; returns the worker (None without a model)."""
        entry = self.model_entry or self.models.entry()
        bundle = entry.bundle if entry is not None else None
        if bundle is None or bundle.kind != "segmentation":
            show_warning("Train a model first: suggestions come from its uncertainty.")
            return None
        if self.job.running:
            return None
        names = [n for n in (names or self.training_images()) if n in self.viewer.layers]
        sources = []
        for name in names:
            strokes = self._scribbles_of(name)
            sources.append(api.ImageSource(name, data=np.asarray(self.viewer.layers[name].data),
                                           strokes=None if strokes is None else np.asarray(strokes.data)))
        try:
            job = api.predict(bundle, sources, api.PredictOptions(
                info_band=AS_TRAINED if self.band_check.isChecked() else 0, suggest=5))
        except MatsegError as exc:
            show_error(str(exc))
            return None
        self._classes_for_run = [{"name": n, "colour": c}
                                 for n, c in zip(bundle.class_names, bundle.class_colours)]
        self._regions, self._region_index = [], -1
        self._after_training = after_training
        return self.job.launch(job, self._on_suggestion, self._suggestions_done)

    def _on_suggestion(self, event) -> None:
        if event.kind is not api.EventKind.RESULT or event.failed:
            return
        self._show_phases(event.name, event.prediction.labels)
        like = self.viewer.layers[event.name] if event.name in self.viewer.layers else None
        if like is not None:
            show_guidance(self.viewer, like, event.result)
            self._regions += [(event.name, region) for region in event.result or []]

    def _suggestions_done(self, _summary) -> None:
        self._regions.sort(key=lambda item: -item[1].score)
        self.next_button.setEnabled(bool(self._regions))
        where = (f"{len(self._regions)} regions to paint next are outlined (yellow, numbered): "
                 "Next region ▸ goes to each" if self._regions
                 else "no doubtful region left to suggest")
        prefix = self._done_text if self._after_training else ""
        self.status.setText((prefix + "\n" if prefix else "") + where + ".")
        if self._regions and not self._after_training:
            self.next_region()

    def next_region(self) -> None:
        """Centre the view on the next suggested region (cycling)."""
        if not self._regions:
            return
        self._region_index = (self._region_index + 1) % len(self._regions)
        name, region = self._regions[self._region_index]
        if name in self.viewer.layers:
            centre_on(self.viewer, self.viewer.layers[name], region)
            if self.image_combo.findText(name) >= 0:
                self.image_combo.setCurrentText(name)
            layer = self._scribbles_of(name)
            if layer is not None:
                self.viewer.layers.selection.active = layer
                layer.mode = "paint"

    def save_model(self, path: str | None = None):
        """Write the current model as a bundle (asks for a file when ``path`` is None)."""
        job = self.job.job
        if isinstance(job, api.LiveTrainingJob):
            bundle = job.best_so_far()
            if bundle is None:
                show_warning("Nothing to save yet: live training has not evaluated a model.")
                return None
            return self.job.save(ModelEntry("live training, best so far", bundle), path,
                                 "Save model", "model.matseg")
        return self.job.save(self.model_entry, path, "Save model", "model.matseg")
