"""Robust per-image intensity normalisation, so 8-bit and 16-bit micrographs look alike to the net."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .checks import check_float
from .errors import InputError


@dataclass(frozen=True)
class PercentileNormalizer:
    """Map the ``low`` and ``high`` percentiles of an image to ``low_value`` and ``high_value``
    (by default 1 % and 99 % to 0 and 1), linearly, and clip to ``-clip_margin..1 + clip_margin``.

    Quartiles (``low=25, high=75`` to ``0.25, 0.75``) depend less on what share of the image
    rare dark or bright features take, such as a crack. Pixels that are not finite numbers
    (NaN, inf: dead pixels, failed stitching) are left out of the percentiles and set to
    ``low_value``, so one of them cannot turn the whole image into NaN.
    """

    low: float = 1.0
    high: float = 99.0
    clip_margin: float = 0.25
    low_value: float = 0.0
    high_value: float = 1.0

    def __post_init__(self):
        check_float("the low percentile", self.low, 0, 100)
        check_float("the high percentile", self.high, 0, 100)
        if self.low >= self.high:
            raise InputError(f"the low percentile ({self.low}) must be below the high one ({self.high})")
        check_float("the clip margin", self.clip_margin, 0)
        check_float("the low value", self.low_value)
        check_float("the high value", self.high_value)
        if self.low_value >= self.high_value:
            raise InputError("the normaliser's low value must be below its high value")

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Return ``image`` as float32 scaled to about 0..1; ``mask`` selects the pixels measured."""
        image = np.asarray(image)
        finite = None
        if np.issubdtype(image.dtype, np.floating):
            finite = np.isfinite(image)
            if finite.all():
                finite = None
        values = image
        if mask is not None or finite is not None:
            keep = np.ones(image.shape, bool) if mask is None else np.asarray(mask, bool)
            if finite is not None:
                keep = keep & finite
            values = image[keep]
        if values.size == 0:
            raise InputError("no pixels left to normalise (is the whole image an information band, "
                             "or not a number?)")
        stride = max(1, values.size // 1_000_000)
        lo, hi = np.percentile(values.reshape(-1)[::stride], [self.low, self.high])
        if hi <= lo:
            lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            raise InputError(f"the image is constant (every pixel is {lo:g}): nothing to segment")
        gain = np.float32((self.high_value - self.low_value) / (float(hi) - float(lo)))
        out = (image.astype(np.float32) - np.float32(lo)) * gain + np.float32(self.low_value)
        if finite is not None:
            out[~finite] = self.low_value
        return np.clip(out, -self.clip_margin, 1.0 + self.clip_margin, out=out)

    def to_dict(self) -> dict:
        return asdict(self)
