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


def test_a_class_of_the_training_image_that_a_prediction_loses_is_named():
    from napari_matseg.core.diagnosis import missing_classes

    labels = np.ones((50, 50), np.uint8)
    labels[:, :20] = 3
    labels[0, 0] = 2  # 0.04 %: lost
    notes = missing_classes(labels, [0.5, 0.32, 0.18], ["matrix", "secondary", "tertiary"])
    assert len(notes) == 1 and "'secondary' covered 32% of the training image but 0.0%" in notes[0]
    assert missing_classes(labels, [0.5, 0.32, 0.18], skip=(2,)) == []
    assert missing_classes(labels, [0.9, 0.05, 0.05]) == []  # a rare phase may be absent
    assert missing_classes(labels, None) == []
    assert missing_classes(np.zeros((5, 5), np.uint8), [0.5, 0.5]) == []


def test_prediction_warns_when_it_loses_a_class_of_the_training_image(trained, micrograph,
                                                                   monkeypatch):
    import napari_matseg.api.predict_job as predict_job
    from napari_matseg import api
    from napari_matseg.core.predict import Prediction

    image, _ = micrograph
    bundle = trained.to_bundle(["smooth", "lamellar", "speckled"])
    bundle.class_prior = [0.5, 0.3, 0.2]
    plain = [e for e in api.predict(bundle, [("m", image)]).run() if e.kind is api.EventKind.RESULT]
    assert plain[0].warnings == () and len(set(np.unique(plain[0].prediction.labels))) == 3

    def one_class(model, image, *args, **kwargs):
        labels = np.ones(image.shape[:2], np.uint8)
        labels[-4:] = 0  # an information band: not counted
        labels[0, :3] = 3
        return Prediction(labels, None, np.zeros(image.shape[:2], np.float32), image.shape[0] - 4)

    monkeypatch.setattr(predict_job, "predict_image", one_class)
    job = api.predict(bundle, [("flat", image)])
    events = [e for e in job.run()]
    result = [e for e in events if e.kind is api.EventKind.RESULT][0]
    assert [w.split(" covered")[0] for w in result.warnings] == ["flat: 'lamellar'", "flat: 'speckled'"]
    assert "'lamellar' covered 30% of the training image but 0.0% of this one" in result.message
    assert len(events[-1].warnings) == 2  # the run's summary carries them to the dock


def test_a_class_a_continued_run_made_worse_is_named_and_doubted():
    from napari_matseg.api.finetune_job import training_summary
    from napari_matseg.core.measure.selfcheck import self_check_doubts

    before = {1: 0.85, 2: 0.55, 3: 0.66}
    d = diagnose_training(240, 100, "budget", {1: 0.62, 2: 0.83, 3: 0.56}, [0.3, 0.5, 0.2],
                          class_names=NAMES, start_recall=before)
    worse = [w for w in d.warnings if "got worse in this round" in w]
    assert len(worse) == 1, "a 10-point dip (MA) is within the noise; 22 points (matrix) is not"
    assert worse[0].startswith("'matrix' got worse") and "85%" in worse[0] and "62%" in worse[0]
    assert "go back to the model before this round" in worse[0]
    assert d.to_dict()["start_recall"] == {"1": 0.85, "2": 0.55, "3": 0.66}
    assert d.made_worse == [1]
    summary = training_summary({"steps": 60, "seconds": 30, "stop_reason": "budget"}, 60, d)
    assert summary.endswith("; worse than before this round on class 1")
    doubts = self_check_doubts(d.to_dict(), NAMES)
    assert "got worse in this round" in doubts.about([1]) and not doubts.about([2])
    on_training = diagnose_training(240, 100, "budget", {1: 0.62, 2: 0.83}, [0.5, 0.5],
                                    class_names=NAMES, start_recall=before, scored_on_training=[1])
    assert not any("got worse" in w for w in on_training.warnings), \
        "recall on training strokes says nothing of what the round did to the class"
    from napari_matseg.core.diagnosis import DiagnosisThresholds

    strict = diagnose_training(240, 100, "budget", {1: 0.62, 2: 0.83, 3: 0.56}, [0.3, 0.5, 0.2],
                               class_names=NAMES, start_recall=before,
                               thresholds=DiagnosisThresholds(max_recall_drop=0.05))
    assert strict.made_worse == [1, 3], "the status line uses the thresholds the warnings used"
    assert sum("got worse" in w for w in strict.warnings) == 2


def test_a_continued_run_compares_its_classes_with_the_start_model(trained, micrograph, scribbles):
    from napari_matseg.core.finetune import Evaluation

    tuner = Finetuner([AnnotatedImage(micrograph[0], scribbles, info_band=0)],
                      model=copy.deepcopy(trained.model),
                      config=replace(trained.config, validation_fraction=0.2), steps_before=60)
    assert tuner.has_held_out
    tuner.start_check = Evaluation(0, 0.5, 0.8, {1: 0.9, 2: 0.8, 3: 0.7}, [], [])
    tuner.check = Evaluation(20, 0.4, 0.85, {1: 0.6, 2: 0.95, 3: 1.0}, [], [])
    d = tuner.diagnose(NAMES)
    assert d.start_recall == {1: 0.9, 2: 0.8, 3: 0.7}
    assert [w for w in d.warnings if "got worse" in w][0].startswith("'matrix' got worse")
    tuner.check = tuner.start_check
    assert tuner.diagnose(NAMES).start_recall == {}, "nothing to compare when the start model is kept"


def test_a_drop_of_exactly_the_threshold_is_not_flagged_and_gamma_prime_is_not_gamma():
    from napari_matseg.core.diagnosis import classes_made_worse
    from napari_matseg.core.measure.selfcheck import self_check_doubts

    assert classes_made_worse({1: 0.70}, {1: 0.85}) == [], "17/20 -> 14/20 is 15 points, not more"
    assert classes_made_worse({1: 0.69}, {1: 0.85}) == [1]
    names = ["gamma", "gamma'"]
    d = diagnose_training(240, 100, "budget", {1: 0.9, 2: 0.6}, [0.5, 0.5], class_names=names,
                          start_recall={1: 0.9, 2: 0.9})
    doubts = self_check_doubts(d.to_dict(), names)
    assert set(doubts.by_class) == {2}, "a warning about γ' casts no doubt on γ"
