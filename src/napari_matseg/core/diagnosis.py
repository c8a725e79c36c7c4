"""What a finished fine-tune can tell about its own reliability, before anyone trusts its output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class DiagnosisThresholds:
    """When a fine-tune earns a warning; see :func:`diagnose_training`."""

    min_recall: float = 0.5
    max_single_class_fraction: float = 0.9


@dataclass
class TrainingDiagnosis:
    """A fine-tune's self-check.

    ``recall`` maps each painted class (1..K, napari's numbering) to the share of its held-out
    strokes the kept model labels correctly (of all strokes when none were held out:
    ``held_out`` is then False). ``image_fractions`` are the class shares the model finds in its
    own training image. ``warnings`` says, in plain words, what looks unreliable.
    """

    steps: int
    recall: dict[int, float]
    image_fractions: list[float]
    held_out: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recall"] = {str(k): round(v, 4) for k, v in self.recall.items()}
        return d


def _name(cls: int, class_names: list[str] | None) -> str:
    if class_names and 0 < cls <= len(class_names):
        return f"'{class_names[cls - 1]}'"
    return f"class {cls}"


def diagnose_training(steps: int, min_steps: int, stop_reason: str, recall: dict[int, float],
                      image_fractions: list[float], held_out: bool = True,
                      class_names: list[str] | None = None,
                      thresholds: DiagnosisThresholds | None = None,
                      extra_warnings: list[str] | None = None) -> TrainingDiagnosis:
    """Return the diagnosis of a finished fine-tune, with a warning for each sign of a model
    that should not be trusted yet.

    The signs: training ended (step or time budget, or Stop) before ``min_steps`` in all (``steps``
    counts the runs a warm-started model had before), the number of steps the recipe needs before
    its early stopping may act; a painted class whose strokes the model
    mostly gets wrong (recall below ``min_recall``); one class covering most of the training
    image although several were painted (a collapsed model). Short budgets on slow machines
    produce exactly these models, and their predictions look plausible at a glance.
    ``extra_warnings`` come first (a time cap that cut the run short, say).
    """
    t = thresholds or DiagnosisThresholds()
    warnings = list(extra_warnings or [])
    if steps < min_steps and stop_reason != "plateau":
        warnings.append(f"trained only {steps} steps, fewer than the {min_steps} the recipe needs: "
                        "give it more steps, or train again to continue from this model")
    where = "held-out strokes" if held_out else "strokes"
    for cls, r in sorted(recall.items()):
        if r < t.min_recall:
            warnings.append(f"the model labels only {r:.0%} of the {where} of {_name(cls, class_names)} "
                            "correctly: paint more of it, where it differs from its neighbours")
    if len(recall) >= 2 and image_fractions:
        top = max(range(len(image_fractions)), key=image_fractions.__getitem__)
        share = image_fractions[top]
        if share > t.max_single_class_fraction:
            warnings.append(f"the model labels {share:.0%} of its training image as "
                            f"{_name(top + 1, class_names)} although {len(recall)} classes are "
                            "painted: it has collapsed to one class; train longer or paint more")
    return TrainingDiagnosis(steps, dict(recall), list(image_fractions), held_out, warnings)
