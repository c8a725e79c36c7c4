import csv

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_matseg.api import PHASE_COLUMNS
from napari_matseg.cli import main
from napari_matseg.core.bundle import load_bundle
from napari_matseg.core.cleanup import class_regions, remove_small_regions
from napari_matseg.core.linewidth import mean_line_width


def test_finetune_predict_evaluate_end_to_end(files, capsys, small_recipe):
    model = files / "m.matseg"
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o", str(model),
                 "--classes", "smooth", "lamellar", "speckled", "--steps", "30", "--device", "cpu",
                 "--pixel-size", "0.05"]) == 0
    captured = capsys.readouterr()
    assert "saved" in captured.out
    assert "warning: trained only 30 steps" in captured.err
    assert load_bundle(model).class_names == ["smooth", "lamellar", "speckled"]
    assert load_bundle(model).preprocess.pixel_size == 0.05

    out = files / "out"
    (files / "more").mkdir()
    tifffile.imwrite(files / "more" / "b.tif", np.asarray(Image.open(files / "img.png")).astype(np.uint16) * 257)
    assert main(["predict", str(model), str(files / "img.png"), str(files / "more"), "-o", str(out),
                 "--uncertainty", "--format", "tif"]) == 0
    assert (out / "img_labels.tif").is_file() and (out / "b_labels.tif").is_file()
    assert (out / "img_uncertainty.tif").is_file()
    labels = tifffile.imread(out / "img_labels.tif")
    assert set(np.unique(labels)) <= {1, 2, 3}
    rows = list(csv.DictReader(open(out / "phase_fractions.csv", encoding="utf-8")))
    assert [r["image"] for r in rows] == ["img.png"] * 3 + ["b.tif"] * 3
    assert [r["class"] for r in rows[:3]] == ["smooth", "lamellar", "speckled"]
    assert list(rows[0]) == PHASE_COLUMNS
    fractions = [float(r["area %"]) for r in rows[:3]]
    assert sum(fractions) == pytest.approx(100, abs=0.01)
    expected = np.bincount(labels.ravel(), minlength=4)[1:] / labels.size * 100
    np.testing.assert_allclose(fractions, expected, atol=0.01)

    tidy = files / "tidy"
    area = 1 + min(int(class_regions(labels, c)[1][1:].min())
                   for c in {2, 3} & set(np.unique(labels).tolist()))
    assert main(["predict", str(model), str(files / "img.png"), "-o", str(tidy), "--format", "tif",
                 "--min-area", "1", f"lamellar={area}", f"3={area}"]) == 0
    tidy_labels = tifffile.imread(tidy / "img_labels.tif")
    np.testing.assert_array_equal(tidy_labels, remove_small_regions(labels, {2: area, 3: area}))
    assert (tidy_labels != labels).any()
    capsys.readouterr()
    assert main(["predict", str(model), str(files / "img.png"), "-o", str(tidy),
                 "--min-area", "ferrite=300"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no class 'ferrite'" in err and len(err.splitlines()) == 1

    lines = files / "lines"
    assert main(["predict", str(model), str(files / "img.png"), "-o", str(lines), "--format", "tif",
                 "--boundary-lines", "speckled"]) == 0
    line_labels = tifffile.imread(lines / "img_labels.tif")
    assert (line_labels == 3).mean() < (labels == 3).mean()
    assert mean_line_width(line_labels == 3) < 5
    capsys.readouterr()
    assert main(["predict", str(model), str(files / "img.png"), "-o", str(files / "nolines"),
                 "--boundary-lines", "boundary"]) == 2
    assert "no class 'boundary'" in capsys.readouterr().err

    coarse = files / "coarse"
    assert main(["predict", str(model), str(files / "img.png"), "-o", str(coarse),
                 "--pixel-size", "0.1"]) == 0
    coarse_labels = np.asarray(Image.open(coarse / "img_labels.png"))
    assert coarse_labels.shape == labels.shape
    assert (coarse_labels != labels).mean() > 0.01  # seen at twice the size, so not the same map

    capsys.readouterr()
    assert main(["evaluate", str(model), "--images", str(files / "img.png"),
                 "--labels", str(files / "truth.png")]) == 0
    report = capsys.readouterr().out
    assert "mIoU" in report and "lamellar" in report
    assert main(["evaluate", str(model), "--images", str(files / "img.png"),
                 "--labels", str(files / "truth.png"), "--min-area",
                 f"3={1 + int(class_regions(labels, 3)[1][1:].min())}"]) == 0  # drops class 3's smallest
    assert capsys.readouterr().out != report

    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o",
                 str(files / "m2.matseg"), "--start", str(model), "--steps", "5"]) == 0
    assert load_bundle(files / "m2.matseg").provenance["warm_start"]["steps"] == 30
    assert load_bundle(files / "m2.matseg").trained_steps == 35


def test_finetune_on_two_images_and_a_warm_start_that_adds_one(files, capsys, small_recipe):
    from napari_matseg.testing import ScribbleSimulation, simulate_scribbles, voronoi_micrograph

    other, truth = voronoi_micrograph((120, 200), grains=16, phases=3, seed=4)
    strokes = simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=20, stroke_width=3,
                                                                  erosion=1, painted_fraction=0.04))
    Image.fromarray(other).save(files / "other.png")
    Image.fromarray(strokes.astype(np.uint8)).save(files / "other_strokes.png")
    first = files / "one.matseg"
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o", str(first),
                 "--steps", "4"]) == 0
    both = files / "both.matseg"
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"),
                 str(files / "other.png"), str(files / "other_strokes.png"), "-o", str(both),
                 "--start", str(first), "--steps", "4"]) == 0
    bundle = load_bundle(both)
    assert [r["name"] for r in bundle.provenance["images"]] == ["img", "other"]
    assert bundle.trained_steps == 8 and bundle.provenance["warm_start"]["steps"] == 4


def test_a_round_written_over_its_start_model_keeps_that_model(files, capsys, small_recipe):
    """``--start M -o M`` must leave the model before the round somewhere to go back to."""
    model = files / "model.matseg"
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o", str(model),
                 "--steps", "3"]) == 0
    before = model.read_bytes()
    capsys.readouterr()
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o", str(model),
                 "--start", str(model), "--steps", "3"]) == 0
    kept = files / "model.before.matseg"
    assert kept.read_bytes() == before
    assert f"kept the model this round started from as {kept}" in capsys.readouterr().err
    assert load_bundle(model).trained_steps == 6 and load_bundle(kept).trained_steps == 3
    other = files / "other.matseg"
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o", str(other),
                 "--start", str(model), "--steps", "3"]) == 0
    assert not (files / "other.before.matseg").exists() and kept.read_bytes() == before

    blocked = files / "blocked.matseg"
    blocked.write_bytes(model.read_bytes())
    (files / "blocked.before.matseg").mkdir()
    start = blocked.read_bytes()
    capsys.readouterr()
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o",
                 str(blocked), "--start", str(blocked), "--steps", "3"]) == 1
    err = capsys.readouterr().err
    assert blocked.read_bytes() == start, "without a copy of the start model, it is not written over"
    saved = Path(err.split("the new model saved to ")[1].split()[0])
    assert saved.is_file() and load_bundle(saved).trained_steps == 9
    saved.unlink()


@pytest.mark.parametrize("argv, message", [
    (["finetune", "{d}/img.png", "{d}/missing.png", "-o", "{d}/m.matseg"], "missing.png: no such file"),
    (["finetune", "{d}/img.png", "{d}/one.png", "-o", "{d}/m.matseg"], "only class 1 is painted"),
    (["finetune", "{d}/img.png", "{d}/small.png", "-o", "{d}/m.matseg"], "must be the size of the image"),
    (["predict", "{d}/strokes.png", "{d}/img.png", "-o", "{d}/out"], "not a readable model bundle"),
    (["finetune", "{d}/img.png", "{d}/strokes.png", "-o", "{d}/m.matseg", "--encoder", "nope"],
     "unknown encoder"),
    (["finetune", "{d}/img.png", "{d}/strokes.png", "{d}/img.png", "-o", "{d}/m.matseg"],
     "finetune takes pairs of IMAGE LABELS, got 3 paths"),
    (["finetune", "{d}/img.png", "{d}/strokes.png", "{d}/img.png", "{d}/small.png", "-o",
      "{d}/m.matseg"], "small.png: 10 x 10 pixels but"),
])
def test_bad_input_exits_nonzero_with_one_line(files, capsys, argv, message):
    Image.fromarray(np.ones((160, 160), np.uint8)).save(files / "one.png")
    Image.fromarray(np.ones((10, 10), np.uint8)).save(files / "small.png")
    code = main([a.format(d=files) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


def test_help_explains_every_option(capsys):
    for command in ("finetune", "predict", "evaluate"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "--info-band" in text and "--device" in text
    assert main([]) == 2


def test_finetune_learns_from_unlabeled_micrographs_with_their_own_information_band(
        files, capsys, small_recipe):
    from napari_matseg.testing import voronoi_micrograph

    other, _ = voronoi_micrograph((120, 200), grains=16, phases=3, seed=5)
    banded = np.vstack([other, np.zeros((24, 200), np.uint8)])
    banded[-24:, 10:190:7] = 255
    (files / "unpainted").mkdir()
    Image.fromarray(banded).save(files / "unpainted" / "banded.png")
    model = files / "u.matseg"
    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o", str(model),
                 "--steps", "4", "--info-band", "0", "--unlabeled", str(files / "unpainted")]) == 0
    provenance = load_bundle(model).provenance
    unlabeled = provenance["finetune"]["unlabeled"]
    record = provenance["unlabeled"]["images"][0]
    assert unlabeled["weight"] > 0 and record["name"] == "unlabeled banded"
    assert record["info_band_rows"] > 0, "--info-band 0 is about the painted images only"

    assert main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o", str(model),
                 "--steps", "4", "--unlabeled", str(files / "unpainted"),
                 "--unlabeled-info-band", "0"]) == 0
    assert load_bundle(model).provenance["unlabeled"]["images"][0]["info_band_rows"] == 0


def test_predictions_average_the_flips_unless_told_not_to():
    """The command line, the API and the Predict dock share one default: flips averaged."""
    from napari_matseg import api
    from napari_matseg.cli import _predict_options, build_parser

    parser = build_parser()
    default = parser.parse_args(["predict", "m.matseg", "a.png", "-o", "out"])
    assert _predict_options(default).tta is True is api.PredictOptions().tta
    off = parser.parse_args(["predict", "m.matseg", "a.png", "-o", "out", "--no-tta"])
    assert _predict_options(off).tta is False
    evaluate = parser.parse_args(["evaluate", "m.matseg", "--images", "a.png", "--labels", "b.png"])
    assert _predict_options(evaluate).tta is True, "evaluate scores what predict writes"
    plain = parser.parse_args(["evaluate", "m.matseg", "--images", "a.png", "--labels", "b.png",
                               "--no-tta"])
    assert _predict_options(plain).tta is False, "and what predict --no-tta writes"
