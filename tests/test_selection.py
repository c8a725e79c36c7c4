"""The rule that picks a fine-tune's kept weights and its plateau stop, the per-class held-out
split, and the collapse check: tested without training, then on short real runs."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_matseg.core.budget import Budget
from napari_matseg.core.diagnosis import diagnose_training, find_collapse
from napari_matseg.core.errors import InputError
from napari_matseg.core.finetune import AnnotatedImage, FinetuneConfig, Finetuner
from napari_matseg.core.scribbles import split_strokes
from napari_matseg.core.selection import CheckpointSelector, SelectionRule

NAMES = ["matrix", "austenite", "MA"]


def _feed(selector, evaluations):
    return [step for step, score, passed in evaluations if selector.consider(step, score, passed)]


def test_last_keeps_the_latest_model_and_best_the_highest_score():
    evaluations = [(10, 0.5, True), (20, 0.8, True), (30, 0.6, True)]
    last, best = CheckpointSelector(SelectionRule("last")), CheckpointSelector(SelectionRule("best"))
    _feed(last, evaluations)
    _feed(best, evaluations)
    assert last.kept_step == 30 and best.kept_step == 20
    assert last.best_step == best.best_step == 20


@pytest.mark.parametrize("keep", ["last", "best"])
def test_a_collapsed_model_is_never_kept_while_one_that_passed_exists(keep):
    selector = CheckpointSelector(SelectionRule(keep))
    _feed(selector, [(10, 0.1, False), (20, 0.4, True), (30, 0.9, False), (40, 0.95, False)])
    assert selector.kept_step == 20 and selector.kept_passed
    lonely = CheckpointSelector(SelectionRule(keep))
    _feed(lonely, [(10, 0.3, False), (20, 0.2, False)])
    assert lonely.kept_step == (20 if keep == "last" else 10) and not lonely.kept_passed


def test_a_plateau_stop_waits_for_patience_and_the_minimum_steps():
    selector = CheckpointSelector(SelectionRule(patience=2, min_steps=50))
    _feed(selector, [(10, 0.5, True), (20, 0.4, True), (30, 0.4, True)])
    assert selector.stale == 2 and not selector.plateaued(30), "not before min_steps"
    assert selector.plateaued(50)
    selector.consider(60, 0.7, True)
    assert not selector.plateaued(60), "a better score resets the count"
    collapsed = CheckpointSelector(SelectionRule(patience=1, min_steps=0))
    _feed(collapsed, [(10, 0.9, False), (20, 0.5, False)])
    assert not collapsed.plateaued(20), "never stop early on a collapsed model"


def test_the_rule_is_checked_and_described():
    with pytest.raises(InputError, match="checkpoint rule"):
        SelectionRule("first")
    with pytest.raises(InputError):
        FinetuneConfig(keep="median")
    assert "latest model" in SelectionRule().describe()


def _pieces(rng, shape=(400, 400), classes=3, pieces=12, length=20):
    labels = np.zeros(shape, np.int64)
    for c in range(1, classes + 1):
        for _ in range(pieces):
            r, col = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - length)
            labels[r:r + 3, col:col + length] = c
    return labels


@pytest.mark.parametrize("seed", range(4))
def test_each_class_loses_close_to_the_stated_share_of_its_strokes(seed):
    labels = _pieces(np.random.default_rng(seed))
    train, val = split_strokes(labels, 0.2, salt=seed)
    for c in (1, 2, 3):
        share = (val == c).sum() / (labels == c).sum()
        assert 0.1 <= share <= 0.31, (c, share)
        assert (train == c).sum() > 0.65 * (labels == c).sum()


def test_a_class_in_two_pieces_gets_a_held_out_piece_and_one_piece_stays_in_training():
    labels = np.zeros((200, 200), np.int64)
    labels[10:13, 10:40] = 1
    labels[150:153, 150:160] = 1
    labels[100:103, 10:40] = 2
    train, val = split_strokes(labels, 0.2, salt=3)
    assert (val == 1).sum() == 30, "the smaller of the two pieces is held out"
    assert (val == 2).sum() == 0 and (train == 2).sum() == 90


def test_collapse_is_found_where_a_class_vanishes_or_is_swallowed():
    strokes = np.zeros((100, 100), np.int64)
    strokes[10:12, 10:60] = 1
    strokes[50:52, 10:60] = 2
    strokes[80:82, 10:60] = 3
    healthy = np.repeat(np.array([1, 2, 3]), [40, 30, 30])[:, None].repeat(100, axis=1)
    assert find_collapse([healthy], [strokes]) == []
    swallowed = np.ones((100, 100), np.int64)
    swallowed[80:90] = 3
    found = find_collapse([swallowed], [strokes], NAMES)
    assert any("'matrix' covers 90%" in f and "'austenite'" in f for f in found)
    assert any("'austenite' is painted but predicted on only 0.0%" in f for f in found)
    rare = healthy.copy()
    rare[0, :30] = 3  # a rare class covering its strokes' worth of pixels is no collapse
    tiny = np.zeros_like(strokes)
    tiny[0, :20] = 3
    tiny[50:52, 10:60] = 2
    assert find_collapse([rare], [tiny]) == []
    dab = strokes.copy()
    dab[30, 10:14] = 4  # 4 of 304 painted pixels: a recall warning, not a collapse
    assert find_collapse([healthy], [dab]) == []


def test_the_diagnosis_names_classes_without_held_out_strokes_and_a_better_forest():
    d = diagnose_training(180, 100, "budget", {1: 0.9, 2: 0.8}, [0.5, 0.5], True, NAMES,
                          scored_on_training=[2], network_accuracy=0.6, forest_accuracy=0.7)
    assert any("'austenite' had no held-out strokes" in w for w in d.warnings)
    assert any("forest labels 70%" in w for w in d.warnings)
    assert d.forest_wins and not d.collapsed


@pytest.fixture
def default_recipe():
    """The package's default recipe (held-out strokes, their joining training late, the 'last'
    rule, plateau stopping), only smaller crops and fewer steps."""
    return replace(FinetuneConfig(), budget=Budget(30), batch_size=4, crop_size=64, eval_every=5,
                   device="cpu")


def test_the_default_recipe_checks_on_held_out_strokes_then_trains_on_all(micrograph, scribbles,
                                                                       default_recipe):
    image, _ = micrograph
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)], config=default_recipe)
    held = tuner.images[0]
    for c in (1, 2, 3):
        share = (held.val_labels == c).sum() / (held.labels == c).sum()
        assert 0.05 < share < 0.36, (c, share)
    *_, done = tuner.run()
    assert tuner.check.step == 21, "the check is the last evaluation before the strokes join"
    assert done.best_step == 30 and tuner.provenance["checked_at_step"] == 21
    d = tuner.diagnose(NAMES)
    assert d.held_out and d.recall == tuner.check.recall
    assert tuner.provenance["selection"].startswith("keep the latest model")


def test_a_class_without_held_out_strokes_is_still_scored(micrograph, scribbles, default_recipe):
    image, truth = micrograph
    strokes = scribbles.copy()
    strokes[strokes == 3] = 0
    strokes[5:8, 5:25] = 3  # one short piece: nothing to spare for a held-out check
    tuner = Finetuner([AnnotatedImage(image, strokes, info_band=0)], config=default_recipe)
    assert not (tuner.images[0].val_labels == 3).any()
    refs, on_training = tuner.scoring_labels()
    assert on_training == [3] and (refs[0] == 3).sum() == (tuner.images[0].labels == 3).sum()
    tuner.train()
    d = tuner.diagnose(NAMES)
    assert set(d.recall) == {1, 2, 3} and d.scored_on_training == [3]
    assert any("'MA' had no held-out strokes" in w for w in d.warnings)


def _collapsed_model(tuner):
    """Make the network paint everything class 1 and learn nothing (learning rates 0)."""
    with torch.no_grad():
        tuner.model.head.bias.zero_()
        tuner.model.head.bias[0] = 1e4
    return tuner


def test_a_collapsed_model_is_refused_its_prior_and_says_so(micrograph, scribbles, default_recipe):
    image, _ = micrograph
    config = replace(default_recipe, encoder_lr=0.0, decoder_lr=0.0)
    tuner = _collapsed_model(Finetuner([AnnotatedImage(image, scribbles, info_band=0)],
                                       config=config))
    *_, done = tuner.run()
    assert tuner.collapsed and done.diagnosis.collapsed
    assert tuner.class_prior is None, "a collapsed model's shares must not become its prior"
    assert any("has collapsed" in w and "paint more strokes" in w for w in done.diagnosis.warnings)
    bundle = tuner.to_bundle(NAMES)
    assert bundle.class_prior is None and bundle.provenance["diagnosis"]["collapse"]


def test_a_continued_run_keeps_its_start_model_unless_training_beats_it(trained, micrograph,
                                                                       scribbles, default_recipe):
    image, _ = micrograph
    start = copy.deepcopy(trained.model)
    config = replace(default_recipe, encoder_lr=0.0, decoder_lr=0.0)
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)], model=copy.deepcopy(start),
                      config=config, steps_before=60)
    *_, done = tuner.run()
    assert done.reason == "start model kept" and done.best_step == 0
    assert tuner.check is tuner.start_check and tuner.kept is tuner.start_check, \
        "the self-check describes the model kept, not the last one trained"
    assert done.diagnosis.recall == tuner.start_check.recall and done.diagnosis.start_recall == {}
    for key, value in start.state_dict().items():
        assert torch.equal(tuner.model.state_dict()[key].cpu(), value.cpu()), key


def test_a_start_model_kept_because_training_collapsed_reports_its_own_check(
        trained, micrograph, scribbles, default_recipe, monkeypatch):
    image, _ = micrograph
    evaluate = Finetuner._evaluate

    def trained_models_collapse(self, step, want):
        result = evaluate(self, step, want)
        if step == 0:
            return replace(result, recall={1: 0.9, 2: 0.5, 3: 0.6}, accuracy=0.67, collapse=[])
        return replace(result, recall={1: 0.4, 2: 0.95, 3: 0.9}, accuracy=0.75,
                       collapse=["'matrix' is painted but predicted on only 0.4% of its image"])

    monkeypatch.setattr(Finetuner, "_evaluate", trained_models_collapse)
    config = replace(default_recipe, budget=Budget(20), eval_every=10)
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)],
                      model=copy.deepcopy(trained.model), config=config, steps_before=60)
    *_, done = tuner.run()
    assert done.best_step == 0 and done.reason != "start model kept"
    assert tuner.kept is tuner.start_check and tuner.check is tuner.start_check
    assert done.diagnosis.recall == {1: 0.9, 2: 0.5, 3: 0.6}
    assert done.diagnosis.made_worse == [] and not done.diagnosis.collapsed, \
        "no class 'got worse': the trained model that lost it was not kept"


def test_without_a_held_out_phase_a_continued_run_reports_the_kept_model_not_its_start(
        trained, micrograph, scribbles, default_recipe, monkeypatch):
    image, _ = micrograph
    evaluate = Finetuner._evaluate

    def by_step(self, step, want):
        recall = {1: 0.9, 2: 0.9, 3: 0.9} if step == 0 else {1: 0.5, 2: 0.6, 3: 0.7}
        return replace(evaluate(self, step, want), recall=recall, collapse=[],
                       accuracy=0.5 if step == 0 else 0.6)

    monkeypatch.setattr(Finetuner, "_evaluate", by_step)
    config = replace(default_recipe, budget=Budget(20), eval_every=10, holdout_until=0.0)
    tuner = Finetuner([AnnotatedImage(image, scribbles, info_band=0)],
                      model=copy.deepcopy(trained.model), config=config, steps_before=60)
    *_, done = tuner.run()
    assert done.best_step == 20 and done.diagnosis.recall == {1: 0.5, 2: 0.6, 3: 0.7}, \
        "the step-0 score of the start model is not the trained model's self-check"
    assert done.diagnosis.start_recall == {}, "recall on strokes it trained on compares nothing"
