"""How fluid the viewer stays while the Annotate & Train widget trains in the background.

Opens a real napari viewer (run under Xvfb on a headless machine), loads a MetalDAM micrograph,
paints simulated strokes, presses Train, and records the gaps between ticks of a 10 ms QTimer
on the GUI thread, during training (previews included) and while the finished model outlines
where to paint next, plus the time to the first preview.

    xvfb-run -a python benchmarks/ui_latency.py [--seconds 60] [--rounds 2]

Prints a table and writes benchmarks/results/ui_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default="micrograph0")
    p.add_argument("--seconds", type=int, default=60, help="time cap of the training run")
    p.add_argument("--rounds", type=int, default=1,
                   help="press Train this many times (later rounds continue the model and refill "
                        "the layers the first one made)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ui_latency.json")
    args = p.parse_args(argv)

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from fewshot import DATA
    from napari_matseg.core.imageio import read_image, read_labels
    from napari_matseg.testing import simulate_scribbles
    from napari_matseg.widgets import AnnotateTrainWidget

    image = read_image(DATA / "MetalDAM" / "images" / f"{args.image}.jpg")
    truth = read_labels(DATA / "MetalDAM" / "labels" / f"{args.image}.png")
    strokes = np.zeros(image.shape, np.uint8)
    strokes[: truth.shape[0], : truth.shape[1]] = simulate_scribbles(truth, classes=[0, 1, 2])

    viewer = napari.Viewer(show=True)
    viewer.add_image(image, name=args.image)
    train = AnnotateTrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="Annotate & Train")
    layer = train.new_scribble_layer()
    train.classes.add_class()
    layer.data = strokes
    train.steps.setValue(100_000)
    train.time_cap.setValue(args.seconds)
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    first_preview: list[float] = []
    preview_times: list[float] = []
    done_at: list[float] = []

    from napari_matseg.api import EventKind

    def watch(event):
        if event.kind is EventKind.PREVIEW:
            now = time.perf_counter()
            preview_times.append(now)
            if not first_preview:
                first_preview.append(now)
        elif event.kind is EventKind.DONE:
            done_at.append(time.perf_counter())

    timer.start()
    pressed = time.perf_counter()
    round_ends: list[float] = []
    outlined: list[float] = []
    for _ in range(args.rounds):
        worker = train.start_training()
        worker.yielded.connect(watch)
        while train.worker is not None:
            app.processEvents()
            time.sleep(0.001)
        outlined.append(time.perf_counter())
        settle = time.perf_counter() + 2.0  # the user looks at the result before painting again
        while time.perf_counter() < settle:
            app.processEvents()
            time.sleep(0.001)
        round_ends.append(time.perf_counter())
    finished = time.perf_counter()
    timer.stop()

    t = np.array(ticks)
    gaps = np.diff(t) * 1000
    near_preview = np.zeros(len(gaps), bool)
    for pt in preview_times:
        near_preview |= np.abs(t[1:] - pt) < 0.5
    after = np.zeros(len(gaps), bool)  # from a model's DONE until 2 s after its outlines are shown
    for done, end in zip(done_at, round_ends):
        after |= (t[1:] > done) & (t[1:] <= end)
    trained = ~after
    result = {
        "image": args.image, "budget_s": args.seconds, "rounds": args.rounds, "cpu_count": os.cpu_count(),
        "machine": platform.platform(), "torch_threads_in_worker": max(1, (os.cpu_count() or 2) - 1),
        "ticks": int(len(t)), "training_s": finished - pressed,
        "gap_max_ms": float(gaps.max()), "gap_p99_ms": float(np.percentile(gaps, 99)),
        "gap_p50_ms": float(np.median(gaps)),
        "gap_max_until_trained_ms": float(gaps[trained].max()),
        "gap_max_after_trained_ms": float(gaps[~trained].max()) if (~trained).any() else None,
        "after_trained_s": [round(shown - done, 2) for done, shown in zip(done_at, outlined)],
        "gap_max_near_preview_ms": float(gaps[near_preview].max()) if near_preview.any() else None,
        "first_preview_s": (first_preview[0] - pressed) if first_preview else None,
        "previews": len(preview_times), "status": train.status.text(),
        "largest_gaps_ms_at_s": [(round(float(gaps[i]), 1), round(float(t[i + 1] - pressed), 2))
                                 for i in np.argsort(gaps)[::-1][:6]],
    }
    viewer.close()
    print("| metric | value |\n|---|---|")
    for k in ("gap_max_ms", "gap_max_until_trained_ms", "gap_max_after_trained_ms", "after_trained_s",
              "gap_p99_ms", "gap_p50_ms", "gap_max_near_preview_ms", "first_preview_s",
              "previews", "training_s"):
        v = result[k]
        print(f"| {k} | {v:.1f} |" if isinstance(v, float) else f"| {k} | {v} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print("largest gaps (ms, seconds after pressing Train):", result["largest_gaps_ms_at_s"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
