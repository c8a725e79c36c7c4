import os

import numpy as np
import pytest
import torch

from napari_matseg.core.budget import Budget
from napari_matseg.core.finetune import AnnotatedImage, FinetuneConfig
from napari_matseg.core.preprocess import PreprocessConfig
from napari_matseg.core.pretrain import MicrographPool
from napari_matseg.testing import ScribbleSimulation, simulate_scribbles, voronoi_micrograph


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(int(os.environ.get("MATSEG_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def micrograph():
    """A 160x160 three-phase synthetic micrograph and its truth (0..2)."""
    return voronoi_micrograph((160, 160), grains=20, phases=3, seed=1)


@pytest.fixture(scope="session")
def scribbles(micrograph):
    _, truth = micrograph
    return simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=24, stroke_width=3,
                                                               erosion=2, painted_fraction=0.03))


@pytest.fixture
def fast_config():
    """A fine-tuning recipe small enough for a unit test on 2 CPU cores."""
    return FinetuneConfig(budget=Budget(40), batch_size=4, crop_size=64,
                          eval_every=10, patience=100, validation_fraction=0.0, device="cpu")


@pytest.fixture
def files(tmp_path, micrograph, scribbles):
    """A folder with the synthetic micrograph (img.png), its strokes (strokes.png) and its truth
    numbered 1..3 (truth.png), as a user would have them on disk."""
    from PIL import Image

    image, truth = micrograph
    Image.fromarray(image).save(tmp_path / "img.png")
    Image.fromarray(scribbles.astype(np.uint8)).save(tmp_path / "strokes.png")
    Image.fromarray((truth + 1).astype(np.uint8)).save(tmp_path / "truth.png")
    return tmp_path


@pytest.fixture
def small_recipe(monkeypatch):
    """Make the default fine-tuning recipe small (64-px crops, 4 per step, a validation pass
    every 5 steps) wherever the command line and the API build it, so end-to-end tests of the
    CLI and the widgets stay fast."""
    import functools

    import napari_matseg.api.finetune_job as finetune_job
    import napari_matseg.core as core

    small = functools.partial(FinetuneConfig, crop_size=64, batch_size=4, eval_every=5)
    monkeypatch.setattr(core, "FinetuneConfig", small)
    monkeypatch.setattr(finetune_job, "FinetuneConfig", small)
    return small


@pytest.fixture(scope="session")
def trained(micrograph, scribbles):
    """A Finetuner trained briefly on the synthetic micrograph (shared by several tests)."""
    from napari_matseg.core.finetune import Finetuner

    config = FinetuneConfig(budget=Budget(60), batch_size=4, crop_size=64,
                            eval_every=20, patience=100, validation_fraction=0.0, device="cpu")
    tuner = Finetuner([AnnotatedImage(micrograph[0], scribbles, info_band=0)], config=config)
    tuner.train()
    return tuner


@pytest.fixture(scope="module")
def pool():
    """Three 128x128 synthetic micrographs as a pretraining pool."""
    return MicrographPool([voronoi_micrograph((128, 128), grains=12, seed=s)[0] for s in range(3)],
                          PreprocessConfig(info_band=0))


@pytest.fixture(scope="module")
def annotated():
    """A two-phase synthetic micrograph and its simulated strokes (PSCL's annotated image)."""
    image, truth = voronoi_micrograph((128, 128), grains=12, phases=2, seed=7)
    strokes = simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=20, stroke_width=3,
                                                                  erosion=1, painted_fraction=0.05))
    return image, strokes
