"""What a running job reports: one event type, told apart by an enum kind, with the fraction of
the job done. The widgets, the command line and scripts all read the same events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

import numpy as np


class EventKind(str, Enum):
    """The kinds of :class:`JobEvent`, in the order a job emits them."""

    STARTED = "started"        # the job was accepted: ``message`` says what it will do
    READING = "reading"        # an input was read and prepared: ``name``
    MESSAGE = "message"        # news worth showing: a schedule change, a checkpoint, an estimate
    STEP = "step"              # one optimiser step: ``step``, ``loss``, ``eta_seconds``
    EVALUATION = "evaluation"  # a held-out check: ``val_loss``, ``val_accuracy``, ``best_step``
    PREVIEW = "preview"        # class maps (1..K) of the training images: ``previews``
    RESULT = "result"          # one image predicted (``prediction``) or skipped (``error``)
    DONE = "done"              # the job ended: ``result``, ``reason``, ``warnings``
    ERROR = "error"            # the job failed and ended: ``error`` says why in one sentence


@dataclass(frozen=True)
class JobEvent:
    """One report of a job. ``progress`` is the fraction (0..1) of the job done."""

    kind: EventKind
    progress: float = 0.0
    message: str = ""
    step: int = 0
    max_steps: int | None = None
    loss: float | None = None
    elapsed: float = 0.0
    eta_seconds: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    best_step: int | None = None
    previews: Mapping[str, np.ndarray] | None = None
    name: str | None = None
    prediction: Any = None
    result: Any = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True for an ERROR event, and for a RESULT event of an image that was skipped."""
        return self.error is not None
