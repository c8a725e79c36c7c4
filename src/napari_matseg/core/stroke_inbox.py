"""The hand-over of new strokes from the thread that paints to the thread that trains.

:meth:`~napari_matseg.core.finetune.Finetuner.update_images` checks the new strokes on the
caller's thread and puts them here; the training loop takes them at its next evaluation (or as
it wakes from idling). Only the latest set waits: strokes put twice before the loop looks are
taken once, as they were last.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Hashable


class StrokeInbox:
    """Holds the latest set of training images the loop has not taken yet, thread-safely.

    ``key`` says what a set holds (names, image and stroke digests): a set equal to the last one
    put is no change and is dropped. ``wake`` is set when a change arrives, so an idle loop
    wakes; :meth:`quiet_for` is the time since the last change."""

    def __init__(self, key: Hashable):
        self._lock = threading.Lock()
        self._staged: Any = None
        self._key = key
        self.wake = threading.Event()
        self.changed_at = time.monotonic()
        self.changes = 0

    def put(self, key: Hashable, items: Any) -> bool:
        """Stage ``items`` unless they equal the last set; return True when they were staged."""
        with self._lock:
            if key == self._key:
                return False
            self._key, self._staged = key, items
            self.changed_at = time.monotonic()
            self.changes += 1
        self.wake.set()
        return True

    def take(self) -> Any:
        """Return the staged set and forget it (None when nothing changed since the last take)."""
        with self._lock:
            items, self._staged = self._staged, None
        return items

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._staged is not None

    def quiet_for(self) -> float:
        """Return the seconds since the strokes last changed."""
        return time.monotonic() - self.changed_at

    def wait(self, stopping: threading.Event) -> None:
        """Block until a change arrives or ``stopping`` is set (then ``wake`` is set too)."""
        self.wake.clear()
        if self.pending or stopping.is_set():
            return
        self.wake.wait()
