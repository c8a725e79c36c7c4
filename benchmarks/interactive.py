"""A simulated user: strokes, corrections and a second micrograph, round after round.

Run from the project root:
    python benchmarks/interactive.py                       # MetalDAM 6 folds x seeds 0 1, NASA Super2
    python benchmarks/interactive.py --folds 0 1 --seeds 0 --placements error --no-nasa   # quick
Reads ../shared/data; prints a table and writes benchmarks/results/interactive.json.

Per MetalDAM fold (and NASA Super2, trained on its images and tested on Super3's test sets):
image A is the fold's shot image of benchmarks/fewshot.py and image B the next training image
holding classes 0, 1 and 2. Every round warm-starts from the model of the round before, through
napari_matseg.api, with the package's default budgets. The test images are never looked at
while choosing where to paint.

- round 0: strokes on 1.5 % of A (the stroke protocol of fewshot.py; with ``--strokes files``,
  MetalDAM's fixed strokes of ``MetalDAM/strokes/``, drawn by a simulator that is not ours);
- round 1: corrective strokes on 0.5 % of A's pixels, inside the regions chosen by the placement;
- round 2: strokes on 1 % of B's pixels, inside the regions chosen on B with the round-1 model;
- round 3: corrections on 0.5 % of A's and of B's pixels, chosen with the round-2 model.

Placements: ``error`` paints the largest regions where the current prediction is wrong (an
oracle a user approximates by eye), ``uncertainty`` the regions napari-matseg suggests
(``core.guidance``: doubtful areas away from the strokes), ``random`` anywhere unpainted. The
peers, retrained from scratch on the same strokes each round (the ``error`` placement's), are
the filter-bank random forest of fewshot.py and napari-convpaint's offline default (its
Gaussian features with CatBoost). Scores per round: mIoU on the fold's test images (one
confusion matrix over them), mIoU on A's unpainted pixels, wall time and steps.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fewshot  # noqa: E402

from napari_matseg import api  # noqa: E402
from napari_matseg.core.bundle import default_class_names  # noqa: E402
from napari_matseg.core.diagnosis import classes_made_worse  # noqa: E402
from napari_matseg.core.guidance import regions_to_paint  # noqa: E402
from napari_matseg.core.metrics import confusion_matrix, score  # noqa: E402
from napari_matseg.testing import simulate_corrections, simulate_scribbles  # noqa: E402

ROUNDS = {0: "strokes on A", 1: "corrections on A", 2: "strokes on B", 3: "corrections on A and B"}
PLACEMENTS = ("error", "uncertainty", "random")


def self_check(diagnosis: dict) -> dict:
    """Return what a round's self-check said: held-out recall per class, the start model's on
    the same strokes (continued runs), and the classes it names as made worse by the round."""
    recall = {int(k): v for k, v in (diagnosis.get("recall") or {}).items()}
    start = {int(k): v for k, v in (diagnosis.get("start_recall") or {}).items()}
    return {"recall": recall, "start_recall": start,
            "made_worse": classes_made_worse(recall, start, diagnosis.get("held_out", True),
                                             diagnosis.get("scored_on_training") or ())}


class Matseg:
    """The product: each round continues from the last model with all strokes so far."""

    name = "matseg"

    def __init__(self, config: api.FinetuneConfig, num_classes: int, continue_steps: int | None,
                 continue_lr: float | None = None):
        self.config = config
        self.num_classes = num_classes
        self.continue_steps = continue_steps
        self.continue_lr = continue_lr
        self.bundle = None

    def fit(self, pairs):
        budget, config = None, self.config
        if self.bundle is not None and self.continue_steps:
            budget = api.Budget(self.continue_steps)
        if self.bundle is not None and self.continue_lr:
            config = replace(config, encoder_lr=config.encoder_lr * self.continue_lr,
                             decoder_lr=config.decoder_lr * self.continue_lr)
        job = api.finetune([api.AnnotatedImage(img, strokes, name, info_band=0)
                            for name, img, strokes in pairs],
                           default_class_names(self.num_classes), start=self.bundle,
                           budget=budget, config=config, device=self.config.device)
        self.bundle = job.wait()
        info = {k: self.bundle.provenance.get(k) for k in ("steps", "best_step", "stop_reason")}
        return {**info, **self_check(self.bundle.provenance.get("diagnosis") or {})}

    def predict(self, image):
        """Return (class map 0..K-1, uncertainty)."""
        job = api.predict(self.bundle, [("image", image)], api.PredictOptions(info_band=0, tta=False),
                          self.config.device)
        for event in job.run():
            if event.failed:
                raise RuntimeError(event.error)
            if event.kind is api.EventKind.RESULT:
                return event.prediction.labels.astype(np.int64) - 1, event.prediction.uncertainty
        raise RuntimeError("no prediction")

    def fork(self):
        twin = Matseg(self.config, self.num_classes, self.continue_steps, self.continue_lr)
        twin.bundle = self.bundle
        return twin


class Forest:
    """The filter-bank random forest of fewshot.py, retrained on all strokes of all images."""

    name = "random-forest"

    def __init__(self, seed: int):
        self.seed = seed

    def features(self, image):
        return fewshot.RandomForestMethod._features(image)

    def fit(self, pairs):
        from sklearn.ensemble import RandomForestClassifier

        features, targets = [], []
        for _, image, strokes in pairs:
            f = self.features(image)
            features.append(f[strokes > 0])
            targets.append(strokes[strokes > 0] - 1)
        self.forest = RandomForestClassifier(n_estimators=100, max_depth=16, n_jobs=-1,
                                             class_weight="balanced", random_state=self.seed)
        self.forest.fit(np.concatenate(features), np.concatenate(targets))
        return {}

    def predict(self, image):
        f = self.features(image)
        return self.forest.predict(f.reshape(-1, f.shape[-1])).reshape(image.shape), None


class Convpaint:
    """napari-convpaint's offline default: its Gaussian feature extractor with CatBoost."""

    name = "convpaint"

    def fit(self, pairs):
        from napari_convpaint.convpaint_model import ConvpaintModel

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            self.model = ConvpaintModel(alias="gaussian")
            self.model.train([img.astype(np.float32) for _, img, _ in pairs],
                             [strokes.astype(np.int64) for _, _, strokes in pairs])
        return {}

    def predict(self, image):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            seg = self.model.segment(image.astype(np.float32))
        return np.asarray(seg, np.int64) - 1, None


def where_to_paint(placement: str, learner, image, truth, painted, seed: int) -> np.ndarray:
    """Return the mask of regions the simulated user paints in, by ``placement``."""
    if placement == "random":
        return np.ones(truth.shape, bool)
    predicted, uncertainty = learner.predict(image)
    if placement == "error":
        return predicted != truth
    regions = regions_to_paint(uncertainty, painted > 0, top=10)
    mask = np.zeros(truth.shape, bool)
    for region in regions:
        mask |= region.full_mask(truth.shape)
    return mask


def add_strokes(existing, new):
    out = existing.copy()
    out[(out == 0) & (new > 0)] = new[(out == 0) & (new > 0)]
    return out


def evaluate(learner, tests, a_image, a_truth, a_painted, num_classes, miou_classes):
    cm = np.zeros((num_classes, num_classes), np.int64)
    for image, truth in tests:
        cm += confusion_matrix(truth, learner.predict(image)[0], num_classes)
    own = confusion_matrix(a_truth, learner.predict(a_image)[0], num_classes, ignore=a_painted > 0)
    return score(cm, miou_classes).miou, score(own, miou_classes).miou, cm


def paint_round(rnd, placement, learner, data, s, seed):
    """Add the strokes of round ``rnd`` to ``s`` (strokes of A and B) in place."""
    (_, a_image, a_truth), (_, b_image, b_truth) = data["a"], data["b"]
    if rnd in (1, 3):
        where = where_to_paint(placement, learner, a_image, a_truth, s["a"], seed)
        s["a"] = add_strokes(s["a"], simulate_corrections(a_truth, where, 0.005, s["a"],
                                                          seed=seed + 100 * rnd + 1))
    if rnd in (2, 3):
        where = where_to_paint(placement, learner, b_image, b_truth, s["b"], seed)
        s["b"] = add_strokes(s["b"], simulate_corrections(b_truth, where, 0.01 if rnd == 2 else 0.005,
                                                          s["b"], seed=seed + 100 * rnd + 2))


def score_round(rows, data, seed, rnd, placement, learner, s, info, seconds):
    a_name, a_image, a_truth = data["a"]
    test_miou, own_miou, cm = evaluate(learner, data["tests"], a_image, a_truth, s["a"],
                                       data["classes"], data["miou_classes"])
    rows.append({"dataset": data["dataset"], "split": data["split"], "seed": seed, "round": rnd,
                 "placement": placement, "method": learner.name, "test_miou": test_miou,
                 "a_unpainted_miou": own_miou, "fit_seconds": seconds,
                 "painted_a": float((s["a"] > 0).mean()), "painted_b": float((s["b"] > 0).mean()),
                 "confusion": cm.tolist(), **info})
    steps = f"  {info['steps']} steps (best {info['best_step']})" if "steps" in info else ""
    if info.get("made_worse"):
        steps += f"  worse on {info['made_worse']}"
    print(f"  {data['dataset']} {data['split']} seed {seed} round {rnd} {placement:11s} "
          f"{learner.name:13s} test {test_miou:.3f}  A unpainted {own_miou:.3f}  {seconds:.0f} s"
          f"{steps}", flush=True)


def fit_and_score(rows, data, seed, rnd, placement, learner, s):
    pairs = [(data["a"][0], data["a"][1], s["a"])]
    if (s["b"] > 0).any():
        pairs.append((data["b"][0], data["b"][1], s["b"]))
    t = time.perf_counter()
    info = learner.fit(pairs)
    score_round(rows, data, seed, rnd, placement, learner, s, info, time.perf_counter() - t)


def run_user(data, placements, peers, args, seed):
    """Run the rounds for one dataset split and seed; return result rows. Round 0 is shared by
    every placement; each placement then continues from its own copy of the round-0 model."""
    rows = []
    config = api.FinetuneConfig(seed=seed)
    first = (fewshot.stroke_file(data["fold"], data["a"][0]) if args.strokes == "files"
             else simulate_scribbles(data["a"][2], seed=seed + data["offset"]))
    strokes0 = {"a": first, "b": np.zeros_like(data["b"][2], np.int64)}
    base = Matseg(config, data["classes"], args.continue_steps, args.continue_lr)
    fit_and_score(rows, data, seed, 0, placements[0], base, strokes0)
    for placement in placements[1:]:
        rows.append({**rows[-1], "placement": placement})
    for peer in peers:
        fit_and_score(rows, data, seed, 0, "error", peer, strokes0)
    for placement in placements:
        learner = base.fork()
        s = dict(strokes0)
        for rnd in range(1, args.rounds):
            paint_round(rnd, placement, learner, data, s, seed)
            fit_and_score(rows, data, seed, rnd, placement, learner, s)
            if placement == "error":
                for peer in peers:
                    fit_and_score(rows, data, seed, rnd, placement, peer, s)
    return rows


def metaldam_split(fold: int) -> dict:
    splits = json.loads((fewshot.DATA / "MetalDAM" / "splits" / "official_6fold.json").read_text())
    split = splits[f"fold{fold}"]
    shots = [n for n in split["train"] if {0, 1, 2} <= set(np.unique(fewshot.metaldam_pair(n)[1]).tolist())]
    a, b = shots[0], shots[1]
    return {"dataset": "MetalDAM", "split": f"fold{fold}", "fold": fold, "offset": fold, "classes": 5,
            "miou_classes": fewshot.METALDAM_MIOU_CLASSES,
            "a": (a, *fewshot.metaldam_pair(a)), "b": (b, *fewshot.metaldam_pair(b)),
            "tests": [fewshot.metaldam_pair(n) for n in split["test"]]}


def nasa_split() -> dict:
    """A = Super3's one training image; B = another Super2 training image (another specimen);
    tests: Super3's test and different_test images together."""
    super3 = json.loads((fewshot.DATA / "NASA-Superalloy" / "splits" / "Super3.json").read_text())
    a = super3["train"][0]
    b = next(n for n in json.loads((fewshot.DATA / "NASA-Superalloy" / "splits" / "Super2.json")
                                   .read_text())["train"] if n != a and not n.startswith("spot7"))
    return {"dataset": "NASA-Super3", "split": "test+different_test", "offset": 0, "classes": 3,
            "miou_classes": None, "a": (a, *fewshot.nasa_pair(a)), "b": (b, *fewshot.nasa_pair(b)),
            "tests": [fewshot.nasa_pair(n) for n in super3["test"] + super3["different_test"]]}


def summarise(rows):
    table = []
    keys = sorted({(r["dataset"], r["placement"], r["method"], r["round"]) for r in rows},
                  key=lambda k: (k[0], PLACEMENTS.index(k[1]), k[2] != "matseg", k[2], k[3]))
    for dataset, placement, method, rnd in keys:
        rs = [r for r in rows if (r["dataset"], r["placement"], r["method"], r["round"])
              == (dataset, placement, method, rnd)]
        pooled = np.sum([np.asarray(r["confusion"]) for r in rs], axis=0)
        pooled_score = score(pooled)
        table.append({"dataset": dataset, "placement": placement, "method": method, "round": rnd,
                      "iou_per_class_pooled": pooled_score.iou.tolist(),
                      "predicted_fractions_pooled": pooled_score.predicted_fractions.tolist(),
                      "true_fractions_pooled": pooled_score.true_fractions.tolist(),
                      "n": len(rs), "test_miou_mean": float(np.mean([r["test_miou"] for r in rs])),
                      "test_miou_std": float(np.std([r["test_miou"] for r in rs])),
                      "a_unpainted_miou_mean": float(np.mean([r["a_unpainted_miou"] for r in rs])),
                      "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in rs])),
                      "steps_mean": float(np.mean([r["steps"] for r in rs])) if "steps" in rs[0] else None})
    return table


def print_table(table):
    print("\n| data | placement | method | round | n | test mIoU (mean ± std) | A unpainted mIoU | "
          "test IoU per class (pooled) | fit s | steps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in table:
        steps = "–" if t["steps_mean"] is None else f"{t['steps_mean']:.0f}"
        iou = " ".join("–" if not np.isfinite(v) else f"{v:.2f}" for v in t["iou_per_class_pooled"])
        print(f"| {t['dataset']} | {t['placement']} | {t['method']} | {t['round']} ({ROUNDS[t['round']]}) "
              f"| {t['n']} | {t['test_miou_mean']:.3f} ± {t['test_miou_std']:.3f} | "
              f"{t['a_unpainted_miou_mean']:.3f} | {iou} | {t['fit_seconds_mean']:.0f} | {steps} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", type=int, nargs="+", default=list(range(6)))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--rounds", type=int, default=4, choices=[1, 2, 3, 4])
    p.add_argument("--placements", nargs="+", default=list(PLACEMENTS), choices=PLACEMENTS)
    p.add_argument("--peers", nargs="*", default=["random-forest", "convpaint"],
                   choices=["random-forest", "convpaint"])
    p.add_argument("--strokes", choices=["simulator", "files"], default="simulator",
                   help="round 0's strokes on A: the package's simulator, or MetalDAM's fixed "
                        "stroke files (MetalDAM only; later rounds' corrections are simulated)")
    p.add_argument("--no-nasa", action="store_true")
    p.add_argument("--nasa-only", action="store_true")
    p.add_argument("--continue-steps", type=int, default=None,
                   help="steps of a continuing round (default: the package's)")
    p.add_argument("--continue-lr", type=float, default=None,
                   help="learning-rate factor of continuing rounds (default: the package's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "interactive.json")
    p.add_argument("--table-only", action="store_true",
                   help="print the table of the runs already in --out, without running anything")
    args = p.parse_args(argv)
    if args.table_only:
        print_table(summarise(json.loads(args.out.read_text())["runs"]))
        return
    if args.strokes == "files" and not args.no_nasa:
        p.error("--strokes files has MetalDAM's strokes only: add --no-nasa")
    torch.set_num_threads(args.threads)
    splits = [] if args.nasa_only else [metaldam_split(f) for f in args.folds]
    if not args.no_nasa:
        splits.append(nasa_split())
    rows = []
    for data in splits:
        for seed in args.seeds:
            peers = [Forest(seed) if name == "random-forest" else Convpaint() for name in args.peers]
            rows += run_user(data, args.placements, peers, args, seed)
            table = summarise(rows)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({
                "continue_steps": args.continue_steps or api.CONTINUE_STEPS,
                "first_steps": api.FIRST_FIT_STEPS, "threads": args.threads, "strokes": args.strokes,
                "command": "python benchmarks/interactive.py " + " ".join(argv or sys.argv[1:]),
                "machine": platform.platform(), "summary": table, "runs": rows}, indent=1))
    print_table(summarise(rows))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
