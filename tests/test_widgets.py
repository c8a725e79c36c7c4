"""GUI tests: need napari, a Qt binding and a display (Xvfb on CI)."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_matseg.core.cleanup import class_regions, remove_small_regions  # noqa: E402
from napari_matseg.core.simulate import ScribbleSimulation, simulate_scribbles  # noqa: E402
from napari_matseg.core.synthetic import voronoi_micrograph  # noqa: E402
from napari_matseg.widgets import AnnotateTrainWidget, PredictInspectWidget, PretrainWidget  # noqa: E402
from napari_matseg.widgets.layers import CLASSES_KEY  # noqa: E402


@pytest.fixture
def viewer_with_image(make_napari_viewer):
    viewer = make_napari_viewer()
    image, truth = voronoi_micrograph((128, 128), grains=16, seed=2)
    viewer.add_image(image, name="steel")
    return viewer, image, truth


@pytest.fixture
def fast_training(monkeypatch):
    import napari_matseg.core.finetune as ft

    for field, value in (("crop_size", 64), ("batch_size", 4), ("eval_every", 5),
                         ("validation_fraction", 0.0)):
        monkeypatch.setattr(ft.FinetuneConfig, field, value)


def _errors(monkeypatch):
    import napari_matseg.widgets.model_picker as mp
    import napari_matseg.widgets.predict_widget as pw
    import napari_matseg.widgets.pretrain_widget as ptw
    import napari_matseg.widgets.train_widget as tw

    messages = []
    for module in (tw, pw, mp, ptw):
        monkeypatch.setattr(module, "show_error", messages.append)
        if hasattr(module, "show_warning"):
            monkeypatch.setattr(module, "show_warning", messages.append)
    return messages


def _paint(layer, truth):
    strokes = simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=20, stroke_width=3,
                                                                  erosion=1, painted_fraction=0.04))
    layer.data = strokes.astype(layer.data.dtype)
    return strokes


def test_widgets_are_registered_through_npe2(make_napari_viewer):
    viewer = make_napari_viewer()
    _, train = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    _, predict = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    _, pretrain = viewer.window.add_plugin_dock_widget("napari-matseg", "Pretrain")
    assert isinstance(train, AnnotateTrainWidget)
    assert isinstance(predict, PredictInspectWidget)
    assert isinstance(pretrain, PretrainWidget)


def test_sample_data_opens_through_npe2(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-matseg", "ni_superalloy")
    assert viewer.layers[0].data.shape == (512, 512)


def test_train_preview_and_phase_table(viewer_with_image, qtbot, fast_training, monkeypatch):
    viewer, image, truth = viewer_with_image
    errors = _errors(monkeypatch)
    train = AnnotateTrainWidget(viewer)
    predict = PredictInspectWidget(viewer)
    scribbles = train.new_scribble_layer()
    assert scribbles.data.shape == image.shape and scribbles.mode == "paint"
    train.classes.add_class()
    names = ["ferrite", "pearlite", "carbide"]
    for row, name in enumerate(names):
        train.classes.table.item(row, 0).setText(name)
    assert [c["name"] for c in scribbles.metadata[CLASSES_KEY]] == names
    painted = _paint(scribbles, truth)
    train.budget.setValue(5)
    worker = train.start_training()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.save_button.isEnabled(), timeout=5000)
    # a 5-second run is too short to trust, and the widget says so (nothing else goes wrong)
    assert len(errors) == 1 and "trained model looks unreliable: trained only" in errors[0]
    assert "Check before trusting it: trained only" in train.status.text()
    preview = viewer.layers["steel prediction"]
    assert [c["name"] for c in preview.metadata[CLASSES_KEY]] == names
    assert set(np.unique(preview.data)) <= {1, 2, 3}
    np.testing.assert_array_equal(scribbles.data, painted), "strokes are never touched"
    assert predict.model_combo.currentText() == "trained on steel"

    worker = predict.predict_layers(["steel"])
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    phases = viewer.layers["steel phases"]
    assert "steel uncertainty" in viewer.layers
    rows = predict.table.rows
    assert [r["class"] for r in rows] == names
    expected = np.bincount(phases.data.ravel(), minlength=4)[1:] / phases.data.size * 100
    np.testing.assert_allclose([r["area %"] for r in rows], expected, atol=1e-3)
    predict.table.selectRow(2)
    assert phases.selected_label == 3 and phases.show_selected_label

    predict.min_area.setText("ferrite=400 bainite=10")
    assert predict.predict_layers(["steel"]) is None
    assert "no class 'bainite'" in errors[-1]
    before = phases.data.copy()
    smallest = {c: int(class_regions(before, c)[1][1:].min()) for c in np.unique(before) if c > 0}
    cls = min(smallest, key=smallest.get)
    predict.min_area.setText(f"{names[cls - 1]}={smallest[cls] + 1}")
    worker = predict.predict_layers(["steel"])
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    tidy = viewer.layers["steel phases"].data
    np.testing.assert_array_equal(tidy, remove_small_regions(before, {int(cls): smallest[cls] + 1}))
    assert (tidy != before).any()


def _start_long_training(viewer, truth, qtbot):
    train = AnnotateTrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="train")
    _paint(train.new_scribble_layer(), truth)
    train.classes.add_class()
    train.budget.setValue(600)
    worker = train.start_training()
    qtbot.waitUntil(lambda: train.tuner is not None and train.tuner.steps_done >= 3, timeout=30_000)
    return train, worker


def test_stop_ends_training_and_keeps_a_model(viewer_with_image, qtbot, fast_training):
    viewer, _, truth = viewer_with_image
    train, worker = _start_long_training(viewer, truth, qtbot)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        train.stop_button.click()
    assert train.model_entry is not None
    assert "stopped" in train.status.text()


def test_user_mistakes_become_notifications(viewer_with_image, qtbot, monkeypatch, tmp_path):
    viewer, _, truth = viewer_with_image
    errors = _errors(monkeypatch)
    train = AnnotateTrainWidget(viewer)
    assert train.start_training() is None
    assert "New scribble layer" in errors[-1]
    layer = train.new_scribble_layer()
    assert train.start_training() is None
    assert "nothing is painted" in errors[-1]
    layer.data[5:10, 5:10] = 1
    assert train.start_training() is None
    assert "only class 1" in errors[-1]
    rgb_stack = viewer.add_image(np.zeros((3, 128, 128), np.uint8), name="stack", rgb=False)
    train.image_combo.setCurrentText("stack")
    train.scribble_combo.addItem(layer.name)
    train.scribble_combo.setCurrentText(layer.name)
    assert train.start_training() is None
    assert "2-D image" in errors[-1]
    viewer.layers.remove(rgb_stack)
    layer.data[20:25, 20:25] = 3
    assert train.start_training() is None
    assert "add a class row" in errors[-1]
    bad = tmp_path / "bad.matseg"
    bad.write_bytes(b"garbage")
    assert train.load_model(str(bad)) is None
    assert "not a readable model bundle" in errors[-1]
    predict = PredictInspectWidget(viewer)
    predict.model_combo.setCurrentIndex(0)
    assert predict.predict_layers(["steel"]) is None
    assert "Choose a model" in errors[-1]


def test_removing_the_image_stops_training(viewer_with_image, qtbot, fast_training):
    viewer, _, truth = viewer_with_image
    train = AnnotateTrainWidget(viewer)
    _paint(train.new_scribble_layer(), truth)
    train.classes.add_class()
    train.budget.setValue(600)
    worker = train.start_training()
    qtbot.waitUntil(lambda: train.tuner is not None and train.tuner.steps_done >= 2, timeout=30_000)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        viewer.layers.remove("steel")
    assert train.worker is None


def test_closing_the_viewer_stops_training(viewer_with_image, qtbot, fast_training):
    viewer, _, truth = viewer_with_image
    train, worker = _start_long_training(viewer, truth, qtbot)
    tuner = train.tuner
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        viewer.close()
    assert tuner.stopping


def test_information_band_is_outlined_and_toggled(make_napari_viewer):
    viewer = make_napari_viewer()
    image, _ = voronoi_micrograph((120, 128), seed=2)
    band = np.zeros((16, 128), np.uint8)
    band[5:9, 10:60] = 255
    viewer.add_image(np.concatenate([image, band]), name="sem")
    train = AnnotateTrainWidget(viewer)
    assert "16 rows detected" in train.band_label.text()
    outline = viewer.layers["sem information band"]
    assert outline.data[0][:, 0].min() == pytest.approx(119.5)
    train.band_check.setChecked(False)
    assert "sem information band" not in viewer.layers
    assert train.info_band() == 0


def test_a_painted_layer_with_the_result_name_is_not_overwritten(viewer_with_image):
    from napari_matseg.widgets.layers import show_result_layer

    viewer, image, _ = viewer_with_image
    mine = viewer.add_labels(np.ones(image.shape, np.uint8), name="steel prediction")
    layer = show_result_layer(viewer, "steel prediction", np.full(image.shape, 2, np.uint8),
                              viewer.layers["steel"])
    assert layer is not mine and (mine.data == 1).all()
    assert layer.name == "steel prediction (matseg)"


def test_a_long_status_line_scrolls_instead_of_being_clipped(make_napari_viewer, qtbot):
    from napari_matseg.widgets.scrolling import FittingScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 650)
    train = AnnotateTrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="train")
    viewer.window.add_dock_widget(PredictInspectWidget(viewer), name="predict")
    warning = "matrix: recall 16 % on the held-out strokes (below 50 %)"
    train.status.setText("done: 180 steps in 120 s. Check before trusting it: "
                         + "; ".join([warning] * 3) + ". END")
    qtbot.wait(200)
    area = train.findChild(FittingScrollArea)
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0
    label = train.status
    assert label.height() >= label.heightForWidth(label.width())
    assert label.height() < area.viewport().height()
    area.ensureWidgetVisible(label, 0, 0)
    qtbot.wait(50)
    top = label.mapTo(area.viewport(), label.rect().topLeft()).y()
    assert 0 <= top and top + label.height() <= area.viewport().height()


def test_stacked_docks_share_the_column_height(make_napari_viewer, qtbot):
    """Docks opened one after the other (as the Plugins menu does) split the column 3:2, so
    Annotate & Train keeps its Train button in view; Qt alone gave Predict & Inspect an 89-px
    strip of 740."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 800)
    train_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    qtbot.wait(100)
    predict_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    qtbot.wait(200)
    total = train_dock.height() + predict_dock.height()
    assert 0.3 < predict_dock.height() / total < 0.5


def test_a_dragged_divider_is_left_alone(make_napari_viewer, qtbot):
    from qtpy.QtGui import QShowEvent
    from qtpy.QtWidgets import QApplication

    from napari_matseg.widgets.scrolling import FittingScrollArea, share_dock_height

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 800)
    train_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    predict_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    qtbot.wait(200)
    share_dock_height([train_dock, predict_dock], [1, 4])  # as if the user dragged the divider
    qtbot.wait(100)
    before = predict_dock.height()
    for dock in (train_dock, predict_dock):
        QApplication.sendEvent(dock.findChild(FittingScrollArea), QShowEvent())
    qtbot.wait(200)
    assert abs(predict_dock.height() - before) <= 2


def test_launch_opens_sample_with_both_widgets(make_napari_viewer, monkeypatch):
    from napari_matseg import launch

    monkeypatch.setattr(napari, "Viewer", lambda **kw: make_napari_viewer())
    viewer = launch.open_viewer()
    names = [layer.name for layer in viewer.layers]
    assert names[0].startswith("Ni superalloy") and names[-1].endswith("scribbles")
    assert viewer.layers.selection.active.name == names[-1]
    docks = " ".join(viewer.window._dock_widgets)
    assert "Annotate & Train" in docks and "Predict & Inspect" in docks


def _tiny_pretraining(widget, monkeypatch, steps=3):
    from napari_matseg.core.pretrain import PretrainConfig

    def config():
        cfg = PretrainConfig(method=widget._method, max_steps=steps, max_seconds=None, batch_size=2,
                             crop_size=64, info_band=0, init="random")
        cfg.matssl.region = 96
        cfg.pscl.labelled_crops = 1
        cfg.sms.partitions = 2
        cfg.sms.score_repeats = 1
        return cfg

    monkeypatch.setattr(widget, "config", config)


def test_pretrain_widget_feeds_the_train_widget(viewer_with_image, qtbot, monkeypatch, fast_training,
                                                tmp_path):
    viewer, image, truth = viewer_with_image
    viewer.add_image(voronoi_micrograph((128, 128), grains=16, seed=5)[0], name="other")
    errors = _errors(monkeypatch)
    pretrain = PretrainWidget(viewer)
    train = AnnotateTrainWidget(viewer)
    predict = PredictInspectWidget(viewer)
    _tiny_pretraining(pretrain, monkeypatch)
    pretrain.from_layers.setChecked(True)
    assert pretrain.start() is None and errors == ["select at least one image layer to pretrain on"]
    errors.clear()
    for i in range(pretrain.layer_list.count()):
        pretrain.layer_list.item(i).setSelected(True)
    pretrain.method_combo.setCurrentText("SMS")
    worker = pretrain.start()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: pretrain.save_button.isEnabled(), timeout=5000)
    assert not errors
    name = "pretrained sms (2 images)"
    assert name in [train.model_combo.itemText(i) for i in range(train.model_combo.count())]
    assert name not in [predict.model_combo.itemText(i) for i in range(predict.model_combo.count())]
    saved = pretrain.save(str(tmp_path / "enc.matseg"))
    assert predict.load_model(str(saved)) is None and "fine-tune it" in errors[-1]
    errors.clear()

    _paint(train.new_scribble_layer(), truth)
    train.classes.add_class()
    train.models.select(name)
    train.budget.setValue(5)
    worker = train.start_training()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.save_button.isEnabled(), timeout=5000)
    assert not [e for e in errors if "looks unreliable: trained only" not in e]
    assert train.model_entry.bundle.provenance["pretraining_method"] == "sms"


def test_pretrain_widget_pscl_needs_a_scribble_layer_and_stop_works(viewer_with_image, qtbot,
                                                                    monkeypatch, tmp_path):
    viewer, image, truth = viewer_with_image
    errors = _errors(monkeypatch)
    pretrain = PretrainWidget(viewer)
    _tiny_pretraining(pretrain, monkeypatch, steps=10_000)
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(image).save(folder / "a.png")
    pretrain.method_combo.setCurrentText("PSCL")
    pretrain.folder.setText(str(folder))
    assert pretrain.start() is None and "scribble layer" in errors[-1]
    train = AnnotateTrainWidget(viewer)
    _paint(train.new_scribble_layer(), truth)
    errors.clear()
    worker = pretrain.start()
    qtbot.waitUntil(lambda: pretrain.trainer is not None and pretrain.trainer.steps_done >= 2,
                    timeout=60_000)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pretrain.stop_button.click()
    qtbot.waitUntil(lambda: pretrain.save_button.isEnabled(), timeout=5000)
    assert not errors and pretrain.result.bundle.provenance["stop_reason"] == "stopped"
