"""Live training in the Train dock: each change of the strokes reaches the running
:class:`~napari_matseg.api.LiveTrainingJob` through a :class:`StrokeFeeder`."""

from __future__ import annotations

from typing import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from ..core.errors import MatsegError


class StrokeFeeder(QObject):
    """Hands the strokes of the moment to a live training job, one hand-over at a time.

    ``gather()`` (GUI thread) returns the ticked images with a copy of their strokes; the job's
    checks and digests (``update_strokes``) run in a worker, so the GUI thread only copies
    layer data. A request while a hand-over runs is served when it ends, with the strokes of
    that moment, so an older set never arrives after a newer one. ``failed`` carries the
    sentence of strokes the job refused (it carries on with the ones it has); ``fed`` carries
    whether a hand-over changed the strokes."""

    failed = Signal(str)
    fed = Signal(bool)

    def __init__(self, gather: Callable[[], list], parent=None):
        super().__init__(parent)
        self.gather = gather
        self.worker = None
        self._pending = None

    def request(self, job) -> None:
        """Give ``job`` the strokes as they are now (or as soon as the running hand-over ends)."""
        if job.stopping:
            return
        if self.worker is not None:
            self._pending = job
            return
        try:
            images = self.gather()
        except MatsegError as exc:
            self.failed.emit(str(exc))
            return
        worker = create_worker(job.update_strokes, images, _start_thread=False)
        worker.returned.connect(self.fed.emit)
        worker.errored.connect(lambda exc: self.failed.emit(str(exc)))
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()

    def _finished(self) -> None:
        self.worker = None
        job, self._pending = self._pending, None
        if job is not None:
            self.request(job)
