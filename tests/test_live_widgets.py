"""The Train dock while the user paints: live preview, painted counts, a still camera, and the
window napari-matseg opens. Need napari, a Qt binding and a display (Xvfb on CI)."""

import threading

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_matseg.testing.simulate import ScribbleSimulation, simulate_scribbles  # noqa: E402
from napari_matseg.testing.synthetic import voronoi_micrograph  # noqa: E402
from napari_matseg.widgets import AnnotateTrainWidget  # noqa: E402
from napari_matseg.widgets.window_layout import (canvas_width, fitted_window_size,  # noqa: E402
                                                 needs_one_column)


@pytest.fixture
def painting(make_napari_viewer):
    viewer = make_napari_viewer()
    image, truth = voronoi_micrograph((128, 128), grains=16, seed=2)
    viewer.add_image(image, name="steel")
    train = AnnotateTrainWidget(viewer)
    scribbles = train.new_scribble_layer()
    train.classes.add_class()
    return viewer, train, scribbles, truth


def _strokes(truth):
    return simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=20, stroke_width=3,
                                                               erosion=1, painted_fraction=0.04))


def _refits(train):
    results = []
    train.live.refitted.connect(results.append)
    return results


def test_painting_refits_the_live_preview_in_a_worker(painting, qtbot, monkeypatch):
    from napari_matseg.api.live import LivePreview

    viewer, train, scribbles, truth = painting
    threads = []
    refit = LivePreview.refit
    monkeypatch.setattr(LivePreview, "refit",
                        lambda self, *a, **k: threads.append(threading.current_thread()) or refit(self, *a, **k))
    results = _refits(train)
    phases = viewer.layers["steel phases"]
    assert train.live_check.isChecked(), "Live is on by default"
    strokes = _strokes(truth)
    scribbles.data = strokes.astype(scribbles.data.dtype)
    qtbot.waitUntil(lambda: len(results) == 1, timeout=20_000)
    assert threads and threads[0] is not threading.main_thread(), "fitted off the GUI thread"
    assert viewer.layers["steel phases"] is phases and set(np.unique(phases.data)) <= {1, 2, 3}
    assert np.mean(phases.data == truth + 1) > 0.7
    assert "refitted in" in train.live_status.text()
    before = phases.data.copy()
    with scribbles.block_history():  # one stroke of class 3 down the left edge, as the brush
        for y in range(0, 128, 2):      # makes it: one undo step, one paint event at the end
            scribbles.paint((y, 3), 3)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=20_000)
    assert (phases.data != before).any() and (phases.data[:, :3] == 3).mean() > 0.8
    np.testing.assert_array_equal(scribbles.data[scribbles.data != 3], strokes[scribbles.data != 3])
    scribbles.undo()  # napari's undo sends neither paint nor data events, only set_data
    qtbot.waitUntil(lambda: len(results) == 3, timeout=20_000)
    assert (phases.data[:, :3] == 3).mean() < 0.5
    scribbles.visible = False  # a refresh that changes no stroke: no refit
    scribbles.visible = True
    qtbot.wait(600)
    assert len(results) == 3


def test_live_off_leaves_the_phases_alone(painting, qtbot):
    viewer, train, scribbles, truth = painting
    train.live_check.setChecked(False)
    results = _refits(train)
    scribbles.data = _strokes(truth).astype(scribbles.data.dtype)
    qtbot.wait(800)
    assert not results and not viewer.layers["steel phases"].data.any()
    train.live_check.setChecked(True)
    qtbot.waitUntil(lambda: len(results) == 1, timeout=20_000)
    assert viewer.layers["steel phases"].data.any()


def test_live_never_draws_over_a_network_prediction_or_a_painted_phases_layer(painting, qtbot):
    viewer, train, scribbles, truth = painting
    results = _refits(train)
    scribbles.data = _strokes(truth).astype(scribbles.data.dtype)
    qtbot.waitUntil(lambda: len(results) == 1, timeout=20_000)
    network = np.full(truth.shape, 2, np.uint8)
    train._show_phases("steel", network)  # what training and Where to paint next draw
    phases = viewer.layers["steel phases"]
    scribbles.paint((60, 60), 1)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=20_000)
    np.testing.assert_array_equal(phases.data, network)

    other, other_truth = voronoi_micrograph((96, 96), grains=10, seed=5)
    viewer.add_image(other, name="second")
    train.image_combo.setCurrentText("second")
    second = train.new_scribble_layer()
    second.data = _strokes(other_truth).astype(second.data.dtype)
    qtbot.waitUntil(lambda: len(results) == 3, timeout=20_000)
    corrected = viewer.layers["second phases"]
    assert corrected.data.any(), "an image the network never predicted gets the live preview"
    corrected.paint((10, 10), 3)  # the user corrects the preview by hand
    mine = corrected.data.copy()
    second.paint((50, 50), 2)
    qtbot.waitUntil(lambda: len(results) == 4, timeout=20_000)
    np.testing.assert_array_equal(corrected.data, mine)


def test_the_train_on_list_counts_strokes_as_they_are_painted(painting, qtbot):
    viewer, train, scribbles, truth = painting
    train.live_check.setChecked(False)
    assert train.training_list.item(0).text() == "steel · 0 px"
    assert train.training_list.checked() == []
    scribbles.paint((40, 40), 1)
    painted = int(np.count_nonzero(scribbles.data))
    qtbot.waitUntil(lambda: train.training_list.item(0).text() == f"steel · {painted:,} px",
                    timeout=5000)
    assert train.training_list.checked() == ["steel"], "ticked at its first stroke"
    train.training_list.set_checked("steel", False)
    scribbles.paint((80, 80), 2)
    qtbot.waitUntil(lambda: train.training_list.item(0).text()
                    == f"steel · {int(np.count_nonzero(scribbles.data)):,} px", timeout=5000)
    assert train.training_list.checked() == [], "an untick is kept"


def test_the_camera_stays_put_when_training_ends(painting, qtbot, small_recipe):
    viewer, train, scribbles, truth = painting
    train.live_check.setChecked(False)
    scribbles.data = _strokes(truth).astype(scribbles.data.dtype)
    viewer.camera.zoom, viewer.camera.center = 1.7, (0, 40, 50)
    train.steps.setValue(3)
    worker = train.start_training()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: train.model_entry is not None and not train.job.running, timeout=30_000)
    qtbot.waitUntil(lambda: "to paint next" in train.status.text(), timeout=30_000)
    assert train._regions, "the outlines are there to go to"
    assert viewer.camera.zoom == pytest.approx(1.7)
    assert tuple(viewer.camera.center)[-2:] == pytest.approx((40, 50))
    train.next_button.click()
    assert tuple(viewer.camera.center)[-2:] != pytest.approx((40, 50)) or viewer.camera.zoom != 1.7


@pytest.mark.parametrize("available, current, expected", [
    ((1366, 768), (910, 595), (1229, 691)),   # napari's first-run size on a small screen
    ((1920, 1080), (2000, 900), (1920, 972)),  # never beyond the screen
    ((1366, 728), (1300, 700), (1300, 700)),   # a larger saved size is kept
])
def test_the_window_is_sized_to_the_screen(available, current, expected):
    assert fitted_window_size(available, current) == expected


def test_docks_share_napari_s_column_when_two_columns_squeeze_the_canvas():
    assert needs_one_column(1229, 320, 380) and needs_one_column(1066, 320, 380)
    assert not needs_one_column(1728, 320, 380)
    assert canvas_width(1728, [320, 380]) >= 1728 / 2


@pytest.mark.parametrize("size", [(1066, 651), (1229, 691)])
def test_the_launched_canvas_takes_half_the_window(make_napari_viewer, monkeypatch, qtbot, size):
    """napari's default size, and the size napari-matseg opens at on a 1366 x 768 screen."""
    from napari_matseg import launch
    from napari_matseg.widgets import window_layout

    def viewer_of_size(**kw):
        viewer = make_napari_viewer(show=True)
        viewer.window.resize(*size)
        return viewer

    monkeypatch.setattr(napari, "Viewer", viewer_of_size)
    monkeypatch.setattr(window_layout, "fitted_window_size", lambda available, current: size)
    viewer = launch.open_viewer()
    qtbot.wait(300)
    window = viewer.window._qt_window
    canvas = viewer.window._qt_viewer.canvas.native
    assert (window.width(), window.height()) == size
    assert canvas.width() >= window.width() / 2, (canvas.width(), window.width())
    train = next(w for w in viewer.window.dock_widgets.values() if isinstance(w, AnnotateTrainWidget))
    assert train.train_button.isVisible() and train.status.isVisible()
    image = viewer.layers[0].data.shape
    shown = np.asarray(image) * viewer.camera.zoom
    assert shown.max() <= max(canvas.width(), canvas.height()) + 1
    assert shown.max() >= 0.8 * min(canvas.width(), canvas.height()), "the image is fitted"


def test_live_training_takes_a_stroke_painted_while_it_trains(painting, qtbot, small_recipe,
                                                              tmp_path):
    from napari_matseg import api
    from napari_matseg.core.bundle import load_bundle

    viewer, train, scribbles, truth = painting
    strokes = _strokes(truth)
    strokes[strokes == 3] = 0
    scribbles.data = strokes.astype(scribbles.data.dtype)
    assert not train.live_train_check.isChecked(), "off by default: Train runs its budget"
    train.live_check.setChecked(False)
    assert not train.live_train_check.isEnabled(), "live training needs Live on"
    train.live_check.setChecked(True)
    train.live_train_check.setChecked(True)
    worker = train.start_training()
    job = train.job.job
    assert isinstance(job, api.LiveTrainingJob)
    qtbot.waitUntil(lambda: job.tuner is not None and job.tuner.best_state is not None,
                    timeout=120_000)
    with scribbles.block_history():  # a stroke of class 3 down the left edge, painted as
        for y in range(0, 128, 2):      # the brush paints it: one paint event at the end
            scribbles.paint((y, 3), 3)
    qtbot.waitUntil(lambda: job.tuner.stroke_updates >= 1, timeout=60_000)
    assert (job.tuner.images[0].labels == 3).any(), "the painted stroke reached the loop"
    assert worker is train.worker and train.job.running, "still training"
    saved = train.save_model(str(tmp_path / "live.matseg"))
    assert load_bundle(saved).provenance["live_snapshot"]
    train.stop_button.click()
    qtbot.waitUntil(lambda: not train.job.running and train.model_entry is not None,
                    timeout=60_000)
    bundle = train.model_entry.bundle
    assert bundle.provenance["stop_reason"] == "stopped" and bundle.provenance["stroke_updates"] >= 1
    qtbot.waitUntil(lambda: not train.job.running, timeout=30_000)
