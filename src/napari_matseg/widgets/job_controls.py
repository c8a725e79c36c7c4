"""The Start / Stop / Save row, progress bar, status line and loss plot of a training dock widget,
and the wiring of the one background worker it runs at a time."""

from __future__ import annotations

from typing import Callable

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ..core.errors import MatsegError
from .loss_plot import LossPlot


class JobControls:
    """Runs one worker at a time for a dock widget.

    The worker's first yielded object that has a ``stop`` method (the :class:`Finetuner` or
    :class:`Pretrainer`) becomes the ``controller`` that Stop asks to end cleanly; before that,
    Stop quits the worker. When the worker ends, ``on_done(controller)`` runs on the GUI thread,
    unless the widget was deleted meanwhile (the viewer closed during training).
    """

    def __init__(self, parent: QWidget, start_text: str, what: str, idle_text: str):
        self.parent = parent
        self.what = what
        self.start_button = QPushButton(start_text)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.save_button = QPushButton("Save…")
        self.save_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel(idle_text)
        self.status.setWordWrap(True)
        self.plot = LossPlot()
        self.worker = None
        self.controller = None
        self._on_done: Callable | None = None
        self.stop_button.clicked.connect(self.stop)

    def button_row(self) -> QHBoxLayout:
        """Return a layout holding Start, Stop and Save."""
        row = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.save_button):
            row.addWidget(button)
        return row

    @property
    def running(self) -> bool:
        return self.worker is not None

    def launch(self, worker, on_event: Callable, on_done: Callable, status: str):
        """Connect and start ``worker``; returns it."""
        self.worker, self.controller, self._on_done = worker, None, on_done
        self.plot.clear()
        self.progress.setRange(0, 0)
        self.status.setText(status)
        worker.yielded.connect(lambda event: self._yielded(event, on_event))
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        worker.start()
        return worker

    def stop(self) -> None:
        """Ask the running job to end after its current step (it keeps what it learnt)."""
        if self.controller is not None:
            self.controller.stop()
        elif self.worker is not None:
            self.worker.quit()

    def show_step(self, event) -> None:
        """Report a training step in the status line and, every fifth step, in the loss plot."""
        self.status.setText(f"step {event.step} · {event.elapsed:.0f} s · loss {event.loss:.3f}")
        if event.step % 5 == 0:
            self.plot.add(event.step, event.loss)

    def _yielded(self, event, on_event: Callable) -> None:
        if self.controller is None and callable(getattr(event, "stop", None)):
            self.controller = event
        try:
            on_event(event)
        except RuntimeError:  # the widget was deleted (viewer closed): end the job
            self.stop()

    def _errored(self, exc: Exception) -> None:
        if isinstance(exc, MatsegError):
            show_error(str(exc))
        else:
            show_error(f"{self.what} failed: {type(exc).__name__}: {exc}")

    def _finished(self) -> None:
        controller, on_done = self.controller, self._on_done
        self.worker = self.controller = self._on_done = None
        try:
            self.start_button.setEnabled(True)
            self.stop_button.setEnabled(False)
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            if on_done is not None:
                on_done(controller)
        except RuntimeError:  # the widget was deleted (viewer closed) while the job ended
            pass

    def save(self, entry, path: str | None, title: str, default_name: str):
        """Write ``entry``'s bundle to ``path`` (asks for a file when None); returns the path."""
        if entry is None or entry.bundle is None:
            show_warning(f"Nothing to save yet: run {self.what.lower()} first.")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.parent, title, default_name,
                                                  "napari-matseg models (*.matseg)")
            if not path:
                return None
        saved = entry.bundle.save(path)
        entry.path = str(saved)
        show_info(f"Saved to {saved}")
        return saved
