"""``matseg pretrain`` end to end, resuming, and data-parallel runs under torchrun (gloo)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from napari_matseg.cli import main
from napari_matseg.core.bundle import load_bundle, read_metadata
from napari_matseg.testing.synthetic import voronoi_micrograph

TINY = ["--crop-size", "64", "--batch-size", "2", "--device", "cpu", "--info-band", "0",
        "--init", "random"]


@pytest.fixture
def folder(tmp_path, micrograph, scribbles):
    unlabeled = tmp_path / "unlabeled"
    unlabeled.mkdir()
    for seed in range(3):
        Image.fromarray(voronoi_micrograph((128, 128), grains=12, seed=seed)[0]).save(
            unlabeled / f"u{seed}.png")
    Image.fromarray(micrograph[0]).save(tmp_path / "img.png")
    Image.fromarray(scribbles.astype(np.uint8)).save(tmp_path / "strokes.png")
    return tmp_path


def test_pretrain_then_finetune_from_it(folder, capsys):
    out = folder / "enc.matseg"
    assert main(["pretrain", "--method", "sms", str(folder / "unlabeled"), "-o", str(out),
                 "--steps", "2", *TINY]) == 0
    assert "saved" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["kind"] == "pretrained"
    assert meta["provenance"]["images"] == 3 and meta["provenance"]["steps"] == 2
    assert "pretrain --method sms" in meta["provenance"]["command"]
    model = folder / "m.matseg"
    assert main(["finetune", str(folder / "img.png"), str(folder / "strokes.png"), "-o", str(model),
                 "--start", str(out), "--steps", "2", "--device", "cpu"]) == 0
    bundle = load_bundle(model, expect="segmentation")
    assert bundle.provenance["pretraining_method"] == "sms"
    assert bundle.model.config.num_classes == 3


def test_pretrained_bundle_cannot_predict(folder, capsys):
    out = folder / "enc.matseg"
    assert main(["pretrain", "--method", "matssl", str(folder / "unlabeled"), "-o", str(out),
                 "--steps", "1", *TINY]) == 0
    code = main(["predict", str(out), str(folder / "img.png"), "-o", str(folder / "res")])
    assert code == 2 and "fine-tune it" in capsys.readouterr().err


def test_pscl_needs_labels_and_takes_them(folder, capsys):
    out = folder / "enc.matseg"
    assert main(["pretrain", "--method", "pscl", str(folder / "unlabeled"), "-o", str(out),
                 "--steps", "1", *TINY]) == 2
    assert "--labels" in capsys.readouterr().err
    assert main(["pretrain", "--method", "pscl", str(folder / "unlabeled"), "-o", str(out),
                 "--labels", str(folder / "img.png"), str(folder / "strokes.png"),
                 "--steps", "1", *TINY]) == 0
    assert read_metadata(out)["provenance"]["pretraining_method"] == "pscl"


def test_resume_picks_up_the_step_count(folder, capsys):
    out = folder / "enc.matseg"
    assert main(["pretrain", "--method", "sms", str(folder / "unlabeled"), "-o", str(out),
                 "--steps", "2", *TINY]) == 0
    assert (folder / "enc.matseg.ckpt").is_file()
    assert main(["pretrain", "--method", "sms", str(folder / "unlabeled"), "-o", str(out),
                 "--steps", "4", "--resume", *TINY]) == 0
    assert read_metadata(out)["provenance"]["steps"] == 4


def test_two_processes_train_data_parallel_with_gloo(folder):
    out = folder / "ddp.matseg"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "napari_matseg.cli", "pretrain", "--method", "matssl", str(folder / "unlabeled"),
           "-o", str(out), "--steps", "3", "--threads", "1", *TINY]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = read_metadata(out)
    assert meta["provenance"]["processes"] == 2 and meta["provenance"]["steps"] == 3
    load_bundle(out, expect="pretrained")
