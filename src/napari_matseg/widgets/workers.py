"""The one background worker the widgets use: it runs an :mod:`napari_matseg.api` job in a
thread and hands its events to the GUI thread. Qt objects are never created here."""

from __future__ import annotations

import os
import sys
import threading

from napari.qt.threading import thread_worker

BACKGROUND_NICENESS = 10


def worker_threads() -> int:
    """Torch threads for background work: all cores but one, so the viewer keeps a core."""
    return max(1, (os.cpu_count() or 2) - 1)


def lower_thread_priority(niceness: int = BACKGROUND_NICENESS) -> bool:
    """Make the calling thread yield the CPU to the viewer; return True when it now runs below
    the GUI thread's priority. On Linux, where each thread has its own nice value, the thread's
    is set ``niceness`` above the main thread's (19 at most); elsewhere Qt's low priority is
    asked for. With both cores busy, the GUI thread and the OpenGL renderer's threads then run
    first when they wake, and training takes what is left.

    An unprivileged thread cannot raise its priority again, so the pool thread that ran a job
    stays lowered, and napari workers that later land on it (the Live preview's refit) run
    lowered too: at training's level, still below the GUI thread, which is what the stall
    measurement in docs/benchmarks.md included."""
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        try:
            main = os.getpriority(os.PRIO_PROCESS, os.getpid())
            target = min(19, main + niceness)
            if os.getpriority(os.PRIO_PROCESS, tid) < target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
            return os.getpriority(os.PRIO_PROCESS, tid) > main
        except OSError:
            return False
    from qtpy.QtCore import QThread

    thread = QThread.currentThread()
    if thread is None:
        return False
    thread.setPriority(QThread.Priority.LowPriority)
    return True


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
    lower_thread_priority()
    try:
        for event in job.run():
            yield event
    finally:
        torch.set_num_threads(caller_threads)
    return job
