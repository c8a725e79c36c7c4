"""Live training through the API: the network keeps fine-tuning while strokes change, takes new
strokes at its next evaluation, idles when nothing changes and wakes on a stroke, and ends with
a complete bundle when stopped."""

import threading
import time

import numpy as np
import pytest

from napari_matseg import api
from napari_matseg.core.bundle import load_bundle
from napari_matseg.core.errors import InputError
from napari_matseg.core.finetune import AnnotatedImage, FinetuneConfig
from napari_matseg.core.live_schedule import COLLAPSED_PATIENCE, LiveSchedule

NAMES = ["matrix", "austenite", "MA"]


@pytest.fixture
def live_recipe():
    """The default recipe (held-out strokes, the 'last' rule, the collapse check) made small."""
    return FinetuneConfig(batch_size=4, crop_size=64, eval_every=5, first_eval=5, min_steps=10,
                          device="cpu")


def _two_classes(scribbles):
    strokes = scribbles.copy()
    strokes[strokes == 3] = 0
    return strokes


def _run_in_thread(job):
    events = []
    thread = threading.Thread(target=lambda: events.extend(job.run()), daemon=True)
    thread.start()
    return thread, events


def _wait(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_the_schedule_warms_up_then_holds_and_never_ends():
    schedule = LiveSchedule(warmup_steps=4, lr_factor=0.5, patience=2, quiet_seconds=1.0)
    assert [schedule.lr(s) for s in (1, 2, 4, 400)] == [0.125, 0.25, 0.5, 0.5]
    assert schedule.step_limit >= 10**9 and not schedule.out_of_time(1e9)
    assert schedule.progress(10_000, 1e6) == 0.0, "held-out strokes never join a live run"
    assert not schedule.should_idle(1, 50, 10, 5.0), "patience not yet spent"
    assert not schedule.should_idle(2, 50, 10, 0.5), "a stroke changed too recently"
    assert not schedule.should_idle(2, 5, 10, 5.0), "before the recipe's minimum steps"
    assert schedule.should_idle(2, 50, 10, 5.0)
    assert not schedule.should_idle(2, 50, 10, 5.0, kept_passed=False), "a collapsed model trains on"
    assert not schedule.should_idle(2 * COLLAPSED_PATIENCE - 1, 50, 10, 5.0, kept_passed=False)
    assert schedule.should_idle(2 * COLLAPSED_PATIENCE, 50, 10, 5.0, kept_passed=False), "but not forever"
    with pytest.raises(InputError):
        LiveSchedule(patience=0)


def test_a_class_painted_later_is_taken_at_the_next_evaluation(micrograph, scribbles, live_recipe):
    image, _ = micrograph
    first = AnnotatedImage(image, _two_classes(scribbles), "steel", info_band=0)
    job = api.live_training([first], NAMES, config=live_recipe,
                            schedule=LiveSchedule(quiet_seconds=3600.0), preview=False)
    updated_at, evaluations = None, []
    for event in job.run():
        if event.kind is api.EventKind.EVALUATION:
            evaluations.append(event.step)
            if updated_at is None:
                assert 3 not in job.tuner.kept.recall, "class 3 is not painted yet"
                assert job.update_strokes({"steel": scribbles}) is True
                assert job.update_strokes({"steel": scribbles}) is False, "no change: nothing staged"
                updated_at = event.step
            elif len(evaluations) >= 4:
                job.stop()
        assert event.kind is not api.EventKind.ERROR, event.error
    tuner = job.tuner
    assert tuner.stroke_updates == 1 and tuner.provenance["stroke_updates"] == 1
    assert tuner.provenance["painted_pixels"] == int((scribbles > 0).sum())
    assert (tuner.images[0].labels == 3).any()
    assert tuner.kept.step > updated_at and 3 in tuner.kept.recall, "scored on the new class"
    assert (tuner.images[0].val_labels == 3).any(), "the new class has held-out strokes"
    bundle = job.result
    assert bundle.provenance["stop_reason"] == "stopped" and "diagnosis" in bundle.provenance
    assert bundle.class_names == NAMES and bundle.trained_steps == tuner.steps_done
    assert set(bundle.provenance["diagnosis"]["recall"]) == {"1", "2", "3"}


def test_strokes_that_cannot_train_are_refused_where_they_are_given(micrograph, scribbles,
                                                                    live_recipe):
    image, _ = micrograph
    job = api.live_training([AnnotatedImage(image, scribbles, "steel", info_band=0)], NAMES,
                            config=live_recipe, preview=False)
    with pytest.raises(InputError, match="no training image is called 'other'"):
        job.update_strokes({"other": scribbles})
    one_class = np.where(scribbles == 1, 1, 0)
    with pytest.raises(InputError, match="two classes"):
        job.update_strokes({"steel": one_class})
    events = job.run()
    for event in events:
        if event.kind is api.EventKind.EVALUATION:
            break
    with pytest.raises(InputError, match="class"):
        job.update_strokes({"steel": np.where(scribbles == 3, 4, scribbles)})
    job.stop()
    *_, done = events
    assert done.kind is api.EventKind.DONE and job.tuner.stroke_updates == 0


def test_it_idles_when_nothing_changes_and_wakes_on_a_stroke(micrograph, scribbles, live_recipe,
                                                            tmp_path):
    image, _ = micrograph
    top = scribbles.copy()
    top[80:] = 0  # the bottom half is painted later
    job = api.live_training([AnnotatedImage(image, top, "steel", info_band=0)], NAMES,
                            config=live_recipe, schedule=LiveSchedule(patience=2, quiet_seconds=0.0))
    thread, events = _run_in_thread(job)
    try:
        _wait(lambda: job.idle)
        steps = job.tuner.steps_done
        assert steps >= live_recipe.min_steps
        time.sleep(1.0)
        assert job.tuner.steps_done == steps, "an idle run trains no step"
        snapshot = job.best_so_far()
        assert snapshot.provenance["live_snapshot"] and snapshot.class_prior is not None
        assert snapshot.provenance["best_step"] == job.tuner.best_step
        assert job.update_strokes({"steel": scribbles})
        _wait(lambda: job.tuner.steps_done > steps and job.tuner.stroke_updates == 1)
        assert any(e.kind is api.EventKind.MESSAGE and "took the new strokes" in e.message
                   for e in list(events))
    finally:
        job.stop()
        thread.join(120)
    assert not thread.is_alive()
    done = events[-1]
    assert done.kind is api.EventKind.DONE, done.error
    assert sum(e.name == "idle" for e in events) >= 1
    assert any(e.kind is api.EventKind.PREVIEW and e.name == "quick" for e in events)
    bundle = done.result
    assert bundle.class_prior is not None and bundle.provenance["stop_reason"] == "stopped"
    assert bundle.provenance["painted_pixels"] == int((scribbles > 0).sum())
    bundle.save(tmp_path / "live.matseg")
    assert load_bundle(tmp_path / "live.matseg").class_prior == bundle.class_prior


def test_stop_while_idle_ends_at_once(micrograph, scribbles, live_recipe):
    image, _ = micrograph
    job = api.live_training([AnnotatedImage(image, scribbles, "steel", info_band=0)], NAMES,
                            config=live_recipe, schedule=LiveSchedule(patience=1, quiet_seconds=0.0),
                            preview=False)
    thread, events = _run_in_thread(job)
    _wait(lambda: job.idle)
    job.stop()
    thread.join(60)
    assert not thread.is_alive() and events[-1].kind is api.EventKind.DONE
    assert job.result.provenance["stop_reason"] == "stopped"


def _rounds_done(events) -> int:
    return sum(e.name == "round" for e in list(events))


def test_in_rounds_each_round_is_a_complete_fit_and_stop_keeps_the_last_complete_one(
        micrograph, scribbles, live_recipe, monkeypatch):
    import napari_matseg.api.budgets as budgets

    monkeypatch.setattr(budgets, "FIRST_FIT_STEPS", 20)
    monkeypatch.setattr(budgets, "CONTINUE_STEPS", 10)
    image, _ = micrograph
    top = scribbles.copy()
    top[80:] = 0
    job = api.live_training([AnnotatedImage(image, top, "steel", info_band=0)], NAMES,
                            config=live_recipe, schedule=LiveSchedule(rounds=True), preview=False)
    thread, events = _run_in_thread(job)
    try:
        _wait(lambda: job.idle)
        first = job.best_so_far()
        assert first.trained_steps == 20 and "live_snapshot" not in first.provenance, \
            "between rounds the snapshot is the complete, annealed first fit"
        assert first.provenance["stop_reason"] == "budget" and job.steps_done == 20
        time.sleep(0.5)
        assert job.steps_done == 20, "nothing new painted: no new round"
        assert job.update_strokes({"steel": scribbles})
        _wait(lambda: job.idle and _rounds_done(events) == 2)
        second = job.best_so_far()
        assert 20 < job.steps_done <= 30 and second.provenance["warm_start"]
        assert second.provenance["painted_pixels"] == int((scribbles > 0).sum())
        assert job.stroke_updates == 1
        erased = scribbles.copy()
        erased[:40] = 0
        assert job.update_strokes({"steel": erased})
        steps = job.steps_done
        _wait(lambda: job.steps_done > steps)
    finally:
        job.stop()
        thread.join(120)
    assert not thread.is_alive()
    done = events[-1]
    assert done.kind is api.EventKind.DONE, done.error
    assert done.result is second, "a round cut short by Stop gives way to the last complete one"
    rounds = [e.message for e in events if e.name == "round"]
    assert len(rounds) == 2 and rounds[0].startswith("live: round 1 done")


def test_in_rounds_strokes_given_at_a_rounds_last_step_start_the_next_and_bad_ones_keep_it_alive(
        micrograph, scribbles, live_recipe, monkeypatch):
    import napari_matseg.api.budgets as budgets

    monkeypatch.setattr(budgets, "FIRST_FIT_STEPS", 10)
    monkeypatch.setattr(budgets, "CONTINUE_STEPS", 5)
    image, _ = micrograph
    band = 30
    top = scribbles.copy()
    top[80:] = 0
    job = api.live_training([AnnotatedImage(image, top, "steel", info_band=band)], NAMES,
                            config=live_recipe, schedule=LiveSchedule(rounds=True), preview=False)
    events, handed = [], []

    def run():
        for event in job.run():
            events.append(event)
            if event.kind is api.EventKind.STEP and event.step == 10 and not handed:
                handed.append(job.update_strokes({"steel": scribbles}))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        _wait(lambda: job.idle and _rounds_done(events) == 2)
        assert handed == [True] and job.steps_done > 10
        assert job.best_so_far().provenance["painted_pixels"] == int((scribbles > 0).sum()), \
            "strokes given at round 1's last step are trained on in round 2"
        inside_band = np.zeros_like(scribbles)
        inside_band[:-band][scribbles[:-band] == 1] = 1
        inside_band[-band + 5:-band + 10, 10:40] = 2
        assert job.update_strokes({"steel": inside_band})
        _wait(lambda: any("cannot train" in (e.message or "") for e in list(events)))
        steps = job.steps_done
        assert thread.is_alive() and _rounds_done(events) == 2
        assert job.update_strokes({"steel": top})
        _wait(lambda: job.idle and _rounds_done(events) == 3)
        assert job.steps_done > steps
    finally:
        job.stop()
        thread.join(120)
    assert events[-1].kind is api.EventKind.DONE and events[-1].result is job.result


def test_an_idle_message_names_the_collapse_it_idles_on():
    from types import SimpleNamespace

    from napari_matseg.api.live_training import collapse_note

    fine = SimpleNamespace(collapsed=False, kept=SimpleNamespace(collapse=[]))
    lost = SimpleNamespace(collapsed=True, kept=SimpleNamespace(
        collapse=["class 2 is painted but predicted on only 0.2% of its image"]))
    assert collapse_note(fine) == ""
    note = collapse_note(lost)
    assert "class 2 is painted but predicted on only 0.2%" in note and "paint more" in note
