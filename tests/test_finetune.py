import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_matseg.core.budget import Budget
from napari_matseg.core.errors import InputError
from napari_matseg.core.finetune import AnnotatedImage, Finetuner
from napari_matseg.core.metrics import confusion_matrix, mean_iou
from napari_matseg.core.predict import PredictConfig, predict_image


def tune(image, scribbles, config, steps=None, pixel_size=None, **kwargs):
    """Return a Finetuner on one image without an information band."""
    if steps is not None:
        config = replace(config, budget=Budget(steps))
    return Finetuner([AnnotatedImage(image, scribbles, "image", info_band=0, pixel_size=pixel_size)],
                     config=config, **kwargs)


def _miou(model, preprocess, image, truth):
    pred = predict_image(model, image, preprocess.with_info_band(0), PredictConfig())
    return mean_iou(confusion_matrix(truth, pred.labels - 1, 3))


def test_finetuning_from_strokes_segments_the_image(micrograph, scribbles, fast_config):
    image, truth = micrograph
    tuner = tune(image, scribbles, fast_config, 80)
    before = _miou(tuner.model, tuner.preprocess, image, truth)
    model = tuner.train()
    after = _miou(model, tuner.preprocess, image, truth)
    assert after >= 0.6, f"mIoU {after:.2f} after fine-tuning (before {before:.2f})"
    assert after > before + 0.2
    assert model.config.decoder_activation == "leaky_relu"  # the default start's decoder


def test_events_report_progress_and_previews(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = tune(image, scribbles, fast_config, 20)
    events = list(tuner.run(preview=True))
    steps = [e for e in events if e.kind == "step"]
    evals = [e for e in events if e.kind == "eval"]
    assert [e.step for e in steps] == list(range(1, 21))
    assert all(np.isfinite(e.loss) and e.elapsed >= 0 for e in steps)
    assert [e.step for e in evals] == [5, 10, 20]
    assert evals[0].previews["image"].shape == image.shape
    assert set(np.unique(evals[0].previews["image"])) <= {1, 2, 3}
    assert [round(e.progress, 3) for e in evals] == [0.25, 0.5, 1.0]
    assert events[-1].kind == "done" and events[-1].reason == "budget"


def test_stop_ends_training_and_keeps_the_best_weights(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = tune(image, scribbles, fast_config, 500)
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


def test_a_time_cap_ends_training_and_says_so(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = tune(image, scribbles, replace(fast_config, budget=Budget(10_000, max_seconds=2.0)))
    *_, done = tuner.run()
    assert done.reason == "time cap"
    assert done.step < 10_000 and done.elapsed < 60  # a 2 s cap, on however busy a machine
    assert "time cap of 2 s ended training after" in done.diagnosis.warnings[0]
    assert "of 10000 steps" in done.diagnosis.warnings[0]


def test_warm_start_continues_from_the_given_model(micrograph, scribbles, fast_config):
    image, _ = micrograph
    first = tune(image, scribbles, fast_config, 10)
    model = first.train()
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    second = tune(image, scribbles, fast_config, 10, model=model)
    assert second.model is model
    second.train()
    changed = [k for k, v in model.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, snapshot[k])]
    assert changed
    with pytest.raises(InputError, match="predicts 3 classes"):
        tune(image, scribbles, fast_config, num_classes=4, model=model)


def test_same_seed_same_training(micrograph, scribbles, fast_config):
    image, _ = micrograph
    losses = []
    for _ in range(2):
        tuner = tune(image, scribbles, fast_config, 5)
        losses.append([e.loss for e in tuner.run() if e.kind == "step"])
    assert losses[0] == losses[1]


def test_held_out_strokes_drive_model_selection(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = tune(image, scribbles, replace(fast_config, validation_fraction=0.3), 30)
    held = tuner.images[0]
    assert (held.val_labels > 0).any()
    assert not ((held.val_labels > 0) & (held.train_labels > 0)).any()
    *_, done = tuner.run()
    steps = [h[0] for h in tuner.history]
    assert steps == [5, 10, 20, 21, 30], "every 10 steps, the first at 5, and where the held-out phase ends"
    assert done.best_step == 30, "the 'last' rule keeps the end of the schedule"
    best = tune(image, scribbles, replace(fast_config, validation_fraction=0.3, keep="best",
                                          holdout_until=1.0), 30)
    *_, done = best.run()
    scores = {s: acc - 1e-3 * val for s, _, val, acc in best.history}
    assert scores[done.best_step] == max(scores.values())
    assert best.check.step == 30, "with no held-out phase end, every check is honest"


def test_the_held_out_split_follows_the_pixels_not_the_file_name(micrograph, scribbles, fast_config):
    image, _ = micrograph
    config = replace(fast_config, validation_fraction=0.3)
    splits = []
    as_rgb = np.repeat(image[..., None], 3, axis=-1)  # a grey micrograph saved as RGB
    for name, pixels in (("micrograph0", image), ("shot", image), ("micrograph0.png", as_rgb)):
        tuner = Finetuner([AnnotatedImage(pixels, scribbles, name, info_band=0)], config=config)
        splits.append(tuner.images[0].val_labels)
    assert (splits[0] > 0).any()
    np.testing.assert_array_equal(splits[0], splits[1])
    np.testing.assert_array_equal(splits[0], splits[2])
    other = tune(image, scribbles, replace(config, seed=1)).images[0].val_labels
    assert not np.array_equal(other, splits[0]), "the seed still picks the held-out pieces"


def test_bad_inputs_are_input_errors(micrograph, scribbles, fast_config):
    image, _ = micrograph
    with pytest.raises(InputError, match="do not match"):
        tune(image, scribbles[:50], fast_config)
    with pytest.raises(InputError, match="constant"):
        tune(np.zeros_like(image), scribbles, fast_config)
    with pytest.raises(InputError, match="2-D"):
        tune(np.stack([image] * 5), scribbles, fast_config)
    with pytest.raises(InputError, match="not class numbers 1..2"):
        tune(image, scribbles, fast_config, num_classes=2)
    with pytest.raises(InputError, match="called 'a'"):
        Finetuner([AnnotatedImage(image, scribbles, "a"), AnnotatedImage(image, scribbles, "a")],
                  config=fast_config)


def test_zero_encoder_lr_freezes_the_encoder(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = tune(image, scribbles, replace(fast_config, encoder_lr=0.0), 5)
    before = {k: v.clone() for k, v in tuner.model.encoder.state_dict().items()}
    head = tuner.model.head.weight.detach().clone()
    tuner.train()
    for k, v in tuner.model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(tuner.model.head.weight, head)
    assert all(p.requires_grad for p in tuner.model.encoder.parameters())


def test_entropy_term_weights_unpainted_pixels(micrograph, scribbles, fast_config):
    image, _ = micrograph
    plain = tune(image, scribbles, fast_config)
    sharp = tune(image, scribbles, replace(fast_config, entropy_weight=0.5))
    logits = torch.zeros(2, 3, 8, 8)
    targets = torch.full((2, 8, 8), -1)
    targets[:, :2] = 1
    extra = sharp._loss(logits, targets) - plain._loss(logits, targets)
    assert float(extra) == pytest.approx(0.5 * np.log(3), rel=1e-5)


def test_pixel_size_is_recorded_and_warm_starts_rescale(micrograph, scribbles, fast_config):
    image, _ = micrograph
    first = tune(image, scribbles, fast_config, pixel_size=0.05)
    assert first.preprocess.pixel_size == 0.05
    assert first.to_bundle().preprocess.pixel_size == 0.05
    assert first.images[0].prepared.pixels.shape == image.shape
    again = tune(image, scribbles, fast_config, pixel_size=0.1, model=first.model,
                 preprocess=first.preprocess)
    assert again.preprocess.scale == pytest.approx(2.0)
    assert again.images[0].prepared.pixels.shape == (2 * image.shape[0], 2 * image.shape[1])
    with pytest.raises(InputError, match="pixel size"):
        tune(image, scribbles, fast_config, pixel_size=0.0)


def test_training_on_two_images_of_different_sizes(micrograph, scribbles, fast_config):
    from napari_matseg.testing import ScribbleSimulation, simulate_scribbles, voronoi_micrograph

    image, _ = micrograph
    other, truth = voronoi_micrograph((96, 224), grains=14, phases=3, seed=9)
    strokes = simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=20, stroke_width=3,
                                                                  erosion=1, painted_fraction=0.04))
    tuner = Finetuner([AnnotatedImage(image, scribbles, "a", info_band=0),
                       AnnotatedImage(other, strokes, "b", info_band=0)],
                      config=replace(fast_config, budget=Budget(12), validation_fraction=0.2))
    owners = set()
    sampler_draws = tuner.run(preview=True)
    events = list(sampler_draws)
    previews = [e.previews for e in events if e.kind == "eval"][-1]
    assert previews["a"].shape == image.shape and previews["b"].shape == other.shape
    bundle = tuner.to_bundle()
    records = bundle.provenance["images"]
    assert [r["name"] for r in records] == ["a", "b"]
    assert records[1]["shape"] == [96, 224] and records[1]["painted_pixels"] == int((strokes > 0).sum())
    assert all((t.val_labels > 0).any() for t in tuner.images), "held-out strokes from every image"
    assert len(tuner.image_fractions) == 3 and sum(tuner.image_fractions) == pytest.approx(1, abs=1e-4)
    assert bundle.class_prior == (None if tuner.collapsed else tuner.image_fractions)
    del owners


def test_the_crop_sampler_draws_from_every_image(micrograph, scribbles):
    from napari_matseg.core.augment import AugmentConfig
    from napari_matseg.core.scribbles import ScribbleCropSampler

    image, _ = micrograph
    small = np.zeros((64, 64), np.int64)
    small[10:14, 10:40] = 1
    small[40:44, 10:40] = 2
    sampler = ScribbleCropSampler([(image / 255.0, scribbles), (np.ones((64, 64)) * 0.5, small)],
                                  32, AugmentConfig(), np.random.default_rng(0), lambda x: x)
    owners = np.concatenate([sampler._centres(8)[1] for _ in range(50)])
    share_small = (owners == 1).mean()
    # classes 1 and 2 are drawn in both images; the small image, with about 3 % of their
    # strokes, gets its floor share (a quarter split between two images, at least 1/8)
    assert 0.08 < share_small < 0.35
    batch = sampler.sample(8)
    assert batch.images.shape == (8, 1, 32, 32) and batch.targets.shape == (8, 32, 32)

