import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from napari_matseg.core.model import ModelConfig, build_model
from napari_matseg.core.predict import PredictConfig, predict_image, predict_tiled
from napari_matseg.core.preprocess import PreprocessConfig
from napari_matseg.testing.synthetic import voronoi_micrograph


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m, _ = build_model(ModelConfig(num_classes=3), encoder_weights=None)
    return m.eval()


def test_one_tile_equals_whole_image_forward(model):
    pixels = np.random.default_rng(0).random((96, 128)).astype(np.float32)
    labels, probs, unc = predict_tiled(model, pixels, PredictConfig(tile=128))
    with torch.no_grad():
        direct = model(model.standardise(torch.from_numpy(pixels))[None, None]).softmax(1)[0].numpy()
    np.testing.assert_allclose(probs, direct, atol=1e-5)
    np.testing.assert_array_equal(labels, direct.argmax(0))
    assert unc.min() >= 0 and unc.max() <= 1


def test_tiles_blend_into_the_whole_image_result(trained):
    image, _ = voronoi_micrograph((200, 260), grains=30, seed=3)
    pixels = trained.preprocess.normalizer(image)
    whole, pw, _ = predict_tiled(trained.model, pixels, PredictConfig(tile=512))
    tiled, pt, _ = predict_tiled(trained.model, pixels, PredictConfig(tile=128, overlap=64))
    assert np.abs(pw - pt).mean() < 0.03
    assert (whole == tiled).mean() > 0.95


def test_progress_counts_every_tile(model):
    calls = []
    predict_tiled(model, np.zeros((100, 100), np.float32) + 0.5, PredictConfig(tile=64, overlap=16),
                  progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == len(calls) == 4


def test_flip_tta_is_flip_equivariant(model):
    pixels = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    _, p, _ = predict_tiled(model, pixels, PredictConfig(tta=True))
    _, pf, _ = predict_tiled(model, pixels[:, ::-1].copy(), PredictConfig(tta=True))
    np.testing.assert_allclose(p[:, :, ::-1], pf, atol=1e-5)


def test_band_rows_are_left_unclassified(model, micrograph):
    image, _ = micrograph
    banded = np.concatenate([image, np.zeros((20, image.shape[1]), np.uint8)])
    banded[-10:-6, 5:50] = 255
    pred = predict_image(model, banded, PreprocessConfig())
    assert pred.content_rows == image.shape[0]
    assert (pred.labels[:image.shape[0]] > 0).all()
    assert (pred.labels[image.shape[0]:] == 0).all()
    assert pred.probabilities.shape == (3, *banded.shape)


def test_scaled_prediction_returns_full_size(model, micrograph):
    image, _ = micrograph
    pred = predict_image(model, image, PreprocessConfig(scale=0.5, info_band=0))
    assert pred.labels.shape == image.shape and pred.uncertainty.shape == image.shape


class PixelModel(nn.Module):
    """A per-pixel classifier: cheap enough to push 64 megapixels through in a test."""

    stride = 32

    def __init__(self):
        super().__init__()
        self.config = ModelConfig(num_classes=2)
        self.conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([[[[4.0]]], [[[-4.0]]]])
            self.conv.bias.zero_()

    def standardise(self, x):
        return x - 0.5

    def forward(self, x):
        return self.conv(x)


def test_8000_square_image_in_bounded_memory():
    side = 8000
    pixels = np.zeros((side, side), np.float32)
    pixels[:, side // 2:] = 1.0
    tracemalloc.start()
    labels, probs, unc = predict_tiled(PixelModel(), pixels,
                                       PredictConfig(tile=1024, overlap=64, keep_probabilities=False))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    outputs = labels.nbytes + unc.nbytes
    full_probabilities = 2 * side * side * 4
    assert probs is None
    assert peak - outputs < 0.5 * full_probabilities, f"peak {peak / 2**20:.0f} MiB"
    assert (labels[:, : side // 2 - 64] == 1).all() and (labels[:, side // 2 + 64:] == 0).all()


def test_pixel_size_brings_a_zoomed_image_to_the_training_scale(trained, micrograph):
    from dataclasses import replace

    from napari_matseg.core.preprocess import resize

    image, _ = micrograph
    preprocess = replace(trained.preprocess, pixel_size=0.1)
    reference = predict_image(trained.model, image, preprocess.with_info_band(0)).labels
    zoomed = resize(image.astype(np.float32), 2.0)  # the same field at 0.05 µm per pixel
    matched = predict_image(trained.model, zoomed, preprocess.with_info_band(0), pixel_size=0.05).labels
    naive = predict_image(trained.model, zoomed, preprocess.with_info_band(0)).labels
    assert matched.shape == naive.shape == zoomed.shape
    agree_matched = (matched[::2, ::2] == reference).mean()
    agree_naive = (naive[::2, ::2] == reference).mean()
    assert agree_matched > 0.9
    assert 1 - agree_matched < 0.5 * (1 - agree_naive)  # at most half the naive disagreement


def test_class_prior_reweights_the_probabilities(trained, micrograph):
    image, truth = micrograph
    pixels = trained.images[0].prepared.pixels
    prior = trained.class_prior
    assert len(prior) == 3 and sum(prior) == pytest.approx(1, abs=1e-4)
    painted = np.bincount(truth.ravel(), minlength=3) / truth.size
    assert np.abs(np.asarray(prior) - painted).max() < 0.15  # the phases' share of the image
    plain, p0, _ = predict_tiled(trained.model, pixels, PredictConfig())
    flat, _, _ = predict_tiled(trained.model, pixels, PredictConfig(class_prior=(1 / 3,) * 3))
    np.testing.assert_array_equal(plain, flat)
    skewed = PredictConfig(class_prior=(0.98, 0.01, 0.01), prior_power=1.0)
    labels, p1, _ = predict_tiled(trained.model, pixels, skewed)
    np.testing.assert_allclose(p1.sum(axis=0), 1, atol=1e-5)
    assert (labels == 0).mean() > (plain == 0).mean() + 0.05
    off = PredictConfig(class_prior=(0.98, 0.01, 0.01), prior_power=0.0)
    np.testing.assert_array_equal(predict_tiled(trained.model, pixels, off)[0], plain)
    with pytest.raises(ValueError, match="3 classes"):
        PredictConfig(class_prior=(0.5, 0.5)).class_weights(3)
    with pytest.raises(ValueError, match="non-negative fractions"):
        PredictConfig(class_prior=(float("nan"), 0.5))
