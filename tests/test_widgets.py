"""GUI tests: need napari, a Qt binding and a display (Xvfb on CI)."""

import sys

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_matseg.core.cleanup import class_regions, remove_small_regions  # noqa: E402
from napari_matseg.testing.simulate import ScribbleSimulation, simulate_scribbles  # noqa: E402
from napari_matseg.testing.synthetic import voronoi_micrograph  # noqa: E402
from napari_matseg.widgets import AnnotateTrainWidget, PredictInspectWidget, PretrainWidget  # noqa: E402
from napari_matseg.widgets.layers import CLASSES_KEY  # noqa: E402


@pytest.fixture
def viewer_with_image(make_napari_viewer):
    viewer = make_napari_viewer()
    image, truth = voronoi_micrograph((128, 128), grains=16, seed=2)
    viewer.add_image(image, name="steel")
    return viewer, image, truth


@pytest.fixture
def fast_training(small_recipe):
    return small_recipe


def _errors(monkeypatch):
    import napari_matseg.widgets.job_controls as jc
    import napari_matseg.widgets.model_picker as mp
    import napari_matseg.widgets.predict_widget as pw
    import napari_matseg.widgets.pretrain_widget as ptw
    import napari_matseg.widgets.train_widget as tw

    messages = []
    for module in (tw, pw, mp, ptw, jc):
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
    assert predict.tta.isChecked() and predict.options().tta, "the dock predicts as the API does"
    scribbles = train.new_scribble_layer()
    assert scribbles.data.shape == image.shape and scribbles.mode == "paint"
    train.classes.add_class()
    names = ["ferrite", "pearlite", "carbide"]
    for row, name in enumerate(names):
        train.classes.table.item(row, 0).setText(name)
    assert [c["name"] for c in scribbles.metadata[CLASSES_KEY]] == names
    train.classes.table.setCurrentCell(2, 0)
    assert scribbles.selected_label == 3, "picking a class by name paints it"
    assert scribbles.get_status((1, 1), world=True)["coordinates"].endswith("class: unlabelled")
    painted = _paint(scribbles, truth)
    train.steps.setValue(5)
    worker = train.start_training()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.save_button.isEnabled(), timeout=5000)
    # a 5-step run is too short to trust, and the widget says so (nothing else goes wrong)
    assert len(errors) == 1 and errors[0].startswith("MatSeg: ") and "see the dock" in errors[0]
    assert len(errors[0]) < 40, "the toast fits a narrow canvas; the dock says it all"
    assert "Check before trusting it:\n• trained only 5 steps" in train.status.text()
    preview = viewer.layers["steel phases"]
    assert [c["name"] for c in preview.metadata[CLASSES_KEY]] == names
    assert set(np.unique(preview.data)) <= {1, 2, 3}
    np.testing.assert_array_equal(scribbles.data, painted), "strokes are never touched"
    assert predict.model_combo.currentText() == "trained on steel"

    worker = predict.predict_layers(["steel"])
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    phases = viewer.layers["steel phases"]
    assert phases is preview, "the preview and the final phases are one layer"
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
    train.steps.setValue(100_000)
    worker = train.start_training()
    qtbot.waitUntil(lambda: train.tuner is not None and train.tuner.steps_done >= 3, timeout=30_000)
    return train, worker


def test_stop_ends_training_and_keeps_a_model(viewer_with_image, qtbot, fast_training):
    viewer, _, truth = viewer_with_image
    train, worker = _start_long_training(viewer, truth, qtbot)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        train.stop_button.click()
    assert train.model_entry is not None
    assert "stopped on request" in train.status.text()


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
    layer.refresh()
    assert train.start_training() is None
    assert "only class 1" in errors[-1]
    layer.data[20:25, 20:25] = 3
    assert train.start_training() is None
    assert "add a class for every label you paint" in errors[-1]
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
    train, worker = _start_long_training(viewer, truth, qtbot)
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


def _visible_in_window(widget, window) -> bool:
    """True when all of ``widget`` is shown inside the main window: on screen, not clipped by a
    scroll area or a dock that is too short."""
    from qtpy.QtCore import QRect

    if not widget.isVisible():
        return False
    rect = QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())
    clip = widget.visibleRegion().boundingRect()
    return window.rect().contains(rect) and clip.size() == widget.size()


@pytest.mark.parametrize("size", [(1066, 651), (1280, 800), (1920, 1080)])
def test_main_controls_are_in_view_at_common_window_sizes(make_napari_viewer, qtbot, size):
    """napari opens at 1066 x 651 on a fresh profile: Train, its progress bar and status line,
    and Predict with its phase table must all be visible there, even with a long status."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*size)
    _, train = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    _, predict = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    window = train.window()
    warning = "the model labels only 16% of the held-out strokes of 'matrix' correctly"
    train.status.setText("done: 180 steps in 120 s\nCheck before trusting it:\n• "
                         + "\n• ".join([warning] * 3))
    qtbot.wait(300)
    for widget in (train.train_button, train.progress, train.job.status_area,
                   predict.predict_button, predict.progress, predict.job.status_area):
        assert _visible_in_window(widget, window), (widget, size)
    area, label = train.job.status_area, train.status
    assert area.height() >= 5 * label.fontMetrics().lineSpacing(), "several lines of it show"
    area.ensureWidgetVisible(label, 0, 0)
    area.verticalScrollBar().setValue(area.verticalScrollBar().maximum())
    assert area.verticalScrollBar().maximum() == 0 or area.verticalScrollBar().value() > 0
    assert predict.table.visibleRegion().boundingRect().height() >= 60


def test_gui_predicts_on_the_device_the_api_picks(viewer_with_image, qtbot, trained, monkeypatch):
    """The Predict widget used to call the engine without a device (always the CPU): now the
    API picks it. A fake device hook stands in for a GPU."""
    import torch

    import napari_matseg.core.device as devices
    from napari_matseg.widgets.session import ModelEntry

    viewer, _, _ = viewer_with_image
    asked = []

    def fake_pick(preference=None):
        asked.append(preference)
        return torch.device("cpu", 0)

    monkeypatch.setattr(devices, "pick_device", fake_pick)
    predict = PredictInspectWidget(viewer)
    predict.registry.add(ModelEntry("trained", trained.to_bundle()), make_current=True)
    worker = predict.predict_layers(["steel"])
    job = predict.job.job
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    assert asked == ["auto"] and job.device == torch.device("cpu", 0)
    assert "steel phases" in viewer.layers


def test_predict_a_folder_after_adapting_the_model_to_it(viewer_with_image, qtbot, trained,
                                                          micrograph, scribbles, tmp_path,
                                                          fast_training):
    from PIL import Image

    from napari_matseg import api
    from napari_matseg.widgets.session import ModelEntry

    viewer, _, _ = viewer_with_image
    folder, out = tmp_path / "folder", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    for seed in range(2):
        Image.fromarray(voronoi_micrograph((96, 120), grains=10, phases=3, seed=30 + seed)[0]).save(
            folder / f"m{seed}.png")
    predict = PredictInspectWidget(viewer)
    predict.registry.add(ModelEntry("loaded", trained.to_bundle()), make_current=True)
    assert not predict.adapt_check.isEnabled(), "a model without its strokes cannot be adapted"
    strokes = [api.AnnotatedImage(micrograph[0], scribbles, "shot", info_band=0)]
    predict.registry.add(ModelEntry("trained here", trained.to_bundle(), strokes=strokes),
                         make_current=True)
    assert predict.adapt_check.isEnabled() and not predict.adapt_check.isChecked()
    predict.adapt_check.setChecked(True)
    predict.predict_folder(str(folder), str(out))
    assert isinstance(predict.job.job, api.FinetuneJob) and predict.job.job.unlabeled
    qtbot.waitUntil(lambda: (out / "phase_fractions.csv").exists() and not predict.job.running,
                    timeout=120_000)
    adapted = predict.registry.get("trained here, adapted to folder")
    assert adapted is not None and predict.bundle() is adapted.bundle
    learned = [item["name"] for item in adapted.bundle.provenance["unlabeled"]["images"]]
    assert learned == ["m0.png", "m1.png"]
    assert sorted(p.name for p in out.glob("*_labels.png")) == ["m0_labels.png", "m1_labels.png"]
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    predict.adapt_check.setChecked(True)
    predict.predict_folder(str(folder), str(stopped))
    predict.cancel()
    qtbot.waitUntil(lambda: not predict.job.running, timeout=60_000)
    assert list(stopped.iterdir()) == [], "a stopped adaptation predicts nothing"
    assert predict.folder_button.isEnabled()


def test_exported_label_images_are_named_as_the_api_names_them(viewer_with_image, tmp_path):
    """Export writes '<image>_labels.tif' as a prediction run does, and a second export gets new
    names instead of replacing the first."""
    from napari_matseg.widgets.layers import show_result_layer

    viewer, _, truth = viewer_with_image
    classes = [{"name": "M/A", "colour": "#ff0000"}, {"name": "matrix", "colour": "#00ff00"}]
    show_result_layer(viewer, "steel phases", (truth % 2 + 1).astype(np.uint8),
                      viewer.layers["steel"], classes)
    predict = PredictInspectWidget(viewer)
    first = predict.export_labels(str(tmp_path))
    second = predict.export_labels(str(tmp_path))
    assert [p.name for p in first] == ["steel_labels.tif"]
    assert [p.name for p in second] == ["steel_labels-2.tif"]


def test_a_worker_sets_torch_threads_for_itself_only(qtbot, monkeypatch):
    """The worker trains with its own thread count; the GUI thread, and threads started after
    the job, keep the count they had (torch hands its last count to every new thread)."""
    import threading

    import torch

    import napari_matseg.widgets.workers as workers

    seen, later = [], []

    class OneEventJob:
        def run(self):
            seen.append(torch.get_num_threads())
            yield "event"

    monkeypatch.setattr(workers, "worker_threads", lambda: 1)
    torch.set_num_threads(3)
    worker = workers.job_worker(OneEventJob())
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.start()
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [1] and later == [3] and torch.get_num_threads() == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_job_runs_below_the_gui_threads_priority(qtbot):
    """Training yields the CPU to the viewer: the worker's thread is niced, the GUI thread is not."""
    import os
    import threading

    import napari_matseg.widgets.workers as workers

    main = os.getpriority(os.PRIO_PROCESS, os.getpid())
    seen = []

    class OneEventJob:
        def run(self):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            yield "event"

    worker = workers.job_worker(OneEventJob())
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.start()
    assert seen == [min(19, main + workers.BACKGROUND_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main


def test_the_docks_load_after_the_viewer_draws(tmp_path):
    """napari imports the docks once its OpenGL is up; without CUDA, triton imported then kills
    the process under Mesa's software OpenGL (see napari_matseg/widgets/__init__.py)."""
    import subprocess
    import sys

    script = ("import napari, numpy as np\n"
              "from qtpy.QtWidgets import QApplication\n"
              "viewer = napari.Viewer()\n"
              "viewer.add_image(np.zeros((8, 8)))\n"
              "QApplication.processEvents()\n"
              "import napari_matseg.widgets, timm\n"
              "viewer.close()\n"
              "print('loaded')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]


def _first_fit(viewer_with_image, qtbot):
    """Return a Train dock that has painted strokes and trained a 3-step first fit on them."""
    viewer, _, truth = viewer_with_image
    train = AnnotateTrainWidget(viewer)
    _paint(train.new_scribble_layer(), truth)
    train.classes.add_class()
    train.steps.setValue(3)
    worker = train.start_training()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.model_entry is not None and not train.job.running, timeout=30_000)
    return train


def test_a_registered_model_is_unchanged_after_a_continued_run_is_stopped(
        viewer_with_image, qtbot, fast_training):
    import torch

    train = _first_fit(viewer_with_image, qtbot)
    registered = train.model_entry
    assert train.model_combo.currentText() == registered.name
    assert train.registry.get(f"{registered.name} (before the last round)") is None, \
        "a first fit has no round before it"
    before = {k: v.clone() for k, v in registered.bundle.model.state_dict().items()}
    train.steps.setValue(100_000)
    worker = train.start_training()
    qtbot.waitUntil(lambda: train.tuner is not None and train.tuner.steps_done >= 3, timeout=30_000)
    assert train.tuner.model is not registered.bundle.model
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        train.stop_button.click()
    after = registered.bundle.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert train.model_entry.bundle.trained_steps > registered.bundle.trained_steps
    earlier = train.registry.get(f"{registered.name} (before the last round)")
    assert earlier is not None and earlier.bundle is registered.bundle, \
        "the model before a round stays in the list, to go back to when the round made it worse"
    assert train.model_entry.name == registered.name


def test_a_round_that_keeps_its_start_model_adds_no_earlier_entry(
        viewer_with_image, qtbot, fast_training, monkeypatch):
    """A continued run whose selection keeps the start model changed no weight: the list must
    not offer the same weights twice, once as "(before the last round)"."""
    import torch

    from napari_matseg.core.selection import CheckpointSelector

    train = _first_fit(viewer_with_image, qtbot)
    first = train.model_entry
    consider = CheckpointSelector.consider
    monkeypatch.setattr(CheckpointSelector, "consider",
                        lambda self, step, score, passed=True:
                        consider(self, step, score, passed) if step == 0 else False)
    worker = train.start_training()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.model_entry is not first and not train.job.running,
                    timeout=30_000)
    assert train.model_entry.bundle.provenance["best_step"] == 0
    assert train.registry.get(f"{first.name} (before the last round)") is None
    kept = train.model_entry.bundle.model.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in first.bundle.model.state_dict().items())
    from dataclasses import replace

    from napari_matseg import api

    bundle = train.model_entry.bundle
    assert api.predicts_alike(bundle, first.bundle)
    k = len(bundle.class_names)
    other_prior = replace(bundle, class_prior=[(i + 1) / (k * (k + 1) / 2) for i in range(k)])
    assert not api.predicts_alike(other_prior, first.bundle), \
        "same weights, other images: a new prior, so another model to go back from"


def test_gui_and_cli_default_budgets_are_the_same(make_napari_viewer):
    from napari_matseg import api
    from napari_matseg.cli import build_parser

    viewer = make_napari_viewer()
    train = AnnotateTrainWidget(viewer)
    args = build_parser().parse_args(["finetune", "a.png", "b.png", "-o", "m.matseg"])
    assert args.steps is None and args.minutes is None  # the CLI takes the API's default
    assert train.budget() == api.default_finetune_budget(None) == api.Budget(api.FIRST_FIT_STEPS)


def test_stacked_docks_share_the_column_height(make_napari_viewer, qtbot):
    """Docks opened one after the other (as the Plugins menu does) split the column 3:2, so
    Annotate & Train keeps its Train button in view; Qt alone gave Predict & Inspect an 89-px
    strip of 740."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 800)
    train_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    qtbot.wait(100)
    predict_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    qtbot.wait(200)
    total = train_dock.height() + predict_dock.height()
    assert 0.3 < predict_dock.height() / total < 0.5


def test_tabbed_docks_show_an_ampersand_not_a_mnemonic(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QTabBar

    viewer = make_napari_viewer(show=True)
    predict_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    viewer.window.add_plugin_dock_widget("napari-matseg", "Measure", tabify=True)
    qtbot.waitUntil(lambda: "&&" in predict_dock.windowTitle(), timeout=5000)
    tabs = [bar.tabText(i) for bar in predict_dock.parentWidget().findChildren(QTabBar)
            for i in range(bar.count())]
    assert "Predict && Inspect (napari-matseg)" in tabs  # drawn as "Predict & Inspect"


def test_a_dragged_divider_is_left_alone(make_napari_viewer, qtbot):
    from qtpy.QtGui import QShowEvent
    from qtpy.QtWidgets import QApplication

    from napari_matseg.widgets.scrolling import FittingScrollArea, share_dock_height

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 800)
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


def test_a_model_given_at_launch_sets_the_classes_and_is_chosen_everywhere(
        make_napari_viewer, monkeypatch, trained, tmp_path):
    from napari_matseg import launch
    from napari_matseg.widgets.predict_widget import PredictInspectWidget

    path = trained.to_bundle(["ferrite", "pearlite", "carbide"]).save(tmp_path / "m.matseg")
    monkeypatch.setattr(napari, "Viewer", lambda **kw: make_napari_viewer())
    viewer = launch.open_viewer(model=str(path))
    widgets = list(viewer.window.dock_widgets.values())
    train = next(w for w in widgets if isinstance(w, AnnotateTrainWidget))
    predict = next(w for w in widgets if isinstance(w, PredictInspectWidget))
    assert [c["name"] for c in train.classes.classes()] == ["ferrite", "pearlite", "carbide"]
    assert train.model_combo.currentText() == "m.matseg"
    assert predict.model_combo.currentText() == "m.matseg"
    assert train.steps.value() == api_continue_steps()
    scribbles = viewer.layers[-1]
    assert [c["name"] for c in scribbles.metadata[CLASSES_KEY]] == ["ferrite", "pearlite", "carbide"]
    viewer.add_image(np.zeros((64, 64), np.uint8), name="opened later")
    assert "opened later" in predict.selected_images()


def api_continue_steps():
    from napari_matseg import api

    return api.CONTINUE_STEPS


def test_launch_opens_sample_with_both_widgets(make_napari_viewer, monkeypatch):
    from napari_matseg import launch

    monkeypatch.setattr(napari, "Viewer", lambda **kw: make_napari_viewer())
    viewer = launch.open_viewer()
    names = [layer.name for layer in viewer.layers]
    assert names[0].startswith("Ni superalloy") and names[-1].endswith("scribbles")
    assert viewer.layers.selection.active.name == names[-1]
    docks = " ".join(viewer.window.dock_widgets)
    assert "Annotate & Train" in docks and "Predict & Inspect" in docks


def _tiny_pretraining(widget, monkeypatch, steps=3):
    from tiny_pretraining import tiny_config

    monkeypatch.setattr(widget, "config", lambda: tiny_config(widget._method, steps=steps,
                                                              device="auto"))


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
    train.steps.setValue(5)
    worker = train.start_training()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.save_button.isEnabled(), timeout=5000)
    assert not [e for e in errors if "see the dock" not in e]
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


def test_training_on_two_images_and_where_to_paint_next(viewer_with_image, qtbot, fast_training):
    viewer, image, truth = viewer_with_image
    other, other_truth = voronoi_micrograph((96, 160), grains=12, seed=8)
    viewer.add_image(other, name="second")
    train = AnnotateTrainWidget(viewer)
    train.image_combo.setCurrentText("steel")
    _paint(train.new_scribble_layer(), truth)
    train.image_combo.setCurrentText("second")
    _paint(train.new_scribble_layer(), other_truth)
    train.classes.add_class()
    assert train.training_images() == ["steel", "second"], "both painted images are ticked"
    previews = []
    train.steps.setValue(6)
    worker = train.start_training()
    worker.yielded.connect(lambda e: previews.append(e) if e.kind.value == "preview" else None)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.model_entry is not None and not train.job.running, timeout=30_000)
    assert previews and previews[0].name == "quick" and previews[0].step == 0
    assert set(previews[0].previews) == {"steel", "second"}
    names = [r["name"] for r in train.model_entry.bundle.provenance["images"]]
    assert names == ["steel", "second"]
    assert train.model_entry.name == "trained on steel, second"
    assert viewer.layers["second phases"].data.shape == other.shape
    outlines = viewer.layers["steel paint here"]
    assert 1 <= len(outlines.data) <= 5
    assert "regions to paint next are outlined" in train.status.text()
    before = tuple(viewer.camera.center)
    train.next_region()
    assert tuple(viewer.camera.center) != before or len(train._regions) == 1
    assert train.estimate.text().startswith("≈ ")
    train.training_list.set_checked("second", False)
    assert train.training_images() == ["steel"], "an untick is kept"


def test_unpainted_micrographs_can_be_ticked_to_learn_from(viewer_with_image, qtbot, fast_training):
    viewer, image, truth = viewer_with_image
    other, _ = voronoi_micrograph((96, 160), grains=12, seed=8)
    viewer.add_image(other, name="unpainted")
    train = AnnotateTrainWidget(viewer)
    train.image_combo.setCurrentText("steel")
    layer = train.new_scribble_layer()
    assert train.learn_list.names() == ["unpainted"], "images without a scribble layer are offered"
    assert train.learn_list.checked() == [], "off by default: it did not win on MetalDAM"
    _paint(layer, truth)
    train.classes.add_class()
    train.learn_list.set_checked("unpainted", True)
    learning = train.learning_images()
    assert [item.name for item in learning] == ["unpainted"] and learning[0].image.shape == other.shape
    train.steps.setValue(6)
    worker = train.start_training()
    assert [item.name for item in train.job.job.unlabeled] == ["unpainted"]
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.model_entry is not None and not train.job.running, timeout=30_000)
    learned = train.model_entry.bundle.provenance["unlabeled"]
    assert [item["name"] for item in learned["images"]] == ["unpainted"]
    assert "unpainted phases" not in viewer.layers, "an image learned from is not a training image"


def test_the_outline_layer_is_refilled_in_place(make_napari_viewer):
    from napari_matseg.core.guidance import PaintRegion
    from napari_matseg.widgets.layers import show_guidance

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((100, 120), np.float32), name="steel")

    def regions(n):
        return [PaintRegion(box=(5 + 15 * i, 5, 15 + 15 * i, 30), centre=(10 + 15 * i, 17), area=200,
                            mean_uncertainty=0.5, mask=None) for i in range(n)]

    first = show_guidance(viewer, image, regions(4))
    assert first.name == "steel paint here" and len(first.data) == 4
    again = show_guidance(viewer, image, regions(2))
    assert again is first and len(first.data) == 2
    assert list(first.features["rank"]) == ["1", "2"]
    np.testing.assert_allclose(first.data[1].min(axis=0), [19.5, 4.5])
    assert show_guidance(viewer, image, []) is first and len(first.data) == 0
    assert [layer.name for layer in viewer.layers].count("steel paint here") == 1


def test_a_calibrated_tiff_opens_with_its_scale(make_napari_viewer, tmp_path):
    import tifffile

    path = tmp_path / "sem.tif"
    text = "[Scan]\nPixelWidth=2.5e-08\n"
    tifffile.imwrite(path, np.zeros((64, 80), np.uint8), extratags=[(34682, "s", 0, text, True)])
    viewer = make_napari_viewer()
    layer = viewer.open(str(path), plugin="napari-matseg")[0]
    assert tuple(layer.scale) == pytest.approx((0.025, 0.025))
    assert str(layer.units[-1]) == "micrometer"
    assert "FEI" in layer.metadata["scale_source"]


def test_measure_dock_measures_phases_layers_and_sets_the_scale(make_napari_viewer, qtbot, tmp_path):
    from napari_matseg.testing.synthetic import voronoi_grains
    from napari_matseg.widgets import MeasureWidget
    from napari_matseg.widgets.layers import layer_pixel_size, show_result_layer

    viewer = make_napari_viewer()
    labels = voronoi_grains((200, 240), 40, seed=3)
    image = viewer.add_image(labels.astype(np.float32), name="steel")
    classes = [{"name": "grain", "colour": "#cccccc"}, {"name": "boundary", "colour": "#000000"}]
    show_result_layer(viewer, "steel phases", labels, image, classes)
    measure = MeasureWidget(viewer)
    assert measure.class_names() == ["grain", "boundary"]
    measure.boundary_combo.setCurrentText("boundary")
    shapes = viewer.add_shapes([np.array([[190, 10], [190, 110]])], shape_type="line", name="bar")
    viewer.layers.selection.active = shapes
    measure.image_combo.setCurrentText("steel")
    measure.bar_length.setValue(50)
    calibration = measure.scale_from_line()
    assert calibration.pixel_size == pytest.approx(0.5)
    assert layer_pixel_size(viewer.layers["steel phases"]) == pytest.approx(0.5)
    worker = measure.measure()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: measure.report is not None, timeout=5000)
    row = measure.report.rows[0]
    assert row["pixel size µm"] == 0.5 and "scale bar" in row["scale source"]
    assert row["astm_g_planimetric"] != "" and measure.tabs.count() >= 3
    assert "grain intercepts" in [measure.tabs.tabText(i) for i in range(measure.tabs.count())]
    measure.boundary_combo.setCurrentText("(none)")  # changed after measuring: not re-measured
    written = measure.export(str(tmp_path / "out"))
    assert (tmp_path / "out" / "measurements.csv") in written
    exported = (tmp_path / "out" / "measurements.csv").read_text(encoding="utf-8")
    assert "astm_g_planimetric" in exported, "the export writes the measurements shown"
    assert (tmp_path / "out" / "phase_fractions.svg").is_file()


def test_the_predict_dock_draws_a_boundary_class_as_lines(make_napari_viewer, trained, tmp_path):
    from napari_matseg.widgets.predict_widget import AS_PREDICTED, PredictInspectWidget

    viewer = make_napari_viewer()
    predict = PredictInspectWidget(viewer)
    phases = trained.to_bundle(["ferrite", "pearlite", "carbide"]).save(tmp_path / "phases.matseg")
    grains = trained.to_bundle(["grain", "twin", "Grain boundary"]).save(tmp_path / "grains.matseg")
    predict.load_model(str(grains))
    assert predict.boundary_lines.currentText() == "Grain boundary"
    assert predict.options().boundary_lines == "Grain boundary"
    predict.boundary_lines.setCurrentText("twin")
    predict.load_model(str(phases))
    assert predict.boundary_lines.currentText() == AS_PREDICTED
    assert predict.options().boundary_lines is None
    predict.models.select("grains.matseg")
    assert predict.options().boundary_lines == "twin"  # the user's pick, back with its class


def test_the_predict_dock_keeps_as_predicted_and_follows_a_model_replaced_by_name(
        make_napari_viewer, trained):
    from napari_matseg.widgets.predict_widget import AS_PREDICTED, PredictInspectWidget
    from napari_matseg.widgets.session import ModelEntry

    viewer = make_napari_viewer()
    predict = PredictInspectWidget(viewer)
    registry = predict.registry
    registry.add(ModelEntry("trained on img", trained.to_bundle(["grain", "twin", "other"])),
                 make_current=True)
    assert predict.options().boundary_lines is None
    registry.add(ModelEntry("trained on img", trained.to_bundle(["grain", "twin", "grain boundary"])),
                 make_current=True)
    items = [predict.boundary_lines.itemText(i) for i in range(predict.boundary_lines.count())]
    assert items == [AS_PREDICTED, "grain", "twin", "grain boundary"]
    assert predict.options().boundary_lines == "grain boundary"
    predict.boundary_lines.setCurrentText(AS_PREDICTED)
    registry.add(ModelEntry("adapted", trained.to_bundle(["grain", "twin", "grain boundary"])),
                 make_current=True)
    assert predict.model_combo.currentText() == "adapted"
    assert predict.options().boundary_lines is None


def test_the_predict_dock_content_fits_its_width(make_napari_viewer):
    """Content wider than the dock is cut on the right (the scroll area never scrolls sideways):
    a long placeholder in the model box once made it 470 px wide in a 380-px dock."""
    from napari_matseg.widgets.scrolling import MAX_WIDTH, FittingScrollArea

    viewer = make_napari_viewer()
    predict = PredictInspectWidget(viewer)
    area = predict.findChild(FittingScrollArea)
    assert area.widget().minimumSizeHint().width() <= MAX_WIDTH - area.verticalScrollBar().sizeHint().width()
