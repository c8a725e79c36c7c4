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
    """Run ``job`` in this thread with :func:`worker_threads` torch threads, yielding each of its
    events; returns the job. The count is the worker thread's own (the GUI thread keeps its
    count) and is set back when the job ends, since torch hands the last count it was given to
    every thread started afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(worker_threads())
    try:
        for event in job.run():
            yield event
    finally:
        torch.set_num_threads(previous)
    return job
