"""A simulated live session: strokes arrive at a human pace while the network keeps training.

Run from the project root:
    python benchmarks/live_session.py                                  # MetalDAM fold 0, both styles, NASA
    python benchmarks/live_session.py --folds 0 --strokes files --no-nasa --minutes 5
Reads ../shared/data; prints a table and writes benchmarks/results/live_session.json.

Issue 27's measure. Images A and B are those of ``interactive.py`` (A: the fold's shot image of
``fewshot.py``; B: the next training image holding matrix, austenite and M/A; NASA: Super3's
training image and a Super2 one). The strokes: A's of the chosen style (``files``: the fixed
strokes of ``MetalDAM/strokes/``; ``simulator``: the package's, seeded with seed + fold), then
strokes on 1 % of B (the package's simulator, seed + fold + 1). Each connected piece of a class
is one stroke; they arrive one every ``--interval`` seconds (3 s: a 48-px stroke, then a look),
A's first, classes taking turns, from the first stroke to ``--minutes``.

Three ways to spend that time, on the same strokes:
- **live**: ``api.live_training`` starts once two classes are painted and takes every stroke
  through ``job.update_strokes`` as it lands; every ``--snapshot`` seconds ``job.best_so_far()``
  (what Save writes) is kept and later scored;
- **button loop**: the user paints all of A's strokes, presses Train (the first fit's default
  steps) and waits, paints B's strokes, presses Train again (a continuing round's default
  steps) and waits. Painting time is counted, not slept; training is real;
- **forest**: the filter-bank forest of ``fewshot.py`` refitted on the strokes so far at each
  snapshot time (about a second: it is what the live preview draws).

Scores: mIoU on the fold's test images (one confusion matrix over them; MetalDAM over classes 0,
1, 2, 4), against seconds since the first stroke. Snapshots are scored after the session, so
scoring takes no time from training. Everything runs on ``--threads`` torch threads (2 = the
target laptop); on a shared machine the live curve depends on the load, as a user's would.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
import fewshot  # noqa: E402
import interactive  # noqa: E402

from napari_matseg import api  # noqa: E402
from napari_matseg.core.bundle import default_class_names  # noqa: E402
from napari_matseg.core.metrics import confusion_matrix, score  # noqa: E402
from napari_matseg.testing import ScribbleSimulation, simulate_scribbles  # noqa: E402


def stroke_pieces(strokes: np.ndarray, seed: int) -> list[tuple[np.ndarray, int]]:
    """Return the strokes of one image as pieces (flat pixel indices, label), classes taking
    turns, each class's pieces in a random order."""
    rng = np.random.default_rng(seed)
    by_class = []
    for label in sorted(int(v) for v in np.unique(strokes[strokes > 0])):
        parts, n = ndimage.label(strokes == label, structure=np.ones((3, 3)))
        flat = parts.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(1, n + 2))
        pieces = [(order[bounds[i]:bounds[i + 1]], label) for i in range(n)]
        rng.shuffle(pieces)
        by_class.append(pieces)
    out = []
    while any(by_class):
        for pieces in by_class:
            if pieces:
                out.append(pieces.pop())
    return out


class Session:
    """The strokes of a session: which image each lands on, and when."""

    def __init__(self, data: dict, a_strokes: np.ndarray, b_strokes: np.ndarray, interval: float,
                 seed: int):
        self.data = data
        self.interval = interval
        self.arrivals = ([("a", p) for p in stroke_pieces(a_strokes, seed)]
                         + [("b", p) for p in stroke_pieces(b_strokes, seed + 1)])
        self.count = {"a": sum(1 for w, _ in self.arrivals if w == "a")}
        self.count["b"] = len(self.arrivals) - self.count["a"]

    def strokes_after(self, n: int) -> dict[str, np.ndarray]:
        """Return the label images of A and B once the first ``n`` strokes have landed."""
        out = {k: np.zeros(self.data[k][2].shape, np.int64) for k in ("a", "b")}
        for where, (pixels, label) in self.arrivals[:n]:
            out[where].ravel()[pixels] = label
        return out

    def landed_by(self, seconds: float) -> int:
        """Return how many strokes have landed ``seconds`` after the first one."""
        return min(len(self.arrivals), int(seconds // self.interval) + 1)

    def pairs(self, strokes: dict[str, np.ndarray]) -> list:
        return [(self.data[k][0], self.data[k][1], strokes[k]) for k in ("a", "b")
                if (strokes[k] > 0).any()]


def training_images(pairs) -> list:
    return [api.AnnotatedImage(image, labels, name, info_band=0) for name, image, labels in pairs]


def test_miou(predict, data) -> tuple[float, list]:
    cm = np.zeros((data["classes"], data["classes"]), np.int64)
    for image, truth in data["tests"]:
        cm += confusion_matrix(truth, predict(image), data["classes"])
    return score(cm, data["miou_classes"]).miou, cm.tolist()


def bundle_predictor(bundle, device):
    learner = interactive.Matseg(api.FinetuneConfig(device=device), 0, None)
    learner.bundle = bundle
    return lambda image: learner.predict(image)[0]


def run_live(session: Session, seconds: float, snapshot_every: float, device: str,
             schedule: api.LiveSchedule | None = None) -> dict:
    """Return the live run's snapshots (seconds since the first stroke, steps, bundle) and its
    events' counts."""
    names = default_class_names(session.data["classes"])
    t0 = time.perf_counter()
    landed, job, thread, snapshots, counts = 1, None, None, [], {"idle": 0, "taken": 0}
    events = []

    def consume():
        for event in job.run():
            events.append(event)

    next_snapshot = snapshot_every
    while True:
        now = time.perf_counter() - t0
        if now >= seconds:
            break
        due = session.landed_by(now)
        if due > landed or job is None:
            landed = due
            strokes = session.strokes_after(landed)
            painted = {int(v) for s in strokes.values() for v in np.unique(s[s > 0])}
            if job is None and len(painted) >= 2:
                job = api.live_training(training_images(session.pairs(strokes)), names,
                                        config=api.FinetuneConfig(device=device), device=device,
                                        preview=False, schedule=schedule)
                thread = threading.Thread(target=consume, daemon=True)
                thread.start()
                started = now
            elif job is not None:
                job.update_strokes(training_images(session.pairs(strokes)))
        if job is not None and now >= next_snapshot:
            bundle = job.best_so_far()
            if bundle is not None:
                snapshots.append({"seconds": round(now, 1), "strokes": landed,
                                  "steps": job.steps_done, **kept_model(bundle), "bundle": bundle})
            next_snapshot += snapshot_every
        nxt = min(next_snapshot, landed * session.interval if landed < len(session.arrivals)
                  else seconds, seconds)
        time.sleep(max(0.05, min(0.5, nxt - (time.perf_counter() - t0))))
    end = time.perf_counter() - t0
    job.stop()
    thread.join()
    failed = [e for e in events if e.failed]
    if failed:
        raise RuntimeError(f"live training failed: {failed[0].error}")
    snapshots.append({"seconds": round(end, 1), "strokes": landed, "steps": job.steps_done,
                      **kept_model(job.result), "bundle": job.result, "final": True})
    for event in events:
        if event.kind is api.EventKind.MESSAGE and event.name == "idle":
            counts["idle"] += 1
    counts["taken"] = job.stroke_updates
    return {"started": round(started, 1), "snapshots": snapshots, **counts}


def kept_model(bundle) -> dict:
    """Return what a snapshot's own provenance says of the model kept: its step within its run,
    how many steps its model has had in all, and its self-check's collapse findings (complete
    rounds only; a snapshot of a run in progress has no self-check yet)."""
    prov = bundle.provenance
    diagnosis = prov.get("diagnosis") or {}
    return {"best_step": prov.get("best_step"), "total_steps": prov.get("total_steps"),
            "collapse": diagnosis.get("collapse"), "warnings": diagnosis.get("warnings")}


def run_button_loop(session: Session, device: str, steps: int | None = None) -> list[dict]:
    """Return the button loop's rounds: seconds since the first stroke when each model was ready
    (painting counted at the session's pace, training measured), steps, model. ``steps`` replaces
    both rounds' default budgets (smoke checks only)."""
    learner = interactive.Matseg(api.FinetuneConfig(device=device), session.data["classes"], steps)
    clock, landed, rounds = 0.0, 0, []
    for image in ("a", "b"):
        landed += session.count[image]
        clock += session.count[image] * session.interval
        t = time.perf_counter()
        if steps and learner.bundle is None:
            learner.config = api.FinetuneConfig(device=device, budget=api.Budget(steps))
        info = learner.fit(session.pairs(session.strokes_after(landed)))
        clock += time.perf_counter() - t
        rounds.append({"seconds": round(clock, 1), "strokes": landed, "steps": info["steps"],
                       "bundle": learner.bundle})
    return rounds


class CachedForest(interactive.Forest):
    """The forest of ``interactive.py``, computing each image's filter bank once."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self.cache = {}

    def features(self, image):
        key = id(image)
        if key not in self.cache:
            self.cache[key] = (image, fewshot.RandomForestMethod._features(image))
        return self.cache[key][1]


def session_for(data: dict, style: str, fold: int, seed: int, interval: float) -> Session:
    a_truth, b_truth = data["a"][2], data["b"][2]
    a = (fewshot.stroke_file(fold, data["a"][0]) if style == "files"
         else simulate_scribbles(a_truth, seed=seed + data["offset"]))
    b = simulate_scribbles(b_truth, config=ScribbleSimulation(painted_fraction=0.01),
                           seed=seed + data["offset"] + 1)
    return Session(data, a, b, interval, seed)


def run_one(data: dict, style: str, fold: int, args) -> dict:
    session = session_for(data, style, fold, args.seed, args.interval)
    label = f"{data['dataset']} {data['split']} {style}"
    print(f"{label}: {session.count['a']} strokes on A, {session.count['b']} on B, one every "
          f"{args.interval:g} s ({len(session.arrivals) * args.interval:.0f} s of painting)", flush=True)
    live = run_live(session, args.minutes * 60, args.snapshot, args.device,
                    api.LiveSchedule(rounds=args.rounds))
    print(f"  live: started at {live['started']} s, {live['snapshots'][-1]['steps']} steps, "
          f"{live['taken']} stroke updates taken, idled {live['idle']} times", flush=True)
    button = run_button_loop(session, args.device, args.steps)
    forest = CachedForest(args.seed)
    series = {"live": [], "button": [], "forest": []}
    for snap in live["snapshots"]:
        miou, cm = test_miou(bundle_predictor(snap.pop("bundle"), args.device), data)
        series["live"].append({**snap, "test_miou": miou, "confusion": cm})
        forest.fit(session.pairs(session.strokes_after(snap["strokes"])))
        fm, fcm = test_miou(lambda image: forest.predict(image)[0], data)
        series["forest"].append({"seconds": snap["seconds"], "strokes": snap["strokes"],
                                 "test_miou": fm, "confusion": fcm})
    for rnd in button:
        miou, cm = test_miou(bundle_predictor(rnd.pop("bundle"), args.device), data)
        series["button"].append({**rnd, "test_miou": miou, "confusion": cm})
    for name, points in series.items():
        print(f"  {name:7s} " + "  ".join(f"{p['seconds']:.0f}s {p['test_miou']:.3f}"
                                         for p in points), flush=True)
    return {"dataset": data["dataset"], "split": data["split"], "strokes": style,
            "a": data["a"][0], "b": data["b"][0], "strokes_on_a": session.count["a"],
            "strokes_on_b": session.count["b"], "live_started": live["started"],
            "live_idle": live["idle"], "live_updates_taken": live["taken"], **series}


def first_reaching(points: list[dict], target: float) -> float | None:
    return next((p["seconds"] for p in points if p["test_miou"] >= target), None)


def print_table(runs: list[dict]) -> None:
    print("\n| data | strokes | live mIoU at 1 / 2 / 3 / 4 / 5 min | live steps | button loop rounds "
          "(s: mIoU) | forest at 5 min | live reaches the loop's last score at |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        live = r["live"]
        at = []
        for minute in range(1, 6):
            before = [p for p in live if p["seconds"] <= minute * 60 + 1]
            at.append(f"{before[-1]['test_miou']:.3f}" if before else "–")
        target = r["button"][-1]["test_miou"]
        reach = first_reaching(live, target)
        print(f"| {r['dataset']} {r['split']} | {r['strokes']} | {' / '.join(at)} | "
              f"{live[-1]['steps']} | "
              + ", ".join(f"{p['seconds']:.0f}: {p['test_miou']:.3f}" for p in r["button"])
              + f" | {r['forest'][-1]['test_miou']:.3f} | "
              + (f"{reach:.0f} s (loop: {r['button'][-1]['seconds']:.0f} s)" if reach is not None
                 else f"not within {live[-1]['seconds']:.0f} s") + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", type=int, nargs="+", default=[0])
    p.add_argument("--strokes", nargs="+", default=["files", "simulator"],
                   choices=["files", "simulator"])
    p.add_argument("--no-nasa", action="store_true")
    p.add_argument("--nasa-only", action="store_true")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=3.0, help="seconds between strokes")
    p.add_argument("--snapshot", type=float, default=30.0,
                   help="seconds between the live run's kept models")
    p.add_argument("--rounds", action="store_true",
                   help="live training in rounds (LiveSchedule(rounds=True)): a first fit, then a "
                        "continuing round whenever the strokes changed since the last one began")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None,
                   help="the button loop's steps per round instead of the package's (smoke checks)")
    p.add_argument("--out", type=Path,
                   default=Path(__file__).parent / "results" / "live_session.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = [] if args.nasa_only else [(interactive.metaldam_split(f), style, f)
                                      for f in args.folds for style in args.strokes]
    if not args.no_nasa:
        plan.append((interactive.nasa_split(), "simulator", 0))
    runs = []
    for data, style, fold in plan:
        runs.append(run_one(data, style, fold, args))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "minutes": args.minutes, "interval": args.interval, "snapshot": args.snapshot,
            "seed": args.seed, "threads": args.threads, **fewshot.environment(),
            "live_schedule": "rounds" if args.rounds else "continuous",
            "first_steps": api.FIRST_FIT_STEPS, "continue_steps": api.CONTINUE_STEPS,
            "runs": runs}, indent=1))
    print_table(runs)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
