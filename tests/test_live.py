"""The live preview through the API, headless: refits on changing strokes, cached features."""

import numpy as np
import pytest

from napari_matseg.api.live import LivePreview
from napari_matseg.core.finetune import AnnotatedImage
from napari_matseg.core.quickfit import QuickFitConfig
from napari_matseg.testing import voronoi_micrograph


def _strokes(truth, rows):
    labels = np.zeros(truth.shape, np.uint8)
    labels[rows] = truth[rows] + 1
    return labels


def test_a_refit_follows_the_strokes_and_reuses_the_features(micrograph, scribbles, monkeypatch):
    import napari_matseg.api.live as live

    image, truth = micrograph
    computed = []
    features = live.pixel_features
    monkeypatch.setattr(live, "pixel_features", lambda *a, **k: computed.append(1) or features(*a, **k))
    preview = LivePreview()
    first = preview.refit([AnnotatedImage(image, scribbles, "steel", info_band=0)])
    assert first.classes == [1, 2, 3] and first.previews["steel"].shape == image.shape
    accuracy = np.mean(first.previews["steel"] == truth + 1)
    assert accuracy > 0.8, accuracy
    more = scribbles.copy()
    more[:8] = truth[:8] + 1
    second = preview.refit([AnnotatedImage(image, more, "steel", info_band=0)])
    assert len(computed) == 1, "a refit on new strokes reuses the image's features"
    assert not np.array_equal(first.previews["steel"], second.previews["steel"])
    preview.refit([AnnotatedImage(255 - image, more, "steel", info_band=0)])
    assert len(computed) == 2, "new pixels under the same name are prepared again"


def test_nothing_to_show_until_two_classes_are_painted(micrograph):
    image, truth = micrograph
    one = np.zeros(truth.shape, np.uint8)
    one[10:20, 10:20] = 1
    preview = LivePreview()
    assert preview.refit([AnnotatedImage(image, one, "steel", info_band=0)]) is None


def test_strokes_of_one_image_preview_another_and_the_band_stays_empty():
    a, truth_a = voronoi_micrograph((96, 120), grains=12, seed=3)
    b, _ = voronoi_micrograph((140, 100), grains=12, seed=4)
    preview = LivePreview(QuickFitConfig(forest="extra", trees=8, samples_per_class=200))
    result = preview.refit([AnnotatedImage(a, _strokes(truth_a, slice(0, 96, 6)), "a", info_band=0),
                            AnnotatedImage(b, np.zeros(b.shape, np.uint8), "b", info_band=20)],
                           show=["b"])
    assert list(result.previews) == ["b"] and result.previews["b"].shape == b.shape
    assert (result.previews["b"][-20:] == 0).all() and (result.previews["b"][:-20] > 0).all()
    assert preview.refit([AnnotatedImage(a, np.zeros(a.shape, np.uint8), "a", info_band=0)],
                         train=[]) is None


def test_the_forest_kind_is_checked():
    from napari_matseg.core.errors import InputError

    with pytest.raises(InputError, match="forest"):
        QuickFitConfig(forest="boosted")
