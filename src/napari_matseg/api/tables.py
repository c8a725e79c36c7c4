"""The phase-fraction table: one schema for the Predict widget's table and CSV and for
``matseg predict``'s CSV, written so that spreadsheets read it as data, never as formulas."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..core.atomic import AppendingFile, atomic_write
from ..core.metrics import phase_fractions

PHASE_COLUMNS = ["image", "source", "class", "label", "pixels", "area %", "area µm²",
                 "pixel size µm"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def phase_rows(image: str, labels: np.ndarray, class_names: list[str], source: str = "",
               pixel_size: float | None = None) -> list[dict]:
    """Return one row per class of a label map (1..K, 0 not counted): pixels, area % and, when
    the pixel size (µm) is known, the area in µm²."""
    labels = np.asarray(labels)
    k = len(class_names)
    fractions = phase_fractions(labels, k, offset=1)
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=k + 1)[1:k + 1]
    rows = []
    for i, (name, fraction) in enumerate(zip(class_names, fractions)):
        area = round(float(counts[i]) * pixel_size ** 2, 4) if pixel_size else ""
        rows.append({"image": image, "source": source, "class": name, "label": i + 1,
                     "pixels": int(counts[i]), "area %": round(100 * float(fraction), 3),
                     "area µm²": area, "pixel size µm": pixel_size or ""})
    return rows


def safe_cell(value):
    """Return ``value`` as written to a CSV: text that a spreadsheet would run as a formula
    (starting with = + - @) gets a leading apostrophe; numbers are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def rows_as_text(rows: list[dict], columns: list[str] | None = None, delimiter: str = ",",
                 header: bool = True) -> str:
    """Return ``rows`` as CSV text (tab-separated with ``delimiter="\\t"``), cells made safe,
    after a header line unless ``header`` is False."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=delimiter, lineterminator="\n",
                            extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({c: safe_cell(row.get(c, "")) for c in columns})
    return buffer.getvalue()


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write ``rows`` to ``path`` atomically (UTF-8, cells made safe) and return the path."""
    text = rows_as_text(rows, columns)

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


class GrowingCsv:
    """A CSV file written as its rows come (UTF-8, cells made safe): each :meth:`append` is on
    disk whole or not at all, and :meth:`close` renames the file into place, so the CSV holds
    exactly the rows whose appends succeeded, even when the disk fills."""

    def __init__(self, path: str | Path, columns: list[str]):
        self.columns = columns
        self.rows = 0
        self._file = AppendingFile(path, rows_as_text([], columns).encode("utf-8"))

    @property
    def path(self) -> Path:
        return self._file.path

    def append(self, rows: list[dict]) -> None:
        """Add ``rows``, or raise :class:`OSError` with the file as it was."""
        self._file.append(rows_as_text(rows, self.columns, header=False).encode("utf-8"))
        self.rows += len(rows)

    def close(self) -> Path | None:
        """Put the file in place and return its path when it holds rows; else delete it and
        return None."""
        if self.rows:
            return self._file.commit()
        self._file.discard()
        return None
