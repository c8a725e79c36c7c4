"""The open-ended schedule of live training: the network keeps fine-tuning while the user paints.

A single run anneals its learning rate over a fixed budget (:class:`~napari_matseg.core.budget.
Budget`). A live run has no end set in advance: :class:`LiveSchedule` takes the budget's place in
:meth:`~napari_matseg.core.finetune.Finetuner.run` (same ``step_limit``, ``progress`` and
``out_of_time``), warms the learning rate up and then holds it, keeps the held-out strokes out
of training (its progress stays 0, so they never join and the learning from unpainted pixels
never ramps in), and says when to idle: no stroke changed for ``quiet_seconds``, the held-out
score has not improved for ``patience`` evaluations, and the kept model passed the collapse
check. An idle run waits for the next stroke or a stop; it does not end.

With ``rounds`` on, a live run trains as pressing Train again and again would: a first fit's
budget from the first strokes, then a continuing round's budget each time the strokes changed
since the last round began, each round annealed to its end and complete (class prior, self-check);
between rounds with nothing new it idles. The job runs those rounds
(:class:`~napari_matseg.api.LiveTrainingJob`); the fields above then do not apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_float, check_int
from .errors import InputError

NO_END = 10**9
COLLAPSED_PATIENCE = 4


@dataclass(frozen=True)
class LiveSchedule:
    """How a live run trains: ``warmup_steps`` of linear warm-up, then ``lr_factor`` times the
    recipe's learning rates (the middle of a single run's cosine); idle once no stroke changed
    for ``quiet_seconds`` and ``patience`` evaluations brought no better held-out score (and the
    recipe's ``min_steps`` are done)."""

    warmup_steps: int = 10
    lr_factor: float = 0.5
    patience: int = 6
    quiet_seconds: float = 20.0
    rounds: bool = False

    def __post_init__(self):
        check_int("the warm-up steps", self.warmup_steps, 1)
        check_float("the live learning-rate factor", self.lr_factor, 1e-6, 1)
        check_int("the live patience", self.patience, 1)
        check_float("the quiet time", self.quiet_seconds, 0, 24 * 3600)
        if not isinstance(self.rounds, bool):
            raise InputError(f"rounds is True or False, not {self.rounds!r}")

    @property
    def step_limit(self) -> int:
        """No last step: a live run ends when it is stopped."""
        return NO_END

    def progress(self, step: int, elapsed: float) -> float:
        """Return 0: a live run has no budget to use up (held-out strokes never join)."""
        return 0.0

    def out_of_time(self, elapsed: float) -> bool:
        return False

    def lr(self, step: int) -> float:
        """Return the learning-rate factor at ``step`` (1-based): warm-up, then constant."""
        return self.lr_factor * min(1.0, step / self.warmup_steps)

    def should_idle(self, stale: int, step: int, min_steps: int, quiet_for: float,
                    kept_passed: bool = True) -> bool:
        """Return True when the run may idle: ``stale`` evaluations without a better score, at
        least ``min_steps`` steps trained, no stroke changed for ``quiet_for`` seconds, and a
        kept model that passed the collapse check (``kept_passed``; as a single run stops early
        only on such a model, a live run keeps training one that lost a painted class, for up to
        ``COLLAPSED_PATIENCE`` times the patience, then idles too rather than use the cores until
        Stop)."""
        patience = self.patience if kept_passed else COLLAPSED_PATIENCE * self.patience
        return stale >= patience and step >= min_steps and quiet_for >= self.quiet_seconds
