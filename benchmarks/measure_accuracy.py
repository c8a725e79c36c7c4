"""Measurement error: the numbers a lab report carries, from predicted labels against the truth.

Run from the project root:
    python benchmarks/measure_accuracy.py                      # everything, about 40 min on 2 cores
    python benchmarks/measure_accuracy.py --datasets tbm --tbm-sources 10 --methods matseg
    python benchmarks/measure_accuracy.py --steps 5 --folds 0 --tbm-sources 10 --threads 1   # smoke
Reads ../shared/data; prints two tables and writes benchmarks/results/measure_accuracy.json.

Every method is fitted on the same strokes of one image and predicts the held-out images; the
prediction and the truth are then measured alike through ``napari_matseg.api.measure`` (issue 25,
item 3). Methods: napari-matseg (fine-tuned through its API for a fixed number of steps, 180 by
default, and predicted without flips, as fewshot.py scores it; ``--flips`` adds the package's
default since flips are averaged), the filter-bank random forest of fewshot.py, and
napari-convpaint (its Gaussian features with CatBoost, as interactive.py runs it) when it can be
imported.

Phase fractions (MetalDAM, 6 folds x two stroke styles: the package's simulator and the fixed
files of ``MetalDAM/strokes/``; NASA Super3, simulator strokes, its ``test`` and
``different_test`` images as two batches), beside the mIoU of fewshot.py:
- per image: |predicted - true| area fraction, averaged over the dataset's classes, then over
  the batch's test images (percentage points);
- batch: the batch mean a report gives (``measurements.csv``'s summary row: the mean of the
  per-image fractions), predicted against true, |difference| averaged over the classes.

Grain size (the TBM development subset, 40 crops of 256 x 256 px from 10 source images): split by
source image; strokes on the first crop of one source (``--tbm-sources``, each in turn), drawn
from its truth by the package's simulator (grain interior and boundary, 0.75 % of the pixels each;
the boundary class without the simulator's 3-px margin, which would leave a 2-4 px line one pixel
of skeleton to paint along), predict the crops of the other sources, and measure ASTM E112 G
(planimetric and intercept) on the prediction, by the package's default rule (the boundary class
thinned to a closed network) and on its raw mask, against G of the truth as drawn. The pixel size
is set to 1 µm: a difference of G does not depend on it. Also the predicted boundary share
against the truth's (about 18 %). matseg's fit is measured twice: as predicted, and with the
boundary class drawn as lines (``PredictOptions(boundary_lines=2)``, the row
"matseg lines"), which is how a user predicts grain boundaries to measure. ``--flips`` adds rows
"matseg flips" (and "matseg flips lines"): the same fitted models predicted with the four flips
averaged (``PredictOptions(tta=True)``), side by side with the plain prediction.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import boundary_thinning  # noqa: E402
import fewshot  # noqa: E402

from napari_matseg import api  # noqa: E402
from napari_matseg.core.imageio import read_image  # noqa: E402
from napari_matseg.core.measure import BoundaryNetworkConfig  # noqa: E402
from napari_matseg.core.metrics import confusion_matrix, score  # noqa: E402
from napari_matseg.testing import simulate_scribbles  # noqa: E402
from napari_matseg.testing.simulate import ScribbleSimulation  # noqa: E402

METALDAM_CLASSES = ["matrix", "austenite", "M/A", "precipitate", "defect"]
NASA_CLASSES = ["matrix", "secondary", "tertiary"]
TBM_CLASSES = boundary_thinning.CLASSES  # ["grain", "boundary"]
DATASETS = ("metaldam", "nasa", "tbm")
METHODS = ("matseg", "random-forest", "convpaint")
PROCEDURES = ("planimetric", "intercept")


class ConvpaintMethod:
    """interactive.py's napari-convpaint (Gaussian features, CatBoost) with fewshot.py's
    one-image interface."""

    name = "convpaint"

    def fit(self, image, scribbles, num_classes, pixel_size=None):
        import interactive

        t = time.perf_counter()
        self.inner = interactive.Convpaint()
        self.inner.fit([("shot", image, scribbles)])
        self.info = {}
        self.fit_seconds = time.perf_counter() - t
        return self.fit_seconds

    def predict(self, image, pixel_size=None):
        return self.inner.predict(image)[0]


def convpaint_available() -> bool:
    if importlib.util.find_spec("napari_convpaint") is None:
        return False
    try:
        from napari_convpaint.convpaint_model import ConvpaintModel  # noqa: F401
    except Exception as exc:  # an installed but broken convpaint is reported, not fatal
        print(f"napari-convpaint left out: it does not import ({exc})")
        return False
    return True


class FlipsView:
    """The matseg model fitted last, predicted with the four flips averaged: placed after its
    method, it scores the same fit again (its ``fit`` trains nothing)."""

    def __init__(self, method):
        self.method = method
        self.name = f"{method.name} flips"

    @property
    def bundle(self):
        return self.method.bundle

    @property
    def info(self):
        return self.method.info

    def fit(self, *args, **kwargs):
        return self.method.fit_seconds

    def predict(self, image, **kwargs):
        return self.method.predict(image, tta=True, **kwargs)


def make_methods(names, config, seed, flips=False):
    methods = []
    for name in names:
        if name == "matseg":
            methods.append(fewshot.UNetMethod(config))
            if flips:
                methods.append(FlipsView(methods[-1]))
        elif name == "random-forest":
            methods.append(fewshot.RandomForestMethod(seed))
        elif convpaint_available():
            methods.append(ConvpaintMethod())
        else:
            print("napari-convpaint is not installed: left out")
    return methods


def measure(maps: list[tuple[str, np.ndarray]], class_names, boundary=None,
            network: BoundaryNetworkConfig | None = None, diagnosis=None) -> api.MeasureReport:
    """Measure label maps (classes 1..K) through the API; grain size on ``boundary`` when given,
    by ``network``'s rule (None: the raw mask)."""
    options = api.MeasureOptions(grain_boundaries=boundary, pixel_size=1.0,
                                 boundary_network=network)
    report = api.measure(maps, list(class_names), options, diagnosis=diagnosis).wait()
    if report.failed or len(report.images) != len(maps):
        raise RuntimeError(f"measurement failed: {report.failed}")
    return report


def fraction_errors(predicted: api.MeasureReport, truth: api.MeasureReport) -> dict:
    """Return the phase-fraction errors (percentage points) of a predicted batch."""
    pred = np.array([m.fractions for m in predicted.images]) * 100
    true = np.array([m.fractions for m in truth.images]) * 100
    per_image = np.abs(pred - true).mean(axis=1)
    batch = pred.mean(axis=0) - true.mean(axis=0)
    return {"fraction_error_per_image_pp": float(per_image.mean()),
            "fraction_error_batch_pp": float(np.abs(batch).mean()),
            "fraction_error_each_image_pp": np.round(per_image, 2).tolist(),
            "batch_fraction_signed_pp": np.round(batch, 2).tolist(),
            "batch_fraction_true_pct": np.round(true.mean(axis=0), 2).tolist()}


def fit_predict(method, image, strokes, num_classes, tests):
    """Fit ``method`` on one image's strokes; return (fit seconds, class maps 0..K-1 of
    ``tests``, info, the model's self-check or None)."""
    fit_s = method.fit(image, strokes, num_classes)
    preds = [np.asarray(method.predict(im), np.int64) for im in tests]
    bundle = getattr(method, "bundle", None)
    diagnosis = bundle.provenance.get("diagnosis") if bundle is not None else None
    return fit_s, preds, dict(getattr(method, "info", {})), diagnosis


def phase_run(method, image, strokes, tests, class_names, miou_classes):
    """Fit, predict ``tests`` ([(name, image, truth 0..K-1)]), return the run's scores."""
    k = len(class_names)
    fit_s, preds, info, diagnosis = fit_predict(method, image, strokes, k, [t[1] for t in tests])
    cm = np.zeros((k, k), np.int64)
    for (_, _, truth), pred in zip(tests, preds):
        cm += confusion_matrix(truth, pred, k)
    s = score(cm, miou_classes)
    predicted = measure([(n, p + 1) for (n, _, _), p in zip(tests, preds)], class_names,
                        diagnosis=diagnosis)
    truth = measure([(n, t + 1) for n, _, t in tests], class_names)
    return {"miou": s.miou, "iou": s.iou.tolist(), "fit_seconds": fit_s,
            "painted_fraction": float((strokes > 0).mean()), "doubts": predicted.doubts(),
            **fraction_errors(predicted, truth), **info}


def log_phase(row):
    print(f"  {row['dataset']} {row['split']:14s} {row['strokes']:9s} {row['method']:13s} "
          f"mIoU {row['miou']:.3f}  fraction error per image {row['fraction_error_per_image_pp']:5.1f}"
          f" pp, batch {row['fraction_error_batch_pp']:5.1f} pp  fit {row['fit_seconds']:.0f} s"
          f"  {row.get('steps', '')}", flush=True)


def metaldam_runs(folds, styles, methods, seed, save):
    splits = json.loads((fewshot.DATA / "MetalDAM" / "splits" / "official_6fold.json").read_text())
    rows = []
    for fold in folds:
        split = splits[f"fold{fold}"]
        shot = fewshot.shot_image(split)
        image, truth = fewshot.metaldam_pair(shot)
        tests = [(n, *fewshot.metaldam_pair(n)) for n in split["test"]]
        for style in styles:
            strokes = (simulate_scribbles(truth, seed=seed + fold) if style == "simulator"
                       else fewshot.stroke_file(fold, shot))
            for method in methods:
                row = phase_run(method, image, strokes, tests, METALDAM_CLASSES,
                                fewshot.METALDAM_MIOU_CLASSES)
                row.update(dataset="MetalDAM", split=f"fold{fold}", shot=shot, strokes=style,
                           method=method.name)
                log_phase(row)
                rows.append(row)
                save(rows)
    return rows


def nasa_runs(methods, seed, save):
    split = json.loads((fewshot.DATA / "NASA-Superalloy" / "splits" / "Super3.json").read_text())
    image, truth = fewshot.nasa_pair(split["train"][0])
    strokes = simulate_scribbles(truth, seed=seed)  # fewshot.py's NASA strokes
    batches = {b: [(n, *fewshot.nasa_pair(n)) for n in split[b]] for b in ("test", "different_test")}
    rows = []
    for method in methods:
        everything = [t for b in batches.values() for t in b]
        fit_s, preds, info, diagnosis = fit_predict(method, image, strokes, 3,
                                                    [t[1] for t in everything])
        by_name = {n: p for (n, _, _), p in zip(everything, preds)}
        for batch, tests in batches.items():
            cm = sum(confusion_matrix(t, by_name[n], 3) for n, _, t in tests)
            s = score(cm, None)
            predicted = measure([(n, by_name[n] + 1) for n, _, _ in tests], NASA_CLASSES,
                                diagnosis=diagnosis)
            true = measure([(n, t + 1) for n, _, t in tests], NASA_CLASSES)
            row = {"miou": s.miou, "iou": s.iou.tolist(), "fit_seconds": fit_s,
                   "painted_fraction": float((strokes > 0).mean()), "doubts": predicted.doubts(),
                   **fraction_errors(predicted, true), **info, "dataset": "NASA-Super3",
                   "split": batch, "strokes": "simulator", "method": method.name}
            log_phase(row)
            rows.append(row)
            save(rows)
    return rows


def tbm_strokes(truth: np.ndarray, seed: int) -> np.ndarray:
    """Strokes on a crop's truth (0 grain, 1 boundary): 0.75 % of the pixels per class, the
    boundary class painted along its own lines (no margin from the class border)."""
    grains = simulate_scribbles(truth, [0], ScribbleSimulation(painted_fraction=0.0075), seed=seed)
    lines = simulate_scribbles(truth, [1], ScribbleSimulation(painted_fraction=0.0075, erosion=0,
                                                              stroke_width=3), seed=seed + 1)
    return np.where(grains > 0, grains, lines)


def grain_sizes(report: api.MeasureReport) -> dict[str, tuple[float, float]]:
    def value(v):
        return float("nan") if v is None else float(v)

    return {m.name: (value(m.grains.astm_g_planimetric), value(m.grains.astm_g_intercept))
            for m in report.images}


def delta_summary(pred: dict, truth: dict) -> dict:
    """Per procedure: mean ΔG and mean |ΔG| over the crops with a G, and how many had none."""
    out = {}
    for i, procedure in enumerate(PROCEDURES):
        d = np.array([pred[c][i] - truth[c][i] for c in truth])
        ok = np.isfinite(d)
        out[procedure] = {"mean": float(d[ok].mean()) if ok.any() else float("nan"),
                          "mean_abs": float(np.abs(d[ok]).mean()) if ok.any() else float("nan"),
                          "without_g": int((~ok).sum())}
    return out


def tbm_runs(sources, methods, seed, save, data=boundary_thinning.DATA):
    truths = {c: t - 1 for c, t in boundary_thinning.read_truths(data).items()}  # 0 grain, 1 boundary
    images = {c: read_image(data / "images" / f"{c}.png") for c in truths}
    known = sorted({c.split("-")[0] for c in truths})
    network = BoundaryNetworkConfig()
    rows = []
    for source in sources:
        if source not in known:
            raise SystemExit(f"no TBM source image {source!r} (sources: {' '.join(known)})")
        shot = sorted(c for c in truths if c.split("-")[0] == source)[0]
        strokes = tbm_strokes(truths[shot], seed + int(source))
        tests = [c for c in truths if c.split("-")[0] != source]
        truth_g = grain_sizes(measure([(c, truths[c] + 1) for c in tests], TBM_CLASSES, "boundary"))
        for method in methods:
            fit_s, preds, info, diagnosis = fit_predict(method, images[shot], strokes, 2,
                                                        [images[c] for c in tests])
            variants = [(method.name, preds)]
            if getattr(method, "bundle", None) is not None:
                variants.append((f"{method.name} lines", [method.predict(images[c], boundary_lines=2)
                                                          for c in tests]))
            for name, maps in variants:
                row = {"dataset": "TBM-dev", "split": f"shot {shot}", "shot": shot, "source": source,
                       "method": name, "test_crops": len(tests), "fit_seconds": fit_s,
                       "painted_fraction": float((strokes > 0).mean()),
                       **tbm_scores(tests, maps, truths, truth_g, network, diagnosis), **info}
                t, r = row["delta_g_thinned"], row["delta_g_raw"]
                print(f"  TBM shot {shot:11s} {name:13s} mIoU {row['miou']:.3f}  boundary "
                      f"{row['boundary_share_pred']:.1%} (truth {row['boundary_share_true']:.1%})  ΔG "
                      f"planimetric {t['planimetric']['mean']:+.2f} (raw {r['planimetric']['mean']:+.2f})"
                      f", intercept {t['intercept']['mean']:+.2f} (raw {r['intercept']['mean']:+.2f})  "
                      f"fit {fit_s:.0f} s  {info.get('steps', '')}", flush=True)
                rows.append(row)
            save(rows)
    return rows


def tbm_scores(tests, preds, truths, truth_g, network, diagnosis) -> dict:
    """Score the class maps (0 grain, 1 boundary) of a fold's test crops: mIoU, boundary share,
    ΔG by the thinned rule and on the raw mask, and every crop's G."""
    cm = sum(confusion_matrix(truths[c], p, 2) for c, p in zip(tests, preds))
    s = score(cm, None)
    maps = [(c, p + 1) for c, p in zip(tests, preds)]
    thinned = measure(maps, TBM_CLASSES, "boundary", network, diagnosis)
    raw = measure(maps, TBM_CLASSES, "boundary", None)
    g_thin, g_raw = grain_sizes(thinned), grain_sizes(raw)
    return {"miou": s.miou, "iou": s.iou.tolist(),
            "boundary_share_pred": float(np.mean([(p == 1).mean() for p in preds])),
            "boundary_share_true": float(np.mean([truths[c].mean() for c in tests])),
            "delta_g_thinned": delta_summary(g_thin, truth_g),
            "delta_g_raw": delta_summary(g_raw, truth_g),
            "doubts": thinned.doubts(),
            "per_crop": {c: {"g_true": np.round(truth_g[c], 3).tolist(),
                             "g_thinned": np.round(g_thin[c], 3).tolist(),
                             "g_raw": np.round(g_raw[c], 3).tolist(),
                             "boundary_share": round(float((p == 1).mean()), 4)}
                         for c, p in zip(tests, preds)}}


def _mean(rs, key):
    return float(np.mean([r[key] for r in rs]))


def summarise(rows):
    """One line per (dataset, strokes, method) for the phase fractions, and one per method for
    the grain size, with the mean over folds."""
    phase, grains = [], []
    order = {m: i for i, m in enumerate(METHODS)}
    groups: dict = {}
    for r in rows:
        key = ((r["dataset"], r["split"] if r["dataset"] == "NASA-Super3" else "",
                r.get("strokes", ""), r["method"]) if r["dataset"] != "TBM-dev"
               else ("TBM-dev", "", "", r["method"]))
        groups.setdefault(key, []).append(r)
    for (dataset, split, style, method), rs in sorted(
            groups.items(), key=lambda kv: (kv[0][:3], order.get(kv[0][3], order.get(kv[0][3].split()[0], 9) + 0.5))):
        common = {"dataset": f"{dataset} {split}".strip(), "method": method, "n": len(rs),
                  "miou_mean": _mean(rs, "miou"), "miou_std": float(np.std([r["miou"] for r in rs])),
                  "fit_seconds": _mean(rs, "fit_seconds"),
                  "steps_mean": _mean(rs, "steps") if all("steps" in r for r in rs) else None}
        if dataset != "TBM-dev":
            phase.append({**common, "strokes": style,
                          "fraction_error_per_image_pp": _mean(rs, "fraction_error_per_image_pp"),
                          "fraction_error_batch_pp": _mean(rs, "fraction_error_batch_pp"),
                          "per_image_per_fold": [round(r["fraction_error_per_image_pp"], 1) for r in rs],
                          "batch_signed_pp": np.mean([r["batch_fraction_signed_pp"] for r in rs],
                                                     axis=0).round(2).tolist()})
            continue
        entry = {**common, "sources": [r["source"] for r in rs],
                 "boundary_share_pred": _mean(rs, "boundary_share_pred"),
                 "boundary_share_true": _mean(rs, "boundary_share_true")}
        for rule in ("thinned", "raw"):
            for p in PROCEDURES:
                cells = [r[f"delta_g_{rule}"][p] for r in rs]
                entry[f"{rule}_{p}"] = {"mean": float(np.mean([c["mean"] for c in cells])),
                                        "mean_abs": float(np.mean([c["mean_abs"] for c in cells])),
                                        "without_g": int(sum(c["without_g"] for c in cells))}
        grains.append(entry)
    return {"phase_fractions": phase, "grain_size": grains}


def _delta(cell: dict) -> str:
    if not np.isfinite(cell["mean"]):
        return "–"
    return f"{cell['mean']:+.2f} / {cell['mean_abs']:.2f}"


def print_tables(summary, rows):
    steps = lambda t: "–" if t["steps_mean"] is None else f"{t['steps_mean']:.0f}"  # noqa: E731
    if summary["phase_fractions"]:
        print("\nPhase fractions (percentage points; per image: |predicted - true| averaged over "
              "classes, then images; batch: the batch means compared)")
        print("| data | strokes | method | n | mIoU (mean ± std) | per-image error pp | per fold | "
              "batch error pp | batch predicted - true per class pp | fit s | steps |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for t in summary["phase_fractions"]:
            folds = " ".join(f"{v:.1f}" for v in t["per_image_per_fold"])
            signed = " ".join(f"{v:+.1f}" for v in t["batch_signed_pp"])
            print(f"| {t['dataset']} | {t['strokes']} | {t['method']} | {t['n']} | "
                  f"{t['miou_mean']:.3f} ± {t['miou_std']:.3f} | "
                  f"{t['fraction_error_per_image_pp']:.1f} | {folds} | "
                  f"{t['fraction_error_batch_pp']:.1f} | {signed} | {t['fit_seconds']:.0f} | {steps(t)} |")
    if summary["grain_size"]:
        print("\nTBM grain size: ΔG = G(prediction) - G(truth as drawn), mean ΔG / mean |ΔG| over "
              "the test crops, then over folds; thinned = the package's default rule")
        print("| shots (source) | method | n | mIoU | boundary share pred / truth | "
              "planimetric thinned | intercept thinned | planimetric raw | intercept raw | "
              "crops without G (thinned) | fit s | steps |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for t in summary["grain_size"]:
            cells = [_delta(t[f"{rule}_{p}"]) for rule in ("thinned", "raw") for p in PROCEDURES]
            missing = " / ".join(str(t[f"thinned_{p}"]["without_g"]) for p in PROCEDURES)
            print(f"| {' '.join(t['sources'])} | {t['method']} | {t['n']} | {t['miou_mean']:.3f} | "
                  f"{t['boundary_share_pred']:.1%} / {t['boundary_share_true']:.1%} | "
                  f"{' | '.join(cells)} | {missing} | {t['fit_seconds']:.0f} | {steps(t)} |")
        per_fold = [r for r in rows if r["dataset"] == "TBM-dev"]
        if len(per_fold) > len(summary["grain_size"]):
            print("\nper fold: shot, method, boundary share, ΔG / |ΔG| planimetric, intercept (thinned)")
            for r in per_fold:
                t = r["delta_g_thinned"]
                print(f"  {r['shot']:11s} {r['method']:13s} {r['boundary_share_pred']:.1%}  "
                      f"{_delta(t['planimetric'])}  {_delta(t['intercept'])}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--folds", type=int, nargs="+", default=list(range(6)), help="MetalDAM folds")
    p.add_argument("--strokes", nargs="+", default=["simulator", "files"],
                   choices=["simulator", "files"], help="MetalDAM stroke styles (both by default)")
    p.add_argument("--tbm-sources", nargs="+", default=["10", "14", "18"],
                   help="TBM source images whose first crop is painted, one fold each")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--steps", type=int, default=api.FIRST_FIT_STEPS,
                   help=f"matseg's fine-tune steps (default: the package's {api.FIRST_FIT_STEPS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flips", action="store_true",
                   help="also score matseg's models with the four flips averaged (rows 'matseg flips')")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads, and the forest's workers (2 = the target laptop)")
    p.add_argument("--out", type=Path,
                   default=Path(__file__).parent / "results" / "measure_accuracy.json")
    args = p.parse_args(argv)
    if not fewshot.DATA.is_dir():
        sys.exit(f"benchmark data not found at {fewshot.DATA}")
    torch.set_num_threads(args.threads)
    os.environ["LOKY_MAX_CPU_COUNT"] = str(args.threads)  # the forest's n_jobs=-1 workers
    config = replace(api.FinetuneConfig(seed=args.seed), budget=api.Budget(args.steps))
    methods = make_methods(args.methods, config, args.seed, args.flips)
    started = time.perf_counter()
    rows: list = []

    def save(new_rows=()):
        current = rows + list(new_rows)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "commit": boundary_thinning.commit(), "steps": args.steps, "seed": args.seed,
            "threads": args.threads, "config": config.to_dict(),
            "boundary_rule": BoundaryNetworkConfig().describe(), "pixel_size_um": 1.0,
            "machine": platform.platform(), "seconds": round(time.perf_counter() - started, 1),
            "summary": summarise(current), "runs": current}, indent=1, default=str))

    if "metaldam" in args.datasets:
        rows += metaldam_runs(args.folds, args.strokes, methods, args.seed, save)
    if "nasa" in args.datasets:
        rows += nasa_runs(methods, args.seed, save)
    if "tbm" in args.datasets:
        rows += tbm_runs(args.tbm_sources, methods, args.seed, save)
    save()
    print_tables(summarise(rows), rows)
    print(f"\n{time.perf_counter() - started:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
