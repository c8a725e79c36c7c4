"""A grain-boundary class drawn as a closed network of lines from its probability."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from napari_matseg import api
from napari_matseg.core.boundary_lines import BoundaryLinesConfig, draw_boundary_lines, watershed_lines
from napari_matseg.core.errors import InputError
from napari_matseg.core.linewidth import mean_line_width
from napari_matseg.core.measure import BoundaryNetworkConfig, grain_size
from napari_matseg.core.model import ModelConfig
from napari_matseg.core.predict import PredictConfig, predict_tiled
from napari_matseg.core.preprocess import PreparedImage
from napari_matseg.testing.synthetic import voronoi_grains


def _planimetric_g(labels):
    return grain_size(labels, 2, pixel_size=1.0, network=BoundaryNetworkConfig()).astm_g_planimetric


def _banded_probability(truth, seed, reach=15.0):
    """A network's boundary probability: high on the true lines, falling off over ``reach`` px
    into the grains, with a little noise; above 0.5 within 7.5 px of a line, so the argmax
    marks 15-px bands that swallow the small grains."""
    dist = ndimage.distance_transform_edt(truth == 1)
    p = np.clip(0.95 - 0.9 * dist / reach, 0.05, 0.95)
    return p + np.random.default_rng(seed).uniform(0, 0.005, p.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lines_give_back_the_grains_a_wide_predicted_band_swallows(seed):
    truth = voronoi_grains((300, 300), 150, seed=seed)
    p = _banded_probability(truth, seed)
    argmax = np.where(p > 0.5, 2, 1)
    lines = draw_boundary_lines(np.stack([1 - p, p]), BoundaryLinesConfig(2))
    g_truth = _planimetric_g(truth)
    assert _planimetric_g(argmax) < g_truth - 0.25
    assert abs(_planimetric_g(lines) - g_truth) < 0.1
    assert (argmax == 2).mean() > 0.7 and (lines == 2).mean() < 0.25


def test_lines_are_as_wide_as_asked_and_closed():
    truth = voronoi_grains((200, 200), 40, seed=4)
    p = _banded_probability(truth, 4)
    for width, drawn in ((1, 1), (2, 1), (2.87, 3), (3, 3), (4, 3), (5, 5)):
        labels = draw_boundary_lines(np.stack([1 - p, p]), BoundaryLinesConfig(2, width=width))
        assert mean_line_width(labels == 2) == pytest.approx(drawn, abs=0.6)
    def grains(mask):
        parts, count = ndimage.label(mask)
        return int((np.bincount(parts.ravel())[1:] >= 10).sum())

    assert abs(grains(~watershed_lines(p)) - grains(truth == 1)) <= 1


def test_a_grain_without_boundaries_gets_no_line():
    p = np.full((80, 80), 0.1) + np.random.default_rng(0).uniform(0, 0.01, (80, 80))
    assert not watershed_lines(p).any()
    labels = draw_boundary_lines(np.stack([1 - p, p]), BoundaryLinesConfig(2))
    assert (labels == 1).all()


def test_band_pixels_off_the_lines_take_their_most_likely_other_class():
    truth = voronoi_grains((120, 120), 20, seed=5)
    p = _banded_probability(truth, 5) * 0.9
    rest = 1 - p
    left = np.zeros_like(p)
    left[:, :60] = 1
    probs = np.stack([rest * (0.3 + 0.4 * left), rest * (0.7 - 0.4 * left), p])
    labels = draw_boundary_lines(probs, BoundaryLinesConfig(3))
    off_lines = labels != 3
    assert (labels[:, :60][off_lines[:, :60]] == 1).all()
    assert (labels[:, 60:][off_lines[:, 60:]] == 2).all()
    with pytest.raises(ValueError, match="boundary class 4"):
        draw_boundary_lines(probs, BoundaryLinesConfig(4))


@pytest.mark.parametrize("bad", [dict(boundary_class=0), dict(boundary_class=2, depth=0),
                                 dict(boundary_class=2, width=0.5), dict(boundary_class=2, smoothing=-1)])
def test_the_rule_is_a_checked_config(bad):
    with pytest.raises(InputError):
        BoundaryLinesConfig(**bad)
    assert "minima deeper than 0.02" in BoundaryLinesConfig(2).describe()


class RampModel(nn.Module):
    """Two classes, the second as likely as the pixel is bright: a boundary probability."""

    stride = 32

    def __init__(self):
        super().__init__()
        self.config = ModelConfig(num_classes=2)

    def standardise(self, x):
        return x

    def forward(self, x):
        logit = 12 * (x - 0.5)
        return torch.cat([-logit / 2, logit / 2], dim=1)


def test_prediction_draws_the_lines_when_asked_and_keeps_probabilities_only_when_asked():
    from napari_matseg.core.predict import predict_prepared

    truth = voronoi_grains((128, 128), 30, seed=6)
    pixels = _banded_probability(truth, 6).astype(np.float32)
    prepared = PreparedImage(pixels, (128, 128), 128, 1.0)
    plain = predict_prepared(RampModel(), prepared, PredictConfig(keep_probabilities=False))
    lines = predict_prepared(RampModel(), prepared, PredictConfig(
        keep_probabilities=False, boundary_lines=BoundaryLinesConfig(2)))
    assert lines.probabilities is None
    assert (plain.labels == 2).mean() > 0.6 and (lines.labels == 2).mean() < 0.3
    assert _planimetric_g(lines.labels) > _planimetric_g(plain.labels) + 0.25
    with pytest.raises(InputError, match="BoundaryLinesConfig"):
        PredictConfig(boundary_lines=2)
    labels, _, _ = predict_tiled(RampModel(), pixels, PredictConfig(keep_probabilities=False))
    np.testing.assert_array_equal(labels + 1, plain.labels)


def test_the_api_draws_a_named_class_as_wide_as_it_was_painted(trained, micrograph):
    image, _ = micrograph
    trained = trained.to_bundle(["matrix", "lamellar", "boundary"])
    diagnosis = trained.provenance["diagnosis"]
    painted = float(diagnosis["stroke_width_px"]["3"])
    job = api.predict(trained, [("m", image)], api.PredictOptions(boundary_lines="boundary"))
    assert job.config_for(None).boundary_lines == BoundaryLinesConfig(3, width=painted)
    assert job.config_for(None).boundary_lines.width == pytest.approx(painted)
    diagnosis["stroke_pixel_size"] = 0.1
    assert job.config_for(0.05).boundary_lines.width == pytest.approx(2 * painted)
    for bogus in (1e6, -2, "wide", None):
        diagnosis["stroke_width_px"]["3"] = bogus
        assert 1 <= job.config_for(None).boundary_lines.width <= 25
    assert api.predict(trained, [("m", image)]).config_for(None).boundary_lines is None
    with pytest.raises(InputError, match="no class 'grain boundary'"):
        api.predict(trained, [("m", image)], api.PredictOptions(boundary_lines="grain boundary"))
    for bad in ("³", True, 0, 4):
        with pytest.raises(InputError):
            api.predict(trained, [("m", image)], api.PredictOptions(boundary_lines=bad))


def test_lines_on_a_banded_image_at_half_scale_stay_in_the_content_rows(trained, micrograph):
    from dataclasses import replace

    image, _ = micrograph
    bundle = trained.to_bundle(["matrix", "lamellar", "boundary"])
    bundle.preprocess = replace(bundle.preprocess, scale=0.5)
    banded = np.concatenate([image, np.full((20, image.shape[1]), 255, image.dtype)])
    options = api.PredictOptions(boundary_lines="boundary", info_band=20)
    job = api.predict(bundle, [("m", banded)], options, keep_probabilities=True)
    result = [e for e in job.run() if e.kind is api.EventKind.RESULT][0].prediction
    assert result.labels.shape == banded.shape
    assert (result.labels[-20:] == 0).all() and (result.labels[:-20] > 0).all()
    assert result.probabilities.shape == (3, *banded.shape)
    expected = draw_boundary_lines(result.probabilities[:, :-20], job.config_for(None).boundary_lines)
    np.testing.assert_array_equal(result.labels[:-20], expected)


def test_probabilities_that_are_not_numbers_give_no_line_and_no_crash():
    p = np.full((64, 64), 0.2, np.float32)
    p[20:40, 20:40] = np.nan
    labels = draw_boundary_lines(np.stack([1 - p, p]), BoundaryLinesConfig(2))
    assert labels.shape == p.shape and set(np.unique(labels)) <= {1, 2}
