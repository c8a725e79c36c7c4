"""The live preview: a quick forest refitted on the strokes of one or several micrographs each
time they change, and its class maps for the images in view. The Train dock runs
:meth:`LivePreview.refit` in a worker after every stroke; scripts and benchmarks call it directly.

Each image's prepared pixels and filter-bank features are kept between refits (recomputed only
when its pixels or band setting change), so a refit costs the forest alone: about 0.1 s for a
1-megapixel micrograph on one core with :data:`~napari_matseg.core.quickfit.LIVE_QUICKFIT`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..core.finetune import AnnotatedImage, Finetuner
from ..core.imageio import label_array, to_grey
from ..core.infoband import content_rows
from ..core.preprocess import PreparedImage, PreprocessConfig, auto_scale, labels_like, prepare_image
from ..core.quickfit import LIVE_QUICKFIT, QuickClassifier, QuickFitConfig, pixel_features


@dataclass
class LiveResult:
    """One refit: the class map (1..K, 0 in the information band) of each image asked for, at
    its own size; the painted classes it was fitted on; the seconds it took."""

    previews: dict[str, np.ndarray]
    classes: list[int]
    seconds: float


@dataclass
class _Prepared:
    key: tuple
    prepared: PreparedImage
    features: np.ndarray


def _image_key(image: np.ndarray, info_band, scale: float | None) -> tuple:
    data = np.ascontiguousarray(image)
    digest = hashlib.blake2b(data.view(np.uint8).reshape(-1), digest_size=16).hexdigest()
    return data.shape, str(data.dtype), digest, info_band, scale


class LivePreview:
    """Refit a quick classifier on the strokes painted so far and predict the images in view.

    ``images`` given to :meth:`refit` are :class:`AnnotatedImage` objects, as for
    :func:`~napari_matseg.api.finetune`; every image is brought to the working scale of the
    first one that is trained on (as fine-tuning does), so strokes on several micrographs
    train one forest. Not thread-safe: one refit at a time.
    """

    def __init__(self, config: QuickFitConfig = LIVE_QUICKFIT, threads: int = 1,
                 info_band: int | str | None = "auto"):
        self.config = config
        self.threads = threads
        self.info_band = info_band
        self._cache: dict[str, _Prepared] = {}

    def refit(self, images: Sequence[AnnotatedImage], show: Sequence[str] | None = None,
              train: Sequence[str] | None = None) -> LiveResult | None:
        """Fit on the strokes of the images named in ``train`` (default: all) and return the
        class maps of those named in ``show`` (default: all); None while fewer than two classes
        are painted above the information bands (nothing to tell apart yet)."""
        began = time.perf_counter()
        images = list(images)
        train_names = {item.name for item in images} if train is None else set(train)
        show_names = [item.name for item in images] if show is None else list(show)
        trained = [item for item in images if item.name in train_names]
        if not trained:
            return None
        scale = self._working_scale(trained[0])
        used = [item for item in images if item.name in train_names or item.name in show_names]
        entries = {item.name: self._prepare(item, scale) for item in used}
        self._cache = {name: self._cache[name] for name in entries}
        labels = [labels_like(entries[item.name].prepared, label_array(item.labels))
                  for item in trained]
        classes = sorted({int(c) for lab in labels for c in np.unique(lab[lab > 0])})
        if len(classes) < 2:
            return None
        quick = QuickClassifier(self.config, threads=self.threads)
        quick.fit_features([entries[item.name].features for item in trained], labels)
        previews = {}
        for name in show_names:
            if name in entries:
                entry = entries[name]
                previews[name] = Finetuner.map_back(quick.predict_features(entry.features),
                                                    entry.prepared)
        return LiveResult(previews, classes, time.perf_counter() - began)

    def _band(self, item: AnnotatedImage):
        return self.info_band if item.info_band is None else item.info_band

    def _working_scale(self, item: AnnotatedImage) -> float:
        grey = to_grey(item.image)
        return auto_scale((content_rows(grey, self._band(item)), grey.shape[1]))

    def _prepare(self, item: AnnotatedImage, scale: float) -> _Prepared:
        band = self._band(item)
        key = _image_key(item.image, band, scale)
        cached = self._cache.get(item.name)
        if cached is None or cached.key != key:
            config = replace(PreprocessConfig(), info_band=band, scale=scale)
            prepared = prepare_image(to_grey(item.image), config)
            cached = _Prepared(key, prepared, pixel_features(prepared.pixels, self.config.sigmas))
            self._cache[item.name] = cached
        return cached
