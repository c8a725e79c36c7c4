"""How quickly the live preview follows the brush, and how fluid the viewer stays meanwhile.

Opens a real napari viewer on a 1-megapixel micrograph (MetalDAM micrograph0's content rows
with micrograph1's below them: 1024 x 1024, no information band), then paints simulated
strokes one by one at a human pace: each stroke is dragged over about 160 ms in 10 pieces (one
undo step, as napari's brush makes it) and released, then the next follows ``--interval``
seconds later. Records, for each stroke, the time from its release to the redrawn preview, and
the gaps between ticks of a 10 ms QTimer on the GUI thread over the whole session (painting,
refitting, redrawing). ``--while-training`` presses Train first and paints while it trains;
``--live-training`` ticks "keep training as I paint" first, so the network that Train starts
takes each new stroke as it trains (issue 27's live training), and counts the stroke updates it
took.

    xvfb-run -a python benchmarks/live_latency.py [--strokes 20] [--interval 1.5]

Prints a table and writes benchmarks/results/live_latency.json.
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


def one_megapixel():
    """Return a 1024 x 1024 MetalDAM micrograph without an information band, and its truth."""
    from fewshot import DATA
    from napari_matseg.core.imageio import read_image, read_labels

    parts = [(read_image(DATA / "MetalDAM" / "images" / f"{name}.jpg"),
              read_labels(DATA / "MetalDAM" / "labels" / f"{name}.png"))
             for name in ("micrograph0", "micrograph1")]
    rows = parts[0][1].shape[0]
    image = np.vstack([parts[0][0][:rows], parts[1][0][:1024 - rows]])
    truth = np.vstack([parts[0][1][:rows], parts[1][1][:1024 - rows]])
    return image, truth


def strokes_of(truth: np.ndarray, count: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """Return ``count`` simulated strokes, each (pixel indices, label 1..3), in random order
    but alternating classes as a user would paint them."""
    from scipy import ndimage

    from napari_matseg.testing import simulate_scribbles

    painted = simulate_scribbles(truth, classes=[0, 1, 2])
    by_class = {}
    for label in (1, 2, 3):
        pieces, n = ndimage.label(painted == label)
        by_class[label] = [np.nonzero(pieces == i) for i in range(1, n + 1)]
    rng = np.random.default_rng(seed)
    for pieces in by_class.values():
        rng.shuffle(pieces)
    strokes = []
    while len(strokes) < count and any(by_class.values()):
        for label, pieces in by_class.items():
            if pieces and len(strokes) < count:
                strokes.append((pieces.pop(), label))
    return strokes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strokes", type=int, default=20)
    p.add_argument("--interval", type=float, default=1.5, help="seconds from one release to the next stroke")
    p.add_argument("--while-training", action="store_true", help="press Train first (a long budget)")
    p.add_argument("--live-training", action="store_true",
                   help="tick 'keep training as I paint', then press Train (implies --while-training)")
    p.add_argument("--no-live", action="store_true", help="Live off: the stalls of painting alone")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "live_latency.json")
    args = p.parse_args(argv)
    args.while_training = args.while_training or args.live_training

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_matseg.widgets import AnnotateTrainWidget

    image, truth = one_megapixel()
    strokes = strokes_of(truth, args.strokes + 6)
    strokes, before_training = strokes[:args.strokes], strokes[args.strokes:]
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.add_image(image, name="micrograph0+1")
    train = AnnotateTrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="Annotate & Train")
    layer = train.new_scribble_layer()
    train.classes.add_class()
    train.live_check.setChecked(not args.no_live)
    train.live_train_check.setChecked(args.live_training)
    app = QApplication.instance()

    def pump(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    events: list[str] = []
    pump(1.0)
    if args.while_training:
        layer.data = _with(layer.data, before_training)
        pump(2.0)
        train.steps.setValue(100_000)
        worker = train.start_training()
        if worker is not None:
            worker.yielded.connect(lambda event: events.append(getattr(event, "message", "") or ""))
        pump(3.0)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    redrawn: list[tuple[float, float]] = []
    train.live.refitted.connect(lambda result: redrawn.append((time.perf_counter(), result.seconds)))
    failures: list[str] = []
    train.live.failed.connect(failures.append)
    released: list[float] = []
    timer.start()
    began = time.perf_counter()
    for indices, label in strokes:
        history = layer.block_history()
        history.__enter__()
        for piece in np.array_split(np.arange(len(indices[0])), 10):
            layer.data_setitem(tuple(axis[piece] for axis in indices), label)
            pump(0.016)
        history.__exit__(None, None, None)  # the mouse is released: napari's paint event
        released.append(time.perf_counter())
        pump(args.interval)
    pump(2.0)
    timer.stop()
    updates = [e for e in events if "took the new strokes" in e] if args.live_training else []
    if args.while_training:
        train.stop_training()
        while train.job.running:
            pump(0.05)

    latencies, fits = [], []
    for i, release in enumerate(released):
        end = released[i + 1] if i + 1 < len(released) else float("inf")
        after = [(at, fit) for at, fit in redrawn if release < at < end]
        if after:
            latencies.append(after[0][0] - release)
            fits.append(after[0][1])
    t = np.array(ticks)
    gaps = np.diff(t) * 1000
    result = {
        "image": "MetalDAM micrograph0 + micrograph1, 1024 x 1024", "strokes": len(strokes),
        "interval_s": args.interval, "while_training": args.while_training, "live": not args.no_live,
        "live_training": args.live_training, "stroke_updates_taken": len(updates),
        "live_training_messages": updates[-3:],
        "cpu_count": os.cpu_count(), "machine": platform.platform(),
        "session_s": time.perf_counter() - began, "previews": len(redrawn), "failures": failures,
        "strokes_followed": len(latencies),
        "latency_median_s": float(np.median(latencies)) if latencies else None,
        "latency_max_s": float(np.max(latencies)) if latencies else None,
        "refit_median_s": float(np.median(fits)) if fits else None,
        "refit_max_s": float(np.max(fits)) if fits else None,
        "latencies_s": [round(x, 3) for x in latencies],
        "gap_max_ms": float(gaps.max()), "gap_p99_ms": float(np.percentile(gaps, 99)),
        "gap_p50_ms": float(np.median(gaps)),
        "largest_gaps_ms_at_s": [(round(float(gaps[i]), 1), round(float(t[i + 1] - began), 2))
                                 for i in np.argsort(gaps)[::-1][:6]],
    }
    viewer.close()
    print("| metric | value |\n|---|---|")
    for k in ("strokes_followed", "latency_median_s", "latency_max_s", "refit_median_s",
              "refit_max_s", "gap_max_ms", "gap_p99_ms", "gap_p50_ms"):
        v = result[k]
        print(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |")
    print("largest gaps (ms, seconds into the session):", result["largest_gaps_ms_at_s"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


def _with(data: np.ndarray, strokes) -> np.ndarray:
    out = np.array(data, copy=True)
    for indices, label in strokes:
        out[indices] = label
    return out


if __name__ == "__main__":
    main()
