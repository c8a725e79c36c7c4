"""The base of every job: a generator of :class:`JobEvent` that can be stopped from any thread,
ends with DONE or ERROR, and keeps its result."""

from __future__ import annotations

import os
import threading
from typing import Any, Iterator

import torch

from ..core import device as devices
from ..core.errors import MatsegError
from .events import EventKind, JobEvent


class Job:
    """A unit of long work. Iterate :meth:`run` for its events (in a worker thread in the
    GUI), call :meth:`stop` from anywhere to end it early, or :meth:`wait` to run it to the end
    and get its result.

    Whatever goes wrong inside ends the job with one ERROR event whose ``error`` is a sentence
    (set ``MATSEG_DEBUG=1`` to let unexpected exceptions propagate with their traceback).

    A job that runs torch names its ``device`` (``"auto"`` or a torch device name): it is picked
    and checked here, once, before any work, and the job hands the resolved device (``cpu``,
    ``cuda:0``, ``mps``) down to the engine, which only confirms it.
    """

    what = "job"

    def __init__(self, device: str | torch.device | None = None):
        self._stop = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.device: torch.device | None = None if device is None else devices.pick_device(device)

    def stop(self) -> None:
        """Ask the job to end after its current step or image; what it has done is kept."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> Iterator[JobEvent]:
        raise NotImplementedError

    def run(self) -> Iterator[JobEvent]:
        """Yield the job's events; the last one is DONE or ERROR."""
        try:
            yield from self._run()
        except MatsegError as exc:
            self.error = exc
            yield JobEvent(EventKind.ERROR, message=str(exc), error=str(exc))
        except Exception as exc:  # a bug, or the machine: still one sentence for the user
            if os.environ.get("MATSEG_DEBUG"):
                raise
            self.error = exc
            text = f"{self.what} failed: {type(exc).__name__}: {exc}"
            yield JobEvent(EventKind.ERROR, message=text, error=text)

    def wait(self) -> Any:
        """Run to the end and return the result; raise the error that ended the job, if any."""
        for _ in self.run():
            pass
        if self.error is not None:
            raise self.error
        return self.result
