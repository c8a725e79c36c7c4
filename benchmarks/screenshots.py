"""Screenshots of the docked widgets on a real micrograph, for the README and docs.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/screenshots.py [--size 1066 651]
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/screenshots.py --pretrain 60
    xvfb-run -a -s "-screen 0 1366x768x24" python benchmarks/screenshots.py --first-run [--size 1066 651]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--image", default="micrograph7")
    p.add_argument("--second", default="micrograph4", help="a second micrograph for the rounds")
    p.add_argument("--steps", type=int, default=40, help="steps of the first training run")
    p.add_argument("--size", type=int, nargs=2, default=[1280, 800], metavar=("W", "H"),
                   help="window size (napari's first-run size is 1066 651)")
    p.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "screenshots")
    p.add_argument("--pretrain", type=int, metavar="SECONDS",
                   help="instead: the Pretrain widget running SMS on the unlabeled MetalDAM folder")
    p.add_argument("--first-run", action="store_true",
                   help="instead: napari-matseg as it opens (at --size if given, else sized to "
                        "the screen), then with a few strokes and their live preview")
    args = p.parse_args(argv)
    if args.pretrain:
        return pretrain_shot(args)
    if args.first_run:
        return first_run_shot(args, size_given="--size" in (argv or sys.argv))

    import napari
    from qtpy.QtWidgets import QApplication

    from fewshot import DATA
    from napari_matseg.core.imageio import read_image, read_labels
    from napari_matseg.testing import simulate_scribbles

    def micrograph(name):
        image = read_image(DATA / "MetalDAM" / "images" / f"{name}.jpg")
        truth = read_labels(DATA / "MetalDAM" / "labels" / f"{name}.png")
        strokes = np.zeros(image.shape, np.uint8)
        strokes[: truth.shape[0], : truth.shape[1]] = simulate_scribbles(truth, classes=[0, 1, 2])
        return image, strokes

    viewer = napari.Viewer(show=True)
    viewer.window.resize(*args.size)
    image, strokes = micrograph(args.image)
    viewer.add_image(image, name=args.image)
    _, train = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    _, predict = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    app = QApplication.instance()
    layer = train.new_scribble_layer()
    train.classes.add_class()
    for row, name in enumerate(["matrix", "austenite", "M/A"]):
        train.classes.table.item(row, 0).setText(name)
    layer.data = strokes
    args.out.mkdir(parents=True, exist_ok=True)
    train.steps.setValue(args.steps)
    train.start_training()
    started = time.perf_counter()
    shot_taken = False
    while train.job.running:
        app.processEvents()
        time.sleep(0.01)
        if not shot_taken and train.tuner is not None and train.tuner.steps_done >= args.steps * 0.6:
            viewer.screenshot(str(args.out / "training.png"), canvas_only=False)
            shot_taken = True
    _pump(app, 1)
    viewer.screenshot(str(args.out / "correct.png"), canvas_only=False)
    predict.predict_layers([args.image])
    while predict.job.running:
        app.processEvents()
        time.sleep(0.01)
    _pump(app, 1)
    viewer.layers.selection.active = viewer.layers[f"{args.image} phases"]
    viewer.reset_view()
    _pump(app, 1)
    viewer.screenshot(str(args.out / "widgets.png"), canvas_only=False)
    _, measure = viewer.window.add_plugin_dock_widget("napari-matseg", "Measure", tabify=True)
    measure.pixel_size.setValue(0.0286)
    measure.particles_list.set_checked("M/A", True)
    measure.measure()
    while measure.job.running:
        app.processEvents()
        time.sleep(0.01)
    measure.tabs.setCurrentIndex(measure.tabs.count() - 1)
    _pump(app, 1)
    viewer.screenshot(str(args.out / "measure.png"), canvas_only=False)
    print("wrote", *(args.out / f"{n}.png" for n in ("training", "correct", "widgets", "measure")),
          f"in {time.perf_counter() - started:.0f} s")
    viewer.close()


def _pump(app, seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def first_run_shot(args, size_given: bool):
    """``napari-matseg`` on the sample micrograph as a new user first sees it (first-run.png),
    then after painting a few strokes of each phase with Live on (live.png); the strokes follow
    the sample's two phases as a three-level Otsu threshold finds them."""
    from qtpy.QtWidgets import QApplication
    from skimage.filters import gaussian, threshold_multiotsu

    from napari_matseg import launch
    from napari_matseg.testing import ScribbleSimulation, simulate_scribbles
    from napari_matseg.widgets import AnnotateTrainWidget, window_layout

    if size_given:
        window_layout.fitted_window_size = lambda available, current: tuple(args.size)
    viewer = launch.open_viewer()
    app = QApplication.instance()
    _pump(app, 2)
    window = viewer.window._qt_window
    suffix = "" if size_given else f"-{window.width()}x{window.height()}"
    args.out.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out / f"first-run{suffix}.png"), canvas_only=False)
    train = next(w for w in viewer.window.dock_widgets.values() if isinstance(w, AnnotateTrainWidget))
    smooth = gaussian(viewer.layers[0].data.astype(float), 2, preserve_range=True)
    phases = np.digitize(smooth, threshold_multiotsu(smooth, 3))  # the dark particle, then the two phases
    strokes = simulate_scribbles(phases, classes=[1, 2], config=ScribbleSimulation(
        stroke_length=40, stroke_width=5, erosion=4, painted_fraction=0.01))
    strokes[strokes > 0] -= 1
    layer = viewer.layers.selection.active
    layer.data = strokes.astype(layer.data.dtype)
    done = []
    train.live.refitted.connect(done.append)
    while not done:
        _pump(app, 0.1)
    _pump(app, 1)
    viewer.screenshot(str(args.out / f"live{suffix}.png"), canvas_only=False)
    print("wrote", args.out / f"first-run{suffix}.png", args.out / f"live{suffix}.png",
          f"window {window.width()} x {window.height()}, canvas "
          f"{viewer.window._qt_viewer.canvas.native.width()} px wide")
    viewer.close()


def pretrain_shot(args):
    import napari
    from qtpy.QtWidgets import QApplication

    from fewshot import DATA
    from napari_matseg.core.imageio import read_image

    folder = DATA / "MetalDAM" / "unlabeled"
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.add_image(read_image(folder / "micrograph0.png"), name="micrograph0 (unlabeled)")
    _, pretrain = viewer.window.add_plugin_dock_widget("napari-matseg", "Pretrain")
    _, train = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    pretrain.folder.setText(str(folder))
    pretrain.method_combo.setCurrentText("SMS")
    pretrain.budget.setValue(max(1, round(args.pretrain / 60)))
    app = QApplication.instance()
    args.out.mkdir(parents=True, exist_ok=True)
    pretrain.start()
    _pump(app, args.pretrain * 0.7)
    viewer.screenshot(str(args.out / "pretrain.png"), canvas_only=False)
    pretrain.stop()
    while pretrain.worker is not None:
        app.processEvents()
        time.sleep(0.01)
    print("wrote", args.out / "pretrain.png")
    viewer.close()


if __name__ == "__main__":
    main()
