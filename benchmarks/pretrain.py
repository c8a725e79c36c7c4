"""What self-supervised pretraining buys: MatSSL, PSCL and SMS against ImageNet-only and random.

Run from the project root:
    python benchmarks/pretrain.py --minutes 20                 # pretrain all, then evaluate
    python benchmarks/pretrain.py --phase evaluate             # evaluate existing encoders
Phase 1 pretrains each method on the 164 unlabeled MetalDAM micrographs (../shared/data) for the
given minutes on the threads given, writing benchmarks/results/encoders/<method>.matseg. PSCL's
one annotated image is fold 0's shot image (micrograph0) with the protocol's simulated strokes;
micrograph0 is a test image of fold 2, so PSCL is scored without fold 2.
Phase 2 runs the MetalDAM scribble 1-shot protocol of benchmarks/fewshot.py (default fine-tune
budget) and the NASA Super3 scribble split from each starting model; it prints a table and writes
benchmarks/results/pretrain.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fewshot  # noqa: E402

from napari_matseg import api  # noqa: E402
from napari_matseg.core import list_images, load_bundle  # noqa: E402
from napari_matseg.core.finetune import FinetuneConfig  # noqa: E402
from napari_matseg.testing import simulate_scribbles  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ENCODERS = RESULTS / "encoders"
PSCL_IMAGE = "micrograph0"


def pretrain(method: str, minutes: float, seed: int, out: Path, resume: bool = False) -> dict:
    files = list_images([fewshot.DATA / "MetalDAM" / "unlabeled"])
    config = api.PretrainConfig(method=method, budget=api.Budget(steps=None, max_seconds=minutes * 60),
                                seed=seed)
    labelled = None
    if method == "pscl":
        image, truth = fewshot.metaldam_pair(PSCL_IMAGE)
        labelled = (image, simulate_scribbles(truth, seed=seed))
    job = api.pretrain(files, method, config=config, labelled=labelled,
                       checkpoint=out.with_name(out.name + ".ckpt"), resume=resume)
    t, losses = time.perf_counter(), []
    for event in job.run():
        if event.kind is api.EventKind.STEP:
            losses.append(event.loss)
            if event.step % 25 == 0:
                print(f"  {method} {event.message}", flush=True)
        elif event.kind is api.EventKind.MESSAGE:
            print(f"  {method}: {event.message}", flush=True)
        elif event.kind is api.EventKind.ERROR:
            raise RuntimeError(event.error)
    trainer, bundle = job.trainer, job.result
    pool = trainer.pool
    bundle.provenance["command"] = (f"python benchmarks/pretrain.py --phase pretrain --methods "
                                    f"{method} --minutes {minutes} --seed {seed} --suffix="
                                    f"'{out.stem[len(method):]}'" + (" --resume" if resume else ""))
    bundle.save(out)
    return {"method": method, "steps": trainer.steps_done, "seconds": trainer.elapsed,
            "seconds_this_run": time.perf_counter() - t, "resumed": resume,
            "images": len(pool), "first_loss": losses[0], "final_loss": trainer.loss_ema}


def evaluate(name: str, bundle, folds: list[int], seeds: list[int], nasa: bool,
             keep_decoder: bool = False) -> list[dict]:
    """Return the protocol's result rows for fine-tuning from one starting model."""
    rows = []
    use_folds = [f for f in folds if not (name.startswith("pscl") and f == 2)]
    for seed in seeds:
        config = FinetuneConfig(seed=seed)  # the package's default budget: 180 steps
        if name == "random":
            method = fewshot.UNetMethod(config, name=name, encoder_weights=None)
        else:
            method = fewshot.UNetMethod(config, pretrained=bundle, keep_decoder=keep_decoder,
                                        name=f"{name} (whole network)" if keep_decoder else name)
        for r in fewshot.metaldam_folds(use_folds, ["scribble"], [method], seed):
            rows.append({**r, "seed": seed})
        if nasa:
            for r in fewshot.nasa_super3(["scribble"], [method], seed):
                rows.append({**r, "seed": seed})
    return rows


def unweighted(row: dict) -> float:
    """Return a run's mIoU without the class prior: comparable across package versions (runs
    made before the class prior existed only have this one)."""
    return row.get("miou_without_prior", row["miou"])


def summarise(rows: list[dict]) -> list[dict]:
    """Return one summary per starting model; gains are against ImageNet on the same folds and
    seeds, without the class prior, and with it where both runs have it."""
    table = []
    names = list(dict.fromkeys(r["method"] for r in rows))
    imagenet = {(r["split"], r["seed"], r["dataset"]): r for r in rows if r["method"] == "imagenet"}
    for name in names:
        mine = [r for r in rows if r["method"] == name]
        md = [r for r in mine if r["dataset"] == "MetalDAM"]
        pairs = [(r, imagenet[(r["split"], r["seed"], "MetalDAM")]) for r in md
                 if (r["split"], r["seed"], "MetalDAM") in imagenet]
        with_prior = [r for r in md if "miou_without_prior" in r]
        prior_pairs = [(r, i) for r, i in pairs if "miou_without_prior" in r and "miou_without_prior" in i]
        nasa = {s: float(np.mean([unweighted(r) for r in mine
                                  if r["dataset"] == "NASA-Super3" and r["split"] == s]))
                for s in ("test", "different_test") if any(r["split"] == s for r in mine)}
        nasa_prior = {s: float(np.mean([r["miou"] for r in mine if r["dataset"] == "NASA-Super3"
                                        and r["split"] == s and "miou_without_prior" in r]))
                      for s in ("test", "different_test")
                      if any(r["split"] == s and "miou_without_prior" in r for r in mine)}
        table.append({
            "start": name, "folds": sorted({r["split"] for r in md}),
            "seeds": sorted({r["seed"] for r in md}),
            "metaldam_miou_mean": float(np.mean([unweighted(r) for r in md])),
            "metaldam_miou_std_over_runs": float(np.std([unweighted(r) for r in md])),
            "gain_over_imagenet": float(np.mean([unweighted(r) - unweighted(i) for r, i in pairs]))
            if pairs else None,
            "metaldam_miou_with_prior_mean": float(np.mean([r["miou"] for r in with_prior]))
            if with_prior else None,
            "seeds_with_prior": sorted({r["seed"] for r in with_prior}),
            "gain_over_imagenet_with_prior": float(np.mean([r["miou"] - i["miou"] for r, i in prior_pairs]))
            if prior_pairs else None,
            "nasa": nasa, "nasa_with_prior": nasa_prior})
    return table


def print_table(table: list[dict]) -> None:
    def pts(v):
        return "–" if v is None else f"{100 * v:+.1f} pts"

    def num(v):
        return "–" if v is None else f"{v:.3f}"

    print("\n| start | MetalDAM strokes mIoU, no class prior (mean ± std over folds x seeds) | gain over ImageNet | "
          "with class prior (seeds) | gain over ImageNet | NASA test / different_test, no prior | with prior |")
    print("|---|---|---|---|---|---|---|")
    for t in table:
        nasa = " / ".join(num(t["nasa"].get(s)) for s in ("test", "different_test"))
        nasa_p = " / ".join(num(t["nasa_with_prior"].get(s)) for s in ("test", "different_test"))
        print(f"| {t['start']} | {t['metaldam_miou_mean']:.3f} ± {t['metaldam_miou_std_over_runs']:.3f} "
              f"({len(t['folds'])} folds x {len(t['seeds'])} seeds) | {pts(t['gain_over_imagenet'])} | "
              f"{num(t['metaldam_miou_with_prior_mean'])} ({t['seeds_with_prior']}) | "
              f"{pts(t['gain_over_imagenet_with_prior'])} | {nasa} | {nasa_p} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=["all", "pretrain", "evaluate"], default="all")
    p.add_argument("--methods", nargs="+", default=["matssl", "pscl", "sms"])
    p.add_argument("--starts", nargs="+", default=None,
                   help="starting models to evaluate (default: imagenet, random and --methods)")
    p.add_argument("--minutes", type=float, default=60.0, help="pretraining budget per method")
    p.add_argument("--folds", type=int, nargs="+", default=list(range(6)))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--no-nasa", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--whole-network", action="store_true",
                   help="hand over the pretrained decoder too (the package takes only the encoder)")
    p.add_argument("--suffix", default="",
                   help="encoder file name suffix, e.g. --suffix=-60min writes encoders/matssl-60min.matseg")
    p.add_argument("--resume", action="store_true",
                   help="continue from the encoder's checkpoint (<encoder>.matseg.ckpt) up to "
                        "--minutes in all")
    p.add_argument("--out", type=Path, default=RESULTS / "pretrain.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report.setdefault("pretraining", {})
    if args.phase in ("all", "pretrain"):
        for method in args.methods:
            print(f"pretraining {method} for {args.minutes} min", flush=True)
            info = pretrain(method, args.minutes, 0, ENCODERS / f"{method}{args.suffix}.matseg",
                            args.resume)
            report["pretraining"][method + args.suffix] = {**info, "minutes": args.minutes, "threads": args.threads}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1, default=str))
    if args.phase in ("all", "evaluate"):
        names = args.starts or ["imagenet", "random", *args.methods]
        for name in names:
            bundle = None
            if name not in ("imagenet", "random"):
                bundle = load_bundle(ENCODERS / f"{name}.matseg", expect="pretrained")
            print(f"fine-tuning from {name}", flush=True)
            rows = evaluate(name, bundle, args.folds, args.seeds, not args.no_nasa,
                            args.whole_network and bundle is not None)
            fresh = {(r["method"], r["dataset"], r["split"], r["seed"]) for r in rows}
            rows = [r for r in report.get("runs", [])
                    if (r["method"], r["dataset"], r["split"], r.get("seed")) not in fresh] + rows
            table = summarise(rows)
            report.update({"summary": table, "runs": rows, "machine": platform.platform(),
                           "threads": args.threads})
            args.out.write_text(json.dumps(report, indent=1, default=str))
        print_table(report["summary"])
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
