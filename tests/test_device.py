"""The device is picked once per job, in the API, and handed down by its resolved name; the
engine only confirms a name it is given."""

import pytest
import torch

import napari_matseg.core.device as devices
from napari_matseg import api
from napari_matseg.core.budget import Budget
from napari_matseg.core.device import pick_device
from napari_matseg.core.finetune import AnnotatedImage, FinetuneConfig, Finetuner


@pytest.fixture
def picks(monkeypatch):
    """Record every device the API asks for (the engine's own check is not counted)."""
    asked = []
    real = devices.pick_device

    def counting(preference=None):
        asked.append(preference)
        return real(preference)

    monkeypatch.setattr(devices, "pick_device", counting)
    return asked


def test_a_finetune_job_picks_its_device_once_and_hands_its_name_down(micrograph, scribbles, picks):
    job = api.finetune([(micrograph[0], scribbles)], class_names=["a", "b", "c"], budget=Budget(1))
    assert picks == ["auto"]
    assert job.config.device == str(job.device) != "auto"
    assert pick_device(job.config.device) == job.device


def test_a_pretrain_job_picks_its_device_once_and_hands_its_name_down(micrograph, picks):
    job = api.pretrain([("a", micrograph[0])], method="matssl", budget=Budget(1))
    assert picks == ["auto"]
    assert job.config.device == str(job.device) != "auto"


def test_a_predict_job_picks_its_device_once(micrograph, scribbles, picks):
    config = FinetuneConfig(budget=Budget(1), batch_size=2, crop_size=64, validation_fraction=0.0,
                            device="cpu")
    bundle = Finetuner([AnnotatedImage(micrograph[0], scribbles, info_band=0)],
                       config=config).to_bundle()
    job = api.predict(bundle, [("a", micrograph[0])])
    assert picks == ["auto"] and job.device == pick_device("auto")


def test_the_device_picked_names_the_gpu():
    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")
        return
    assert pick_device("auto") == torch.device("cuda", torch.cuda.current_device())
    assert pick_device("cuda").index is not None
