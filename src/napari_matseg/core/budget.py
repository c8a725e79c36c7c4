"""How long a training run may go on: steps are the unit, wall-clock time an optional cap.

One rule for fine-tuning and pretraining, for the widgets, the command line and the benchmarks:
a run trains ``steps`` optimiser steps. A time cap (``max_seconds``) may end it earlier; the run
then says so, because on a busy machine a time budget trains far fewer steps than on an idle
one, and the model a user gets should not depend on machine load without saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Budget:
    """A run's length: ``steps`` optimiser steps, ended early by ``max_seconds`` when set.

    ``steps=None`` means no step limit (a pretraining run for a given time); at least one of
    the two must be set. The learning-rate schedule follows :meth:`progress`, so a run cut
    short by its time cap still anneals.
    """

    steps: int | None = 180
    max_seconds: float | None = None

    def __post_init__(self):
        if self.steps is None and self.max_seconds is None:
            raise InputError("a budget needs a number of steps, a time cap, or both")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise InputError(f"the number of steps must be a whole number of 1 or more, got {self.steps!r}")
        if self.max_seconds is not None and not (isinstance(self.max_seconds, (int, float))
                                                 and math.isfinite(self.max_seconds)
                                                 and self.max_seconds > 0):
            raise InputError(f"the time cap must be a positive number of seconds, got {self.max_seconds!r}")

    @property
    def step_limit(self) -> int:
        """The last step a run may take (a very large number when only time limits it)."""
        return self.steps if self.steps is not None else 10**9

    def progress(self, step: int, elapsed: float) -> float:
        """Return the fraction (0..1) of the budget used after ``step`` steps and ``elapsed`` s:
        whichever of the step count and the time cap is further along."""
        fractions = []
        if self.steps is not None:
            fractions.append(step / self.steps)
        if self.max_seconds is not None:
            fractions.append(elapsed / self.max_seconds)
        return min(1.0, max(fractions))

    def out_of_time(self, elapsed: float) -> bool:
        return self.max_seconds is not None and elapsed >= self.max_seconds

    def cut_short(self, steps_done: int) -> str | None:
        """Return a sentence saying that the time cap ended a run before its steps, or None."""
        if self.steps is None or steps_done >= self.steps or self.max_seconds is None:
            return None
        return (f"the time cap of {self.max_seconds:g} s ended training after {steps_done} of "
                f"{self.steps} steps (the machine was slower or busier than the cap allows)")

    def describe(self) -> str:
        parts = []
        if self.steps is not None:
            parts.append(f"{self.steps} steps")
        if self.max_seconds is not None:
            parts.append(f"at most {self.max_seconds:g} s")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "max_seconds": self.max_seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "Budget":
        return cls(steps=d.get("steps"), max_seconds=d.get("max_seconds"))
