"""Which weights a fine-tune keeps, and when it may stop early: one small rule, tested apart from
training.

A run is evaluated every few steps on its held-out strokes. :class:`CheckpointSelector` hears
each evaluation (its score, and whether that model passed the collapse check) and answers two
questions: is this the checkpoint to keep (``keep="best"``: the best score among the models that
passed; ``keep="last"``: the latest model that passed), and has the score stopped improving
(``patience`` evaluations in a row without a better score, counted only after ``min_steps``)?
A model that failed the collapse check is never kept while one that passed exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_int
from .errors import InputError

KEEP_RULES = ("best", "last")


@dataclass(frozen=True)
class SelectionRule:
    """How a run picks its weights: ``keep`` ``"last"`` (the latest model that passed the
    collapse check: the end of the fixed schedule) or ``"best"`` (the highest held-out score
    among those that passed); ``patience`` evaluations without a better score end the run, but
    not before ``min_steps`` steps."""

    keep: str = "last"
    patience: int = 12
    min_steps: int = 100

    def __post_init__(self):
        if self.keep not in KEEP_RULES:
            raise InputError(f"the checkpoint rule must be one of {', '.join(KEEP_RULES)}, "
                             f"got {self.keep!r}")
        check_int("the patience", self.patience, 1)
        check_int("the minimum steps", self.min_steps, 0)

    def describe(self) -> str:
        """Return the rule in words (for the provenance and the user guide)."""
        kept = ("the latest model" if self.keep == "last"
                else "the model with the best held-out score")
        return (f"keep {kept} that passed the collapse check; stop after {self.patience} "
                f"evaluations without a better held-out score, not before step {self.min_steps}")


class CheckpointSelector:
    """Follows a run's evaluations and says which to keep and when the run has plateaued."""

    def __init__(self, rule: SelectionRule | None = None):
        self.rule = rule or SelectionRule()
        self.best_score = float("-inf")
        self.best_step: int | None = None
        self.kept_step: int | None = None
        self.kept_score = float("-inf")
        self.kept_passed = False
        self.stale = 0

    def consider(self, step: int, score: float, passed: bool = True) -> bool:
        """Record the evaluation at ``step``; return True when its weights are now the ones to
        keep (the caller then copies them)."""
        if score > self.best_score:
            self.best_score, self.best_step, self.stale = score, step, 0
        else:
            self.stale += 1
        if self.kept_step is None or passed > self.kept_passed:
            keep = True
        elif passed < self.kept_passed:
            keep = False
        else:
            keep = self.rule.keep == "last" or score > self.kept_score
        if keep:
            self.kept_step, self.kept_score, self.kept_passed = step, score, passed
        return keep

    def plateaued(self, step: int) -> bool:
        """Return True when the run may stop: ``patience`` evaluations without a better score,
        at or after ``min_steps``, and a kept model that passed the collapse check."""
        return (self.stale >= self.rule.patience and step >= self.rule.min_steps
                and self.kept_passed)
