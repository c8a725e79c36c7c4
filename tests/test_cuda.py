"""The CUDA path: fine-tuning, prediction and every pretraining method on a GPU.

Skipped where torch sees no CUDA device (CI); run on a GPU machine with
``pytest tests/test_cuda.py`` (see benchmarks/gpu.py, which runs it first).
"""

import numpy as np
import pytest
import torch

from napari_matseg.core.budget import Budget
from napari_matseg.core.finetune import AnnotatedImage, FinetuneConfig, Finetuner
from napari_matseg.core.pretrain import Pretrainer
from tiny_pretraining import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_finetune_and_predict_on_cuda_agree_with_the_cpu(micrograph, scribbles):
    config = FinetuneConfig(budget=Budget(30), batch_size=4, crop_size=64,
                            eval_every=10, patience=100, validation_fraction=0.0, device="cuda")
    tuner = Finetuner([AnnotatedImage(micrograph[0], scribbles, info_band=0)], config=config)
    tuner.train()
    assert tuner.device.type == "cuda" and tuner.steps_done == 30
    bundle = tuner.to_bundle()
    on_gpu = bundle.predict(micrograph[0], info_band=0, device="cuda")
    on_cpu = bundle.predict(micrograph[0], info_band=0, device="cpu")
    assert on_gpu.labels.shape == micrograph[1].shape
    assert np.mean(on_gpu.labels == on_cpu.labels) > 0.98
    assert np.abs(on_gpu.probabilities - on_cpu.probabilities).max() < 0.05


@pytest.mark.parametrize("method", ["matssl", "pscl", "sms"])
def test_every_pretraining_method_trains_on_cuda(method, pool, annotated):
    config = tiny_config(method, steps=4, device="cuda", batch_size=4)
    trainer = Pretrainer(pool, config, labelled=annotated if method == "pscl" else None)
    trainer.train()
    losses = [v for _, v, _ in trainer.history]
    assert trainer.steps_done == 4 and np.all(np.isfinite(losses))
    assert next(trainer.model.parameters()).is_cuda
    bundle = trainer.to_bundle()
    assert bundle.provenance["device"] == "cuda"
    assert not next(bundle.model.parameters()).is_cuda
