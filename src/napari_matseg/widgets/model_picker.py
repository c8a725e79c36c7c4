"""A model chooser shared by the dock widgets: the viewer's registered models plus 'load a file'."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QFileDialog

from ..core.bundle import load_bundle
from ..core.errors import MatsegError
from .scrolling import shrinkable_combo
from .session import ModelEntry, ModelRegistry

LOAD_FILE = "Load model file…"


class ModelPicker:
    """Keeps a combo box in step with a :class:`ModelRegistry`; ``accepts`` filters entries and
    ``expect`` (a bundle kind) the files it loads."""

    def __init__(self, registry: ModelRegistry, parent=None,
                 accepts: Callable[[ModelEntry], bool] = lambda entry: True,
                 expect: str | None = None):
        self.registry = registry
        self.expect = expect
        self.accepts = accepts
        self.parent = parent
        self.combo = shrinkable_combo(parent)
        self.combo.activated.connect(self._chosen)
        registry.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        names = [e.name for e in self.registry.entries if self.accepts(e)]
        current = self.combo.currentText()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(names + [LOAD_FILE])
        # Qt 6 sizes a combo box to its placeholder too: a long one widened the dock's content
        # past the dock and cut the right-hand column
        self.combo.setPlaceholderText("no model yet")
        if current in names:
            self.combo.setCurrentText(current)
        elif not names:
            self.combo.setCurrentIndex(-1)
        self.combo.setToolTip(self.combo.currentText() or "No model yet: train one, or load a file")
        self.combo.blockSignals(False)

    def entry(self) -> ModelEntry | None:
        return self.registry.get(self.combo.currentText())

    def select(self, name: str) -> None:
        """Show the entry ``name`` (a model of the registry this picker accepts)."""
        self.combo.setCurrentText(name)

    def _chosen(self, _index: int) -> None:
        if self.combo.currentText() != LOAD_FILE:
            return
        path, _ = QFileDialog.getOpenFileName(self.parent, "Open a napari-matseg model", "",
                                              "napari-matseg models (*.matseg);;All files (*)")
        if path:
            self.load(path)
        else:
            has_models = self.combo.count() > 1
            self.combo.setCurrentIndex(0 if has_models else -1)

    def load(self, path: str) -> ModelEntry | None:
        """Load a bundle, register and select it; notify and return None when it is unusable."""
        try:
            bundle = load_bundle(path, expect=self.expect)
        except MatsegError as exc:
            show_error(str(exc))
            return None
        entry = self.registry.add(ModelEntry(Path(path).name, bundle, str(path)), make_current=True)
        self.select(entry.name)
        return entry
