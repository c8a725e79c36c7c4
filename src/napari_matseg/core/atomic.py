"""Writing files so that a crash never leaves half of one behind, and cleaning up after one that
did (a process killed while writing leaves its hidden temporary file)."""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

STALE_SECONDS = 3600
DEAD_WRITER_GRACE_SECONDS = 5
DISK_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
LOW_SPACE_BYTES = 2**20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_name_pattern(name: str) -> re.Pattern:
    """Return the pattern of the temporary files :func:`atomic_write` makes for a file called
    ``name``: ``.NAME.PID.XXXXXXXX.tmp`` (``.NAME.XXXXXXXX.tmp`` before 0.3, without the
    writer's process id)."""
    return re.compile(rf"^\.{re.escape(name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def is_stale_temp(path: Path, pid: int | None, now: float | None = None) -> bool:
    """Return True when a temporary file of :func:`atomic_write` is abandoned: untouched for an
    hour, or untouched for a few seconds with the process that wrote it gone."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    if age >= STALE_SECONDS:
        return True
    return (pid is not None and pid != os.getpid() and age >= DEAD_WRITER_GRACE_SECONDS
            and not _process_alive(pid))


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the abandoned temporary files that earlier writes of ``path`` left beside it (a
    process killed while saving); return those deleted. Files of another name or pattern, and
    temporary files still being written, are left alone."""
    path = Path(path)
    pattern = temp_name_pattern(path.name)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.match(candidate.name)
        if match is None or not candidate.is_file():
            continue
        pid = int(match.group(1)) if match.group(1) else None
        if is_stale_temp(candidate, pid):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:
                pass
    return removed


def is_disk_full(exc: BaseException, folder: str | Path | None = None) -> bool:
    """Return True when ``exc`` (a failed write) means the disk or quota is full: by its error
    number, or, for writers that raise without one (numpy: 'N requested and M written'), by
    less than 1 MB left in ``folder``."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    if not isinstance(exc, OSError) or folder is None:
        return False
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The file gets the permissions of a normally created file (``0o666`` less the umask), not
    the private ``0o600`` of temporary files. Temporary files that earlier, killed writes of
    ``path`` left behind are removed first. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class AppendingFile:
    """A file built piece by piece in a hidden temporary file beside ``path`` (named as
    :func:`atomic_write` names its own) and renamed into place by :meth:`commit`.

    Each :meth:`append` is on disk whole or not at all: a failed one (a full disk) is cut back
    off, so what is committed always matches the appends that succeeded.
    """

    def __init__(self, path: str | Path, start: bytes = b""):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)
        self._fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}.",
                                              suffix=".tmp", dir=self.path.parent)
        self._size = 0
        try:
            self.append(start)
        except BaseException:
            self.discard()
            raise

    def append(self, data: bytes) -> None:
        """Add ``data`` to the file, or raise (:class:`OSError`) leaving it as it was."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except BaseException:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
            raise
        self._size += len(data)

    def commit(self) -> Path:
        """Close the file and rename it into place (``0o666`` less the umask); return ``path``."""
        self._close()
        try:
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
        except BaseException:
            Path(self.tmp).unlink(missing_ok=True)
            raise
        return self.path

    def discard(self) -> None:
        """Close and delete the temporary file; ``path`` is left as it was."""
        self._close()
        Path(self.tmp).unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
