"""Live: the Train dock follows the brush. A :class:`StrokeWatcher` says when the strokes have
stopped changing (after a stroke, an erase, a fill, new data); a :class:`LiveRefit` then refits
the quick forest in a worker thread (:class:`~napari_matseg.api.live.LivePreview`) and redraws
the phases of the images in view, never over a layer that something else wrote since (the
network's prediction, the user's own painting)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer, Signal

from ..api.live import LivePreview, LiveResult
from ..core.finetune import AnnotatedImage
from .layers import ROLE_KEY, scribble_layers, show_result_layer
from .workers import worker_threads

STROKE_DELAY_MS = 150
WATCHED_EVENTS = ("paint", "data", "set_data")


class StrokeWatcher(QObject):
    """Emits ``changed`` when the scribble layers of ``viewer`` have not changed for
    ``delay_ms``: napari sends a paint event when a stroke ends (the mouse is released), a data
    event when a layer's data is replaced, and a set_data event after an undo or a redo (and
    other refreshes); a burst of them gives one ``changed``."""

    changed = Signal()

    def __init__(self, viewer, delay_ms: int = STROKE_DELAY_MS, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.changed)
        self._watched: dict[int, object] = {}
        self.watch_layers()

    def watch_layers(self) -> None:
        """Listen to every scribble layer not yet listened to; forget removed ones."""
        layers = {id(layer): layer for layer in scribble_layers(self.viewer)}
        for key in set(self._watched) - set(layers):
            self._disconnect(self._watched.pop(key))
        for key, layer in layers.items():
            if key not in self._watched:
                for event in WATCHED_EVENTS:
                    getattr(layer.events, event).connect(self.poke)
                self._watched[key] = layer

    def poke(self, _event=None) -> None:
        """Restart the quiet-time countdown (a stroke changed)."""
        self.timer.start()

    def close(self) -> None:
        """Stop listening (the dock is closing)."""
        try:
            self.timer.stop()
        except RuntimeError:  # Qt has already deleted it (the application is ending)
            pass
        for layer in self._watched.values():
            self._disconnect(layer)
        self._watched.clear()

    def _disconnect(self, layer) -> None:
        for event in WATCHED_EVENTS:
            getattr(layer.events, event).disconnect(self.poke)


@dataclass
class LiveInputs:
    """What a refit needs, read on the GUI thread: the images (strokes copied), the names whose
    strokes train the forest, the names to redraw, the classes to colour them with."""

    images: list[AnnotatedImage]
    train: list[str]
    show: list[str]
    classes: list[dict]

    def key(self) -> tuple:
        """Return what a refit's result depends on: equal keys, equal previews."""
        strokes = tuple((item.name, id(item.image), item.info_band,
                         hashlib.blake2b(np.ascontiguousarray(item.labels).view(np.uint8).reshape(-1),
                                         digest_size=16).hexdigest()) for item in self.images)
        return strokes, tuple(self.train), tuple(self.show), repr(self.classes)


class LiveRefit(QObject):
    """Refits the live preview in a worker, one refit at a time: a request while one runs is
    kept and served when it ends (with the strokes of that moment). ``gather()`` returns the
    :class:`LiveInputs` (None: nothing to do); ``like(name)`` the image layer a phases layer
    follows; ``result_name(name)`` the phases layer's name. ``refitted`` carries each result
    after it is drawn; ``failed`` the message of a refit that raised."""

    refitted = Signal(object)
    failed = Signal(str)

    def __init__(self, viewer, gather: Callable[[], LiveInputs | None],
                 result_name: Callable[[str], str], parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.gather = gather
        self.result_name = result_name
        self.preview = LivePreview(threads=worker_threads())
        self.worker = None
        self._pending = False
        self._drawn: dict[str, tuple[object, np.ndarray]] = {}
        self._closed = False
        self._last_key: tuple | None = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def request(self) -> None:
        """Refit now, or as soon as the refit under way ends."""
        if self._closed:
            return
        if self.worker is not None:
            self._pending = True
            return
        inputs = self.gather()
        key = inputs.key() if inputs is not None and inputs.images else None
        if key is None or key == self._last_key:
            return
        self._last_key = key
        worker = create_worker(self.preview.refit, inputs.images, inputs.show, inputs.train,
                               _start_thread=False)
        worker.returned.connect(lambda result: self._draw(result, inputs.classes))
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()

    def cancel(self) -> None:
        """Forget a waiting request (Live was turned off)."""
        self._pending = False

    def close(self) -> None:
        """Draw nothing more (the dock is closing)."""
        self._closed = True
        self._pending = False

    def claim(self, name: str) -> None:
        """Take the phases layer of ``name`` as the live preview's own (it shows a forest
        preview drawn by someone else: the one Train shows first)."""
        layer = self._phases_layer(name)
        if layer is not None:
            self._drawn[name] = (layer.data, np.array(layer.data, copy=True))

    def may_draw(self, name: str) -> bool:
        """True when the phases layer of ``name`` is absent, empty, or still exactly what the
        live preview drew last: never over the network's prediction or the user's painting."""
        layer = self._phases_layer(name)
        if layer is None:
            return True
        data = np.asarray(layer.data)
        drawn = self._drawn.get(name)
        if drawn is not None and layer.data is drawn[0] and np.array_equal(data, drawn[1]):
            return True
        return not data.any()

    def _phases_layer(self, name: str):
        target = self.result_name(name)
        for candidate in (target, f"{target} (matseg)"):
            if candidate in self.viewer.layers:
                layer = self.viewer.layers[candidate]
                if layer.metadata.get(ROLE_KEY) == "result-labels":
                    return layer
        return None

    def _draw(self, result: LiveResult | None, classes: list[dict]) -> None:
        if self._closed or result is None:
            return
        try:
            for name, labels in result.previews.items():
                if name not in self.viewer.layers or not self.may_draw(name):
                    continue
                layer = show_result_layer(self.viewer, self.result_name(name), labels,
                                          self.viewer.layers[name], classes, opacity=0.5)
                self._drawn[name] = (layer.data, np.array(layer.data, copy=True))
        except RuntimeError:  # the viewer was closed while the refit ran
            self._closed = True
            return
        self.refitted.emit(result)

    def _errored(self, exc: Exception) -> None:
        self._last_key = None
        self.failed.emit(f"{type(exc).__name__}: {exc}")

    def _finished(self) -> None:
        self.worker = None
        if self._pending and not self._closed:
            self._pending = False
            self.request()
