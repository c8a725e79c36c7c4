"""A regression gate on real data in the default run: the default recipe, fixed strokes drawn by a
simulator that is not ours (``../shared/data/MetalDAM/strokes/``), 100 steps on 2 cores.

Issue 24's regression (a held-out split that left classes without strokes, and a selection
that kept a collapsed early checkpoint) painted most of the image as one class; this test fails
on such a model. Skipped where the shared data is absent.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from napari_matseg import api
from napari_matseg.core.bundle import default_class_names
from napari_matseg.core.imageio import read_image, read_labels
from napari_matseg.core.metrics import confusion_matrix, score

METALDAM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "MetalDAM"
FOLD, SHOT = 3, "micrograph0"

pytestmark = pytest.mark.skipif(not (METALDAM / "strokes" / f"fold{FOLD}_{SHOT}.png").is_file(),
                                reason="needs ../shared/data/MetalDAM (the benchmark data)")


def _pair(name):
    truth = read_labels(METALDAM / "labels" / f"{name}.png")
    return read_image(METALDAM / "images" / f"{name}.jpg")[: truth.shape[0], : truth.shape[1]], truth


def _predict(bundle, name, image):
    """Return the class map (0..K-1) the bundle predicts for one image, through the API."""
    for event in api.predict(bundle, [(name, image)], api.PredictOptions(info_band=0), "cpu").run():
        assert not event.failed, event.error
        if event.kind is api.EventKind.RESULT:
            return event.prediction.labels.astype(np.int64) - 1
    raise AssertionError("the prediction ended without a result")


def test_the_default_recipe_learns_every_main_phase_from_fixed_strokes():
    image, truth = _pair(SHOT)
    strokes = read_labels(METALDAM / "strokes" / f"fold{FOLD}_{SHOT}.png").astype(np.int64)
    job = api.finetune([api.AnnotatedImage(image, strokes, SHOT, info_band=0)],
                       default_class_names(5), budget=api.Budget(100), device="cpu")
    bundle = job.wait()
    diagnosis = bundle.provenance["diagnosis"]
    assert not diagnosis["collapse"], diagnosis["collapse"]
    split = json.loads((METALDAM / "splits" / "official_6fold.json").read_text())[f"fold{FOLD}"]
    test_image, test_truth = _pair(split["test"][0])
    for name, img, lab in [("shot", image, truth), ("test", test_image, test_truth)]:
        pred = _predict(bundle, name, img)
        shares = np.bincount(pred.ravel(), minlength=5) / pred.size
        for c in (0, 1, 2):  # matrix, austenite, M/A: each is painted and covers > 5 % here
            assert shares[c] > 0.02, (name, c, shares.round(3))
        assert shares.max() < 0.85, (name, shares.round(3))
        keep = strokes == 0 if name == "shot" else np.ones(lab.shape, bool)
        miou = score(confusion_matrix(lab[keep], pred[keep], 5), [0, 1, 2]).miou
        assert miou > 0.3, (name, miou)
