"""``matseg``: fine-tune, predict and evaluate from the command line (no GUI needed)."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from .core.errors import MatsegError

EPILOG = """examples:
  matseg finetune steel.tif strokes.png -o steel.matseg --classes matrix austenite MA --minutes 2
  matseg predict steel.matseg micrographs/ -o results/
  matseg evaluate steel.matseg --images a.tif b.tif --labels a_gt.png b_gt.png
  matseg pretrain --method sms unlabeled/ -o my-encoder.matseg --minutes 60
  matseg finetune steel.tif strokes.png -o steel.matseg --start my-encoder.matseg
"""


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


def _positive_float(value: str) -> float:
    v = float(value)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return v


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--info-band", type=_info_band, default="auto", metavar="auto|ROWS",
                   help="height of the microscope's information band at the image bottom, kept out "
                        "of training and prediction: 'auto' detects it (default), 0 means none")
    p.add_argument("--device", default="auto",
                   help="torch device: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads torch may use (default: torch's choice)")


def _add_min_area(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-area", nargs="+", default=None, metavar="CLASS=PIXELS",
                   help="give regions of a class smaller than PIXELS (of the input image) the class "
                        "around them, e.g. '--min-area MA=500 defect=2000' (class names or numbers "
                        "1..K); a bare number applies to every class (default: keep all regions)")


def _min_area(args, bundle) -> dict[int, int] | None:
    from .core.cleanup import parse_min_area

    return parse_min_area(args.min_area, bundle.class_names) if args.min_area else None


def _add_pixel_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pixel-size", type=_positive_float, default=None, metavar="UM",
                   help="µm per pixel of the images. Given at training and at prediction, each "
                        "image is brought to the training image's physical scale (useful when "
                        "features keep their physical size across magnifications)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matseg", description="Segment micrographs from a few painted strokes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    ft = sub.add_parser("finetune", help="train a model from strokes painted on one image",
                        description="Fine-tune a segmentation model on one micrograph from a label "
                                    "image of painted strokes (0 = unpainted, 1..K = classes).")
    ft.add_argument("image", type=Path, help="the micrograph (TIFF, PNG, JPEG, BMP)")
    ft.add_argument("labels", type=Path,
                    help="label image of the same size: 0 unpainted, 1..K the painted classes")
    ft.add_argument("-o", "--output", type=Path, required=True, help="model bundle to write (.matseg)")
    ft.add_argument("--classes", nargs="+", metavar="NAME",
                    help="class names in label order 1..K (default: 'class 1', 'class 2', ...)")
    ft.add_argument("--colours", nargs="+", metavar="HEX", help="class colours, e.g. '#1f77b4'")
    budget = ft.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="stop after this many optimiser steps")
    budget.add_argument("--minutes", type=_positive_float, help="stop after this many minutes")
    ft.add_argument("--start", type=Path, metavar="MODEL",
                    help="continue training this bundle (warm start), or start from a pretrained "
                         "bundle made by 'matseg pretrain', instead of ImageNet weights")
    ft.add_argument("--encoder", default=None,
                    help="timm encoder of a new model (default tf_efficientnet_lite0, ImageNet weights)")
    ft.add_argument("--scale", type=_positive_float, default=None,
                    help="resample images by this factor before the network sees them (e.g. 0.5)")
    ft.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_common(ft)
    _add_pixel_size(ft)

    pt = sub.add_parser("pretrain", help="self-supervised pretraining on unlabeled micrographs",
                        description="Pretrain the segmentation network on your own unlabeled "
                                    "micrographs (MatSSL, PSCL or SMS); the result is a starting "
                                    "model for 'matseg finetune --start' and the widgets. Runs "
                                    "data-parallel under 'torchrun --nproc-per-node N'.")
    pt.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_DIR",
                    help="unlabeled micrographs, or folders of them")
    pt.add_argument("--method", choices=["matssl", "pscl", "sms"], required=True,
                    help="matssl: contrastive with gated multi-stage fusion; pscl: image + patch "
                         "contrast spreading the labels of one scribbled image (needs --labels); "
                         "sms: masked reconstruction with selective masking")
    pt.add_argument("-o", "--output", type=Path, required=True, help="pretrained bundle to write (.matseg)")
    pt.add_argument("--labels", nargs=2, type=Path, metavar=("IMAGE", "SCRIBBLES"),
                    help="PSCL only: the annotated image and its scribbles (0 unpainted, 1..K)")
    pbudget = pt.add_mutually_exclusive_group()
    pbudget.add_argument("--steps", type=int, help="stop after this many optimiser steps")
    pbudget.add_argument("--minutes", type=_positive_float,
                         help="stop after this many minutes (default 10)")
    pt.add_argument("--batch-size", type=int, default=None,
                    help="views per step and process (default 16; pairs for matssl, unlabeled crops "
                         "for pscl)")
    pt.add_argument("--crop-size", type=int, default=None, help="view side in pixels (default 160)")
    pt.add_argument("--lr", type=_positive_float, default=None,
                    help="learning rate (default: the method's: matssl 0.1 SGD, pscl 1e-4 Adam, "
                         "sms 1e-3 AdamW)")
    pt.add_argument("--init", default="imagenet", metavar="imagenet|random|MODEL",
                    help="starting weights: ImageNet (default), random, or a bundle to continue from")
    pt.add_argument("--encoder", default=None, help="timm encoder name (default tf_efficientnet_lite0)")
    pt.add_argument("--sms-schedule", choices=["partitioned", "online"], default="partitioned",
                    help="sms: the authors' partitioned schedule (default) or per-batch selection")
    pt.add_argument("--scale", type=_positive_float, default=None,
                    help="resample images by this factor first (default: 0.5 for images >= 900 px)")
    pt.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pt.add_argument("--checkpoint", type=Path, default=None,
                    help="checkpoint file (default: OUTPUT with .ckpt added), written every 2 minutes")
    pt.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint of an interrupted run (same budget counts on)")
    _add_common(pt)

    pr = sub.add_parser("predict", help="segment images with a trained model",
                        description="Write a class label image per input image and a CSV of phase "
                                    "(area) fractions.")
    pr.add_argument("model", type=Path, help="model bundle (.matseg)")
    pr.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_DIR",
                    help="images, or folders whose images are all segmented")
    pr.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    pr.add_argument("--format", choices=["png", "tif"], default="png", help="label image format")
    pr.add_argument("--uncertainty", action="store_true",
                    help="also write a float TIFF of per-pixel uncertainty (normalised entropy)")
    pr.add_argument("--tta", action="store_true", help="average over flips (4x slower, smoother)")
    pr.add_argument("--tile", type=int, default=1024, help="tile size in pixels (default 1024)")
    _add_min_area(pr)
    _add_common(pr)
    _add_pixel_size(pr)

    ev = sub.add_parser("evaluate", help="compare predictions with ground-truth labels",
                        description="Report IoU, Dice, accuracy and phase-fraction errors. Ground "
                                    "truth uses the model's class numbering 1..K (0 = not labelled), "
                                    "or 0..K-1 with --zero-based.")
    ev.add_argument("model", type=Path, help="model bundle (.matseg)")
    ev.add_argument("--images", type=Path, nargs="+", required=True, help="images to segment")
    ev.add_argument("--labels", type=Path, nargs="+", required=True,
                    help="ground-truth label images, one per image, in the same order")
    ev.add_argument("--zero-based", action="store_true",
                    help="ground truth numbers classes 0..K-1 (every pixel labelled)")
    ev.add_argument("--miou-classes", type=int, nargs="+", metavar="K",
                    help="classes (1..K) averaged into mIoU (default: all)")
    _add_min_area(ev)
    _add_common(ev)
    _add_pixel_size(ev)
    return parser


def _progress(total, desc, unit):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=None)


def cmd_finetune(args) -> int:
    from .core import FinetuneConfig, Finetuner, load_bundle, read_image, read_labels
    from .core.model import ModelConfig
    from .core.preprocess import PreprocessConfig

    image, labels = read_image(args.image), read_labels(args.labels)
    config = FinetuneConfig(seed=args.seed, device=args.device)
    if args.steps:
        config.max_steps, config.max_seconds = args.steps, None
    if args.minutes:
        config.max_seconds = args.minutes * 60
        config.max_steps = max(config.max_steps, int(config.max_seconds * 10))
    start = load_bundle(args.start) if args.start else None
    pretrained = start if start is not None and start.kind == "pretrained" else None
    if pretrained:
        start = None
    model = start.model if start else None
    preprocess = start.preprocess if start else PreprocessConfig()
    if args.scale:
        preprocess.scale = args.scale
    model_config = ModelConfig(encoder=args.encoder) if args.encoder else None
    names = args.classes or (start.class_names if start else None)
    tuner = Finetuner(image, labels, num_classes=len(names) if names else None, model=model,
                      config=config, preprocess=preprocess, model_config=model_config,
                      info_band=args.info_band, pretrained=pretrained, pixel_size=args.pixel_size,
                      steps_before=start.trained_steps if start else 0)
    bar = _progress(config.max_steps, "fine-tuning", "step")
    done = None
    try:
        for event in tuner.run():
            if event.kind == "step":
                bar.update(event.step - bar.n)
                bar.set_postfix(loss=f"{event.loss:.3f}")
            elif event.kind == "done":
                done = event
    except KeyboardInterrupt:
        tuner.stop()
        print("interrupted: keeping the best model so far", file=sys.stderr)
    finally:
        bar.close()
    colours = args.colours or (start.class_colours if start else None)
    bundle = tuner.to_bundle(names, colours)
    if start:
        bundle.provenance["warm_start"] = start.provenance
    bundle.save(args.output)
    reason = done.reason if done else "interrupted"
    print(f"saved {args.output} ({tuner.provenance.get('steps', tuner.steps_done)} steps, best at "
          f"step {tuner.best_step}, stopped by {reason})")
    if tuner.class_prior is not None:
        for warning in tuner.diagnose(names).warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_pretrain(args) -> int:
    from .core import list_images, read_image, read_labels
    from .core.errors import InputError
    from .core.pretrain import MicrographPool, PretrainConfig, Pretrainer
    from .core.preprocess import PreprocessConfig

    if args.method == "pscl" and not args.labels:
        raise InputError("pscl needs --labels IMAGE SCRIBBLES (one image with painted strokes)")
    config = PretrainConfig(method=args.method, seed=args.seed, device=args.device,
                            info_band=args.info_band, init=args.init, lr=args.lr)
    if args.encoder:
        config.encoder = args.encoder
    if args.batch_size:
        config.batch_size = args.batch_size
    if args.crop_size:
        config.crop_size = args.crop_size
    config.sms.schedule = args.sms_schedule
    if args.steps:
        config.max_steps, config.max_seconds = args.steps, None
    else:
        config.max_seconds = (args.minutes or 10.0) * 60
    files = list_images(args.inputs)
    bar = _progress(len(files), "reading", "image")
    pool = MicrographPool.from_paths(files, PreprocessConfig(scale=args.scale), args.info_band,
                                     progress=lambda i, n: bar.update(1))
    bar.close()
    labelled = (read_image(args.labels[0]), read_labels(args.labels[1])) if args.labels else None
    checkpoint = args.checkpoint or args.output.with_name(args.output.name + ".ckpt")
    trainer = Pretrainer(pool, config, labelled, checkpoint=checkpoint, resume=args.resume)
    main_rank = trainer.dist.is_main
    timed = config.max_seconds is not None
    bar = _progress(int(config.max_seconds) if timed else config.max_steps,
                    f"pretraining ({args.method})", "s" if timed else "step")
    if not main_rank:
        bar.disable = True
    try:
        for event in trainer.run():
            if event.kind == "step":
                bar.update((int(event.elapsed) if timed else event.step) - bar.n)
                bar.set_postfix(step=event.step, loss=f"{event.loss:.4f}")
            elif event.kind == "message" and main_rank:
                bar.write(event.message)
    except KeyboardInterrupt:
        trainer.stop()
        print(f"interrupted: resume with --resume (checkpoint {checkpoint})", file=sys.stderr)
    finally:
        bar.close()
    if main_rank:
        bundle = trainer.to_bundle()
        bundle.provenance["command"] = "matseg " + " ".join(args.argv)
        bundle.save(args.output)
        print(f"saved {args.output} ({trainer.steps_done} steps, {trainer.elapsed:.0f} s, "
              f"{len(pool)} images, {trainer.dist.world} process(es))")
    trainer.close()
    return 0


def _phase_row(name, labels, class_names):
    from .core.metrics import phase_fractions

    fractions = phase_fractions(labels, len(class_names), offset=1)
    return {"image": name, **{f"{c} (%)": round(100 * f, 3) for c, f in zip(class_names, fractions)}}


def cmd_predict(args) -> int:
    from .core import list_images, load_bundle, read_image, write_labels
    from .core.device import pick_device

    bundle = load_bundle(args.model, expect="segmentation")
    min_area = _min_area(args, bundle)
    files = list_images(args.inputs)
    device = pick_device(args.device)
    args.output.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    bar = _progress(len(files), "predicting", "image")
    for path in files:
        try:
            image = read_image(path)
            pred = bundle.predict(image, args.info_band, args.pixel_size, device, tile=args.tile,
                                  tta=args.tta, keep_probabilities=False,
                                  min_region_area=min_area)
        except MatsegError as exc:
            failed += 1
            print(f"skipped {exc}", file=sys.stderr)
            bar.update(1)
            continue
        write_labels(args.output / f"{path.stem}_labels.{args.format}", pred.labels)
        if args.uncertainty:
            import tifffile

            tifffile.imwrite(args.output / f"{path.stem}_uncertainty.tif", pred.uncertainty)
        rows.append(_phase_row(path.name, pred.labels, bundle.class_names))
        bar.update(1)
    bar.close()
    if rows:
        with open(args.output / "phase_fractions.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"segmented {len(rows)} image(s) into {args.output}" + (f", {failed} skipped" if failed else ""))
    return 0 if rows else 1


def cmd_evaluate(args) -> int:
    from .core import InputError, confusion_matrix, load_bundle, read_image, read_labels, score
    from .core.device import pick_device

    if len(args.images) != len(args.labels):
        raise InputError(f"{len(args.images)} images but {len(args.labels)} label images")
    bundle = load_bundle(args.model, expect="segmentation")
    min_area = _min_area(args, bundle)
    device = pick_device(args.device)
    k = len(bundle.class_names)
    cm = np.zeros((k, k), np.int64)
    for img_path, lab_path in zip(args.images, args.labels):
        image, truth = read_image(img_path), read_labels(lab_path)
        if truth.shape != image.shape[:2]:
            if truth.shape[0] <= image.shape[0] and truth.shape[1] <= image.shape[1]:
                image = image[: truth.shape[0], : truth.shape[1]]
            else:
                raise InputError(f"{lab_path}: labels {truth.shape} larger than image {image.shape}")
        pred = bundle.predict(image, args.info_band, args.pixel_size, device,
                              keep_probabilities=False, min_region_area=min_area)
        t = truth if args.zero_based else truth - 1
        band = np.zeros(truth.shape, bool)
        band[pred.content_rows:] = True
        cm += confusion_matrix(t, pred.labels.astype(np.int64) - 1, k, ignore=band)
    classes = [c - 1 for c in args.miou_classes] if args.miou_classes else None
    s = score(cm, classes)
    width = max(len(n) for n in bundle.class_names)
    print(f"{'class':{width}s}   IoU   Dice  true %  pred %")
    for i, name in enumerate(bundle.class_names):
        print(f"{name:{width}s}  {s.iou[i]:.3f}  {s.dice[i]:.3f}  {100 * s.true_fractions[i]:6.2f}  "
              f"{100 * s.predicted_fractions[i]:6.2f}")
    print(f"mIoU {s.miou:.4f}   pixel accuracy {s.accuracy:.4f}   images {len(args.images)}")
    return 0


COMMANDS = {"finetune": cmd_finetune, "predict": cmd_predict, "evaluate": cmd_evaluate,
            "pretrain": cmd_pretrain}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    if code == 0:
        print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
