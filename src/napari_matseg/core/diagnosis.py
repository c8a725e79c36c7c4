"""What a finished fine-tune can tell about its own reliability, before anyone trusts its output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class DiagnosisThresholds:
    """When a fine-tune earns a warning; see :func:`diagnose_training` and :func:`find_collapse`.

    A painted class has vanished when it is predicted on less than ``vanished_share`` of an
    image it is painted on and on fewer pixels than half its strokes there, and it holds at least
    ``vanished_min_strokes`` of that image's painted pixels (a class painted in a dab or two, such
    as rare precipitates, earns a recall warning instead: it is not a collapse). One class has
    swallowed another when it covers more than ``dominant_share`` of an image and takes more than
    ``swallowed_strokes`` of the other class's strokes on it. A continued run has made a class
    worse when the model it started from got more than ``max_recall_drop`` more of that class's
    held-out strokes right than the new model does.
    """

    min_recall: float = 0.5
    max_single_class_fraction: float = 0.9
    vanished_share: float = 0.01
    vanished_min_strokes: float = 0.05
    dominant_share: float = 2 / 3
    swallowed_strokes: float = 0.5
    max_recall_drop: float = 0.15


@dataclass
class TrainingDiagnosis:
    """A fine-tune's self-check.

    ``recall`` maps each painted class (1..K, napari's numbering) to the share of its held-out
    strokes the kept model labels correctly (of all strokes when none were held out:
    ``held_out`` is then False). ``image_fractions`` are the class shares the model finds in its
    own training image. ``warnings`` says, in plain words, what looks unreliable.
    ``stroke_width_px`` is how wide each class was painted (the mean line width of its strokes,
    in pixels of the first training image, whose µm per pixel is ``stroke_pixel_size`` when it
    was given), which a measurement compares with the prediction. ``start_recall`` is, for a
    continued run, the recall per class of the model it started from on the same held-out
    strokes (empty otherwise), so that a class the new strokes made worse is named, when its
    recall fell by more than ``max_recall_drop``.
    """

    steps: int
    recall: dict[int, float]
    image_fractions: list[float]
    held_out: bool
    warnings: list[str] = field(default_factory=list)
    scored_on_training: list[int] = field(default_factory=list)
    collapse: list[str] = field(default_factory=list)
    network_accuracy: float | None = None
    forest_accuracy: float | None = None
    stroke_width_px: dict[int, float] = field(default_factory=dict)
    stroke_pixel_size: float | None = None
    start_recall: dict[int, float] = field(default_factory=dict)
    max_recall_drop: float = DiagnosisThresholds.max_recall_drop

    @property
    def collapsed(self) -> bool:
        """True when the kept model failed the collapse check (its class prior is not used)."""
        return bool(self.collapse)

    @property
    def forest_wins(self) -> bool:
        """True when the quick filter-bank forest beat the network on the held-out strokes."""
        return (self.network_accuracy is not None and self.forest_accuracy is not None
                and self.forest_accuracy > self.network_accuracy)

    @property
    def made_worse(self) -> list[int]:
        """The classes (1..K) a continued run made worse (see :func:`classes_made_worse`)."""
        return classes_made_worse(self.recall, self.start_recall, self.held_out,
                                  self.scored_on_training, self.max_recall_drop)

    @property
    def ok(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recall"] = {str(k): round(v, 4) for k, v in self.recall.items()}
        d["start_recall"] = {str(k): round(v, 4) for k, v in self.start_recall.items()}
        d["stroke_width_px"] = {str(k): v for k, v in self.stroke_width_px.items()}
        for key in ("network_accuracy", "forest_accuracy"):
            if d[key] is not None:
                d[key] = round(d[key], 4)
        return d


def _name(cls: int, class_names: list[str] | None) -> str:
    if class_names and 0 < cls <= len(class_names):
        return f"'{class_names[cls - 1]}'"
    return f"class {cls}"


def find_collapse(predicted: list[np.ndarray], strokes: list[np.ndarray],
                  class_names: list[str] | None = None,
                  thresholds: DiagnosisThresholds | None = None) -> list[str]:
    """Return one sentence per sign that a model has collapsed, comparing its class maps
    (``predicted``, 1..K) of the painted images with the strokes on them (0 unpainted, 1..K).

    The strokes do not tell class shares, but they tell where each class is: a painted class
    that the model hardly predicts anywhere on its image has vanished, and a class that covers
    most of an image while taking most of another class's strokes there has swallowed it. Both
    are what a model that paints the image as one class looks like, whatever the true shares.
    """
    t = thresholds or DiagnosisThresholds()
    findings = []
    for pred, lab in zip(predicted, strokes):
        painted = [int(c) for c in np.unique(lab[lab > 0])]
        if len(painted) < 2:
            continue
        counts = np.bincount(pred.ravel(), minlength=max(painted) + 1)
        shares = counts / max(pred.size, 1)
        strokes_of = {c: int((lab == c).sum()) for c in painted}
        total = sum(strokes_of.values())
        for c in painted:
            if strokes_of[c] < t.vanished_min_strokes * total:
                continue
            if shares[c] < t.vanished_share and counts[c] < 0.5 * strokes_of[c]:
                findings.append(f"{_name(c, class_names)} is painted but predicted on only "
                                f"{shares[c]:.1%} of its image")
        top = int(np.argmax(shares))
        if shares[top] <= t.dominant_share:
            continue
        for c in painted:
            if c == top:
                continue
            taken = float(np.mean(pred[lab == c] == top))
            if taken > t.swallowed_strokes:
                findings.append(f"{_name(top, class_names)} covers {shares[top]:.0%} of an image "
                                f"and takes {taken:.0%} of the strokes of {_name(c, class_names)}")
    return findings


def missing_classes(labels: np.ndarray, class_prior, class_names: list[str] | None = None,
                    min_prior: float = 0.10, max_share: float = 0.005,
                    skip: tuple[int, ...] = ()) -> list[str]:
    """Return one sentence per class (1..K) that covered at least ``min_prior`` of the model's
    training images (its ``class_prior``) but less than ``max_share`` of ``labels`` (a predicted
    map, 0 unclassified; classes in ``skip`` left out).

    A model can carry a phase over to its training image and lose it on another micrograph (on
    NASA Super3, one draw of the held-out strokes gave a model that labels 97 % of them right and
    predicts the secondary γ′, 32 % of its training image, nowhere on the test images). A phase
    may also be absent from an image, so this is a note to check, not an error."""
    from .measure.fractions import area_fractions  # measure's self-check imports this module

    labels = np.asarray(labels)
    if class_prior is None or not (labels > 0).any():
        return []
    prior = np.asarray(class_prior, np.float64)
    shares = area_fractions(labels, prior.size)
    return [f"{_name(c, class_names)} covered {prior[c - 1]:.0%} of the training image but "
            f"{shares[c - 1]:.1%} of this one: if it is there, the model did not carry it over "
            "(paint it here and train on)"
            for c in range(1, prior.size + 1)
            if c not in skip and prior[c - 1] >= min_prior and shares[c - 1] < max_share]


def classes_made_worse(recall: dict[int, float], start_recall: dict[int, float] | None,
                       held_out: bool = True, scored_on_training=(),
                       max_drop: float = DiagnosisThresholds.max_recall_drop) -> list[int]:
    """Return the classes (1..K) whose held-out recall fell by more than ``max_drop`` from
    ``start_recall`` (the model a continued run started from, on the same held-out strokes) to
    ``recall``: what a correction round traded away. Recall on training strokes (no held-out
    strokes, or a class in ``scored_on_training``) says nothing of that, so none then."""
    if not held_out or not start_recall:
        return []
    return [c for c, before in sorted(start_recall.items())
            if c not in scored_on_training and c in recall
            and round(before - recall[c], 6) > max_drop]


def diagnose_training(steps: int, min_steps: int, stop_reason: str, recall: dict[int, float],
                      image_fractions: list[float], held_out: bool = True,
                      class_names: list[str] | None = None,
                      thresholds: DiagnosisThresholds | None = None,
                      extra_warnings: list[str] | None = None,
                      scored_on_training: list[int] | None = None,
                      collapse: list[str] | None = None,
                      network_accuracy: float | None = None,
                      forest_accuracy: float | None = None,
                      stroke_width_px: dict[int, float] | None = None,
                      stroke_pixel_size: float | None = None,
                      start_recall: dict[int, float] | None = None) -> TrainingDiagnosis:
    """Return the diagnosis of a finished fine-tune, with a warning for each sign of a model
    that should not be trusted yet.

    The signs: training ended (step or time budget, or Stop) before ``min_steps`` in all (``steps``
    counts the runs a warm-started model had before), the number of steps the recipe needs before
    its early stopping may act; a painted class whose strokes the model
    mostly gets wrong (recall below ``min_recall``); one class covering most of the training
    image although several were painted (a collapsed model). Short budgets on slow machines
    produce exactly these models, and their predictions look plausible at a glance.
    ``extra_warnings`` come first (a time cap that cut the run short, say). ``scored_on_training``
    names the classes that had no held-out strokes (their recall is on the strokes they trained
    on); ``collapse`` holds :func:`find_collapse`'s findings for the kept model; the network's
    and the quick forest's balanced accuracies on the held-out strokes are compared.
    ``start_recall`` (a continued run: the start model's recall on the same held-out strokes)
    names each class the run made worse: a correction round can raise the balanced accuracy
    that selection ranks by while trading one class away, and the user should hear of it.
    """
    t = thresholds or DiagnosisThresholds()
    warnings = list(extra_warnings or [])
    collapse = list(collapse or [])
    if steps < min_steps and stop_reason != "plateau":
        warnings.append(f"trained only {steps} steps, fewer than the {min_steps} the recipe needs: "
                        "give it more steps, or train again to continue from this model")
    if collapse:
        warnings.append("the model has collapsed (" + "; ".join(collapse) + "): do not use it; "
                        "paint more strokes of the classes named, across the image, and train again")
    on_training = sorted(scored_on_training or [])
    for cls, r in sorted(recall.items()):
        where = "held-out strokes" if held_out and cls not in on_training else "strokes"
        if r < t.min_recall:
            warnings.append(f"the model labels only {r:.0%} of the {where} of {_name(cls, class_names)} "
                            "correctly: paint more of it, where it differs from its neighbours")
    for cls in classes_made_worse(recall, start_recall, held_out, on_training, t.max_recall_drop):
        before, now = start_recall[cls], recall[cls]
        warnings.append(f"{_name(cls, class_names)} got worse in this round ({before:.0%} of its "
                        f"held-out strokes right before it, {now:.0%} now): paint more of it where "
                        "it is now wrong and train again, or go back to the model before this "
                        "round")
    if held_out and on_training:
        names = ", ".join(_name(c, class_names) for c in on_training)
        warnings.append(f"{names} had no held-out strokes (painted in one piece), so the check "
                        "used the strokes it trained on: paint it in two places or more")
    if network_accuracy is not None and forest_accuracy is not None and forest_accuracy > network_accuracy:
        warnings.append(f"the quick filter-bank forest labels {forest_accuracy:.0%} of the held-out "
                        f"strokes right and the network {network_accuracy:.0%}: on the painted images "
                        "the forest may segment better; train longer or paint more, and compare both "
                        "on an image nobody painted before trusting either")
    if len(recall) >= 2 and image_fractions and not collapse:
        top = max(range(len(image_fractions)), key=image_fractions.__getitem__)
        share = image_fractions[top]
        if share > t.max_single_class_fraction:
            warnings.append(f"the model labels {share:.0%} of its training image as "
                            f"{_name(top + 1, class_names)} although {len(recall)} classes are "
                            "painted: it has collapsed to one class; train longer or paint more")
    return TrainingDiagnosis(steps, dict(recall), list(image_fractions), held_out, warnings,
                             on_training, collapse, network_accuracy, forest_accuracy,
                             dict(stroke_width_px or {}), stroke_pixel_size,
                             dict(start_recall or {}), t.max_recall_drop)
