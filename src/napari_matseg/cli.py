"""``matseg``: fine-tune, predict, evaluate and pretrain from the command line (no GUI needed).

Every command is one job of :mod:`napari_matseg.api`; this module only parses arguments, shows
progress and prints results. Bad input exits with status 2 and one line naming the problem;
Ctrl-C or SIGTERM during training stops after the current step and saves a complete model.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .core.errors import InputError, MatsegError

EPILOG = """examples:
  matseg finetune steel.tif strokes.png -o steel.matseg --classes matrix austenite MA
  matseg finetune a.tif a_strokes.png b.tif b_strokes.png -o steel.matseg --start steel.matseg
  matseg predict steel.matseg micrographs/ -o results/
  matseg evaluate steel.matseg --images a.tif b.tif --labels a_gt.png b_gt.png
  matseg pretrain --method sms unlabeled/ -o my-encoder.matseg --minutes 60
  matseg finetune steel.tif strokes.png -o steel.matseg --start my-encoder.matseg
  matseg measure results/ -o report/ --grain-boundaries boundary --particles carbide
"""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what is wrong, and where help is), not the
    usage block followed by the error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(kind, minimum=None, strict=False, multiple=None):
    """Return an argparse type: a finite ``kind`` (int or float) above ``minimum``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'' if kind is int else ' finite'} "
                                             f"{'whole ' if kind is int else ''}number") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'greater than' if strict else 'at least'} "
                                             f"{minimum}, got {text}")
        if multiple and value % multiple:
            raise argparse.ArgumentTypeError(f"must be a multiple of {multiple}, got {text}")
        return value

    return parse


positive_int = _number(int, 1)
positive_float = _number(float, 0, strict=True)


def _info_band(value: str):
    if value == "auto":
        return "auto"
    try:
        rows = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--info-band takes 'auto' or a number of rows") from None
    if rows < 0:
        raise argparse.ArgumentTypeError("--info-band rows must be 0 or more")
    return rows


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--info-band", type=_info_band, default=None, metavar="auto|ROWS",
                   help="height of the microscope's information band at the image bottom, kept out "
                        "of training and prediction: 'auto' detects it, 0 means none (default: auto; "
                        "predict and evaluate: as the model was trained)")
    p.add_argument("--device", default="auto",
                   help="torch device: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads torch may use (default: torch's choice)")


def _add_min_area(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-area", nargs="+", default=None, metavar="CLASS=PIXELS",
                   help="give regions of a class smaller than PIXELS (of the input image) the class "
                        "around them, e.g. '--min-area MA=500 defect=2000' (class names or numbers "
                        "1..K); a bare number applies to every class (default: keep all regions)")


def _add_pixel_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pixel-size", type=positive_float, default=None, metavar="UM",
                   help="µm per pixel of the images. Given at training and at prediction, each "
                        "image is brought to the training image's physical scale (useful when "
                        "features keep their physical size across magnifications)")


def build_parser() -> argparse.ArgumentParser:
    from .api.budgets import FIRST_FIT_STEPS
    from .core.pretrain import methods

    parser = OneLineParser(
        prog="matseg", description="Segment micrographs from a few painted strokes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    ft = sub.add_parser("finetune", help="train a model from strokes painted on one or more images",
                        description="Fine-tune a segmentation model on one or several micrographs, "
                                    "each with a label image of painted strokes (0 = unpainted, "
                                    "1..K = classes).")
    ft.add_argument("pairs", type=Path, nargs="+", metavar="IMAGE LABELS",
                    help="pairs of a micrograph (TIFF, PNG, JPEG, BMP) and its label image of the "
                         "same size: 0 unpainted, 1..K the painted classes")
    ft.add_argument("-o", "--output", type=Path, required=True, help="model bundle to write (.matseg)")
    ft.add_argument("--classes", nargs="+", metavar="NAME",
                    help="class names in label order 1..K (default: 'class 1', 'class 2', ...)")
    ft.add_argument("--colours", nargs="+", metavar="HEX", help="class colours, e.g. '#1f77b4'")
    ft.add_argument("--steps", type=positive_int, default=None,
                    help=f"optimiser steps (default {FIRST_FIT_STEPS}; continuing a model: fewer, "
                         "see the user guide)")
    ft.add_argument("--minutes", type=positive_float,
                    help="stop after this many minutes even if the steps are not done (a cap; "
                         "the model says when it cut training short)")
    ft.add_argument("--start", type=Path, metavar="MODEL",
                    help="continue training this bundle (warm start), or start from a pretrained "
                         "bundle made by 'matseg pretrain', instead of ImageNet weights")
    ft.add_argument("--encoder", default=None,
                    help="timm encoder of a new model (default tf_efficientnet_lite0, ImageNet weights)")
    ft.add_argument("--scale", type=positive_float, default=None,
                    help="resample images by this factor before the network sees them (e.g. 0.5)")
    ft.add_argument("--seed", type=_number(int, 0), default=0, help="random seed (default 0)")
    ft.add_argument("--unlabeled", type=Path, nargs="+", metavar="IMAGE_OR_DIR",
                    help="micrographs nobody painted (files or folders) that training also learns "
                         "from, e.g. the folder you will predict (see the user guide)")
    ft.add_argument("--unlabeled-info-band", type=_info_band, default="auto", metavar="auto|ROWS",
                    help="information band of the --unlabeled micrographs, apart from --info-band "
                         "(which is about the painted images): 'auto' detects it on each image, "
                         "0 means none (default: auto)")
    _add_common(ft)
    _add_pixel_size(ft)

    registered = methods()
    pt = sub.add_parser("pretrain", help="self-supervised pretraining on unlabeled micrographs",
                        description="Pretrain the segmentation network on your own unlabeled "
                                    "micrographs; the result is a starting model for 'matseg "
                                    "finetune --start' and the widgets. Runs data-parallel under "
                                    "'torchrun --nproc-per-node N'.")
    pt.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_DIR",
                    help="unlabeled micrographs, or folders of them")
    pt.add_argument("--method", choices=list(registered), required=True,
                    help="; ".join(f"{s.name}: {s.description}" for s in registered.values()))
    pt.add_argument("-o", "--output", type=Path, required=True, help="pretrained bundle to write (.matseg)")
    pt.add_argument("--labels", nargs=2, type=Path, metavar=("IMAGE", "SCRIBBLES"),
                    help="for methods that need labels (pscl): the annotated image and its "
                         "scribbles (0 unpainted, 1..K)")
    pt.add_argument("--steps", type=positive_int, help="stop after this many optimiser steps")
    pt.add_argument("--minutes", type=positive_float,
                    help="stop after this many minutes (default 10 unless --steps is given)")
    pt.add_argument("--batch-size", type=_number(int, 2), default=None,
                    help="views per step and process (default 16; pairs for matssl, unlabeled crops "
                         "for pscl)")
    pt.add_argument("--crop-size", type=_number(int, 32, multiple=32), default=None,
                    help="view side in pixels, a multiple of 32 (default 160)")
    pt.add_argument("--lr", type=positive_float, default=None,
                    help="learning rate (default: the method's)")
    pt.add_argument("--init", default="imagenet", metavar="imagenet|random|MODEL",
                    help="starting weights: ImageNet (default), random, or a bundle to continue from")
    pt.add_argument("--encoder", default=None, help="timm encoder name (default tf_efficientnet_lite0)")
    pt.add_argument("--sms-schedule", choices=["partitioned", "online"], default="partitioned",
                    help="sms: the authors' partitioned schedule (default) or per-batch selection")
    pt.add_argument("--scale", type=positive_float, default=None,
                    help="resample images by this factor first (default: 0.5 for images >= 900 px)")
    pt.add_argument("--seed", type=_number(int, 0), default=0, help="random seed (default 0)")
    pt.add_argument("--checkpoint", type=Path, default=None,
                    help="checkpoint file (default: OUTPUT with .ckpt added), written every 2 minutes")
    pt.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint of an interrupted run (same budget counts on)")
    _add_common(pt)

    pr = sub.add_parser("predict", help="segment images with a trained model",
                        description="Write a class label image per input image (coloured with the "
                                    "class colours) and a CSV of phase (area) fractions.")
    pr.add_argument("model", type=Path, help="model bundle (.matseg)")
    pr.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_DIR",
                    help="images, or folders whose images are all segmented")
    pr.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    pr.add_argument("--format", choices=["png", "tif"], default="png",
                    help="label images: png (palette, opens coloured anywhere) or tif (ImageJ/Fiji "
                         "lookup table and calibration)")
    pr.add_argument("--plain", action="store_true",
                    help="write bare class indices 1..K instead of coloured label images")
    pr.add_argument("--overwrite", action="store_true",
                    help="replace results already in the output folder (default: refuse)")
    pr.add_argument("--uncertainty", action="store_true",
                    help="also write a float TIFF of per-pixel uncertainty (normalised entropy)")
    _add_tta(pr)
    pr.add_argument("--tile", type=_number(int, 32), default=1024,
                    help="tile size in pixels (default 1024, at least 32)")
    pr.add_argument("--boundary-lines", metavar="CLASS",
                    help="draw this class (name or number) as a closed network of lines as wide "
                         "as it was painted, not as the band the network predicts: for grain "
                         "boundaries whose grain size you will measure (see the user guide)")
    _add_min_area(pr)
    _add_common(pr)
    _add_pixel_size(pr)

    ev = sub.add_parser("evaluate", help="compare predictions with ground-truth labels",
                        description="Report IoU, Dice, accuracy and phase-fraction errors. Ground "
                                    "truth uses the model's class numbering 1..K (0 = not labelled), "
                                    "or 0..K-1 with --zero-based; in either, 255 marks pixels to "
                                    "ignore.")
    ev.add_argument("model", type=Path, help="model bundle (.matseg)")
    ev.add_argument("--images", type=Path, nargs="+", required=True, help="images to segment")
    ev.add_argument("--labels", type=Path, nargs="+", required=True,
                    help="ground-truth label images, one per image, in the same order")
    _add_tta(ev)
    ev.add_argument("--zero-based", action="store_true",
                    help="ground truth numbers classes 0..K-1 (every pixel labelled)")
    ev.add_argument("--miou-classes", type=positive_int, nargs="+", metavar="K",
                    help="classes averaged into mIoU, numbered 1..K as the model's classes "
                         "(default: all)")
    _add_min_area(ev)
    _add_common(ev)
    _add_pixel_size(ev)

    ms = sub.add_parser("measure", help="measure phase fractions, grain size and particles",
                        description="Measure label images (from 'matseg predict', or any image of "
                                    "class numbers 1..K): phase area fractions with a 95 % "
                                    "confidence interval over the images, the ASTM E112 grain size "
                                    "of a grain-boundary class, and particle statistics. Writes "
                                    "measurements.csv (a row per image and a summary row), "
                                    "particles_<class>.csv and plots (PNG, SVG).")
    ms.add_argument("inputs", type=Path, nargs="+", metavar="LABELS_OR_DIR",
                    help="label images, or folders of them")
    ms.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    ms.add_argument("--pixel-size", type=positive_float, default=None, metavar="UM",
                    help="µm per pixel (default: each file's own calibration, else lengths in pixels)")
    ms.add_argument("--grain-boundaries", metavar="CLASS",
                    help="the class (name or number) that separates the grains: reports grains, "
                         "grains_per_mm2, astm_g_planimetric, mean_intercept_um, astm_g_intercept, "
                         "counted on that class thinned to a closed network of one-pixel lines")
    from .core.measure.boundary_network import BoundaryNetworkConfig

    network = BoundaryNetworkConfig()
    ms.add_argument("--max-gap", type=_number(int, 0), default=network.max_gap, metavar="PX",
                    help="bridge gaps in the boundaries up to PX pixels (default: %(default)s)")
    ms.add_argument("--min-spur", type=_number(int, 0), default=network.min_spur, metavar="PX",
                    help="drop dangling boundary branches shorter than PX pixels "
                         "(default: %(default)s)")
    ms.add_argument("--min-speck", type=_number(int, 0), default=network.min_speck, metavar="PX",
                    help="drop boundary pieces of fewer than PX pixels (default: %(default)s)")
    ms.add_argument("--raw-boundaries", action="store_true",
                    help="count grains on the boundary class as predicted, not thinned")
    ms.add_argument("--model", type=Path, default=None,
                    help="the model (.matseg) that predicted the labels: numbers resting on a "
                         "class its self-check flags are marked doubtful, with the reason, and so "
                         "is a grain size whose boundaries came out 3 times wider than painted")
    ms.add_argument("--particles", nargs="+", metavar="CLASS", default=(),
                    help="classes whose regions are particles: count, density, diameter, aspect "
                         "ratio, nearest-neighbour distance")
    ms.add_argument("--classes", nargs="+", metavar="NAME",
                    help="class names 1..K (default: those the label files store)")
    ms.add_argument("--overwrite", action="store_true", help="replace an earlier measurements.csv")
    return parser


def _progress(total, desc, unit):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=None)


TRAINING_STOP = ("stopping after this step and keeping what was learnt (press Ctrl-C again to "
                 "abort without saving)")
PREDICTION_STOP = ("stopping after this image; the images done so far keep their results (press "
                   "Ctrl-C again to abort)")


@contextmanager
def stop_on_signals(job, saying: str = TRAINING_STOP):
    """While the block runs, the first Ctrl-C or SIGTERM asks ``job`` to stop after its current
    step or image (it then finishes and keeps what it has) and prints ``saying``; a second
    Ctrl-C aborts."""
    count = 0

    def handler(signum, _frame):
        nonlocal count
        count += 1
        if count > 1:
            raise KeyboardInterrupt
        job.stop()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: {saying}", file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _run_training(job, desc: str, unit_total: int | None):
    """Run a training job with a progress bar; return its last event (DONE or ERROR)."""
    from .api import EventKind

    bar = _progress(unit_total or 1000, desc, "step" if unit_total else "‰")
    last = None
    with stop_on_signals(job):
        for event in job.run():
            if event.kind is EventKind.STEP:
                bar.update((event.step if unit_total else int(1000 * event.progress)) - bar.n)
                bar.set_postfix(loss=f"{event.loss:.3f}")
            elif event.kind is EventKind.MESSAGE and event.message:
                bar.write(event.message, file=sys.stderr)
            elif event.kind in (EventKind.DONE, EventKind.ERROR):
                last = event
    bar.close()
    return last


def _pairs(paths: list[Path]) -> list[tuple[Path, Path]]:
    if len(paths) % 2:
        raise InputError(f"finetune takes pairs of IMAGE LABELS, got {len(paths)} paths: "
                         + " ".join(str(p) for p in paths))
    return [(paths[i], paths[i + 1]) for i in range(0, len(paths), 2)]


def _names(pairs) -> list[str]:
    from .api.outputs import unique_stems

    return unique_stems([image.name for image, _ in pairs])


def _unlabeled_files(paths, pairs) -> list[tuple[str, Path]]:
    """Return (name, path) of the unlabeled micrographs named on the command line, leaving out
    the painted images and their label files (a folder may hold both)."""
    from .api.outputs import unique_stems
    from .core import list_images

    if not paths:
        return []
    taken = {p.resolve() for pair in pairs for p in pair}
    files = [f for f in list_images(paths) if f.resolve() not in taken]
    if not files:
        raise InputError("--unlabeled names only the painted images and their strokes: give "
                         "other micrographs")
    return list(zip(unique_stems([f"unlabeled {f.name}" for f in files]), files))


def cmd_finetune(args) -> int:
    from . import api
    from .core import AnnotatedImage, Budget, FinetuneConfig
    from .core.imageio import read_image, read_labels

    api.check_model_path(args.output)
    pairs = _pairs(args.pairs)
    images = []
    for name, (image_path, labels_path) in zip(_names(pairs), pairs):
        image = read_image(image_path)
        labels = read_labels(labels_path, len(args.classes) if args.classes else None)
        if labels.shape != image.shape:
            raise InputError(f"{labels_path}: {labels.shape[1]} x {labels.shape[0]} pixels but "
                             f"{image_path} is {image.shape[1]} x {image.shape[0]}: each label "
                             "image must be the size of the image before it")
        images.append(AnnotatedImage(image, labels, name, info_band=args.info_band,
                                     pixel_size=args.pixel_size))
    budget = None
    if args.steps or args.minutes:
        steps = args.steps or api.default_finetune_budget(args.start).steps
        budget = Budget(steps=steps, max_seconds=args.minutes * 60 if args.minutes else None)
    unlabeled = [api.UnlabeledImage(read_image(path), name, info_band=args.unlabeled_info_band,
                                    pixel_size=args.pixel_size)
                 for name, path in _unlabeled_files(args.unlabeled, pairs)]
    job = api.finetune(images, args.classes, args.colours, start=args.start, budget=budget,
                       config=FinetuneConfig(seed=args.seed), encoder=args.encoder,
                       scale=args.scale, device=args.device, unlabeled=unlabeled)
    print(f"training from {job.start.description}: {job.budget.describe()} on {job.device.type}",
          file=sys.stderr)
    last = _run_training(job, "fine-tuning", job.budget.steps)
    if last is None or last.error is not None or job.result is None:
        raise MatsegError(last.error if last is not None else "training ended without a model")
    target, kept_note = args.output, None
    try:
        previous = api.keep_start_model(args.start, args.output)
    except MatsegError as exc:
        previous, target = None, api.fallback_model_path(args.output)
        kept_note = f"{exc}; {args.output} left as it was, the new model saved to {target}"
    written, note = api.save_with_fallback(job.result.save, target)
    note = "; ".join(filter(None, [kept_note, note])) or None
    if note:
        print(f"warning: {note}", file=sys.stderr)
    if previous is not None:
        print(f"kept the model this round started from as {previous}", file=sys.stderr)
    print(f"saved {written} ({last.message})")
    for warning in last.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if note is None else 1


def cmd_pretrain(args) -> int:
    from . import api
    from .core import Budget, list_images
    from .core.pretrain import PretrainConfig, method_spec

    api.check_model_path(args.output)
    spec = method_spec(args.method)
    if spec.needs_labels and not args.labels:
        raise InputError(f"{args.method} needs --labels IMAGE SCRIBBLES (one image with painted strokes)")
    options = spec.options()
    if args.method == "sms":
        from dataclasses import replace

        options = replace(options, schedule=args.sms_schedule)
    budget = Budget(steps=args.steps, max_seconds=(args.minutes * 60 if args.minutes
                                                   else None if args.steps else 600.0))
    config = PretrainConfig(method=args.method, budget=budget, seed=args.seed, init=args.init,
                            lr=args.lr, options=options,
                            **{k: v for k, v in (("encoder", args.encoder), ("batch_size", args.batch_size),
                                                 ("crop_size", args.crop_size)) if v})
    checkpoint = args.checkpoint or args.output.with_name(args.output.name + ".ckpt")
    if args.resume and not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no checkpoint to resume from")
    job = api.pretrain(list_images(args.inputs), args.method, config=config,
                       labelled=tuple(args.labels) if args.labels else None, checkpoint=checkpoint,
                       resume=args.resume, device=args.device, scale=args.scale,
                       info_band="auto" if args.info_band is None else args.info_band)
    last = _run_training(job, f"pretraining ({args.method})", None)
    if last is None or last.error is not None:
        raise MatsegError(last.error if last is not None else "pretraining ended unexpectedly")
    trainer = job.trainer
    if trainer is not None and not trainer.dist.is_main:
        return 0
    if job.result is None:
        print(last.message, file=sys.stderr)
        return 1
    job.result.provenance["command"] = "matseg " + " ".join(args.argv)
    written, note = api.save_with_fallback(job.result.save, args.output)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    print(f"saved {written} ({last.message}); checkpoint {checkpoint} (resume with --resume)")
    return 0 if note is None else 1


def _add_tta(parser) -> None:
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="average the network over the four flips (the default; --no-tta is "
                             "about 3.5x faster and a little less accurate)")


def _predict_options(args):
    from .api import PredictOptions
    from .core.bundle import AS_TRAINED

    tta = getattr(args, "tta", None)
    return PredictOptions(tta=PredictOptions.tta if tta is None else tta,
                          tile=getattr(args, "tile", 1024),
                          min_region_area=" ".join(args.min_area) if args.min_area else None,
                          info_band=AS_TRAINED if args.info_band is None else args.info_band,
                          pixel_size=args.pixel_size,
                          boundary_lines=getattr(args, "boundary_lines", None))


def cmd_predict(args) -> int:
    from . import api
    from .core import list_images

    from .core import load_bundle

    bundle = load_bundle(args.model, expect="segmentation")
    output = api.OutputFolder(args.output, args.format, args.uncertainty, args.plain, args.overwrite)
    job = api.predict(bundle, list_images(args.inputs), _predict_options(args), args.device, output)
    bar = _progress(len(job.sources), "predicting", "image")
    with stop_on_signals(job, PREDICTION_STOP):
        for event in job.run():
            if event.kind is api.EventKind.STARTED and job.excluded:
                bar.write(f"note: {event.message}", file=sys.stderr)
            elif event.kind is api.EventKind.RESULT:
                bar.update(1)
                if event.error:
                    bar.write(f"skipped {event.error}" if event.error.startswith(event.name)
                              else f"skipped {event.name}: {event.error}", file=sys.stderr)
                for warning in event.warnings:
                    bar.write(f"warning: {warning}", file=sys.stderr)
            elif event.kind is api.EventKind.ERROR:
                bar.close()
                raise MatsegError(event.error)
    bar.close()
    summary = job.result
    print(f"segmented {summary.predicted} of {len(job.sources)} image(s) into {args.output}"
          + (f", {len(summary.failed)} skipped" if summary.failed else "")
          + (f"; {summary.csv.name} written" if summary.csv else ""))
    if summary.left_out:
        why = "the disk is full" if summary.stop_reason == "disk full" else "stopped"
        print(f"incomplete ({why}): {len(summary.left_out)} image(s) not segmented: "
              + ", ".join(summary.left_out), file=sys.stderr)
    return 0 if summary.predicted and summary.complete else 1


def cmd_evaluate(args) -> int:
    from . import api
    from .core import confusion_matrix, load_bundle, read_image, score
    from .core.imageio import read_ground_truth

    if len(args.images) != len(args.labels):
        raise InputError(f"{len(args.images)} images but {len(args.labels)} label images")
    bundle = load_bundle(args.model, expect="segmentation")
    k = len(bundle.class_names)
    if args.miou_classes:
        bad = [c for c in args.miou_classes if c > k]
        if bad:
            raise InputError(f"--miou-classes {bad[0]}: the model has classes 1..{k} "
                             f"({', '.join(bundle.class_names)})")
    sources, truths = [], []
    for img_path, lab_path in zip(args.images, args.labels):
        image = read_image(img_path)
        truth = read_ground_truth(lab_path, k, args.zero_based)
        if not (truth >= 0).any():
            raise InputError(f"{lab_path}: no pixel is labelled (the ground truth holds only 0, "
                             "'not labelled', or 255, 'ignore'): number the classes 1..K, or "
                             "0..K-1 with --zero-based")
        if truth.shape != image.shape[:2]:
            if truth.shape[0] <= image.shape[0] and truth.shape[1] <= image.shape[1]:
                image = image[: truth.shape[0], : truth.shape[1]]
            else:
                raise InputError(f"{lab_path}: labels {truth.shape} larger than image {image.shape}")
        sources.append(api.ImageSource(str(img_path), data=image))
        truths.append(truth)
    job = api.predict(bundle, sources, _predict_options(args), args.device)
    cm = np.zeros((k, k), np.int64)
    results = (event for event in job.run() if event.kind is api.EventKind.RESULT or event.failed)
    for truth, event in zip(truths, results):
        if event.failed:
            raise MatsegError(event.error)
        for warning in event.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        pred = event.prediction
        band = np.zeros(truth.shape, bool)
        band[pred.content_rows:] = True
        cm += confusion_matrix(truth, pred.labels.astype(np.int64) - 1, k, ignore=band)
    if not cm.any():
        raise MatsegError("no labelled pixel was compared: every labelled pixel lies in the "
                          "information band (try --info-band 0)")
    classes = [c - 1 for c in args.miou_classes] if args.miou_classes else None
    s = score(cm, classes)
    width = max(len(n) for n in bundle.class_names)
    print(f"{'class':{width}s}   IoU   Dice  true %  pred %")
    for i, name in enumerate(bundle.class_names):
        print(f"{name:{width}s}  {s.iou[i]:.3f}  {s.dice[i]:.3f}  {100 * s.true_fractions[i]:6.2f}  "
              f"{100 * s.predicted_fractions[i]:6.2f}")
    over = f" over {', '.join(bundle.class_names[c] for c in classes)}" if classes else ""
    print(f"mIoU {s.miou:.4f}{over}   pixel accuracy {s.accuracy:.4f}   images {len(args.images)}")
    return 0


def cmd_measure(args) -> int:
    from . import api
    from .core import list_images

    from .api.measure_job import report_summary
    from .core import load_bundle
    from .core.measure import BoundaryNetworkConfig

    network = (None if args.raw_boundaries else
               BoundaryNetworkConfig(args.max_gap, args.min_spur, args.min_speck))
    options = api.MeasureOptions(grain_boundaries=args.grain_boundaries,
                                 particles=tuple(args.particles or ()), pixel_size=args.pixel_size,
                                 boundary_network=network)
    diagnosis = None
    if args.model is not None:
        diagnosis = load_bundle(args.model, expect="segmentation").provenance.get("diagnosis") or {}
    job = api.measure(list_images(args.inputs), args.classes, options, args.output, args.overwrite,
                      diagnosis=diagnosis)
    for event in job.run():
        if event.kind is api.EventKind.ERROR:
            raise MatsegError(event.error)
        if event.failed:
            print(f"skipped {event.name}: {event.error}", file=sys.stderr)
    report = job.result
    if not report.images:
        print("nothing was measured", file=sys.stderr)
        return 1
    print("\n".join(report_summary(report)))
    print(f"wrote {len(report.written)} file(s) to {args.output}")
    return 0 if not report.failed else 1


COMMANDS = {"finetune": cmd_finetune, "predict": cmd_predict, "evaluate": cmd_evaluate,
            "pretrain": cmd_pretrain, "measure": cmd_measure}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version of argparse, or a one-line usage error
        return int(done.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.version:
        from . import __version__

        print(f"napari-matseg {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        code = COMMANDS[args.command](args)
    except MatsegError as exc:
        print(f"matseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"matseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"matseg {args.command}: error: out of memory (try a smaller --tile or image)",
              file=sys.stderr)
        return 2
    if code == 0:
        print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
