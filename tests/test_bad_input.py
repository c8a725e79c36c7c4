"""The bad-input and interruption suite: one group per class of failure (silently wrong, lost
work, tracebacks, weak messages). Wherever input cannot be used: one line naming the file and the
problem, and a non-zero exit; never a traceback, a silent wrong result or lost work."""

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from napari_matseg import api
from napari_matseg.cli import main
from napari_matseg.core.bundle import load_bundle
from napari_matseg.core.errors import BundleError, InputError, MatsegError
from napari_matseg.core.imageio import read_image, read_labels, write_labels
from napari_matseg.core.normalize import PercentileNormalizer


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, trained):
    path = tmp_path_factory.mktemp("model") / "m.matseg"
    trained.to_bundle(["smooth", "lamellar", "speckled"]).save(path)
    return path


def one_line_error(capsys, argv, code=2):
    """Run the CLI; check it exits with ``code`` and one stderr line; return that line."""
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("done in")]
    assert len(lines) == 1, err
    return lines[0]


def no_training(monkeypatch):
    """Make any fine-tune that starts fail the test: errors must come before the work."""
    from napari_matseg.core import finetune

    def refuse(*args, **kwargs):
        raise AssertionError("training started although the output could not be written")

    monkeypatch.setattr(finetune.Finetuner, "run", refuse)


# -- silently wrong ------------------------------------------------------------------------------

def test_a_nan_or_inf_pixel_does_not_turn_the_image_into_one_class(trained, micrograph):
    image, _ = micrograph
    bundle = trained.to_bundle()
    clean = bundle.predict(image.astype(np.float32), info_band=0).labels
    broken = image.astype(np.float32)
    broken[10, 10], broken[50, 60] = np.nan, np.inf
    labels = bundle.predict(broken, info_band=0).labels
    assert (labels == clean).mean() > 0.99
    assert len(np.unique(labels)) > 1
    normalised = PercentileNormalizer()(broken)
    assert np.isfinite(normalised).all()


def test_colour_stroke_files_are_refused_naming_their_colours(tmp_path, scribbles):
    rgb = np.zeros(scribbles.shape + (3,), np.uint8)
    rgb[scribbles == 1] = (255, 0, 0)
    rgb[scribbles == 2] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match=r"colour.png: the labels are a colour image \(3 colours: "
                                         r"#000000, #00ff00, #ff0000\)"):
        read_labels(tmp_path / "colour.png")


def test_palette_strokes_give_their_indices(tmp_path, scribbles):
    height, width = scribbles.shape
    im = Image.frombytes("P", (width, height), scribbles.astype(np.uint8).tobytes())
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    im.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "palette.png"), scribbles)


@pytest.mark.parametrize("values, hint", [((80, 160, 240), "grey levels or colours"),
                                          ((1, 255), "values 0, 1, 255"),
                                          (None, "IMAGE and LABELS swapped")])
def test_label_values_that_are_not_class_numbers_are_refused(files, capsys, micrograph, values, hint):
    image, _ = micrograph
    if values is None:
        labels = image  # the micrograph given as the strokes
    else:
        labels = np.zeros(image.shape, np.uint8)
        for i, v in enumerate(values):
            labels[10 * i:10 * i + 5, 10:40] = v
    Image.fromarray(labels).save(files / "bad.png")
    line = one_line_error(capsys, ["finetune", files / "img.png", files / "bad.png", "-o",
                                   files / "m.matseg"])
    assert "bad.png" in line and "not class numbers" in line and hint in line


def _rewrite_bundle(source, target, key, value):
    """Write a copy of a bundle whose metadata has ``key`` (dotted) set to ``value``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(source), framework="pt") as f:
        meta = json.loads(f.metadata()["matseg"])
    *path, last = key.split(".")
    holder = meta
    for part in path:
        holder = holder[part]
    holder[last] = value
    tensors = load_file(str(source))
    save_file(tensors, str(target), metadata={"matseg": json.dumps(meta)})
    return target


@pytest.mark.parametrize("key, value, message", [
    ("preprocess.scale", 0, "working scale must be at least"),
    ("preprocess.scale", -1.0, "working scale must be at least"),
    ("preprocess.scale", 1e9, "working scale must be at most"),
    ("preprocess.pixel_size", 0, "pixel size must be a positive number"),
    ("preprocess.normalizer", "1..99", "normaliser must be a mapping"),
    ("class_prior", [float("nan"), 0.5, 0.5], "class prior is"),
    ("class_prior", [0.5, 0.5], "class prior is"),
    ("class_names", "matrix", "class names and colours must be lists"),
    ("class_colours", ["red", "green", "blue"], "colours are written '#rrggbb'"),
    ("model.num_classes", "3", "number of classes must be a whole number"),
    ("model.decoder_channels", "64", "decoder channels must be a list"),
    ("provenance", [], "provenance must be a mapping"),
])
def test_invalid_bundle_metadata_is_refused_in_one_line(model_file, tmp_path, capsys, key, value,
                                                        message):
    bad = _rewrite_bundle(model_file, tmp_path / "bad.matseg", key, value)
    with pytest.raises(BundleError, match=message):
        load_bundle(bad)
    line = one_line_error(capsys, ["predict", bad, tmp_path / "x.png", "-o", tmp_path / "out"])
    assert "bad.matseg" in line


def test_nan_weights_are_refused(model_file, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(model_file))
    tensors["head.weight"][0, 0] = float("nan")
    save_file(tensors, str(tmp_path / "nan.matseg"), metadata=meta)
    with pytest.raises(BundleError, match="not numbers .NaN or inf, in head.weight"):
        load_bundle(tmp_path / "nan.matseg")


def test_evaluate_miou_of_one_class_is_that_class(files, model_file, capsys):
    assert main(["evaluate", str(model_file), "--images", str(files / "img.png"), "--labels",
                 str(files / "truth.png"), "--miou-classes", "2"]) == 0
    out = capsys.readouterr().out
    iou = float(next(line for line in out.splitlines() if line.startswith("lamellar")).split()[1])
    miou = float(out.split("mIoU ")[1].split()[0])
    assert miou == pytest.approx(iou, abs=1e-3) and "over lamellar" in out
    for bad in ("0", "4"):
        line = one_line_error(capsys, ["evaluate", model_file, "--images", files / "img.png",
                                       "--labels", files / "truth.png", "--miou-classes", bad])
        assert "--miou-classes" in line


# -- lost work ------------------------------------------------------------------------------------

@pytest.mark.parametrize("output, extra, message", [
    ("folder", [], "is a folder"),
    ("afile/m.matseg", [], "is a file, not a folder"),
    ("m.matseg", ["--colours", "#ff0000"], "1 colours were given for 3 classes"),
    ("m.matseg", ["--colours", "red", "green", "blue"], "'#rrggbb'"),
    ("m.matseg", ["--classes", "a", "a", "b"], "must differ"),
])
def test_outputs_and_classes_are_checked_before_training(files, capsys, monkeypatch, output, extra,
                                                         message):
    (files / "folder").mkdir()
    (files / "afile").write_text("not a folder")
    no_training(monkeypatch)
    args = ["finetune", files / "img.png", files / "strokes.png", "-o", files / output, *extra]
    if extra[:1] == ["--colours"]:
        args += ["--classes", "a", "b", "c"]
    assert message in one_line_error(capsys, args)


def test_a_full_disk_is_found_before_training(files, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    no_training(monkeypatch)
    line = one_line_error(capsys, ["finetune", files / "img.png", files / "strokes.png", "-o",
                                   files / "m.matseg"])
    assert "MB of disk left" in line


def test_a_model_that_cannot_be_saved_at_the_end_goes_elsewhere(files, capsys, monkeypatch,
                                                                 small_recipe, tmp_path):
    from napari_matseg.core.bundle import ModelBundle

    original = ModelBundle.save

    def failing_save(self, path):
        if "fallback" not in str(path) and str(path).startswith(str(files)):
            raise OSError(28, "No space left on device")
        return original(self, path)

    monkeypatch.setattr(ModelBundle, "save", failing_save)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "fallback"))
    (tmp_path / "fallback").mkdir()
    code = main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o",
                 str(files / "m.matseg"), "--steps", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "saved to" in err
    saved = list((tmp_path / "fallback").glob("m-*.matseg"))
    assert len(saved) == 1 and load_bundle(saved[0]).trained_steps == 2


def test_same_stems_never_overwrite_each_other_and_runs_never_replace_results(files, model_file,
                                                                              capsys):
    (files / "b").mkdir()
    image = np.asarray(Image.open(files / "img.png"))
    Image.fromarray(image).save(files / "b" / "img.png")
    tifffile.imwrite(files / "img.tif", image)
    out = files / "out"
    assert main(["predict", str(model_file), str(files / "img.png"), str(files / "img.tif"),
                 str(files / "b" / "img.png"), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*_labels.png")) == [
        "img-2_labels.png", "img-3_labels.png", "img_labels.png"]
    rows = list(csv.DictReader(open(out / "phase_fractions.csv", encoding="utf-8")))
    assert len(rows) == 9 and len({r["source"] for r in rows}) == 3
    capsys.readouterr()
    line = one_line_error(capsys, ["predict", model_file, files / "img.png", "-o", out])
    assert "phase_fractions.csv" in line and "already exist" in line and "--overwrite" in line
    assert main(["predict", str(model_file), str(files / "img.png"), "-o", str(out),
                 "--overwrite"]) == 0
    rows = list(csv.DictReader(open(out / "phase_fractions.csv", encoding="utf-8")))
    assert len(rows) == 3, "a run writes only its own rows"


def test_label_files_are_written_atomically(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    def crash(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(PILImage.Image, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        write_labels(tmp_path / "l.png", np.ones((20, 20), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_fine_tune_saves_a_complete_model(files, sig):
    model, log = files / "m.matseg", files / "err.log"
    cmd = [sys.executable, "-m", "napari_matseg.cli", "finetune", str(files / "img.png"),
           str(files / "strokes.png"), "-o", str(model), "--steps", "100000", "--threads", "1",
           "--device", "cpu"]
    with open(log, "w") as err_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, text=True)
        deadline = time.time() + 180
        while time.time() < deadline and "training from" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        time.sleep(6)  # the model is built and a few steps are done
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=180)
    err = log.read_text()
    assert proc.returncode == 0, err[-2000:]
    assert "stopping after this step" in err and "saved" in out
    assert "stopped by stopped" not in out and "stopped on request" in out
    bundle = load_bundle(model)
    p = bundle.provenance
    assert p["stop_reason"] == "stopped" and p["steps"] >= 1
    assert "diagnosis" in p
    assert (bundle.class_prior is None) == bool(p["diagnosis"]["collapse"]), \
        "a complete model has its class prior unless it failed the collapse check"


# -- tracebacks -----------------------------------------------------------------------------------

def _two_page_tiff(path):
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((40, 40), np.uint8))
        tif.write(np.zeros((20, 30), np.uint8))


@pytest.mark.parametrize("make, message", [
    (lambda p: Image.fromarray(np.zeros((1, 200), np.uint8)).save(p / "x.png"), "too small to segment"),
    (lambda p: tifffile.imwrite(p / "x.tif", np.zeros((50, 50), np.complex64)), "complex numbers"),
    (lambda p: _two_page_tiff(p / "x.tif"), "2 pages of different sizes"),
    (lambda p: (p / "x.png").mkdir(), "is a folder, not an image file"),
    (lambda p: (p / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30), "cannot be read as an image"),
])
def test_unusable_images_are_one_line_errors(tmp_path, capsys, model_file, make, message):
    make(tmp_path)
    name = next(p for p in tmp_path.iterdir() if p.name.startswith("x."))
    with pytest.raises(InputError, match=message):
        read_image(name)
    summary_line = one_line_error(capsys, ["finetune", name, name, "-o", tmp_path / "m.matseg"])
    assert message in summary_line and name.name in summary_line


def test_bool_and_one_bit_images_are_read(tmp_path, micrograph, trained):
    mask = micrograph[0] > 128
    Image.fromarray(mask).save(tmp_path / "bit.png")
    tifffile.imwrite(tmp_path / "bool.tif", mask)
    for name in ("bit.png", "bool.tif"):
        data = read_image(tmp_path / name)
        assert data.dtype == np.uint8 and set(np.unique(data)) <= {0, 1, 255}
        assert trained.to_bundle().predict(data, info_band=0).labels.shape == mask.shape


def test_decompression_bombs_stop_at_the_pixel_limit(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((300, 400), np.uint8), compression="zlib")
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setenv("MATSEG_MAX_PIXELS", "100000")
    for name in ("big.tif", "big.png"):
        with pytest.raises(InputError, match="400 x 300 pixels is larger than the limit of 100,000"):
            read_image(tmp_path / name)
    assert read_image(tmp_path / "big.tif", max_pixels=200_000).shape == (300, 400)


@pytest.mark.parametrize("argv, message", [
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--steps", "-1"], "--steps: must be at least 1"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--steps", "0"], "--steps: must be at least 1"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--minutes", "nan"], "--minutes: 'nan' is not a finite number"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--pixel-size", "inf"], "--pixel-size: 'inf' is not a finite number"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--pixel-size", "-2"], "--pixel-size: must be greater than 0"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--scale", "0"], "--scale: must be greater than 0"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--scale", "100"], "working scale must be at most 8"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--device", "cuda:7"], "GPU"),
    (["finetune", "{img}", "{strokes}", "-o", "{d}/m.matseg", "--device", "tpu"], "unknown device"),
    (["predict", "{model}", "{img}", "-o", "{d}/out", "--tile", "0"], "--tile: must be at least 32"),
    (["predict", "{model}", "{img}", "-o", "{d}/out", "--tile", "ten"], "--tile: 'ten' is not a whole number"),
    (["pretrain", "--method", "sms", "{img}", "-o", "{d}/e.matseg", "--batch-size", "0"], "--batch-size: must be at least 2"),
    (["pretrain", "--method", "sms", "{img}", "-o", "{d}/e.matseg", "--crop-size", "100"], "--crop-size: must be a multiple of 32"),
    (["pretrain", "--method", "byol", "{img}", "-o", "{d}/e.matseg"], "invalid choice: 'byol'"),
])
def test_bad_numbers_and_choices_are_one_line_errors(files, model_file, capsys, argv, message):
    subs = {"img": files / "img.png", "strokes": files / "strokes.png", "d": files,
            "model": model_file}
    line = one_line_error(capsys, [a.format(**subs) for a in argv])
    assert message in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_is_an_error_before_any_work(files, capsys, monkeypatch):
    no_training(monkeypatch)
    line = one_line_error(capsys, ["finetune", files / "img.png", files / "strokes.png", "-o",
                                   files / "m.matseg", "--device", "cuda"])
    assert "no usable NVIDIA GPU" in line


def test_an_unwritable_predict_output_fails_before_work(files, model_file, capsys):
    (files / "afile").write_text("x")
    line = one_line_error(capsys, ["predict", model_file, files / "img.png", "-o",
                                   files / "afile" / "out"])
    assert "cannot write there" in line
    assert "is a file, not a folder" in one_line_error(
        capsys, ["predict", model_file, files / "img.png", "-o", files / "afile"])


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x80\x04\x95pickle"])
def test_an_empty_or_hostile_resume_checkpoint_is_one_line(files, capsys, content):
    (files / "e.matseg.ckpt").write_bytes(content)
    line = one_line_error(capsys, ["pretrain", "--method", "sms", files / "img.png", "-o",
                                   files / "e.matseg", "--resume", "--steps", "2", "--crop-size",
                                   "64", "--batch-size", "2", "--init", "random", "--info-band", "0"])
    assert "not a usable pretraining checkpoint" in line


def test_one_bad_file_does_not_end_a_folder_run(files, model_file, capsys):
    folder = files / "many"
    folder.mkdir()
    image = np.asarray(Image.open(files / "img.png"))
    Image.fromarray(image).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"not a png")
    Image.fromarray(image).save(folder / "c.png")
    out = files / "res"
    assert main(["predict", str(model_file), str(folder), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "b.png" in err and "cannot be read" in err
    rows = list(csv.DictReader(open(out / "phase_fractions.csv", encoding="utf-8")))
    assert sorted({r["image"] for r in rows}) == ["a.png", "c.png"]


# -- weak messages --------------------------------------------------------------------------------

def test_a_folder_given_for_a_file_says_so(files, capsys):
    (files / "dir.png").mkdir()
    line = one_line_error(capsys, ["finetune", files / "img.png", files / "dir.png", "-o",
                                   files / "m.matseg"])
    assert "is a folder" in line
    line = one_line_error(capsys, ["predict", files, files / "img.png", "-o", files / "out"])
    assert "is a folder, not a model file" in line


def test_csv_cells_that_look_like_formulas_are_escaped(tmp_path):
    rows = api.phase_rows("=HYPERLINK(1)", np.ones((20, 20), np.uint8), ["+cmd", "@x"])
    path = api.write_csv(tmp_path / "p.csv", rows, api.PHASE_COLUMNS)
    text = path.read_text(encoding="utf-8")
    assert "'=HYPERLINK(1)" in text and "'+cmd" in text and "'@x" in text
    assert ",-" not in text.replace(",-1", "")  # numbers are not touched
    assert list(csv.DictReader(open(path, encoding="utf-8")))[0]["area %"] == "100.0"


# -- full disks, interrupted batches, leftovers ----------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """Return a function that mounts a tmpfs of ``size`` (e.g. '8m') and returns its folder;
    skipped where the test cannot mount one (not root, or no mount permission)."""
    import os
    import shutil

    mounted = []

    def mount(size: str):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if sys.platform != "linux" or shutil.which("mount") is None:
            pytest.skip("a small filesystem needs Linux's mount")
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_safetensors_disk_full_becomes_an_oserror(model_file, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", full)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "fallback"))
    with pytest.raises(OSError) as raised:
        load_bundle(model_file).save(tmp_path / "m.matseg")
    assert raised.value.errno == 28
    with pytest.raises(MatsegError, match="nor the copy"):  # one line, not a traceback
        api.save_with_fallback(load_bundle(model_file).save, tmp_path / "m.matseg")


def test_a_disk_that_fills_during_the_save_keeps_the_model_elsewhere(model_file, small_disk,
                                                                       tmp_path, monkeypatch):
    disk = small_disk("4m")  # the model takes about 14 MB
    (tmp_path / "fallback").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "fallback"))
    bundle = load_bundle(model_file)
    written, note = api.save_with_fallback(bundle.save, disk / "m.matseg")
    assert written.parent == tmp_path / "fallback" and load_bundle(written).class_names == bundle.class_names
    assert "the disk is full" in note and str(disk / "m.matseg") in note
    assert list(disk.iterdir()) == [], "no half model and no temporary file is left"


def test_finetune_on_a_disk_that_fills_saves_to_the_temporary_folder(files, small_disk, tmp_path,
                                                                      capsys, monkeypatch, small_recipe):
    disk = small_disk("6m")
    monkeypatch.setattr("napari_matseg.api.outputs.MIN_FREE_BYTES", 2**20)  # the pre-check passes
    (tmp_path / "fallback").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "fallback"))
    code = main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o",
                 str(disk / "m.matseg"), "--steps", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "the disk is full" in err and "saved to" in err, err
    saved = list((tmp_path / "fallback").glob("m-*.matseg"))
    assert len(saved) == 1 and load_bundle(saved[0]).trained_steps == 2


def _folder_of_images(folder, image, count):
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.roll(image, 7 * i, axis=1)).save(folder / f"im{i}.png")
    return folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_batch_says_which_images_it_left_out(files, model_file, capsys, monkeypatch,
                                                            sig):
    import os

    import napari_matseg.api.predict_job as predict_job

    folder = _folder_of_images(files / "many", np.asarray(Image.open(files / "img.png")), 6)
    original, calls = predict_job.predict_image, []

    def predict_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), sig)  # the user presses Ctrl-C (or the batch system sends SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(predict_job, "predict_image", predict_then_signal)
    code = main(["predict", str(model_file), str(folder), "-o", str(files / "out")])
    captured = capsys.readouterr()
    assert code != 0
    assert "stopping after this image" in captured.err and "what was learnt" not in captured.err
    left_out = captured.err.split("3 image(s) not segmented: ")[1].splitlines()[0]
    assert [name.rsplit("/", 1)[-1] for name in left_out.split(", ")] == ["im3.png", "im4.png",
                                                                         "im5.png"]
    assert "segmented 3 of 6" in captured.out
    rows = list(csv.DictReader(open(files / "out" / "phase_fractions.csv", encoding="utf-8")))
    assert sorted({r["image"] for r in rows}) == ["im0.png", "im1.png", "im2.png"]
    assert len(list((files / "out").glob("*_labels.png"))) == 3


def test_a_disk_that_fills_during_a_batch_says_so_and_keeps_outputs_consistent(
        files, model_file, small_disk, capsys, monkeypatch):
    folder = _folder_of_images(files / "many", np.asarray(Image.open(files / "img.png")), 10)
    disk = small_disk("400k")  # each image writes about 110 kB (labels and float uncertainty)
    monkeypatch.setattr("napari_matseg.api.outputs.MIN_FREE_BYTES", 1000)
    code = main(["predict", str(model_file), str(folder), "-o", str(disk), "--uncertainty"])
    err = capsys.readouterr().err
    assert code == 1
    assert "the disk is full" in err and "OSError" not in err and "requested and" not in err
    assert "not segmented: " in err
    rows = list(csv.DictReader(open(disk / "phase_fractions.csv", encoding="utf-8")))
    in_csv = {r["image"].removesuffix(".png") for r in rows}
    labels = {p.name.removesuffix("_labels.png") for p in disk.glob("*_labels.png")}
    uncertain = {p.name.removesuffix("_uncertainty.tif") for p in disk.glob("*_uncertainty.tif")}
    assert 0 < len(in_csv) < 10 and in_csv == labels == uncertain
    assert not list(disk.glob(".*.tmp"))


def test_predicting_a_folder_into_itself_skips_its_earlier_results(files, model_file, capsys):
    folder = _folder_of_images(files / "many", np.asarray(Image.open(files / "img.png")), 2)
    assert main(["predict", str(model_file), str(folder), "-o", str(folder)]) == 0
    capsys.readouterr()
    assert main(["predict", str(model_file), str(folder), "-o", str(folder), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "left out as results of an earlier run (im0_labels.png, im1_labels.png)" in err
    assert sorted(p.name for p in folder.iterdir()) == [
        "im0.png", "im0_labels.png", "im1.png", "im1_labels.png", "phase_fractions.csv"]
    rows = list(csv.DictReader(open(folder / "phase_fractions.csv", encoding="utf-8")))
    assert sorted({r["image"] for r in rows}) == ["im0.png", "im1.png"]
    line = one_line_error(capsys, ["predict", model_file, folder / "im0_labels.png", "-o", folder,
                                   "--overwrite"])
    assert "results of an earlier run, not micrographs" in line


def _killed_while_writing(path):
    """Start a process that writes ``path`` atomically, kill it (-9) in the middle; return the
    temporary file it left."""
    code = ("import sys, time\nfrom napari_matseg.core.atomic import atomic_write\n"
            "def write(tmp):\n    open(tmp, 'wb').write(b'half a model')\n"
            "    print('writing', flush=True)\n    time.sleep(60)\n"
            f"atomic_write({str(path)!r}, write)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(timeout=30)
    left = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1
    return left[0]


def test_temporary_files_of_a_killed_save_are_removed_by_the_next(model_file, tmp_path):
    import os

    path = tmp_path / "m.matseg"
    left = _killed_while_writing(path)
    os.utime(left, (time.time() - 10, time.time() - 10))
    live = tmp_path / f".m.matseg.{os.getpid()}.abcdefgh.tmp"  # a save in progress: kept
    old_style_fresh = tmp_path / ".m.matseg.ab_12345.tmp"      # no writer id, recent: kept
    old_style_stale = tmp_path / ".m.matseg.zz_99999.tmp"      # no writer id, a day old: removed
    others = [tmp_path / ".other.matseg.qwertyui.tmp", tmp_path / "m.matseg.tmp",
              tmp_path / ".m.matseg.notes.txt"]                   # not its own temporary files
    for p in [live, old_style_fresh, old_style_stale, *others]:
        p.write_bytes(b"x")
    os.utime(old_style_stale, (time.time() - 86400, time.time() - 86400))
    os.utime(others[0], (time.time() - 86400, time.time() - 86400))
    load_bundle(model_file).save(path)
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == sorted(["m.matseg", live.name, old_style_fresh.name] + [p.name for p in others])


def test_a_new_training_run_removes_the_temporary_files_of_a_killed_save(tmp_path):
    import os

    path = tmp_path / "m.matseg"
    left = _killed_while_writing(path)
    os.utime(left, (time.time() - 10, time.time() - 10))
    api.check_model_path(path)
    assert list(tmp_path.iterdir()) == []


# -- messages -------------------------------------------------------------------------------------

def test_pixels_that_are_not_numbers_are_counted_in_a_warning(files, model_file, micrograph, capsys):
    image = micrograph[0].astype(np.float32)
    image[:, 20:24] = np.inf
    image[5, 5] = np.nan
    tifffile.imwrite(files / "inf.tif", image)
    job = api.predict(load_bundle(model_file), [files / "inf.tif"], api.PredictOptions(info_band=0))
    events = list(job.run())
    result = next(e for e in events if e.kind is api.EventKind.RESULT)
    expected = "641 pixel(s) (2.5 % of the image) are not finite numbers"
    assert any(expected in w for w in result.warnings) and expected in result.message
    assert any(expected in w for w in events[-1].warnings) and job.result.warnings
    assert main(["predict", str(model_file), str(files / "inf.tif"), "-o", str(files / "out"),
                 "--info-band", "0"]) == 0
    assert f"warning: {files / 'inf.tif'}: {expected}" in capsys.readouterr().err


def test_evaluate_on_ground_truth_with_no_labelled_pixel_says_so(files, model_file, capsys):
    Image.fromarray(np.zeros((160, 160), np.uint8)).save(files / "empty.png")
    line = one_line_error(capsys, ["evaluate", model_file, "--images", files / "img.png",
                                   "--labels", files / "empty.png"])
    assert "empty.png: no pixel is labelled" in line and "--zero-based" in line


def test_evaluate_ignores_ground_truth_pixels_of_255(files, model_file, capsys):
    truth = np.asarray(Image.open(files / "truth.png")).copy()
    ignored, unlabelled = truth.copy(), truth.copy()
    ignored[:40], unlabelled[:40] = 255, 0
    Image.fromarray(ignored).save(files / "ignored.png")
    Image.fromarray(unlabelled).save(files / "unlabelled.png")
    outputs = []
    for name in ("ignored.png", "unlabelled.png"):
        assert main(["evaluate", str(model_file), "--images", str(files / "img.png"), "--labels",
                     str(files / name), "--info-band", "0"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and "nan" not in outputs[0]
    assert main(["evaluate", str(model_file), "--images", str(files / "img.png"), "--labels",
                 str(files / "ignored.png"), "--info-band", "0", "--zero-based"]) == 2
    assert "the values 1, 2, 3, which are not class numbers 0..2" in capsys.readouterr().err


def test_a_normaliser_with_unknown_settings_is_refused(model_file, tmp_path, capsys):
    bad = _rewrite_bundle(model_file, tmp_path / "bad.matseg", "preprocess.normalizer",
                          {"lo": 1, "hi": 99})
    with pytest.raises(BundleError, match="normaliser has unknown settings \\('hi', 'lo'"):
        load_bundle(bad)
    line = one_line_error(capsys, ["predict", bad, tmp_path / "x.png", "-o", tmp_path / "out"])
    assert "bad.matseg" in line and "unknown settings" in line


def test_help_texts_show_percent_signs_once(capsys):
    for command in ("measure", "finetune", "predict", "evaluate", "pretrain"):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "%%" not in out, command
    assert main(["measure", "--help"]) == 0
    assert "95 % confidence" in " ".join(capsys.readouterr().out.split())


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory, trained):
    from napari_matseg.core.bundle import ModelBundle

    path = tmp_path_factory.mktemp("pretrained") / "encoder.matseg"
    ModelBundle(trained.model, kind="pretrained", provenance={"pretraining_method": "sms"}).save(path)
    return path


def test_a_pretrained_start_gets_the_first_fit_budget_everywhere(files, model_file, pretrained_file,
                                                                  capsys, monkeypatch):
    no_training(monkeypatch)
    for start, steps in ((pretrained_file, api.FIRST_FIT_STEPS), (model_file, api.CONTINUE_STEPS)):
        main(["finetune", str(files / "img.png"), str(files / "strokes.png"), "-o",
              str(files / "m.matseg"), "--start", str(start), "--minutes", "5"])
        assert f": {steps} steps, at most 300 s on" in capsys.readouterr().err
    assert api.default_finetune_budget(None).steps == api.FIRST_FIT_STEPS
    assert api.default_finetune_budget(pretrained_file).steps == api.FIRST_FIT_STEPS
    assert api.default_finetune_budget(load_bundle(pretrained_file)).steps == api.FIRST_FIT_STEPS
    assert api.default_finetune_budget(model_file).steps == api.CONTINUE_STEPS
    assert api.default_finetune_budget(load_bundle(model_file)).steps == api.CONTINUE_STEPS
    start = api.resolve_start(pretrained_file, 3)
    assert not start.continuing and api.default_finetune_budget(start).steps == api.FIRST_FIT_STEPS


def test_pretrain_info_band_0_means_no_band(files, capsys, monkeypatch):
    asked = {}

    def record(*args, **kwargs):
        asked.update(kwargs)
        raise InputError("recorded")

    monkeypatch.setattr(api, "pretrain", record)
    for band, expected in (("0", 0), ("12", 12), (None, "auto")):
        extra = ["--info-band", band] if band else []
        one_line_error(capsys, ["pretrain", "--method", "sms", files / "img.png", "-o",
                                files / "e.matseg", "--steps", "2", *extra])
        assert asked["info_band"] == expected
