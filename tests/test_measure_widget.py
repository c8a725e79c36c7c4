"""The Measure dock shows the boundary network the grains were counted on, and says when a number
rests on a class the predicting model's self-check doubts (GUI: napari, Qt and a display)."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_matseg.testing.boundaries import thick_broken_boundaries  # noqa: E402
from napari_matseg.testing.synthetic import voronoi_grains  # noqa: E402
from napari_matseg.widgets.layers import DIAGNOSIS_KEY, show_result_layer  # noqa: E402

CLASSES = [{"name": "grain", "colour": "#cccccc"}, {"name": "boundary", "colour": "#000000"}]
DOUBTFUL_BOUNDARY = {"recall": {"1": 0.97, "2": 0.31}, "held_out": True,
                     "warnings": ["the model labels only 31% of the held-out strokes of "
                                  "'boundary' correctly: paint more of it"]}


def _measured(measure, qtbot):
    measure.report = None
    worker = measure.measure()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: measure.report is not None, timeout=5000)
    return measure.report


def test_measure_dock_shows_the_boundary_network_and_the_self_checks_doubt(make_napari_viewer, qtbot):
    from napari_matseg.widgets import MeasureWidget

    viewer = make_napari_viewer()
    truth = voronoi_grains((200, 240), 40, seed=3)
    labels = np.where(thick_broken_boundaries(truth == 2, widen=3, gaps=6, seed=3), 2, 1)
    image = viewer.add_image(labels.astype(np.float32), name="steel")
    phases = show_result_layer(viewer, "steel phases", labels, image, CLASSES)
    phases.metadata[DIAGNOSIS_KEY] = DOUBTFUL_BOUNDARY
    measure = MeasureWidget(viewer)
    measure.boundary_combo.setCurrentText("boundary")
    measure.pixel_size.setValue(0.5)
    report = _measured(measure, qtbot)
    network = viewer.layers["steel boundary network"]
    assert network.data.shape == labels.shape and 0 < network.data.sum() < (labels == 2).sum() / 3
    assert report.rows[0]["grain boundaries counted on"].startswith("thinned network")
    assert "31%" in report.rows[0]["grain size self-check"]
    header = [measure.table.horizontalHeaderItem(i).text() for i in range(measure.table.columnCount())]
    assert "grain size self-check" in header and "grain boundaries counted on" in header
    status = measure.status.text()
    assert "ASTM E112 grain size G" in status and "doubtful" in status

    measure.thin_check.setChecked(False)
    assert not measure.max_gap.isEnabled()
    phases.metadata[DIAGNOSIS_KEY] = None
    report = _measured(measure, qtbot)
    assert report.rows[0]["grain boundaries counted on"] == "raw mask"
    assert "grain size self-check" not in report.rows[0]
    assert viewer.layers["steel boundary network"] is network, "refreshed in place"
    np.testing.assert_array_equal(network.data, labels == 2)
    assert "doubtful" not in measure.status.text()


def test_predicted_phases_carry_the_models_self_check(make_napari_viewer, qtbot):
    from napari_matseg.core.bundle import ModelBundle
    from napari_matseg.core.model import ModelConfig, build_model
    from napari_matseg.widgets import PredictInspectWidget
    from napari_matseg.widgets.session import ModelEntry

    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="steel")
    model, _ = build_model(ModelConfig(num_classes=2), encoder_weights=None)
    bundle = ModelBundle(model, ["grain", "boundary"], provenance={"diagnosis": DOUBTFUL_BOUNDARY})
    predict = PredictInspectWidget(viewer)
    predict.registry.add(ModelEntry("doubtful", bundle), make_current=True)
    worker = predict.predict_layers(["steel"])
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    assert viewer.layers["steel phases"].metadata[DIAGNOSIS_KEY] == DOUBTFUL_BOUNDARY
