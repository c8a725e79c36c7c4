"""Robust per-image intensity normalisation, so 8-bit and 16-bit micrographs look alike to the net."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import InputError


@dataclass
class PercentileNormalizer:
    """Map the ``low`` and ``high`` percentiles of an image to ``low_value`` and ``high_value``
    (by default 1 % and 99 % to 0 and 1), linearly, and clip to ``-clip_margin..1 + clip_margin``.

    Quartiles (``low=25, high=75`` to ``0.25, 0.75``) depend less on what share of the image
    rare dark or bright features take, such as a crack.
    """

    low: float = 1.0
    high: float = 99.0
    clip_margin: float = 0.25
    low_value: float = 0.0
    high_value: float = 1.0

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Return ``image`` as float32 scaled to about 0..1; ``mask`` selects the pixels measured."""
        image = np.asarray(image)
        values = image[mask] if mask is not None else image
        if values.size == 0:
            raise InputError("no pixels left to normalise (is the whole image an information band?)")
        stride = max(1, values.size // 1_000_000)
        lo, hi = np.percentile(values.reshape(-1)[::stride], [self.low, self.high])
        if hi <= lo:
            lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            raise InputError(f"the image is constant (every pixel is {lo:g}): nothing to segment")
        gain = np.float32((self.high_value - self.low_value) / (hi - lo))
        out = (image.astype(np.float32) - np.float32(lo)) * gain + np.float32(self.low_value)
        return np.clip(out, -self.clip_margin, 1.0 + self.clip_margin, out=out)

    def to_dict(self) -> dict:
        return asdict(self)
