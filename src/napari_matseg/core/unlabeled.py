"""Learning from pixels nobody painted: weak/strong consistency with per-class thresholds.

The recipe follows FixMatch (Sohn et al. 2020) for segmentation, with FlexMatch's per-class
thresholds (Zhang et al. 2021) and UniMatch's CutMix of strong views (Yang et al. 2023):

- a crop of an unlabeled micrograph, or of a painted one away from its strokes, is seen twice:
  a weak view (the geometric augmentation of the stroke crops) and a strong view (the same
  pixels with heavy intensity changes, and a box of another crop pasted in);
- the network's own prediction on the weak view, where it is confident, is the target of its
  prediction on the strong view;
- a class the network is rarely confident about gets a lower threshold, so the classes it already
  predicts well do not take over (the bias that plain self-training grows);
- painted pixels keep their strokes as targets: pseudo-labels never outvote the user;
- the loss ramps up from zero once the strokes have taught the network something.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig, IntensityJitter, random_affine_grids
from .checks import check_float, check_int
from .errors import InputError
from .scribbles import IGNORE

ON_WEIGHT = 1.0  # the weight that the benchmarks measured (docs/benchmarks.md)

STRONG_INTENSITY = AugmentConfig(gamma_range=(0.5, 2.0), contrast_range=(0.5, 1.6), brightness=0.25,
                                 noise_std=0.06, blur_probability=0.5)


@dataclass(frozen=True)
class UnlabeledConfig:
    """How much fine-tuning learns from unpainted pixels; ``weight`` 0 switches it off.

    Each step draws ``crops`` crops of unlabeled pixels beside the stroke crops. A pixel's
    prediction on the weak view becomes its target when its confidence reaches its class's
    threshold: ``threshold`` for the class the network is most often confident about, lower
    (down to ``min_threshold``) for the others. The loss's weight rises from 0 at ``begin`` of the
    budget to ``weight`` at ``begin + ramp``.
    """

    weight: float = 0.0
    crops: int = 4
    threshold: float = 0.9
    min_threshold: float = 0.6
    begin: float = 0.15
    ramp: float = 0.3
    cutmix: float = 0.5
    strong: AugmentConfig = field(default_factory=lambda: STRONG_INTENSITY)

    def __post_init__(self):
        check_float("the unlabeled weight", self.weight, 0, 100)
        check_int("the unlabeled crops per step", self.crops, 1)
        check_float("the pseudo-label threshold", self.threshold, 0, 1)
        check_float("the lowest pseudo-label threshold", self.min_threshold, 0, 1)
        if self.min_threshold > self.threshold:
            raise InputError("the lowest pseudo-label threshold is above the threshold")
        check_float("the start of the unlabeled loss", self.begin, 0, 1)
        check_float("the ramp of the unlabeled loss", self.ramp, 0, 1)
        check_float("the CutMix probability", self.cutmix, 0, 1)
        if not isinstance(self.strong, AugmentConfig):
            raise InputError("the strong augmentation must be an AugmentConfig")

    @property
    def enabled(self) -> bool:
        return self.weight > 0

    def switched_on(self) -> "UnlabeledConfig":
        """Return this config, with the measured weight if it was off."""
        return self if self.enabled else replace(self, weight=ON_WEIGHT)

    def weight_at(self, progress: float) -> float:
        """Return the unlabeled loss's weight at ``progress`` (0..1 of the budget): 0 before
        ``begin``, then a sigmoid-shaped ramp to ``weight``."""
        if not self.enabled or progress < self.begin:
            return 0.0
        if self.ramp <= 0:
            return self.weight
        t = min(1.0, (progress - self.begin) / self.ramp)
        return float(self.weight * np.exp(-5.0 * (1.0 - t) ** 2))


@dataclass
class UnlabeledBatch:
    """Weak views of unlabeled crops (B x 1 x S x S, grey levels about 0..1), the strokes under
    them (B x S x S, class 0..K-1, IGNORE where unpainted) and where the crop lies inside its
    image (B x S x S)."""

    weak: torch.Tensor
    strokes: torch.Tensor
    inside: torch.Tensor


class UnlabeledCropSampler:
    """Draw crops anywhere in a set of prepared images, with the geometric augmentation of the
    stroke crops. ``images`` holds (pixels, strokes) pairs; strokes are 0 where unpainted,
    1..K where painted, or None for an image nobody painted. Every image is drawn equally
    often, so a large unlabeled folder does not drown the painted images."""

    def __init__(self, images: list[tuple[np.ndarray, np.ndarray | None]], crop_size: int,
                 augment: AugmentConfig, rng: np.random.Generator):
        if not images:
            raise InputError("no images to draw unlabeled crops from")
        self.shapes = [pixels.shape for pixels, _ in images]
        self.images = [torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32))[None, None]
                       for p, _ in images]
        self.strokes = [None if s is None else torch.from_numpy(s.astype(np.float32) - 1.0)[None, None]
                        for _, s in images]
        self.crop_size = crop_size
        self.augment = augment
        self.rng = rng

    def set_strokes(self, index: int, strokes: np.ndarray) -> None:
        """Replace the strokes of image ``index`` (when held-out strokes join training)."""
        self.strokes[index] = torch.from_numpy(strokes.astype(np.float32) - 1.0)[None, None]

    def sample(self, batch: int) -> UnlabeledBatch:
        owners = self.rng.integers(len(self.images), size=batch)
        weak = torch.empty(batch, 1, self.crop_size, self.crop_size)
        strokes = torch.full((batch, self.crop_size, self.crop_size), IGNORE, dtype=torch.long)
        inside = torch.empty(batch, self.crop_size, self.crop_size, dtype=torch.bool)
        for owner in np.unique(owners):
            rows = np.flatnonzero(owners == owner)
            h, w = self.shapes[owner]
            centres = np.stack([self.rng.uniform(0, h, len(rows)), self.rng.uniform(0, w, len(rows))], 1)
            grids = random_affine_grids(centres, self.crop_size, (h, w), self.augment, self.rng)
            n, index = len(rows), torch.from_numpy(rows)
            weak[index] = F.grid_sample(self.images[owner].expand(n, -1, -1, -1), grids,
                                        mode="bilinear", padding_mode="reflection", align_corners=False)
            inside[index] = ~(grids.abs() > 1).any(dim=-1)
            if self.strokes[owner] is not None:
                target = F.grid_sample(self.strokes[owner].expand(n, -1, -1, -1), grids, mode="nearest",
                                       padding_mode="zeros", align_corners=False)[:, 0].round().long()
                target[(target < 0) | ~inside[index]] = IGNORE
                strokes[index] = target
        return UnlabeledBatch(weak, strokes, inside)


class ClassThresholds:
    """FlexMatch's flexible thresholds: a class's threshold falls with how rarely the network is
    confident about it (its "learning effect", counted over recent steps), from ``threshold``
    for the best-learnt class towards ``min_threshold``. Only ``classes`` (0..K-1, the painted
    ones) may become pseudo-labels."""

    def __init__(self, num_classes: int, classes: list[int], threshold: float, min_threshold: float,
                 decay: float = 0.9):
        self.threshold, self.min_threshold, self.decay = threshold, min_threshold, decay
        self.allowed = torch.zeros(num_classes, dtype=torch.bool)
        self.allowed[classes] = True
        self.confident = torch.zeros(num_classes)
        self.unsure = 0.0

    def current(self) -> torch.Tensor:
        """Return the threshold of each class now."""
        top = max(float(self.confident.max()), self.unsure, 1e-9)
        effect = self.confident / top
        mapped = effect / (2.0 - effect)
        return (self.threshold * mapped).clamp(min=self.min_threshold)

    def update(self, confidence: torch.Tensor, prediction: torch.Tensor, valid: torch.Tensor) -> None:
        sure = valid & (confidence >= self.threshold)
        counts = torch.bincount(prediction[sure], minlength=len(self.confident)).float()
        total = float(valid.sum().clamp(min=1))
        self.confident = self.decay * self.confident + (1 - self.decay) * counts / total
        self.unsure = self.decay * self.unsure + (1 - self.decay) * float((valid & ~sure).sum()) / total


@dataclass
class PseudoLabels:
    """Targets for the strong view: class 0..K-1 per pixel, and which pixels count."""

    targets: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device) -> "PseudoLabels":
        return PseudoLabels(self.targets.to(device), self.mask.to(device))


class ConsistencyLearner:
    """Turns weak-view predictions into pseudo-labels, makes the strong views, and computes the
    unlabeled loss; also counts the classes it predicts on unlabeled pixels between two
    evaluations (:meth:`take_shares`), so a drift towards one class shows in the log."""

    def __init__(self, config: UnlabeledConfig, num_classes: int, painted: list[int],
                 rng: np.random.Generator):
        self.config = config
        self.rng = rng
        self.num_classes = num_classes
        self.thresholds = ClassThresholds(num_classes, [c - 1 for c in painted], config.threshold,
                                          config.min_threshold)
        self.jitter = IntensityJitter(config.strong)
        self.shares = torch.zeros(num_classes)
        self.used = [0, 0]

    def pseudo_labels(self, weak_logits: torch.Tensor, batch: UnlabeledBatch,
                      class_weights: torch.Tensor | None = None) -> PseudoLabels:
        """Return the targets of the strong views: the strokes where painted, else the weak
        view's prediction where it is confident enough for its class.

        ``class_weights`` are the supervised loss's class weights: a network trained with them
        overstates each class's odds by its weight, so the weak view's odds are divided by them
        first (otherwise a rare phase, weighted up, spreads over the unpainted pixels)."""
        logits = weak_logits.float()
        if class_weights is not None:
            logits = logits - class_weights.clamp(min=1e-6).log().view(1, -1, 1, 1)
        probs = logits.softmax(dim=1)
        confidence, prediction = probs.max(dim=1)
        valid = batch.inside & (batch.strokes == IGNORE)
        self.thresholds.update(confidence, prediction, valid)
        self.shares += torch.bincount(prediction[valid], minlength=self.num_classes).float()
        limit = self.thresholds.current()[prediction]
        mask = valid & (confidence >= limit) & self.thresholds.allowed[prediction]
        self.used[0] += int(mask.sum())
        self.used[1] += int(valid.sum())
        painted = batch.strokes != IGNORE
        targets = torch.where(painted, batch.strokes, prediction)
        return PseudoLabels(targets, mask | painted)

    def strong_views(self, batch: UnlabeledBatch, labels: PseudoLabels
                     ) -> tuple[torch.Tensor, PseudoLabels]:
        """Return strong views (0..1 grey levels) and their targets: heavy intensity changes, then
        with probability ``cutmix`` a box of another crop pasted in, targets pasted with it."""
        strong = self.jitter(batch.weak.clone(), self.rng)
        targets, mask = labels.targets.clone(), labels.mask.clone()
        n, size = strong.shape[0], strong.shape[-1]
        if n > 1 and self.config.cutmix > 0:
            source = strong.clone()
            partner = np.roll(np.arange(n), 1)
            for i in np.flatnonzero(self.rng.random(n) < self.config.cutmix):
                j = partner[i]
                side = int(size * np.sqrt(self.rng.uniform(0.1, 0.5)))
                r, c = self.rng.integers(0, size - side + 1, 2)
                strong[i, :, r:r + side, c:c + side] = source[j, :, r:r + side, c:c + side]
                targets[i, r:r + side, c:c + side] = labels.targets[j, r:r + side, c:c + side]
                mask[i, r:r + side, c:c + side] = labels.mask[j, r:r + side, c:c + side]
        return strong, PseudoLabels(targets, mask)

    @staticmethod
    def loss(logits: torch.Tensor, labels: PseudoLabels, weights: torch.Tensor | None = None
             ) -> torch.Tensor:
        """Return the cross-entropy on the pixels that count, averaged over every pixel of the
        crops (so few confident pixels weigh little, as in FixMatch)."""
        targets = torch.where(labels.mask, labels.targets, torch.full_like(labels.targets, IGNORE))
        per_pixel = F.cross_entropy(logits.float(), targets, weight=weights, ignore_index=IGNORE,
                                    reduction="none")
        return per_pixel.sum() / max(targets.numel(), 1)

    def take_shares(self) -> tuple[list[float], float]:
        """Return the class shares of the network's predictions on unlabeled pixels since the
        last call, and the share of those pixels confident enough to be pseudo-labels."""
        total = float(self.shares.sum())
        shares = [round(float(s) / total, 4) for s in self.shares] if total else []
        used = self.used[0] / self.used[1] if self.used[1] else 0.0
        self.shares.zero_()
        self.used = [0, 0]
        return shares, round(used, 4)
