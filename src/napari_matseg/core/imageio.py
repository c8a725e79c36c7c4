"""Reading micrographs and label images from disk, checked at the door, and writing label images
that carry their classes.

Every reader refuses, in one sentence naming the file, what cannot be used as it is: folders,
empty or truncated files, images larger than a pixel limit (a decompression bomb decodes a
small file into gigabytes), stacks and multi-page files, complex or non-numeric pixels, images
too small to segment, and label images whose values are not class numbers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import InputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_MAX_PIXELS = 2**28  # 268 million pixels: a 16384 x 16384 montage
MIN_IMAGE_SIDE = 16
_PIL_LIMIT = threading.Lock()


def max_pixels() -> int:
    """Return the largest image (in pixels) the readers accept: ``MATSEG_MAX_PIXELS`` from the
    environment, else 268 million."""
    value = os.environ.get("MATSEG_MAX_PIXELS")
    if value is None:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise InputError(f"MATSEG_MAX_PIXELS must be a whole number of pixels, got {value!r}") from None
    if limit < 1:
        raise InputError(f"MATSEG_MAX_PIXELS must be positive, got {limit}")
    return limit


def _check_size(shape, limit: int) -> None:
    pixels = int(np.prod(shape[:2])) if len(shape) >= 2 else int(np.prod(shape))
    if pixels > limit:
        raise InputError(f"{shape[1]} x {shape[0]} pixels is larger than the limit of {limit:,} "
                         "pixels (set MATSEG_MAX_PIXELS to allow larger images)")


def _read_tiff(path: Path, limit: int) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if not series:
            raise InputError("holds no image")
        if len(series) > 1 or len(tif.pages) > 1:
            sizes = sorted({tuple(p.shape[:2]) for p in tif.pages})
            if len(sizes) > 1:
                listed = ", ".join(f"{w} x {h}" for h, w in sizes[:4])
                raise InputError(f"holds {len(tif.pages)} pages of different sizes ({listed}); save "
                                 "each micrograph as a single-page TIFF (or a reduced-resolution "
                                 "pyramid as its full-resolution page)")
        page = tif.pages[0]
        _check_size((page.imagelength, page.imagewidth), limit)
        return np.asarray(series[0].asarray())


def _read_pil(path: Path, limit: int, palette_indices: bool) -> np.ndarray:
    from PIL import Image

    with _PIL_LIMIT:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # this module applies its own limit, before decoding
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    with im:
        width, height = im.size
        _check_size((height, width), limit)
        if getattr(im, "n_frames", 1) > 1:
            raise InputError(f"holds {im.n_frames} frames; save one micrograph per file")
        if im.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im, dtype=np.uint16)
        if im.mode == "P":
            if palette_indices:
                return np.asarray(im)
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode == "1":
            return np.asarray(im.convert("L"))
        if im.mode in ("LA", "PA"):
            im = im.convert("RGBA")
        return np.asarray(im)


def _read_raw(path: Path, palette_indices: bool = False, limit: int | None = None) -> np.ndarray:
    """Return the pixels of the file at ``path`` as stored (raises :class:`InputError`)."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    limit = max_pixels() if limit is None else limit
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(path, limit)
        return _read_pil(path, limit, palette_indices)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    except MemoryError:
        raise InputError(f"{path}: too large to read into memory") from None
    except Exception as exc:  # the readers raise many unrelated types
        raise InputError(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Return the file's pixels as a 2-D array in its own dtype (bool and 1-bit images as 0/1
    uint8, float16 as float32).

    Colour images whose channels are equal become one channel; true colour becomes luminance.
    Raises :class:`InputError` naming the file for anything that cannot be used as a micrograph.
    """
    path = Path(path)
    data = _read_raw(path, limit=max_pixels)
    try:
        return to_grey(data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


def check_pixels(data: np.ndarray) -> np.ndarray:
    """Return ``data`` with a dtype the engine can compute with (bool to uint8, float16 to
    float32); raise :class:`InputError` for complex, text or object arrays."""
    data = np.asarray(data)
    kind = data.dtype.kind
    if kind == "b":
        return data.astype(np.uint8)
    if kind == "c":
        raise InputError("the image holds complex numbers (a Fourier transform?); save its magnitude "
                         "or real part as a grey-level image")
    if kind not in "uif":
        raise InputError(f"the image holds {data.dtype} values, not grey levels")
    if data.dtype == np.float16:
        return data.astype(np.float32)
    return data


def to_grey(data: np.ndarray) -> np.ndarray:
    """Return a 2-D grey-level view of ``data`` (H, W), (H, W, 3|4) or (1, H, W).

    Raises :class:`InputError` for stacks and volumes, which the caller must split first, for
    images under 16 pixels a side, and for pixels that are not numbers.
    """
    data = check_pixels(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        rgb = data[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            data = rgb[..., 0]
        else:
            weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
            grey = rgb.astype(np.float32) @ weights
            data = grey.astype(data.dtype) if np.issubdtype(data.dtype, np.integer) else grey
    if data.ndim != 2:
        raise InputError(
            f"expected a 2-D image (or RGB), got an array of shape {data.shape}; "
            "split stacks and volumes into single 2-D micrographs first"
        )
    if data.size == 0:
        raise InputError("the image has no pixels")
    if min(data.shape) < MIN_IMAGE_SIDE:
        raise InputError(f"the image is {data.shape[1]} x {data.shape[0]} pixels: too small to "
                         f"segment (at least {MIN_IMAGE_SIDE} pixels a side)")
    return data


def count_nonfinite(data: np.ndarray) -> int:
    """Return how many pixels of ``data`` are not finite numbers (NaN, +inf, -inf): dead pixels
    or failed stitching, which the normaliser sets to the image's dark level."""
    data = np.asarray(data)
    if data.dtype.kind not in "fc":
        return 0
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def nonfinite_warning(name: str, data: np.ndarray) -> str | None:
    """Return a sentence saying how many pixels of the image ``name`` are not finite numbers,
    or None when all are."""
    count = count_nonfinite(data)
    if not count:
        return None
    share = 100 * count / np.asarray(data).size
    return (f"{name}: {count:,} pixel(s) ({share:.2g} % of the image) are not finite numbers (NaN "
            "or inf); they were set to the image's dark level, segmented and counted in the "
            "phase fractions")


def list_images(paths) -> list[Path]:
    """Return the image files named in ``paths``, expanding folders (sorted, non-recursive)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir()
                                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, paths))}")
    return files


def label_array(data: np.ndarray, num_classes: int | None = None, what: str = "labels",
                ignore: int | None = None) -> np.ndarray:
    """Return ``data`` as a 2-D int64 array of class numbers 0..K (and ``ignore``, when given,
    where it is), or raise :class:`InputError` naming the values that are not: colours,
    fractions, negative values, grey levels."""
    from .model import MAX_CLASSES
    from .scribbles import describe_values

    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        rgb = data[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            data = rgb[..., 0]
        else:
            colours = np.unique(rgb.reshape(-1, 3), axis=0)
            shown = ", ".join("#%02x%02x%02x" % tuple(int(v) for v in c[:3]) for c in colours[:4])
            raise InputError(f"{what} are a colour image ({len(colours)} colours: {shown}"
                             f"{', …' if len(colours) > 4 else ''}); a label image holds class "
                             "numbers in one channel: 0 unpainted, 1..K the classes (napari: "
                             "File > Save Selected Layer on the scribble layer)")
    if data.ndim != 2:
        raise InputError(f"{what} must be a 2-D image, got shape {data.shape}")
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all() or not np.array_equal(data, np.round(data)):
            raise InputError(f"{what} hold fractional or non-finite values; class numbers are "
                             "whole numbers 0..K")
    elif data.dtype.kind not in "ui":
        raise InputError(f"{what} hold {data.dtype} values, not class numbers")
    values = np.unique(data)
    if values[0] < 0:
        raise InputError(f"{what} hold negative values ({describe_values(values[values < 0])}); use "
                         "0 for unpainted and 1..K for classes")
    limit = num_classes if num_classes is not None else MAX_CLASSES
    if ignore is not None:
        values = values[values != ignore]
    if values.size and values[-1] > limit:
        hint = (f" for the {num_classes} classes" if num_classes is not None else
                "; many different values look like the grey levels of a micrograph (IMAGE and "
                "LABELS swapped?)" if len(values) > MAX_CLASSES else
                "; values such as these are grey levels or colours an image editor saved, not "
                "class numbers")
        raise InputError(f"{what} hold the values {describe_values(values)}, which are not class "
                         f"numbers 0..{limit}{hint}")
    return data.astype(np.int64)


def read_labels(path: str | Path, num_classes: int | None = None) -> np.ndarray:
    """Return a label image as a 2-D int64 array of class numbers (0 = unpainted/unlabelled).

    Palette PNGs give their indices; grey or equal-channel RGB files their values. Colour
    images, fractions and values above ``num_classes`` (or above the most classes a model may
    have, when unknown) are refused with a message naming the values found.
    """
    path = Path(path)
    data = _read_raw(path, palette_indices=True)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    try:
        return label_array(data, num_classes, "the labels")
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


IGNORE_LABEL = 255


def read_ground_truth(path: str | Path, num_classes: int, zero_based: bool = False) -> np.ndarray:
    """Return a ground-truth label image as class indices 0..K-1, with -1 where a pixel is not
    compared: 0 in truth numbered 1..K, and 255 in either numbering (the common 'ignore'
    value; no model has that many classes). Other values above the classes are refused as
    :func:`read_labels` refuses them, naming the file."""
    path = Path(path)
    data = _read_raw(path, palette_indices=True)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    top = num_classes - 1 if zero_based else num_classes
    try:
        labels = label_array(data, top, "the ground truth", ignore=IGNORE_LABEL)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    truth = labels if zero_based else labels - 1
    truth[labels == IGNORE_LABEL] = -1
    return truth


def _palette(colours: list[str]) -> list[int]:
    flat = [0, 0, 0]
    for colour in colours:
        flat += [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return flat + [0] * (768 - len(flat))


def write_labels(path: str | Path, labels: np.ndarray, class_names: list[str] | None = None,
                 class_colours: list[str] | None = None, pixel_size: float | None = None,
                 plain: bool = False) -> Path:
    """Write a class-index image atomically and return its path.

    PNG (by suffix): a palette PNG whose colours are the class colours (0, unlabelled, black),
    with the class names in a text chunk and the pixel size as its physical resolution, so it
    shows its phases in any viewer. TIFF: ImageJ-style, with the class colours as its lookup
    table, the class names in its info and µm per pixel as its calibration, so Fiji opens it
    calibrated and coloured. ``plain`` (or no class colours) writes the bare 1..K indices.
    """
    path = Path(path)
    labels = np.asarray(labels)
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    out = np.ascontiguousarray(labels.astype(dtype))
    coloured = not plain and class_colours and dtype == np.uint8
    names = list(class_names or [])
    info = "; ".join(f"{i} = {n}" for i, n in enumerate(["unlabelled"] + names)) if names else ""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        kwargs: dict = {"compression": "zlib"}
        if coloured or pixel_size:
            metadata = {}
            if pixel_size:
                metadata["unit"] = "um"
                kwargs["resolution"] = (1.0 / pixel_size, 1.0 / pixel_size)
            if coloured:
                lut = np.array(_palette(class_colours), np.uint8).reshape(256, 3).T
                metadata["LUTs"] = [lut]
            if info:
                metadata["Info"] = "classes: " + info
            kwargs.update(imagej=True, metadata=metadata)
            kwargs.pop("compression")
        atomic_write(path, lambda tmp: tifffile.imwrite(tmp, out, **kwargs))
    else:
        from PIL import Image, PngImagePlugin

        image = Image.fromarray(out)
        params: dict = {"format": "PNG" if path.suffix.lower() == ".png" else None}
        if coloured:
            image = image.convert("P") if image.mode != "P" else image
            image = Image.frombytes("P", image.size, out.tobytes())
            image.putpalette(_palette(class_colours))
        if path.suffix.lower() == ".png":
            text = PngImagePlugin.PngInfo()
            if info:
                text.add_text("matseg:classes", info)
            if pixel_size:
                text.add_text("matseg:pixel_size_um", f"{pixel_size:g}")
                dpi = 25400.0 / pixel_size
                params["dpi"] = (dpi, dpi)
            params["pnginfo"] = text
        else:
            params = {"format": Image.registered_extensions().get(path.suffix.lower())}
        atomic_write(path, lambda tmp: image.save(tmp, **{k: v for k, v in params.items() if v is not None}))
    return path
