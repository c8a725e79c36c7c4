"""MetalDAM scribble 1-shot benchmark (and dense 1-shot, and NASA Super3), against a random forest.

Run from the project root:  python benchmarks/fewshot.py  [--folds 0 1] [--strokes simulator files]
Reads ../shared/data; prints a table and writes benchmarks/results/fewshot.json.

Two stroke styles: ``simulator`` (the package's own :func:`simulate_scribbles`, seeded by seed +
fold) and ``files`` (the fixed strokes of ``MetalDAM/strokes/``, drawn by a simulator that is not
ours; MetalDAM only). Each run is scored on the fold's test images and, for strokes, on the shot
image's unpainted pixels.

``--unlabeled`` lets the network learn from pixels nobody painted (issue 26): ``shot`` only the
shot image's unpainted pixels; ``inductive`` also six of the fold's other training images (NASA:
its validation images), labels unused; ``transductive`` also the fold's test images, as a user who
adapts the model to the folder they predict (labels used only for scoring).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from napari_matseg import api
from napari_matseg.core.bundle import default_class_names
from napari_matseg.core.encoders import DEFAULT_ENCODER
from napari_matseg.core.finetune import FinetuneConfig
from napari_matseg.core.imageio import read_image, read_labels
from napari_matseg.core.metrics import confusion_matrix, score
from napari_matseg.testing import simulate_scribbles

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
METALDAM_MIOU_CLASSES = [0, 1, 2, 4]


ENVIRONMENT_PACKAGES = ("napari-matseg", "numpy", "scipy", "scikit-image", "scikit-learn", "torch",
                        "torchvision", "timm")


def environment() -> dict:
    """Return the machine and the versions of the packages that decide a run's figures: the
    same commit gave fold 0 of the fixed strokes 0.426 in one venv and 0.444 in a fresh one, so
    a baseline is comparable only within one environment."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"machine": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(),
            "packages": {name: installed(name) for name in ENVIRONMENT_PACKAGES}}


def shot_image(split: dict) -> str:
    """Return a MetalDAM fold's shot image: the first of its training images whose label holds
    matrix, austenite and M/A (classes 0, 1, 2)."""
    return next(n for n in split["train"]
                if {0, 1, 2} <= set(np.unique(metaldam_pair(n)[1]).tolist()))


def metaldam_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    root = DATA / "MetalDAM"
    label = read_labels(root / "labels" / f"{name}.png")
    image = read_image(root / "images" / f"{name}.jpg")[: label.shape[0], : label.shape[1]]
    return image, label


# µm per pixel of the two MetalDAM microscopes at 1x, from their scale bars: the 1024-px-wide
# images (Zeiss band: a 2 µm bar is 70 px at 10000x) and the 1280-px-wide ones (Hitachi band: the
# 10 µm tick ruler spans about 653 px at 5000x). Pixel size = constant / magnification.
METALDAM_UM_PER_PX_AT_1X = {1024: 285.7, 1280: 76.5}


def metaldam_pixel_size(name: str) -> float:
    """Return the µm per pixel of a MetalDAM image from its magnification and microscope."""
    import csv

    with open(DATA / "MetalDAM" / "metadata.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["name"] == name)
    return METALDAM_UM_PER_PX_AT_1X[int(row["width"])] / float(row["magnification"])


def nasa_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    root = DATA / "NASA-Superalloy"
    return (read_image(root / "images" / name),
            read_labels(root / "labels" / f"{Path(name).stem}_mask.png"))


class UNetMethod:
    """napari-matseg's fine-tuning through its API, from ImageNet weights or a pretrained bundle."""

    def __init__(self, config: FinetuneConfig, pretrained=None, name: str = "matseg",
                 encoder_weights: str | None = "imagenet", keep_decoder: bool = False,
                 scale: float | None = None, encoder: str = DEFAULT_ENCODER):
        self.config = config
        self.encoder = encoder
        self.scale = scale  # working scale; None: the package's automatic choice
        self.pretrained = pretrained
        self.name = name
        self.encoder_weights = encoder_weights
        self.keep_decoder = keep_decoder  # hand over the pretrained decoder too
        self.unlabeled = []  # (name, image) pairs nobody painted, set per split

    def fit(self, image, scribbles, num_classes, pixel_size=None, start=None):
        """Fine-tune on one image's strokes (from ``start``, a bundle to continue, when given);
        return the seconds it took."""
        t = time.perf_counter()
        job = api.finetune([api.AnnotatedImage(image, scribbles, "shot", info_band=0,
                                               pixel_size=pixel_size)],
                           default_class_names(num_classes), start=start or self.pretrained,
                           budget=self.config.budget, config=self.config,
                           encoder=None if self.encoder == DEFAULT_ENCODER else self.encoder,
                           scale=self.scale, device=self.config.device,
                           encoder_weights=self.encoder_weights,
                           transfer="network" if self.keep_decoder else "encoder",
                           unlabeled=[api.UnlabeledImage(im, name, info_band=0)
                                      for name, im in self.unlabeled])
        self.bundle = job.wait()
        self.info = {k: self.bundle.provenance[k] for k in ("steps", "best_step", "stop_reason")}
        self.fit_seconds = time.perf_counter() - t
        return self.fit_seconds

    def predict(self, image, tta=False, pixel_size=None, prior=True, boundary_lines=None):
        """Return the class map (0..K-1) of ``image`` (``boundary_lines``: a class drawn as
        lines, see ``api.PredictOptions``)."""
        options = api.PredictOptions(tta=tta, info_band=0, pixel_size=pixel_size, class_prior=prior,
                                     boundary_lines=boundary_lines)
        return predict_one(self.bundle, image, options, self.config.device)


def predict_one(bundle, image, options, device="auto"):
    """Return the class map (0..K-1) that ``bundle`` predicts for one image, through the API."""
    job = api.predict(bundle, [("image", image)], options, device)
    for event in job.run():
        if event.failed:
            raise RuntimeError(event.error)
        if event.kind is api.EventKind.RESULT:
            return event.prediction.labels.astype(np.int64) - 1
    raise RuntimeError("the prediction ended without a result")


class RandomForestMethod:
    """The ilastik / Weka approach: a filter bank per pixel and a random forest."""

    name = "random-forest"

    def __init__(self, seed: int = 0):
        self.seed = seed

    @staticmethod
    def _features(image):
        from skimage.feature import multiscale_basic_features

        from napari_matseg.core.normalize import PercentileNormalizer

        return multiscale_basic_features(PercentileNormalizer()(image), intensity=True, edges=True,
                                         texture=True, sigma_min=1, sigma_max=16)

    def fit(self, image, scribbles, num_classes, pixel_size=None):
        from sklearn.ensemble import RandomForestClassifier

        t = time.perf_counter()
        feats = self._features(image)
        mask = scribbles > 0
        self.forest = RandomForestClassifier(n_estimators=100, max_depth=16, n_jobs=-1,
                                             class_weight="balanced", random_state=self.seed)
        self.forest.fit(feats[mask], scribbles[mask] - 1)
        self.info = {}
        self.fit_seconds = time.perf_counter() - t
        return self.fit_seconds

    def predict(self, image, pixel_size=None):
        feats = self._features(image)
        return self.forest.predict(feats.reshape(-1, feats.shape[-1])).reshape(image.shape)


def run_split(method, train_image, train_labels, test_pairs, num_classes, miou_classes, fit=True,
              pixel_sizes=None):
    """Fit on one image, score the test pairs; ``pixel_sizes`` (train first, then one per test
    image) lets the method work at one physical scale."""
    pixel_sizes = pixel_sizes or [None] * (len(test_pairs) + 1)
    fit_s = (method.fit(train_image, train_labels, num_classes, pixel_size=pixel_sizes[0]) if fit
             else method.fit_seconds)
    cm = np.zeros((num_classes, num_classes), np.int64)
    cm_tta, cm_plain = np.zeros_like(cm), np.zeros_like(cm)
    pred_s, per_image = [], []
    with_tta = isinstance(method, UNetMethod)
    for (image, truth), px in zip(test_pairs, pixel_sizes[1:]):
        t = time.perf_counter()
        pred = method.predict(image, pixel_size=px)
        pred_s.append(time.perf_counter() - t)
        one = confusion_matrix(truth, pred, num_classes)
        per_image.append(score(one, miou_classes).miou)
        cm += one
        if with_tta:
            cm_tta += confusion_matrix(truth, method.predict(image, tta=True, pixel_size=px),
                                       num_classes)
            cm_plain += confusion_matrix(truth, method.predict(image, pixel_size=px, prior=False),
                                         num_classes)
    s = score(cm, miou_classes)
    extra = ({"miou_flip_tta": score(cm_tta, miou_classes).miou,
              "miou_without_prior": score(cm_plain, miou_classes).miou,
              "class_prior": method.bundle.class_prior,
              "diagnosis": method.bundle.provenance.get("diagnosis"),
              "unlabeled_log": method.bundle.provenance.get("unlabeled", {}).get("log")}
             if with_tta else {})
    return {**extra, "miou": s.miou, "iou": s.iou.tolist(), "fraction_error": s.fraction_error.tolist(),
            "accuracy": s.accuracy, "confusion": cm.tolist(), "fit_seconds": fit_s,
            "predict_seconds_per_image": float(np.mean(pred_s)), "miou_per_image": per_image,
            **getattr(method, "info", {})}


def stroke_file(fold: int, shot: str) -> np.ndarray:
    """Return the fixed strokes of ``MetalDAM/strokes/`` for a fold (0 unpainted, 1..5 classes)."""
    path = DATA / "MetalDAM" / "strokes" / f"fold{fold}_{shot}.png"
    if not path.is_file():
        raise SystemExit(f"no stroke file {path}: the fold's shot image differs from the files'")
    return read_labels(path).astype(np.int64)


def unpainted_score(method, image, truth, labels, num_classes, miou_classes, pixel_size=None):
    """Return the mIoU of the method's prediction of its own shot image on the pixels nobody
    painted (what a user sees being wrong right after training)."""
    pred = method.predict(image, pixel_size=pixel_size)
    keep = labels == 0
    cm = confusion_matrix(truth[keep], pred[keep], num_classes)
    return score(cm, miou_classes).miou


def unlabeled_for(setting: str, others: list, tests: list) -> list:
    """Return the (name, image) pairs nobody painted that a split learns from under ``setting``."""
    if setting == "inductive":
        return others
    if setting == "transductive":
        return tests
    return []


def set_unlabeled(methods, pairs) -> None:
    for method in methods:
        if isinstance(method, UNetMethod):
            method.unlabeled = pairs


def metaldam_folds(folds, modes, methods, seed, physical_scale=False, strokes=("simulator",),
                   unlabeled="none"):
    splits = json.loads((DATA / "MetalDAM" / "splits" / "official_6fold.json").read_text())
    rows = []
    for fold in folds:
        split = splits[f"fold{fold}"]
        shot = shot_image(split)
        image, truth = metaldam_pair(shot)
        tests = [metaldam_pair(n) for n in split["test"]]
        others = [n for n in split["train"] if n != shot]
        picks = np.random.default_rng(seed + fold).choice(len(others), 6, replace=False)
        set_unlabeled(methods, unlabeled_for(
            unlabeled, [(others[i], metaldam_pair(others[i])[0]) for i in sorted(picks)]
            if unlabeled == "inductive" else [],
            [(n, im) for n, (im, _) in zip(split["test"], tests)]))
        pixel_sizes = ([metaldam_pixel_size(n) for n in [shot] + split["test"]] if physical_scale
                       else None)
        runs = [("dense", "dense", truth.astype(np.int64) + 1)] if "dense" in modes else []
        if "scribble" in modes:
            runs = [("scribble", style, simulate_scribbles(truth, seed=seed + fold)
                     if style == "simulator" else stroke_file(fold, shot))
                    for style in strokes] + runs
        for mode, style, labels in runs:
            for method in methods:
                res = run_split(method, image, labels, tests, 5, METALDAM_MIOU_CLASSES,
                                pixel_sizes=pixel_sizes)
                if mode == "scribble":
                    res["miou_shot_unpainted"] = unpainted_score(
                        method, image, truth, labels, 5, METALDAM_MIOU_CLASSES,
                        pixel_sizes[0] if pixel_sizes else None)
                res.update(dataset="MetalDAM", split=f"fold{fold}", shot=shot, mode=mode,
                           strokes=style, method=method.name,
                           painted_fraction=float((labels > 0).mean()))
                rows.append(res)
                print(f"  MetalDAM fold{fold} {mode:8s} {style:9s} {method.name:13s} "
                      f"mIoU {res['miou']:.3f}  shot-unpainted "
                      f"{res.get('miou_shot_unpainted', float('nan')):.3f}  "
                      f"fit {res['fit_seconds']:.0f}s  {res.get('steps', '')} "
                      f"{res.get('stop_reason', '')}", flush=True)
    return rows


def nasa_super3(modes, methods, seed, unlabeled="none"):
    split = json.loads((DATA / "NASA-Superalloy" / "splits" / "Super3.json").read_text())
    image, truth = nasa_pair(split["train"][0])
    rows = []
    set_unlabeled(methods, unlabeled_for(
        unlabeled, [(n, nasa_pair(n)[0]) for n in split["val"]],
        [(n, nasa_pair(n)[0]) for n in split["test"] + split["different_test"]]))
    for mode in modes:
        labels = (simulate_scribbles(truth, seed=seed) if mode == "scribble"
                  else truth.astype(np.int64) + 1)
        for method in methods:
            fitted = False
            for test in ("test", "different_test"):
                res = run_split(method, image, labels, [nasa_pair(n) for n in split[test]], 3, None,
                                fit=not fitted)
                fitted = True
                res.update(dataset="NASA-Super3", split=test, mode=mode, method=method.name)
                rows.append(res)
                print(f"  NASA Super3 {test:14s} {mode:8s} {method.name:13s} mIoU {res['miou']:.3f}",
                      flush=True)
    return rows


def set_value(current, text: str):
    """Return ``text`` as the type of a config field's current value (``--set``): booleans take
    true/false, 1/0 or yes/no (``bool("False")`` would be True); a field that is None takes a float."""
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SystemExit(f"--set: {text!r} is not true or false")
        return text.lower() in ("true", "1", "yes")
    return float(text) if current is None else type(current)(text)


def summarise(rows):
    groups = {}
    for r in rows:
        key = (r["dataset"], r["mode"], r.get("strokes", "simulator"), r["method"],
               r["dataset"] == "NASA-Super3" and r["split"])
        groups.setdefault(key, []).append(r)
    table = []
    for (dataset, mode, style, method, split), rs in groups.items():
        m = np.array([r["miou"] for r in rs])
        by_split = {}
        for r in rs:
            by_split.setdefault(r["split"], []).append(r["miou"])
        seeds = sorted({r.get("seed", 0) for r in rs})
        iou = np.nanmean(np.array([r["iou"] for r in rs], dtype=float), axis=0)
        ferr = np.mean(np.abs(np.array([r["fraction_error"] for r in rs])), axis=0)
        tta = [r["miou_flip_tta"] for r in rs if "miou_flip_tta" in r]
        plain = [r["miou_without_prior"] for r in rs if "miou_without_prior" in r]
        table.append({"miou_flip_tta_mean": float(np.mean(tta)) if tta else None,
                      "miou_without_prior_mean": float(np.mean(plain)) if plain else None,
                      "dataset": dataset if not split else f"{dataset} {split}", "mode": mode,
                      "strokes": style if mode == "scribble" else "dense",
                      "miou_per_fold": [round(float(np.mean(v)), 3) for v in by_split.values()],
                      "seeds": seeds,
                      "miou_per_seed": [round(float(np.mean([r["miou"] for r in rs
                                                             if r.get("seed", 0) == sd])), 3)
                                        for sd in seeds],
                      "miou_shot_unpainted_mean": (float(np.mean([r["miou_shot_unpainted"] for r in rs]))
                                                   if all("miou_shot_unpainted" in r for r in rs) else None),
                      "method": method, "miou_mean": float(m.mean()), "miou_std": float(m.std()),
                      "n": len(rs), "iou_per_class": iou.tolist(),
                      "abs_fraction_error": ferr.tolist(),
                      "fit_seconds": float(np.mean([r["fit_seconds"] for r in rs])),
                      "predict_seconds": float(np.mean([r["predict_seconds_per_image"] for r in rs]))})
    return table


def print_table(table):
    print("\n| data | strokes | method | mIoU (mean ± std) | per fold | shot unpainted | with flip TTA | without class prior | IoU per class | mean abs phase-fraction error | fit s | predict s/img |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in table:
        iou = " ".join("–" if np.isnan(v) else f"{v:.2f}" for v in t["iou_per_class"])
        fe = " ".join(f"{v * 100:.1f}" for v in t["abs_fraction_error"])
        tta = "–" if t["miou_flip_tta_mean"] is None else f"{t['miou_flip_tta_mean']:.3f}"
        plain = "–" if t.get("miou_without_prior_mean") is None else f"{t['miou_without_prior_mean']:.3f}"
        shot = "–" if t.get("miou_shot_unpainted_mean") is None else f"{t['miou_shot_unpainted_mean']:.3f}"
        folds = " ".join(f"{v:.3f}" for v in t["miou_per_fold"])
        seeds = ("" if len(t.get("seeds", [])) < 2 else
                 " (seeds " + " ".join(f"{v:.3f}" for v in t["miou_per_seed"]) + ")")
        print(f"| {t['dataset']} (n={t['n']}) | {t['strokes']} | {t['method']} | "
              f"{t['miou_mean']:.3f} ± {t['miou_std']:.3f}{seeds} | {folds} | {shot} | {tta} | {plain} | {iou} | {fe} % | "
              f"{t['fit_seconds']:.1f} | {t['predict_seconds']:.2f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", type=int, nargs="+", default=list(range(6)))
    p.add_argument("--modes", nargs="+", default=["scribble", "dense"], choices=["scribble", "dense"])
    p.add_argument("--methods", nargs="+", default=["matseg", "random-forest"],
                   choices=["matseg", "random-forest"])
    p.add_argument("--strokes", nargs="+", default=["simulator", "files"],
                   choices=["simulator", "files"],
                   help="stroke styles on MetalDAM: the package's simulator, and/or the fixed files "
                        "of ../shared/data/MetalDAM/strokes/ (both by default)")
    p.add_argument("--no-nasa", action="store_true", help="skip the NASA Super3 split")
    p.add_argument("--physical-scale", action="store_true",
                   help="give matseg each MetalDAM image's pixel size (from its magnification)")
    p.add_argument("--seed", type=int, nargs="+", default=[0],
                   help="one or more seeds; each seed draws other held-out strokes, crops and "
                        "simulator strokes, so several seeds tell a change from one draw's luck")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2 = the target laptop)")
    p.add_argument("--steps", type=int, help="fine-tune steps (default: the package's, 180)")
    p.add_argument("--seconds", type=float, help="a time cap on each fine-tune (default: none, so "
                                                 "every run trains its steps whatever the load)")
    p.add_argument("--scale", type=float, default=None,
                   help="matseg's working scale (default: automatic, 0.5 for MetalDAM's 1024-px images)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER,
                   help=f"timm encoder of matseg's model (default {DEFAULT_ENCODER})")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="override FinetuneConfig fields (for ablations)")
    p.add_argument("--unlabeled", default="none", choices=["none", "shot", "inductive", "transductive"],
                   help="learn from unpainted pixels (issue 26): the shot image's, plus other "
                        "training images (inductive) or the test images (transductive)")
    p.add_argument("--unlabeled-set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="override UnlabeledConfig fields (weight defaults to 1 with --unlabeled)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fewshot.json")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"benchmark data not found at {DATA}")
    torch.set_num_threads(args.threads)
    config = FinetuneConfig(seed=args.seed[0])
    if args.steps or args.seconds:
        config = replace(config, budget=api.Budget(args.steps or config.budget.steps,
                                                   max_seconds=args.seconds))
    for item in args.set:
        key, value = item.split("=", 1)
        config = replace(config, **{key: set_value(getattr(config, key), value)})
    if args.unlabeled != "none" or args.unlabeled_set:
        fields = {"weight": 1.0}
        for item in args.unlabeled_set:
            key, value = item.split("=", 1)
            fields[key] = set_value(getattr(config.unlabeled, key), value)
        config = replace(config, unlabeled=replace(config.unlabeled, **fields))
    rows = []
    for seed in args.seed:
        config = replace(config, seed=seed)
        methods = [UNetMethod(config, scale=args.scale, encoder=args.encoder) if m == "matseg"
                   else RandomForestMethod(seed) for m in args.methods]
        seed_rows = metaldam_folds(args.folds, args.modes, methods, seed, args.physical_scale,
                                   args.strokes, args.unlabeled)
        if not args.no_nasa:
            seed_rows += nasa_super3(args.modes, methods, seed, args.unlabeled)
        rows += [{**r, "seed": seed} for r in seed_rows]
    table = summarise(rows)
    print_table(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": config.to_dict(), "seeds": args.seed, "threads": args.threads,
                                    "unlabeled": args.unlabeled,
                                    **environment(),
                                    "summary": table, "runs": rows}, indent=1, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
