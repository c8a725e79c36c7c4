"""The physical pixel size of a micrograph, read from its file: FEI / Thermo Fisher and ZEISS SEM
metadata, ImageJ and OME calibrations, TIFF resolution tags in centimetres, and the label images
napari-matseg writes. Every value says where it came from, so a report can say it too.

Plain TIFF and PNG resolutions in inches (the 72 or 96 dpi that image editors write) are not
taken as a calibration: they describe a print, not the specimen.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .checks import check_float

UNIT_IN_UM = {"m": 1e6, "cm": 1e4, "mm": 1e3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0,
              "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3,
              "nanometer": 1e-3, "nanometre": 1e-3, "pm": 1e-6}


@dataclass(frozen=True)
class Calibration:
    """µm per pixel and where that number came from (a sentence for reports)."""

    pixel_size: float
    source: str

    def __post_init__(self):
        check_float("the pixel size", self.pixel_size, 0, 1e4, strict_minimum=True)


def _um(value, unit: str) -> float | None:
    factor = UNIT_IN_UM.get(str(unit).strip().lower().replace("\\u00b5", "µ"))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if factor is None or not math.isfinite(number) or number <= 0:
        return None
    return number * factor


def _from_fei(meta: dict) -> Calibration | None:
    for section in ("Scan", "EScan", "Image"):
        width = (meta.get(section) or {}).get("PixelWidth")
        size = _um(width, "m")
        if size:
            return Calibration(size, f"FEI / Thermo Fisher metadata ({section}/PixelWidth)")
    return None


def _from_zeiss(meta: dict) -> Calibration | None:
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        entry = meta.get(key)
        if isinstance(entry, tuple) and len(entry) >= 3:
            size = _um(entry[1], entry[2])
            if size:
                return Calibration(size, f"ZEISS SEM metadata ({entry[0]})")
    return None


def _from_ome(xml: str) -> Calibration | None:
    match = re.search(r'PhysicalSizeX="([^"]+)"', xml)
    if not match:
        return None
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
    size = _um(match.group(1), unit.group(1) if unit else "µm")
    return Calibration(size, "OME metadata (PhysicalSizeX)") if size else None


def _resolution(page) -> float | None:
    """Return pixels per unit of the page's XResolution tag, or None."""
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    return num / den if den else None


def _from_imagej(meta: dict, page) -> Calibration | None:
    unit = meta.get("unit")
    per_unit = _resolution(page)
    if not unit or not per_unit:
        return None
    size = _um(1.0 / per_unit, unit)
    return Calibration(size, f"ImageJ calibration ({unit})") if size else None


def _from_resolution_tag(page) -> Calibration | None:
    unit_tag = page.tags.get("ResolutionUnit")
    per_unit = _resolution(page)
    if unit_tag is None or not per_unit or int(unit_tag.value) != 3:  # 3: centimetre
        return None
    size = _um(1.0 / per_unit, "cm")
    return Calibration(size, "TIFF resolution tags (pixels per cm)") if size else None


def read_calibration(path: str | Path) -> Calibration | None:
    """Return the pixel size stored in the file at ``path`` (TIFF vendors' metadata, ImageJ,
    OME, resolution in cm; PNG written by napari-matseg), or None when it has none."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                for found in (_from_fei(tif.fei_metadata) if tif.is_fei else None,
                              _from_zeiss(tif.sem_metadata) if tif.is_sem else None,
                              _from_ome(tif.ome_metadata) if tif.is_ome else None,
                              _from_imagej(tif.imagej_metadata, page) if tif.is_imagej else None,
                              _from_resolution_tag(page)):
                    if found is not None:
                        return found
            return None
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                size = _um(im.info.get("matseg:pixel_size_um"), "µm")
            return Calibration(size, "napari-matseg label image") if size else None
    except Exception:  # a file whose metadata cannot be parsed simply has no calibration
        return None
    return None


def class_names_in(path: str | Path) -> list[str] | None:
    """Return the class names a napari-matseg label image stores (PNG text, TIFF info), or None."""
    path = Path(path)
    text = None
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                text = im.info.get("matseg:classes")
        elif path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                info = (tif.imagej_metadata or {}).get("Info", "") if tif.is_imagej else ""
                text = info.split("classes: ", 1)[1] if "classes: " in info else None
    except Exception:
        return None
    if not text:
        return None
    entries = dict(part.split(" = ", 1) for part in text.split("; ") if " = " in part)
    names = [entries.get(str(i)) for i in range(1, len(entries))]
    return names if all(names) else None


def calibration_from_line(start, end, length_um: float) -> Calibration:
    """Return the pixel size given by a line drawn along a scale bar: from ``start`` to ``end``
    (row, column in pixels) spanning ``length_um`` µm."""
    check_float("the scale bar's length", length_um, 0, strict_minimum=True)
    pixels = math.dist(tuple(map(float, start)), tuple(map(float, end)))
    if pixels < 2:
        from .errors import InputError

        raise InputError("the line along the scale bar is shorter than 2 pixels: draw it from one "
                         "end of the bar to the other")
    return Calibration(length_um / pixels, f"scale bar: {length_um:g} µm over {pixels:.1f} px")
