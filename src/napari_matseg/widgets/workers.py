"""The one background worker the widgets use: it runs an :mod:`napari_matseg.api` job in a
thread and hands its events to the GUI thread. Qt objects are never created here."""

from __future__ import annotations

import os

from napari.qt.threading import thread_worker


def worker_threads() -> int:
    """Torch threads for background work: all cores but one, so the viewer keeps a core."""
    return max(1, (os.cpu_count() or 2) - 1)


@thread_worker
def job_worker(job):
    """Run ``job`` in this thread, yielding each of its events; returns the job."""
    import torch

    torch.set_num_threads(worker_threads())
    for event in job.run():
        yield event
    return job
