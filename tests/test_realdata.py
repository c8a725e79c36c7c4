"""Opt-in checks on the real micrographs in ../shared/data: pytest -m realdata."""

import csv
from pathlib import Path

import numpy as np
import pytest

from napari_matseg.core.imageio import read_image
from napari_matseg.core.infoband import detect_info_band

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not there")]


def test_info_band_found_in_every_metaldam_image():
    meta = {r["name"]: r for r in csv.DictReader(open(DATA / "MetalDAM" / "metadata.csv"))}
    for name, row in meta.items():
        image = read_image(DATA / "MetalDAM" / "images" / f"{name}.jpg")
        start = detect_info_band(image)
        assert int(row["label_height"]) <= start < int(row["label_height"]) + 25, name


def test_no_band_found_in_nasa_images_and_16_bit_reads():
    for path in sorted((DATA / "NASA-Superalloy" / "images").glob("*.tif")):
        image = read_image(path)
        assert image.shape == (512, 512)
        assert detect_info_band(image) == 512, path.name
    assert read_image(DATA / "NASA-Superalloy" / "images" / "45kx_SE_15kV-etched_0.tif").dtype == np.uint16
