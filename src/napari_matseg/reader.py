"""napari reader for calibrated micrographs: TIFFs whose metadata give the pixel size (FEI /
Thermo Fisher, ZEISS, ImageJ, OME; see :mod:`napari_matseg.core.calibration`) open with their
physical scale in µm, so measurements and the phase table report µm. TIFFs without a calibration
are left to napari's own reader."""

from __future__ import annotations

from pathlib import Path

from .core.calibration import read_calibration
from .core.imageio import read_image


def get_reader(path):
    """Return a reader for ``path`` when it is a single calibrated TIFF, else None."""
    if not isinstance(path, (str, Path)) or Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    calibration = read_calibration(path)
    if calibration is None:
        return None

    def read(path):
        data = read_image(path)
        size = calibration.pixel_size
        return [(data, {"name": Path(path).stem, "scale": (size, size), "units": ("µm", "µm"),
                        "metadata": {"pixel_size_um": size, "scale_source": calibration.source}},
                 "image")]

    return read
