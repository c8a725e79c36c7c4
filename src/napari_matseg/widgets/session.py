"""Models shared between the dock widgets of one viewer (trained, loaded, pretrained)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from psygnal import Signal

from ..api.start import DEFAULT_START
from ..core.bundle import ModelBundle


@dataclass
class ModelEntry:
    """A model the docks can pick; ``strokes`` are the annotated images it was trained on in
    this viewer (what adapting it to other micrographs trains on again), None when unknown."""

    name: str
    bundle: ModelBundle | None = None  # None: the default ImageNet encoder
    path: str | None = None
    strokes: list | None = None


class ModelRegistry:
    """The starting models and trained models a viewer's widgets can pick from."""

    changed = Signal()
    current_changed = Signal(object)

    def __init__(self):
        self.entries: list[ModelEntry] = [ModelEntry(DEFAULT_START)]
        self.current: ModelEntry | None = None

    def add(self, entry: ModelEntry, make_current: bool = False) -> ModelEntry:
        """Add (or replace, by name) an entry and announce it."""
        self.entries = [e for e in self.entries if e.name != entry.name] + [entry]
        self.changed.emit()
        if make_current:
            self.current = entry
            self.current_changed.emit(entry)
        return entry

    def get(self, name: str) -> ModelEntry | None:
        return next((e for e in self.entries if e.name == name), None)


_registries: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def registry_for(viewer) -> ModelRegistry:
    """Return the registry shared by all widgets docked in ``viewer``."""
    if viewer not in _registries:
        _registries[viewer] = ModelRegistry()
    return _registries[viewer]
