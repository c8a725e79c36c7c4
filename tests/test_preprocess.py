import numpy as np
import pytest

from napari_matseg.core.errors import InputError
from napari_matseg.core.infoband import content_rows, detect_info_band
from napari_matseg.core.normalize import PercentileNormalizer
from napari_matseg.core.preprocess import PreprocessConfig, prepare_image
from napari_matseg.testing.synthetic import voronoi_micrograph


def with_info_band(image, rows=20):
    """Append an SEM-style data bar: black background, white text blocks and a frame line."""
    band = np.zeros((rows, image.shape[1]), image.dtype)
    band[rows // 3: rows // 3 + 4, 10:60] = 255
    band[2, :] = 255
    return np.concatenate([image, band])


def test_info_band_is_detected_where_it_starts():
    image, _ = voronoi_micrograph((120, 160), seed=0)
    assert detect_info_band(image) == 120
    assert detect_info_band(with_info_band(image, 20)) == 120


def test_band_override_and_errors():
    image, _ = voronoi_micrograph((100, 100), seed=0)
    banded = with_info_band(image, 12)
    assert content_rows(banded, "auto") == 100
    assert content_rows(banded, 0) == 112
    assert content_rows(banded, None) == 112
    assert content_rows(banded, 30) == 82
    with pytest.raises(InputError, match="does not fit"):
        content_rows(banded, 500)


def test_normaliser_maps_percentiles_and_rejects_constant_images():
    image = np.linspace(0, 1000, 10_000).reshape(100, 100)
    out = PercentileNormalizer(1, 99)(image)
    assert out.dtype == np.float32
    assert abs(np.percentile(out, 1)) < 1e-3 and abs(np.percentile(out, 99) - 1) < 1e-3
    with pytest.raises(InputError, match="constant"):
        PercentileNormalizer()(np.full((10, 10), 7, np.uint8))


def test_quartile_normaliser_is_not_moved_by_a_dark_crack():
    rng = np.random.default_rng(0)
    grains = rng.normal(100, 10, (200, 200))
    cracked = grains.copy()
    cracked[:30] = 5  # 15 % of the image is a crack
    quartiles = PercentileNormalizer(25, 75, low_value=0.25, high_value=0.75)
    a, b = quartiles(grains), quartiles(cracked)
    assert abs(np.percentile(a, 25) - 0.25) < 1e-3 and abs(np.percentile(a, 75) - 0.75) < 1e-3
    assert abs(np.median(a[30:]) - np.median(b[30:])) < 0.1
    assert b[:30].max() == -0.25  # the crack sits at the clip
    default = PercentileNormalizer()
    assert abs(np.median(default(grains)[30:]) - np.median(default(cracked)[30:])) > 0.1


def test_8_and_16_bit_versions_of_an_image_prepare_alike():
    image, _ = voronoi_micrograph((64, 64), seed=0)
    a = prepare_image(image, PreprocessConfig(info_band=0)).pixels
    b = prepare_image(image.astype(np.uint16) * 257, PreprocessConfig(info_band=0)).pixels
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_prepare_crops_band_and_rescales():
    image, _ = voronoi_micrograph((100, 80), seed=0)
    prepared = prepare_image(with_info_band(image, 16), PreprocessConfig(scale=0.5))
    assert prepared.content_rows == 100
    assert prepared.pixels.shape == (50, 40)
    assert prepared.original_shape == (116, 80)


def test_auto_scale_halves_large_micrographs_only():
    from napari_matseg.core.preprocess import auto_scale

    assert auto_scale((703, 1024)) == 0.5
    assert auto_scale((512, 512)) == 1.0
    big, _ = voronoi_micrograph((100, 950), seed=0)
    assert prepare_image(big, PreprocessConfig(info_band=0)).pixels.shape == (50, 475)
    assert prepare_image(big, PreprocessConfig(scale=1.0, info_band=0)).pixels.shape == (100, 950)


def test_pixel_size_rescales_to_the_training_scale():
    config = PreprocessConfig(scale=0.5, pixel_size=0.02)
    assert config.for_pixel_size(0.01).scale == pytest.approx(0.25)
    assert config.for_pixel_size(0.04).scale == pytest.approx(1.0)
    assert config.for_pixel_size(None) is config
    assert PreprocessConfig(scale=0.5).for_pixel_size(0.01).scale == 0.5
    restored = PreprocessConfig.from_dict(config.to_dict())
    assert restored.pixel_size == 0.02 and restored.scale == 0.5
    with pytest.raises(InputError, match="pixel size"):
        config.for_pixel_size(-1.0)
