"""The default budgets, one place for the widgets, the command line and the benchmarks."""

from __future__ import annotations

from ..core.budget import Budget
from .start import continues_training

FIRST_FIT_STEPS = 180
CONTINUE_STEPS = 60


def default_finetune_budget(start=None) -> Budget:
    """Return the budget of a fine-tune from ``start`` (a :class:`~napari_matseg.api.StartingPoint`,
    a bundle, its path, or None for the default start): 180 steps for a first fit (the recipe
    the benchmarks measured), from ImageNet or a pretrained bundle alike; ``CONTINUE_STEPS``
    when continuing a trained model (:func:`~napari_matseg.api.start.continues_training`); no
    time cap.

    60 continuing steps did as well as 180 on the simulated user of benchmarks/interactive.py
    (MetalDAM folds 0 and 1, seed 0, mean test mIoU after rounds 1-3: 0.316, 0.346, 0.354
    against 0.276, 0.343, 0.366) in a third of the time (33-52 s against 82-131 s with 2
    threads on 2 cores), so a correction round fits in a minute."""
    return Budget(steps=CONTINUE_STEPS if continues_training(start) else FIRST_FIT_STEPS)
