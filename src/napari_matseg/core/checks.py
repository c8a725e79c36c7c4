"""Checks of single values, shared by the configs' ``__post_init__`` and the command line, so a
bad number fails where it is set, with a sentence that names it."""

from __future__ import annotations

import math
from numbers import Integral, Real

from .errors import InputError


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` if it is a whole number within ``minimum..maximum``; raise otherwise."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be at most {maximum}, got {value}")
    return int(value)


def check_float(name: str, value, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number within the bounds; raise otherwise.

    ``strict_minimum`` excludes ``minimum`` itself (for values that must be positive)."""
    if not _is_number(value) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        relation = "greater than" if strict_minimum else "at least"
        raise InputError(f"{name} must be {relation} {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be at most {maximum:g}, got {value:g}")
    return float(value)


def check_range(name: str, value, minimum: float | None = None) -> tuple[float, float]:
    """Return a (low, high) pair of finite numbers with low <= high (and >= ``minimum``)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InputError(f"{name} must be a pair (low, high), got {value!r}")
    low = check_float(f"{name} low", value[0], minimum)
    high = check_float(f"{name} high", value[1], minimum)
    if low > high:
        raise InputError(f"{name} must have low <= high, got {value!r}")
    return low, high


def check_choice(name: str, value, choices) -> object:
    """Return ``value`` if it is one of ``choices``; raise naming them otherwise."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_training_batch(budget, batch_size, crop_size, min_batch: int = 1) -> None:
    """Check what every training loop takes: a :class:`~.budget.Budget`, a batch of at least
    ``min_batch`` crops, and crops whose side is a multiple of 32 (the encoders' stride)."""
    from .budget import Budget

    if not isinstance(budget, Budget):
        raise InputError(f"the budget must be a Budget, got {budget!r}")
    check_int("the batch size", batch_size, min_batch, 65536)
    check_int("the crop size", crop_size, 32, 4096)
    if crop_size % 32:
        raise InputError(f"the crop size must be a multiple of 32, got {crop_size}")


def check_info_band(value) -> int | str | None:
    """Return a valid information-band setting: ``"auto"``, ``None``/0 (none) or a row count."""
    if value is None or value == "auto":
        return value
    return check_int("the information band", value, 0)
