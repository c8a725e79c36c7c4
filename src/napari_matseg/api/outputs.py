"""Where results go, checked before any work starts: output folders and model files that can be
written, names that never collide, and nothing replaced unless the caller says so."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import is_disk_full, remove_stale_temps
from ..core.errors import InputError, MatsegError

MIN_FREE_BYTES = 64 * 2**20


def check_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check a file can be written in it; raise
    :class:`InputError` naming it otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder for the results")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".matseg-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{folder}: cannot write there ({exc.strerror or exc})") from None
    if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
        raise InputError(f"{folder}: less than {MIN_FREE_BYTES // 2**20} MB of disk left")
    return folder


def check_model_path(path: str | Path, overwrite: bool = True) -> Path:
    """Check, before training, that a model bundle can be written at ``path`` (after removing
    the temporary files that killed saves of it left behind); return it."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the model file's name, e.g. {path / 'model.matseg'}")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: already exists")
    if path.parent.is_dir():
        remove_stale_temps(path)
    check_writable_folder(path.parent if str(path.parent) else Path("."))
    return path


def keep_start_model(start, output: str | Path) -> Path | None:
    """When ``output`` is the file of the model a round started from (``start``, a path), copy
    that file to ``<stem>.before<suffix>`` beside it before it is written over, so the round can
    be undone; return the copy's path (None when ``output`` is another file). An older copy
    there is replaced whole, never left half-written: it is one round further back. Raises
    :class:`MatsegError` when the copy cannot be made; ``output`` must then not be written."""
    if not isinstance(start, (str, Path)) or not Path(start).is_file():
        return None
    output = Path(output)
    if not output.exists() or not output.resolve() == Path(start).resolve():
        return None
    copy = output.with_name(f"{output.stem}.before{output.suffix}")
    if copy.is_dir():
        raise MatsegError(f"cannot keep the start model as {copy}: a folder has that name")
    partial = copy.with_name(f".{copy.name}.partial")
    try:
        shutil.copy2(output, partial)
        os.replace(partial, copy)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise MatsegError(f"could not keep the start model {output} as {copy} before writing "
                          f"over it ({write_failure(exc, copy.parent)})") from exc
    return copy


def fallback_model_path(path: str | Path) -> Path:
    """Return a file in the temporary folder to save a model meant for ``path`` when ``path``
    must not or cannot be written (time-stamped, so nothing there is replaced)."""
    path = Path(path)
    return Path(tempfile.gettempdir()) / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}"


def write_failure(exc: OSError, folder: Path) -> str:
    """Return why a write in ``folder`` failed, in words: 'the disk is full' when it is."""
    if is_disk_full(exc, folder):
        return f"the disk is full ({exc.strerror or exc})" if exc.strerror else "the disk is full"
    return exc.strerror or str(exc)


def save_with_fallback(save, path: Path) -> tuple[Path, str | None]:
    """Call ``save(path)``; when that fails (disk full, folder removed meanwhile), save to a file
    in the temporary folder instead so the work is not lost. Returns (path written, note).
    Raises :class:`MatsegError` when neither can be written."""
    path = Path(path)
    try:
        return save(path), None
    except OSError as exc:
        reason = write_failure(exc, path.parent)
    fallback = fallback_model_path(path)
    try:
        written = save(fallback)
    except OSError as exc:
        raise MatsegError(f"could not write {path} ({reason}) nor the copy {fallback} "
                          f"({write_failure(exc, fallback.parent)}): free some space and train "
                          "again") from exc
    return written, f"could not write {path} ({reason}); saved to {written} instead"


@dataclass(frozen=True)
class OutputFolder:
    """Where a prediction run writes: per image a label image (``format`` png or tif, coloured
    with the class colours unless ``plain``) and, with ``uncertainty``, a float TIFF; and one
    ``phase_fractions.csv`` with the rows of this run only. Existing files are an error unless
    ``overwrite``."""

    path: Path
    format: str = "png"
    uncertainty: bool = False
    plain: bool = False
    overwrite: bool = False
    csv_name: str = "phase_fractions.csv"

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        if self.format not in ("png", "tif"):
            raise InputError(f"label images are written as png or tif, not {self.format!r}")

    @property
    def csv_path(self) -> Path:
        return self.path / self.csv_name


def unique_stems(names: list[str]) -> list[str]:
    """Return a file stem per input name: its own stem, or ``stem-2``, ``stem-3`` ... where
    two inputs share one (``a.png`` beside ``a.tif``, or the same name in two folders)."""
    stems, seen = [], {}
    for name in names:
        stem = Path(name).stem or "image"
        count = seen.get(stem.lower(), 0) + 1
        seen[stem.lower()] = count
        stems.append(stem if count == 1 else f"{stem}-{count}")
    return stems


def file_safe(name: str) -> str:
    """Return ``name`` with every character but letters, digits, '-' and '_' made '_' (a class
    name such as 'M/A' as part of a file name)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "class"


def class_file_stems(class_names: list[str]) -> list[str]:
    """Return a file stem per class name: :func:`file_safe`, made unique like
    :func:`unique_stems` ('M/A' beside 'M_A' gives 'M_A' and 'M_A-2')."""
    return unique_stems([file_safe(name) for name in class_names])


def free_path(path: str | Path) -> Path:
    """Return ``path`` if nothing is there, else the first free ``<stem>-2``, ``<stem>-3`` ...
    beside it: a file written there replaces nothing."""
    path = Path(path)
    candidate, count = path, 1
    while candidate.exists():
        count += 1
        candidate = path.with_name(f"{path.stem}-{count}{path.suffix}")
    return candidate


RESULT_ENDINGS = ("_labels.png", "_labels.tif", "_uncertainty.tif")


def is_earlier_result(path: str | Path, folder: OutputFolder) -> bool:
    """Return True when ``path`` is a file a prediction run writes into ``folder`` (a label
    image ``*_labels.png`` or ``*_labels.tif``, an ``*_uncertainty.tif``, in that folder): a
    run whose inputs include its own output folder must not segment its earlier results."""
    path = Path(path)
    if not path.name.lower().endswith(RESULT_ENDINGS):
        return False
    try:
        return path.parent.resolve() == folder.path.resolve()
    except OSError:
        return False


def plan_outputs(folder: OutputFolder, names: list[str]) -> list[dict[str, Path]]:
    """Return, per input, the paths its results will be written to, after checking the folder
    can be written and (unless ``overwrite``) that none of them, nor the CSV, exists yet."""
    check_writable_folder(folder.path)
    plans = []
    for stem in unique_stems(names):
        plan = {"labels": folder.path / f"{stem}_labels.{folder.format}"}
        if folder.uncertainty:
            plan["uncertainty"] = folder.path / f"{stem}_uncertainty.tif"
        plans.append(plan)
    if not folder.overwrite:
        existing = [p for plan in plans for p in plan.values() if p.exists()]
        if folder.csv_path.exists():
            existing.insert(0, folder.csv_path)
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise InputError(f"{existing[0]}{more} already exist (an earlier run?): choose another "
                             "output folder, or allow replacing them (--overwrite)")
    return plans
