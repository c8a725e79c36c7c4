"""The base of every job: a generator of :class:`JobEvent` that can be stopped from any thread,
ends with DONE or ERROR, and keeps its result."""

from __future__ import annotations

import os
import threading
from typing import Any, Iterator

from ..core.errors import MatsegError
from .events import EventKind, JobEvent


class Job:
    """A unit of long work. Iterate :meth:`run` for its events (in a worker thread in the
    GUI), call :meth:`stop` from anywhere to end it early, or :meth:`wait` to run it to the end
    and get its result.

    Whatever goes wrong inside ends the job with one ERROR event whose ``error`` is a sentence
    (set ``MATSEG_DEBUG=1`` to let unexpected exceptions propagate with their traceback).
    """

    what = "job"

    def __init__(self):
        self._stop = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.device = None

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
