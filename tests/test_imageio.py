import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_matseg.core.errors import InputError
from napari_matseg.core.imageio import list_images, read_image, read_labels, to_grey, write_labels


@pytest.fixture
def grey():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (40, 50), dtype=np.uint8)


@pytest.mark.parametrize("compression", [None, "lzw", "zlib"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_8_16_bit_and_compressed(tmp_path, grey, compression, dtype):
    data = grey.astype(dtype) * (257 if dtype == np.uint16 else 1)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, data, compression=compression)
    out = read_image(path)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("suffix", ["png", "bmp"])
def test_lossless_formats(tmp_path, grey, suffix):
    path = tmp_path / f"a.{suffix}"
    Image.fromarray(grey).save(path)
    np.testing.assert_array_equal(read_image(path), grey)


def test_jpeg_is_read_as_grey(tmp_path, grey):
    path = tmp_path / "a.jpg"
    Image.fromarray(np.stack([grey] * 3, -1)).save(path, quality=95)
    out = read_image(path)
    assert out.shape == grey.shape
    assert np.abs(out.astype(int) - grey).mean() < 20


def test_rgb_with_equal_channels_keeps_values(grey):
    np.testing.assert_array_equal(to_grey(np.stack([grey] * 3, -1)), grey)


def test_true_colour_becomes_luminance():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 1] = 200
    out = to_grey(rgb)
    assert out.shape == (20, 20)
    assert abs(int(out[0, 0]) - round(0.587 * 200)) <= 1


def test_stack_is_rejected_with_a_clear_message(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 20, 20), np.uint8))
    with pytest.raises(InputError, match="2-D image"):
        read_image(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(InputError, match="empty"):
        read_image(empty)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="cannot be read"):
        read_image(garbage)


def test_labels_round_trip_png_and_tiff(tmp_path):
    labels = np.arange(12).reshape(3, 4) % 3
    for name in ("l.png", "l.tif"):
        write_labels(tmp_path / name, labels)
        np.testing.assert_array_equal(read_labels(tmp_path / name), labels)
    big = np.full((2, 2), 300)
    write_labels(tmp_path / "big.png", big)
    assert np.asarray(Image.open(tmp_path / "big.png")).max() == 300
    with pytest.raises(InputError, match="values 300, which are not class numbers 0..64"):
        read_labels(tmp_path / "big.png")


def test_label_images_carry_their_class_colours_names_and_scale(tmp_path):
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 10:] = 1
    labels[:, 20:] = 2
    names, colours = ["matrix", "carbide"], ["#ff0000", "#00ff00"]
    png = write_labels(tmp_path / "l.png", labels, names, colours, pixel_size=0.5)
    with Image.open(png) as im:
        assert im.mode == "P"
        assert im.convert("RGB").getpixel((25, 0)) == (0, 255, 0)
        assert im.info["matseg:classes"] == "0 = unlabelled; 1 = matrix; 2 = carbide"
        assert im.info["dpi"][0] == pytest.approx(50800, rel=1e-3)
    np.testing.assert_array_equal(read_labels(png), labels)
    tif = write_labels(tmp_path / "l.tif", labels, names, colours, pixel_size=0.5)
    with tifffile.TiffFile(tif) as t:
        assert t.is_imagej and t.imagej_metadata["unit"] == "um"
        assert "1 = matrix" in t.imagej_metadata["Info"]
        x = t.pages[0].tags["XResolution"].value
        assert x[0] / x[1] == pytest.approx(2.0)
        lut = np.asarray(t.imagej_metadata["LUTs"]).reshape(-1, 3, 256)[0]
        assert tuple(lut[:, 2]) == (0, 255, 0)
    np.testing.assert_array_equal(read_labels(tif), labels)
    plain = write_labels(tmp_path / "p.png", labels, names, colours, plain=True)
    assert Image.open(plain).mode == "L"


def test_list_images_expands_folders(tmp_path, grey):
    for name in ("b.png", "a.tif", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path])] == ["a.tif", "b.png"]
    empty = tmp_path / "sub"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        list_images([empty])
    with pytest.raises(InputError, match="no such file"):
        list_images([tmp_path / "missing"])
