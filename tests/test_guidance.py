import numpy as np
import pytest

from napari_matseg.core.guidance import GuidanceConfig, regions_to_paint
from napari_matseg.core.quickfit import QuickClassifier, QuickFitConfig, pixel_features
from napari_matseg.testing import ScribbleSimulation, simulate_scribbles, voronoi_micrograph


def test_the_largest_doubtful_region_comes_first_and_strokes_are_left_out():
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 0.2, (200, 300)).astype(np.float32)
    u[20:80, 30:150] = 0.9     # a large doubtful area
    u[120:140, 200:230] = 0.95  # a small, more doubtful one
    u[150:190, 20:60] = 0.9    # doubtful, but already painted
    painted = np.zeros(u.shape, bool)
    painted[150:190, 20:60] = True
    regions = regions_to_paint(u, painted, top=5, config=GuidanceConfig(min_area=20))
    assert len(regions) == 2
    big, small = regions
    assert big.score > small.score
    top, left, bottom, right = big.box
    assert top <= 25 and left <= 35 and bottom >= 75 and right >= 145
    assert 40 <= big.centre[0] <= 60 and 80 <= big.centre[1] <= 100
    assert not any(r.full_mask(u.shape)[painted].any() for r in regions)


def test_no_region_in_the_information_band():
    u = np.zeros((100, 100), np.float32)
    u[85:, :] = 1.0
    assert regions_to_paint(u, content_rows=80) == []


def test_a_certain_model_suggests_nothing():
    assert regions_to_paint(np.zeros((64, 64), np.float32)) == []


def test_the_quick_classifier_learns_the_phases_from_strokes():
    image, truth = voronoi_micrograph((160, 160), grains=20, phases=3, seed=1)
    strokes = simulate_scribbles(truth, config=ScribbleSimulation(stroke_length=24, stroke_width=3,
                                                                  erosion=2, painted_fraction=0.04))
    held = simulate_scribbles(truth, seed=9, config=ScribbleSimulation(painted_fraction=0.02))
    pixels = image / 255.0
    assert pixel_features(pixels).shape == (160, 160, 26)
    quick = QuickClassifier(QuickFitConfig(trees=20)).fit([(pixels, strokes)])
    assert quick.balanced_accuracy([held]) > 0.8
    preview = quick.predict_fitted(0)
    assert preview.shape == image.shape and set(np.unique(preview)) <= {1, 2, 3}
    assert (preview == truth + 1).mean() > 0.7
    assert quick.balanced_accuracy([np.zeros_like(held)]) is None
    with pytest.raises(ValueError, match="preview stride"):
        QuickFitConfig(preview_stride=0)
