"""The default budgets, one place for the widgets, the command line and the benchmarks."""

from __future__ import annotations

from ..core.budget import Budget

FIRST_FIT_STEPS = 180
CONTINUE_STEPS = 180


def default_finetune_budget(continuing: bool = False) -> Budget:
    """Return the budget of a fine-tune: 180 steps for a first fit (the recipe the benchmarks
    measured), ``CONTINUE_STEPS`` when continuing from a trained model; no time cap."""
    return Budget(steps=CONTINUE_STEPS if continuing else FIRST_FIT_STEPS)
