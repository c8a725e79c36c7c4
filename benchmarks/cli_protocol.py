"""The fixed-stroke MetalDAM protocol through the command line, as a user (and issue 24) runs it:
``matseg finetune IMAGE STROKES -o M --steps 180``, then ``matseg predict M IMAGES``, on the
files of ``MetalDAM/strokes/``, the images saved under their own names.

Run from the project root:  python benchmarks/cli_protocol.py [--src OTHER/src] [--folds 0 1]

``--src`` runs another checkout's package (an older commit, say) in this venv, so two commits are
compared on one machine with one set of library versions: figures from another venv differ by
up to 0.05 per fold (docs/benchmarks.md). Scores as ``fewshot.py`` does: test mIoU over matrix,
austenite, M/A and defect from one confusion matrix per fold, and the shot image's unpainted
pixels. Prints a table; writes ``benchmarks/results/cli_protocol.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fewshot import DATA, METALDAM_MIOU_CLASSES, environment, metaldam_pair, shot_image, stroke_file

from napari_matseg.core.imageio import read_labels, write_labels
from napari_matseg.core.metrics import confusion_matrix, score


def run_cli(src: Path | None, args: list[str], cwd: Path) -> str:
    """Run ``matseg ARGS`` with ``src`` first on the import path; return its output."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "napari_matseg.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"matseg {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


@functools.cache
def plain_prediction_flag(src: Path | None) -> tuple[str, ...]:
    """Return the arguments that make ``matseg predict`` skip the flips (``--no-tta``) where the
    package has them (flips are its default since b56f425), none for older packages: the
    protocol scores the plain prediction, as its recorded runs did. Asked once per package."""
    return ("--no-tta",) if "--no-tta" in run_cli(src, ["predict", "--help"], Path.cwd()) else ()


def run_fold(fold: int, split: dict, src: Path | None, work: Path, steps: int, seed: int,
             threads: int) -> dict:
    """Fine-tune on the fold's stroke file and score its test images and the shot's unpainted pixels."""
    shot = shot_image(split)
    folder = work / f"fold{fold}"
    folder.mkdir(parents=True, exist_ok=True)
    truths = {}
    for name in [shot] + split["test"]:
        image, truth = metaldam_pair(name)
        write_labels(folder / f"{name}.png", image, plain=True)  # 8-bit grey, lossless
        truths[name] = truth
    strokes = stroke_file(fold, shot)
    t = time.perf_counter()
    log = run_cli(src, ["finetune", f"{shot}.png", str(DATA / "MetalDAM" / "strokes" / f"fold{fold}_{shot}.png"),
                        "-o", "model.matseg", "--steps", str(steps), "--seed", str(seed),
                        "--threads", str(threads)], folder)
    fit = time.perf_counter() - t
    plain = plain_prediction_flag(src)
    run_cli(src, ["predict", "model.matseg", *[f"{n}.png" for n in [shot] + split["test"]],
                  "-o", "pred", "--threads", str(threads), *plain], folder)

    def predicted(name):
        return read_labels(folder / "pred" / f"{name}_labels.png").astype(np.int64) - 1

    cm = sum(confusion_matrix(truths[n], predicted(n), 5) for n in split["test"])
    keep = strokes == 0
    unpainted = confusion_matrix(truths[shot][keep], predicted(shot)[keep], 5)
    test = score(cm, METALDAM_MIOU_CLASSES)
    return {"split": f"fold{fold}", "shot": shot, "miou": test.miou, "iou": test.iou.tolist(),
            "miou_shot_unpainted": score(unpainted, METALDAM_MIOU_CLASSES).miou,
            "fit_seconds": fit, "finetune_log": log.strip().splitlines()[-8:],
            "dataset": "MetalDAM", "strokes": "files", "method": "matseg", "mode": "scribble",
            "seed": seed}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, help="a checkout's src folder to run instead of the installed package")
    p.add_argument("--folds", type=int, nargs="+", default=list(range(6)))
    p.add_argument("--steps", type=int, default=180)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, help="keep images, models and predictions here (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cli_protocol.json")
    args = p.parse_args(argv)
    splits = json.loads((DATA / "MetalDAM" / "splits" / "official_6fold.json").read_text())
    src = args.src.resolve() if args.src else None
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        rows = []
        for fold in args.folds:
            row = run_fold(fold, splits[f"fold{fold}"], src, work, args.steps, args.seed, args.threads)
            rows.append(row)
            print(f"  fold{fold}  test {row['miou']:.3f}  shot unpainted {row['miou_shot_unpainted']:.3f}"
                  f"  fit {row['fit_seconds']:.0f} s", flush=True)
    test = [r["miou"] for r in rows]
    unpainted = [r["miou_shot_unpainted"] for r in rows]
    print("\n| package | per fold | mean | shot unpainted per fold | mean |")
    print("|---|---|---|---|---|")
    print(f"| {src or 'installed'} | {' '.join(f'{v:.3f}' for v in test)} | {np.mean(test):.3f} | "
          f"{' '.join(f'{v:.3f}' for v in unpainted)} | {np.mean(unpainted):.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"src": str(src) if src else None, "steps": args.steps,
                                    "seed": args.seed, "threads": args.threads, **environment(),
                                    "runs": rows}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
