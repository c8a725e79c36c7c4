import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_matseg.core.errors import InputError
from napari_matseg.core.finetune import Finetuner
from napari_matseg.core.metrics import confusion_matrix, mean_iou
from napari_matseg.core.predict import PredictConfig, predict_image


def _miou(model, preprocess, image, truth):
    pred = predict_image(model, image, preprocess, PredictConfig(), info_band=0)
    return mean_iou(confusion_matrix(truth, pred.labels - 1, 3))


def test_finetuning_from_strokes_segments_the_image(micrograph, scribbles, fast_config):
    image, truth = micrograph
    config = replace(fast_config, max_steps=80)
    tuner = Finetuner(image, scribbles, config=config, info_band=0)
    before = _miou(tuner.model, tuner.preprocess, image, truth)
    model = tuner.train()
    after = _miou(model, tuner.preprocess, image, truth)
    assert after >= 0.6, f"mIoU {after:.2f} after fine-tuning (before {before:.2f})"
    assert after > before + 0.2


def test_events_report_progress_and_previews(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = Finetuner(image, scribbles, config=replace(fast_config, max_steps=20), info_band=0)
    events = list(tuner.run(preview=True))
    steps = [e for e in events if e.kind == "step"]
    evals = [e for e in events if e.kind == "eval"]
    assert [e.step for e in steps] == list(range(1, 21))
    assert all(np.isfinite(e.loss) and e.elapsed >= 0 for e in steps)
    assert [e.step for e in evals] == [5, 10, 20]
    assert evals[0].preview.shape == image.shape
    assert set(np.unique(evals[0].preview)) <= {1, 2, 3}
    assert events[-1].kind == "done" and events[-1].reason == "budget"


def test_stop_ends_training_and_keeps_the_best_weights(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = Finetuner(image, scribbles, config=replace(fast_config, max_steps=500), info_band=0)
    events = []
    for event in tuner.run():
        events.append(event)
        if event.kind == "step" and event.step == 12:
            threading.Thread(target=tuner.stop).start()
    done = events[-1]
    assert done.kind == "done" and done.reason == "stopped"
    assert done.step < 20
    assert tuner.best_state is not None
    for key, value in tuner.model.state_dict().items():
        torch.testing.assert_close(value, tuner.best_state[key])


def test_time_budget_is_respected(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = Finetuner(image, scribbles, config=replace(fast_config, max_steps=10_000, max_seconds=2.0),
                      info_band=0)
    *_, done = tuner.run()
    assert done.reason == "time budget"
    assert done.elapsed < 8


def test_warm_start_continues_from_the_given_model(micrograph, scribbles, fast_config):
    image, _ = micrograph
    first = Finetuner(image, scribbles, config=replace(fast_config, max_steps=10), info_band=0)
    model = first.train()
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    second = Finetuner(image, scribbles, model=model, config=replace(fast_config, max_steps=10),
                       info_band=0)
    assert second.model is model
    second.train()
    changed = [k for k, v in model.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, snapshot[k])]
    assert changed
    with pytest.raises(InputError, match="predicts 3 classes"):
        Finetuner(image, scribbles, num_classes=4, model=model, config=fast_config, info_band=0)


def test_same_seed_same_training(micrograph, scribbles, fast_config):
    image, _ = micrograph
    losses = []
    for _ in range(2):
        tuner = Finetuner(image, scribbles, config=replace(fast_config, max_steps=5), info_band=0)
        losses.append([e.loss for e in tuner.run() if e.kind == "step"])
    assert losses[0] == losses[1]


def test_held_out_strokes_drive_model_selection(micrograph, scribbles, fast_config):
    image, _ = micrograph
    config = replace(fast_config, max_steps=30, validation_fraction=0.3)
    tuner = Finetuner(image, scribbles, config=config, info_band=0)
    assert (tuner.val_labels > 0).any()
    assert not ((tuner.val_labels > 0) & (tuner.train_labels > 0)).any()
    *_, done = tuner.run()
    assert done.best_step in {5, 10, 20, 30}
    assert len(tuner.history) == 4


def test_bad_inputs_are_input_errors(micrograph, scribbles, fast_config):
    image, _ = micrograph
    with pytest.raises(InputError, match="do not match"):
        Finetuner(image, scribbles[:50], config=fast_config)
    with pytest.raises(InputError, match="constant"):
        Finetuner(np.zeros_like(image), scribbles, config=fast_config, info_band=0)
    with pytest.raises(InputError, match="2-D"):
        Finetuner(np.stack([image] * 5), scribbles, config=fast_config)
    with pytest.raises(InputError, match="use class 3"):
        Finetuner(image, scribbles, num_classes=2, config=fast_config, info_band=0)


def test_zero_encoder_lr_freezes_the_encoder(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = Finetuner(image, scribbles, config=replace(fast_config, max_steps=5, encoder_lr=0.0),
                      info_band=0)
    before = {k: v.clone() for k, v in tuner.model.encoder.state_dict().items()}
    head = tuner.model.head.weight.detach().clone()
    tuner.train()
    for k, v in tuner.model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(tuner.model.head.weight, head)
    assert all(p.requires_grad for p in tuner.model.encoder.parameters())


def test_entropy_term_weights_unpainted_pixels(micrograph, scribbles, fast_config):
    image, _ = micrograph
    plain = Finetuner(image, scribbles, config=fast_config, info_band=0)
    sharp = Finetuner(image, scribbles, config=replace(fast_config, entropy_weight=0.5), info_band=0)
    logits = torch.zeros(2, 3, 8, 8)
    targets = torch.full((2, 8, 8), -1)
    targets[:, :2] = 1
    extra = sharp._loss(logits, targets) - plain._loss(logits, targets)
    assert float(extra) == pytest.approx(0.5 * np.log(3), rel=1e-5)


def test_pixel_size_is_recorded_and_warm_starts_rescale(micrograph, scribbles, fast_config):
    image, _ = micrograph
    first = Finetuner(image, scribbles, config=fast_config, info_band=0, pixel_size=0.05)
    assert first.preprocess.pixel_size == 0.05
    assert first.to_bundle().preprocess.pixel_size == 0.05
    assert first.prepared.pixels.shape == image.shape
    again = Finetuner(image, scribbles, config=fast_config, info_band=0, model=first.model,
                      preprocess=first.preprocess, pixel_size=0.1)
    assert again.preprocess.scale == pytest.approx(2.0)
    assert again.prepared.pixels.shape == (2 * image.shape[0], 2 * image.shape[1])
    with pytest.raises(InputError, match="pixel size"):
        Finetuner(image, scribbles, config=fast_config, info_band=0, pixel_size=0.0)

