import copy
from dataclasses import replace

import numpy as np
import pytest

from napari_matseg.core.budget import Budget
from napari_matseg.core.diagnosis import diagnose_training
from napari_matseg.core.finetune import AnnotatedImage, Finetuner

NAMES = ["matrix", "austenite", "MA"]


def test_a_healthy_fine_tune_gets_no_warning():
    d = diagnose_training(150, 100, "time budget", {1: 0.9, 2: 0.8, 3: 0.6}, [0.3, 0.5, 0.2],
                          class_names=NAMES)
    assert d.ok and d.warnings == []


@pytest.mark.parametrize("steps, recall, fractions, expected", [
    (46, {1: 0.9, 2: 0.8, 3: 0.7}, [0.3, 0.5, 0.2], "trained only 46 steps, fewer than the 100"),
    (150, {1: 0.9, 2: 0.31, 3: 0.7}, [0.3, 0.5, 0.2], "only 31% of the held-out strokes of 'austenite'"),
    (150, {1: 0.9, 2: 0.8, 3: 0.7}, [0.01, 0.03, 0.96], "96% of its training image as 'MA'"),
])
def test_each_sign_of_an_unreliable_model_is_named(steps, recall, fractions, expected):
    d = diagnose_training(steps, 100, "time budget", recall, fractions, class_names=NAMES)
    assert not d.ok
    assert len(d.warnings) == 1 and expected in d.warnings[0]


def test_without_names_classes_are_numbered_and_all_strokes_are_said():
    d = diagnose_training(150, 100, "plateau", {1: 0.2, 2: 0.9}, [0.5, 0.5], held_out=False)
    assert d.warnings == [d.warnings[0]] and "of the strokes of class 1" in d.warnings[0]
    assert d.to_dict()["recall"] == {"1": 0.2, "2": 0.9}


def test_the_kept_model_reports_its_recall_and_image_shares(trained):
    d = trained.diagnose(NAMES)
    assert set(d.recall) == {1, 2, 3}
    assert all(0 <= r <= 1 for r in d.recall.values())
    assert d.held_out is False
    assert sum(d.image_fractions) == pytest.approx(1, abs=1e-4)
    assert d.steps == 60
    assert all(r > 0.5 for r in d.recall.values())  # the shared fixture learns all three classes
    bundle = trained.to_bundle(NAMES)
    assert bundle.provenance["diagnosis"]["recall"] == d.to_dict()["recall"]


def test_a_model_stopped_after_a_few_steps_is_flagged(micrograph, scribbles, fast_config):
    image, _ = micrograph
    config = replace(fast_config, budget=Budget(3), first_eval=1, validation_fraction=0.3)
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)], config=config)
    done = list(tuner.run())[-1]
    assert done.kind == "done" and done.diagnosis is not None
    assert done.diagnosis.held_out is True
    assert any("trained only 3 steps" in w for w in done.diagnosis.warnings)
    assert np.isclose(sum(done.diagnosis.image_fractions), 1, atol=1e-4)


def test_a_warm_start_counts_the_steps_its_model_had(trained, micrograph, scribbles, fast_config):
    image, _ = micrograph
    bundle = trained.to_bundle(NAMES)
    assert bundle.trained_steps == 60
    config = replace(fast_config, budget=Budget(45), min_steps=100)
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)], model=copy.deepcopy(bundle.model),
                      config=config, steps_before=bundle.trained_steps)
    tuner.train()
    assert tuner.provenance["total_steps"] == 105
    assert tuner.to_bundle(NAMES).trained_steps == 105
    assert not any("trained only" in w for w in tuner.diagnose(NAMES).warnings)
    fresh = Finetuner([AnnotatedImage(image, scribbles, info_band=0)],
                      config=replace(config, budget=Budget(2)), steps_before=500)  # no model given: nothing to continue, so not counted
    fresh.train()
    assert any("trained only 2 steps" in w for w in fresh.diagnose().warnings)
