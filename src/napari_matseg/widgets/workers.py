"""The one background worker the widgets use: it runs an :mod:`napari_matseg.api` job in a
thread and hands its events to the GUI thread. Qt objects are never created here."""

from __future__ import annotations

import os

from napari.qt.threading import thread_worker


def worker_threads() -> int:
    """Torch threads for background work: all cores but one, so the viewer keeps a core."""
    return max(1, (os.cpu_count() or 2) - 1)


def job_worker(job):
    """Return a worker (not started) that runs ``job`` in its thread with
    :func:`worker_threads` torch threads, yielding each of its events and returning the job.

    The count is the worker thread's own: the calling (GUI) thread keeps its count. Torch hands
    the last count it was given to every thread started afterwards, so when the job ends the
    worker sets the caller's count again."""
    import torch

    return _run_job(job, torch.get_num_threads())


@thread_worker
def _run_job(job, caller_threads: int):
    import torch

    torch.set_num_threads(worker_threads())
    try:
        for event in job.run():
            yield event
    finally:
        torch.set_num_threads(caller_threads)
    return job
