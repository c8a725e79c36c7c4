"""How sure a measurement is: which classes the self-check of the model that predicted the labels
flags (see :mod:`napari_matseg.core.diagnosis`), so that a number resting on such a class can say
so next to it.

A class is doubtful when a self-check warning names it, or when the model gets fewer than
``DiagnosisThresholds.min_recall`` of its held-out strokes right. A warning that names no class
(too few steps, a time cap) or says the model collapsed to one class casts doubt on every class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..diagnosis import DiagnosisThresholds

DOUBTFUL = "doubtful: "  # how every note of doubt begins


@dataclass(frozen=True)
class SelfCheckDoubts:
    """What a model's self-check doubts: ``by_class`` maps a class (1..K) to the reason in a few
    words; ``every_class`` holds the reasons that concern all of them."""

    by_class: Mapping[int, str] = field(default_factory=dict)
    every_class: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.by_class or self.every_class)

    def about(self, classes: Iterable[int]) -> str:
        """Return the note for a measurement that rests on ``classes``: 'doubtful: ' and the
        reasons, or '' when the self-check flags none of them."""
        reasons = list(self.every_class) + [self.by_class[c] for c in classes if c in self.by_class]
        return DOUBTFUL + "; ".join(dict.fromkeys(reasons)) if reasons else ""


def _first_clause(warning: str) -> str:
    return warning.split(":")[0].strip()


def _named(warning: str, class_names: Sequence[str]) -> list[int]:
    """Return the classes a warning names: 'name' in quotes (not the start of a longer name
    that ends in a quote, as γ of γ'), or 'class k'."""
    return [k for k, name in enumerate(class_names, 1)
            if re.search(rf"'{re.escape(name)}'(?!')", warning)
            or re.search(rf"\bclass {k}\b", warning)]


def self_check_doubts(diagnosis: Mapping | None, class_names: Sequence[str]) -> SelfCheckDoubts:
    """Return the :class:`SelfCheckDoubts` of a model's self-check (a bundle's
    ``provenance["diagnosis"]``: its ``warnings`` and per-class ``recall``) for labels with
    classes ``class_names``; nothing when there is no self-check."""
    if not diagnosis:
        return SelfCheckDoubts()
    by_class: dict[int, str] = {}
    every: list[str] = []
    held_out = diagnosis.get("held_out", True)
    on_training = set(diagnosis.get("scored_on_training") or ())
    recall = {}
    for key, value in (diagnosis.get("recall") or {}).items():
        try:
            recall[int(key)] = float(value)
        except (TypeError, ValueError):
            continue
    for k, r in recall.items():
        if 1 <= k <= len(class_names) and r < DiagnosisThresholds().min_recall:
            where = "held-out strokes" if held_out and k not in on_training else "strokes"
            by_class[k] = f"the model gets {r:.0%} of the {where} of '{class_names[k - 1]}' right"
    for warning in map(str, diagnosis.get("warnings") or ()):
        named = _named(warning, class_names)
        if not named or "collapse" in warning:
            every.append(_first_clause(warning))
            continue
        for k in named:
            by_class.setdefault(k, _first_clause(warning))
    return SelfCheckDoubts(by_class, tuple(every))
