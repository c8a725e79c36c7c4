"""Reading micrographs from disk into 2-D grey-level arrays, and writing label images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def _read_raw(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im, dtype=np.uint16)
        if im.mode == "P":
            im = im.convert("RGB")
        return np.asarray(im)


def read_image(path: str | Path) -> np.ndarray:
    """Return the file's pixels as a 2-D array in its own dtype.

    Colour images whose channels are equal become one channel; true colour becomes luminance.
    Raises :class:`InputError` naming the file for a missing, empty, unreadable or 3-D file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        data = _read_raw(path)
    except Exception as exc:  # the readers raise many unrelated types
        raise InputError(f"{path}: cannot be read as an image ({exc})") from exc
    try:
        return to_grey(data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


def to_grey(data: np.ndarray) -> np.ndarray:
    """Return a 2-D grey-level view of ``data`` (H, W), (H, W, 3|4) or (1, H, W).

    Raises :class:`InputError` for stacks and volumes, which the caller must split first.
    """
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        rgb = data[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        grey = rgb.astype(np.float32) @ weights
        return grey.astype(data.dtype) if np.issubdtype(data.dtype, np.integer) else grey
    if data.ndim != 2:
        raise InputError(
            f"expected a 2-D image (or RGB), got an array of shape {data.shape}; "
            "split stacks and volumes into single 2-D micrographs first"
        )
    if data.size == 0:
        raise InputError("the image has no pixels")
    return data


def list_images(paths) -> list[Path]:
    """Return the image files named in ``paths``, expanding folders (sorted, non-recursive)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, paths))}")
    return files


def read_labels(path: str | Path) -> np.ndarray:
    """Return a label image as a 2-D integer array (0 = unpainted/unlabelled)."""
    labels = read_image(path)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{path}: labels must be an integer image, got {labels.dtype}")
    return labels.astype(np.int64)


def write_labels(path: str | Path, labels: np.ndarray) -> Path:
    """Write a class-index image (PNG or TIFF by suffix, 8- or 16-bit) and return its path."""
    path = Path(path)
    labels = np.asarray(labels)
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    out = labels.astype(dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, out, compression="zlib")
    else:
        from PIL import Image

        Image.fromarray(out).save(path)
    return path
