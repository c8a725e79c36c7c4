"""Measure: phase fractions with confidence, ASTM E112 grain size and particle statistics of the
phases layers, with plots; the scale from the file, the layer, or a line along the scale bar.
The boundaries the grains were counted on are shown as a layer, and numbers resting on a class
the predicting model's self-check doubts say so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (QCheckBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                            QHBoxLayout, QMessageBox, QPushButton, QSpinBox, QTableWidget,
                            QTableWidgetItem, QTabWidget, QWidget)

from .. import api
from ..core.calibration import Calibration, calibration_from_line
from ..core.errors import MatsegError
from ..core.measure import BoundaryNetworkConfig
from .check_list import CheckList
from .job_controls import JobControls
from .layers import (CLASSES_KEY, DIAGNOSIS_KEY, IMAGE_KEY, ROLE_KEY, layer_pixel_size,
                     micrograph_layers)
from .scrolling import scrolling_layout, shrinkable_combo
from .session import registry_for

NO_CLASS = "(none)"
NETWORK_ROLE = "boundary-network"
NETWORK_COLOUR = "#00e5ff"


def phases_layers(viewer):
    """Return the label layers that hold predicted phases (with their class table)."""
    from napari.layers import Labels

    return [layer for layer in viewer.layers if isinstance(layer, Labels)
            and layer.metadata.get(ROLE_KEY) == "result-labels" and layer.metadata.get(CLASSES_KEY)]


class MeasureWidget(QWidget):
    """Dock widget: pick phases layers and what to measure; see a table and plots; export."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.registry = registry_for(napari_viewer)
        self.report: api.MeasureReport | None = None
        self._measured_layers: dict = {}
        self.layers_list = CheckList(80)
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setDecimals(5)
        self.pixel_size.setRange(0, 1e4)
        self.pixel_size.setSpecialValueText("from each layer's scale")
        self.pixel_size.setSuffix(" µm/px")
        self.image_combo = shrinkable_combo()
        self.bar_length = QDoubleSpinBox()
        self.bar_length.setRange(0, 1e6)
        self.bar_length.setSuffix(" µm")
        self.bar_length.setToolTip("The length written on the scale bar")
        self.scale_button = QPushButton("Set scale from line")
        self.scale_button.setToolTip("Draw a line along the image's scale bar in a Shapes layer "
                                     "(select it), type the bar's length, then press this")
        self.boundary_combo = shrinkable_combo()
        defaults = BoundaryNetworkConfig()
        self.thin_check = QCheckBox("thin to a closed network")
        self.thin_check.setChecked(True)
        self.thin_check.setToolTip(defaults.describe().capitalize() + ". Unticked: grains are "
                                   "counted on the boundary class as predicted.")
        self.max_gap = QSpinBox()
        self.max_gap.setRange(0, 100)
        self.max_gap.setValue(defaults.max_gap)
        self.max_gap.setSuffix(" px")
        self.max_gap.setToolTip("Gaps in the boundaries up to this width are bridged")
        self.thin_check.toggled.connect(self.max_gap.setEnabled)
        self.particles_list = CheckList(70, default=lambda name: False)
        self.job = JobControls(self, "Measure", "Measurement", "predict phases, then Measure",
                               plot=False, save=False)
        self.measure_button, self.progress, self.status = (self.job.start_button, self.job.progress,
                                                           self.job.status)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write measurements.csv, the particle tables and the plots "
                                      "(PNG and SVG) to a folder")
        self.export_button.setEnabled(False)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "table")
        self.tabs.setMinimumHeight(220)

        what = QGroupBox("Phases and what to measure")
        form = QFormLayout(what)
        form.addRow("phases layers", self.layers_list)
        form.addRow("grain boundaries", self.boundary_combo)
        network = QHBoxLayout()
        network.addWidget(self.thin_check)
        network.addWidget(self.max_gap)
        form.addRow("bridge gaps up to", network)
        form.addRow("particles", self.particles_list)
        scale = QGroupBox("Scale")
        sform = QFormLayout(scale)
        sform.addRow("pixel size", self.pixel_size)
        sform.addRow("image", self.image_combo)
        row = QHBoxLayout()
        row.addWidget(self.bar_length)
        row.addWidget(self.scale_button)
        sform.addRow("scale bar", row)
        layout, footer = scrolling_layout(self)
        layout.addWidget(what)
        layout.addWidget(scale)
        layout.addStretch()
        buttons = QHBoxLayout()
        buttons.addWidget(self.measure_button)
        buttons.addWidget(self.export_button)
        footer.addLayout(buttons)
        footer.addWidget(self.progress)
        footer.addWidget(self.job.status_area)
        footer.addWidget(self.tabs, 1)

        self.measure_button.clicked.connect(lambda: self.measure())
        self.export_button.clicked.connect(lambda: self.export())
        self.scale_button.clicked.connect(lambda: self.scale_from_line())
        self.layers_list.itemChanged.connect(lambda _: self._refresh_classes())
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed):
            ev.connect(self._refresh)
        self.destroyed.connect(lambda *_: self.job.stop())
        self._refresh()

    # inputs ---------------------------------------------------------------------------------
    def _refresh(self, *_):
        self.layers_list.set_items([layer.name for layer in phases_layers(self.viewer)])
        current = self.image_combo.currentText()
        self.image_combo.clear()
        self.image_combo.addItems([layer.name for layer in micrograph_layers(self.viewer)])
        if current:
            self.image_combo.setCurrentText(current)
        self._refresh_classes()

    def selected_layers(self):
        return [self.viewer.layers[name] for name in self.layers_list.checked()
                if name in self.viewer.layers]

    def class_names(self) -> list[str]:
        layers = self.selected_layers()
        return [c["name"] for c in layers[0].metadata[CLASSES_KEY]] if layers else []

    def _refresh_classes(self):
        names = self.class_names()
        boundary = self.boundary_combo.currentText()
        self.boundary_combo.clear()
        self.boundary_combo.addItems([NO_CLASS] + names)
        if boundary in names:
            self.boundary_combo.setCurrentText(boundary)
        self.particles_list.set_items(names)

    def options(self) -> api.MeasureOptions:
        boundary = self.boundary_combo.currentText()
        particles = tuple(self.particles_list.checked())
        network = (BoundaryNetworkConfig(max_gap=self.max_gap.value())
                   if self.thin_check.isChecked() else None)
        return api.MeasureOptions(grain_boundaries=None if boundary in ("", NO_CLASS) else boundary,
                                  particles=particles, pixel_size=self.pixel_size.value() or None,
                                  boundary_network=network, keep_networks=True)

    def _sources(self) -> list[api.LabelSource]:
        sources, self._measured_layers = [], {}
        for layer in self.selected_layers():
            image = layer.metadata.get(IMAGE_KEY)
            size = layer_pixel_size(layer)
            calibration = None
            if size:
                source = (self.viewer.layers[image].metadata.get("scale_source")
                          if image in self.viewer.layers else None)
                calibration = Calibration(size, source or "napari layer scale")
            sources.append(api.LabelSource(image or layer.name, data=np.asarray(layer.data),
                                           calibration=calibration,
                                           diagnosis=layer.metadata.get(DIAGNOSIS_KEY)))
            self._measured_layers[sources[-1].name] = layer
        return sources

    # running --------------------------------------------------------------------------------
    def measure(self):
        """Measure the ticked phases layers in a worker; returns the worker (None if unusable)."""
        if self.job.running:
            return None
        try:
            layers = self.selected_layers()
            if not layers:
                raise MatsegError("Predict phases first (Predict & Inspect), then tick the phases "
                                  "layers to measure.")
            classes = layers[0].metadata[CLASSES_KEY]
            job = api.measure(self._sources(), [c["name"] for c in classes], self.options(),
                              class_colours=[c["colour"] for c in classes])
        except MatsegError as exc:
            show_error(str(exc))
            return None
        return self.job.launch(job, self._on_event, self._show_report)

    def _on_event(self, event) -> None:
        if event.kind is api.EventKind.RESULT and not event.failed and event.result.grains is not None:
            self.show_network(event.name, event.result.grains.boundaries)

    def show_network(self, image: str, boundaries: np.ndarray | None):
        """Show the boundaries the grains of ``image`` were counted on as the Labels layer
        '<image> boundary network' over its phases layer; returns the layer (None if unshown)."""
        phases = self._measured_layers.get(image)
        if boundaries is None or phases is None:
            return None
        from napari.utils.colormaps import DirectLabelColormap

        data = np.zeros(phases.data.shape, np.uint8)
        data[:boundaries.shape[0], :boundaries.shape[1]] = boundaries
        layers, name = self.viewer.layers, f"{image} boundary network"
        if name in layers and layers[name].metadata.get(ROLE_KEY) != NETWORK_ROLE:
            name += " (matseg)"
        if name in layers:
            if layers[name].data.shape == data.shape:
                layers[name].data = data
                return layers[name]
            layers.remove(name)
        colours = DirectLabelColormap(color_dict={0: "transparent", 1: NETWORK_COLOUR,
                                                  None: "transparent"})
        return self.viewer.add_labels(data, name=name, scale=phases.scale[-2:],
                                      translate=phases.translate[-2:], colormap=colours,
                                      metadata={ROLE_KEY: NETWORK_ROLE, IMAGE_KEY: image})

    def _show_report(self, report) -> None:
        if report is None or not report.rows:
            return
        self.report = report
        self.export_button.setEnabled(True)
        columns = list(dict.fromkeys(k for r in report.rows for k in r))
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(report.rows))
        for i, row in enumerate(report.rows):
            for j, col in enumerate(columns):
                self.table.setItem(i, j, QTableWidgetItem(str(row.get(col, ""))))
        self.table.resizeColumnsToContents()
        while self.tabs.count() > 1:
            self.tabs.removeTab(1)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        from ..plots import report_figures

        for stem, figure in report_figures(report).items():
            canvas = FigureCanvasQTAgg(figure)
            canvas.setMinimumHeight(200)
            self.tabs.addTab(canvas, figure.get_label() or stem.replace("_", " "))
        self.tabs.setCurrentIndex(1)

    def export(self, folder: str | None = None, overwrite: bool | None = None):
        """Write the measurements shown (table, particle tables, plots) to ``folder``; asks
        before replacing an earlier export (``overwrite`` answers). Returns the files written."""
        if self.report is None:
            show_warning("Measure first: the export writes the measurements shown.")
            return []
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder for the measurements")
            if not folder:
                return []
        try:
            api.check_report_folder(Path(folder), bool(overwrite))
        except MatsegError as exc:
            if "already exists" not in str(exc) or overwrite is not None:
                show_error(str(exc))
                return []
            if QMessageBox.question(self, "Replace?", f"{exc}\n\nReplace it?") != QMessageBox.Yes:
                return []
        written = api.write_report(self.report, Path(folder))
        show_info(f"{len(written)} file(s) written to {folder}")
        return written

    def scale_from_line(self):
        """Set the chosen image's scale from the last line of the selected Shapes layer and the
        scale bar's length; its phases, strokes and other layers follow. Returns the
        calibration, or None."""
        from napari.layers import Shapes

        shapes = self.viewer.layers.selection.active
        image_name = self.image_combo.currentText()
        lines = ([d for d, kind in zip(shapes.data, shapes.shape_type) if kind in ("line", "path")]
                 if isinstance(shapes, Shapes) else [])
        if not lines:
            show_warning("Draw a line along the scale bar in a Shapes layer and select that layer.")
            return None
        if image_name not in self.viewer.layers:
            show_warning("Open the micrograph first.")
            return None
        image = self.viewer.layers[image_name]
        points = np.asarray(lines[-1])[:, -2:]
        world = points * np.asarray(shapes.scale[-2:]) + np.asarray(shapes.translate[-2:])
        to_pixels = (world - np.asarray(image.translate[-2:])) / np.asarray(image.scale[-2:])
        try:
            calibration = calibration_from_line(to_pixels[0], to_pixels[-1], self.bar_length.value())
        except MatsegError as exc:
            show_error(str(exc))
            return None
        size = calibration.pixel_size
        for layer in self.viewer.layers:
            if layer is image or layer.metadata.get(IMAGE_KEY) == image_name:
                layer.scale = (size, size)
                layer.units = ("µm", "µm")
        image.metadata["scale_source"] = calibration.source
        self.viewer.reset_view()
        self.status.setText(f"{image_name}: {size:.5g} µm per pixel ({calibration.source})")
        return calibration
