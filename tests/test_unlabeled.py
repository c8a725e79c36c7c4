"""Learning from unpainted pixels (issue 26): the ramp, the per-class thresholds, pseudo-labels
that never outvote the strokes, CutMix that moves targets with pixels, and a run through the
Finetuner and the API with unlabeled micrographs."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_matseg import api
from napari_matseg.core.errors import InputError
from napari_matseg.core.finetune import AnnotatedImage, Finetuner, UnlabeledImage
from napari_matseg.core.scribbles import IGNORE
from napari_matseg.core.unlabeled import (ClassThresholds, ConsistencyLearner, UnlabeledBatch,
                                          UnlabeledConfig, UnlabeledCropSampler)
from napari_matseg.core.augment import AugmentConfig
from napari_matseg.testing import voronoi_micrograph


def test_the_unlabeled_loss_ramps_up_from_zero():
    config = UnlabeledConfig(weight=2.0, begin=0.2, ramp=0.4)
    assert config.weight_at(0.1) == 0.0
    assert 0 < config.weight_at(0.3) < config.weight_at(0.5) < 2.0
    assert config.weight_at(0.6) == pytest.approx(2.0)
    assert config.weight_at(1.0) == pytest.approx(2.0)


@pytest.mark.parametrize("fields", [{"weight": -1}, {"crops": 0}, {"threshold": 1.5},
                                    {"threshold": 0.5, "min_threshold": 0.7}, {"cutmix": 2}])
def test_bad_settings_are_refused(fields):
    with pytest.raises(InputError):
        UnlabeledConfig(**fields)


def test_a_class_the_network_is_rarely_sure_of_gets_a_lower_threshold():
    thresholds = ClassThresholds(3, [0, 1, 2], threshold=0.9, min_threshold=0.3, decay=0.0)
    prediction = torch.tensor([0] * 60 + [1] * 40 + [2] * 10)
    confidence = torch.full((110,), 0.95)
    confidence[100:] = 0.7  # class 2 is never confident
    thresholds.update(confidence, prediction, torch.ones(110, dtype=torch.bool))
    t = thresholds.current()
    assert t[0] == pytest.approx(0.9)
    assert t[1] == pytest.approx(0.9 * (2 / 3) / (2 - 2 / 3))
    assert t[2] == pytest.approx(0.3)


def _batch(strokes):
    weak = torch.rand(2, 1, 8, 8)
    return UnlabeledBatch(weak, strokes, torch.ones(2, 8, 8, dtype=torch.bool))


def test_pseudo_labels_never_outvote_the_strokes_nor_invent_an_unpainted_class():
    learner = ConsistencyLearner(UnlabeledConfig(weight=1.0, threshold=0.5, min_threshold=0.5),
                                 num_classes=3, painted=[1, 2], rng=np.random.default_rng(0))
    logits = torch.zeros(2, 3, 8, 8)
    logits[:, 0] = 10.0                 # confident class 1 (index 0) everywhere ...
    logits[1, :, :4] = 0.0
    logits[1, 2, :4] = 10.0             # ... but class 3, never painted, on half of crop 2
    strokes = torch.full((2, 8, 8), IGNORE, dtype=torch.long)
    strokes[0, 0, :] = 1                # a stroke of class 2 across crop 1's first row
    labels = learner.pseudo_labels(logits, _batch(strokes))
    assert (labels.targets[0, 0] == 1).all() and labels.mask[0, 0].all()
    assert (labels.targets[0, 1:] == 0).all() and labels.mask[0, 1:].all()
    assert not labels.mask[1, :4].any()
    assert labels.mask[1, 4:].all()
    shares, used = learner.take_shares()
    assert shares[0] > shares[2] > 0 and 0 < used < 1
    assert learner.take_shares() == ([], 0.0)


def test_cutmix_moves_the_targets_with_the_pixels():
    config = UnlabeledConfig(weight=1.0, cutmix=1.0,
                             strong=AugmentConfig(gamma_range=(1, 1), contrast_range=(1, 1),
                                                  brightness=0, noise_std=0, blur_probability=0))
    learner = ConsistencyLearner(config, 2, [1, 2], np.random.default_rng(1))
    weak = torch.stack([torch.zeros(1, 32, 32), torch.ones(1, 32, 32)])
    batch = UnlabeledBatch(weak, torch.full((2, 32, 32), IGNORE, dtype=torch.long),
                           torch.ones(2, 32, 32, dtype=torch.bool))
    targets = torch.stack([torch.zeros(32, 32, dtype=torch.long), torch.ones(32, 32, dtype=torch.long)])
    from napari_matseg.core.unlabeled import PseudoLabels
    strong, mixed = learner.strong_views(batch, PseudoLabels(targets, torch.ones(2, 32, 32, dtype=torch.bool)))
    assert (strong[0, 0] == 1).any() and (strong[0, 0] == 0).any()
    assert torch.equal(mixed.targets[0], strong[0, 0].round().long())
    assert torch.equal(mixed.targets[1], strong[1, 0].round().long())


def test_the_sampler_keeps_strokes_under_its_crops_and_none_for_unlabeled_images():
    rng = np.random.default_rng(0)
    painted = np.zeros((64, 64), np.int64)
    painted[:, :] = 2
    sampler = UnlabeledCropSampler([(np.zeros((64, 64), np.float32), painted),
                                    (np.ones((40, 90), np.float32), None)], 32,
                                   AugmentConfig(scale_range=(1, 1)), rng)
    batch = sampler.sample(16)
    assert batch.weak.shape == (16, 1, 32, 32)
    from_painted = batch.weak.mean(dim=(1, 2, 3)) < 0.5
    assert from_painted.any() and (~from_painted).any()
    assert ((batch.strokes[from_painted] == 1) | ~batch.inside[from_painted]).all()
    assert (batch.strokes[~from_painted] == IGNORE).all()


def test_training_learns_from_unlabeled_micrographs_and_logs_their_class_shares(
        micrograph, scribbles, fast_config):
    image, _ = micrograph
    other, _ = voronoi_micrograph((120, 200), grains=15, phases=3, seed=5)
    config = replace(fast_config, unlabeled=UnlabeledConfig(weight=1.0, begin=0.0, ramp=0.2, crops=2,
                                                            threshold=0.5, min_threshold=0.3))
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)], config=config,
                      unlabeled=[UnlabeledImage(other, "other", info_band=0)])
    tuner.train()
    log = tuner.provenance["unlabeled"]["log"]
    assert [entry["step"] for entry in log] == [5, 10, 20, 30, 40]
    assert all(abs(sum(e["class_shares"]) - 1) < 1e-3 for e in log)
    assert any(e["pseudo_labelled"] > 0 for e in log)
    assert tuner.provenance["unlabeled"]["images"][0]["name"] == "other"
    bundle = tuner.to_bundle()
    assert bundle.provenance["finetune"]["unlabeled"]["weight"] == 1.0


def test_without_the_setting_no_unlabeled_crops_are_drawn(micrograph, scribbles, fast_config):
    image, _ = micrograph
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)], config=fast_config,
                      unlabeled=[UnlabeledImage(image, "ignored", info_band=0)])
    tuner.train()
    assert tuner.unlabeled == [] and tuner.unlabeled_log == []
    assert "unlabeled" not in tuner.provenance


def test_the_api_takes_arrays_and_refuses_what_is_not_an_image(micrograph, scribbles, fast_config):
    image, _ = micrograph
    config = replace(fast_config, budget=api.Budget(6), eval_every=3,
                     unlabeled=UnlabeledConfig(weight=1.0, begin=0.0, crops=1))
    job = api.finetune([api.AnnotatedImage(image, scribbles, "shot", info_band=0)],
                       config=config, budget=api.Budget(6), unlabeled=[image[:100, :120]])
    bundle = job.wait()
    assert bundle.provenance["unlabeled"]["images"][0]["name"] == "unlabeled 1"
    with pytest.raises(InputError, match="unlabeled image 1"):
        api.finetune([api.AnnotatedImage(image, scribbles, "shot")], config=config,
                     unlabeled=["not an image"])
    with pytest.raises(InputError, match="2-D image"):
        api.finetune([api.AnnotatedImage(image, scribbles, "shot")], config=config,
                     unlabeled=[np.zeros((3, 4, 5, 6))])


def test_spread_samples_a_folder_across_its_whole_length():
    from napari_matseg.api.adapt import spread

    assert spread(range(10), 3) == [0, 4, 9]
    assert spread(["a", "b"], 8) == ["a", "b"]
    with pytest.raises(InputError):
        spread([1, 2], 0)


def test_adapting_continues_the_model_on_its_strokes_and_learns_the_target_micrographs(
        trained, micrograph, scribbles, tmp_path, small_recipe):
    from PIL import Image

    image, _ = micrograph
    bundle = trained.to_bundle()
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    paths = []
    for seed in range(3):
        other, _ = voronoi_micrograph((96, 120), grains=10, phases=3, seed=20 + seed)
        paths.append(tmp_path / f"target{seed}.png")
        Image.fromarray(other).save(paths[-1])
    strokes = [api.AnnotatedImage(image, scribbles, "shot", info_band=0)]
    job = api.adapt(bundle, strokes, paths, budget=api.Budget(6), max_images=2, info_band=0)
    assert job.start.continuing, "adapting continues the trained model"
    adapted = job.wait()
    learned = [item["name"] for item in adapted.provenance["unlabeled"]["images"]]
    assert learned == ["target0.png", "target2.png"], "two micrographs, spread over the list"
    assert adapted.trained_steps == bundle.trained_steps + 6
    assert all(torch.equal(v, bundle.model.state_dict()[k]) for k, v in before.items()), \
        "the model adapted from is unchanged"
    with pytest.raises(InputError, match="trained segmentation model"):
        api.adapt(None, strokes, paths)
    with pytest.raises(InputError, match="no micrographs"):
        api.adapt(bundle, strokes, [])
    with pytest.raises(InputError, match="missing.png"):
        api.adapt(bundle, strokes, [tmp_path / "missing.png"])
    folder = api.adapt(bundle, strokes, tmp_path)
    assert [item.name for item in folder.unlabeled] == ["target0.png", "target1.png", "target2.png"]
    assert [item.name for item in api.adapt(bundle, strokes, str(paths[1])).unlabeled] == \
        ["target1.png"], "one file is one micrograph, not its characters"
