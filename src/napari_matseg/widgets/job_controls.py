"""The Start / Stop / Save row, progress bar, status line and loss plot of a dock widget, and
the wiring of the one background job it runs at a time, driven by the job's events."""

from __future__ import annotations

from typing import Callable

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                            QScrollArea, QSizePolicy, QWidget)

from ..api import EventKind
from .loss_plot import LossPlot

PROGRESS_UNITS = 1000


class StatusLabel(QLabel):
    """A status label that asks its frame to fit its new text."""

    def setText(self, text: str) -> None:  # noqa: N802 (Qt name)
        super().setText(text)
        area = self.parentWidget()
        while area is not None and not isinstance(area, StatusArea):
            area = area.parentWidget()
        if area is not None:
            area.fit()


class StatusArea(QScrollArea):
    """The status line's frame: as tall as its text up to ``MAX_LINES`` lines, then it scrolls,
    so a long self-check stays readable without pushing the dock's settings out of view."""

    MAX_LINES = 7

    def __init__(self, label: QLabel):
        super().__init__()
        self.setWidget(label)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._label = label
        self.fit()

    def fit(self) -> None:
        """Size the label to its wrapped text at the current width, and the frame to the label
        (at most ``MAX_LINES`` lines)."""
        label = self._label
        line = label.fontMetrics().lineSpacing()
        width = max(50, self.viewport().width() - self.verticalScrollBar().sizeHint().width())
        label.setMinimumHeight(0)
        label.setMaximumHeight(16_777_215)  # unfixed, so heightForWidth measures the text again
        height = max(line, label.heightForWidth(width)) + 4
        label.setFixedHeight(height)
        self.setFixedHeight(min(height, self.MAX_LINES * line + 4) + 2 * self.frameWidth())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self.fit()


class JobControls:
    """Runs one :mod:`napari_matseg.api` job at a time for a dock widget, from its events.

    Stop asks the job to end cleanly (it keeps what it did). The progress bar follows each
    event's progress fraction; the status line shows each event's message, and at the end the
    job's summary and every warning in full (the notification only says where to read them).
    When the job ends, ``on_done(result)`` runs on the GUI thread, unless the widget was
    deleted meanwhile (the viewer closed during training).
    """

    def __init__(self, parent: QWidget, start_text: str, what: str, idle_text: str,
                 plot: bool = True, save: bool = True):
        self.parent = parent
        self.what = what
        self.start_button = QPushButton(start_text)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.save_button = QPushButton("Save…") if save else None
        if self.save_button is not None:
            self.save_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_UNITS)
        self.progress.setValue(0)
        self.status = StatusLabel(idle_text)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        self.status_area = StatusArea(self.status)
        self.plot = LossPlot() if plot else None
        self.worker = None
        self.job = None
        self.last_event = None
        self._on_done: Callable | None = None
        self.stop_button.clicked.connect(self.stop)

    def button_row(self) -> QHBoxLayout:
        """Return a layout holding Start, Stop and (if any) Save."""
        row = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.save_button):
            if button is not None:
                row.addWidget(button)
        return row

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def controller(self):
        """The running job (what Stop stops), or None."""
        return self.job

    def launch(self, job, on_event: Callable, on_done: Callable):
        """Run ``job`` in a worker thread; returns the worker."""
        from .workers import job_worker

        self.job, self._on_done, self.last_event = job, on_done, None
        if self.plot is not None:
            self.plot.clear()
        self.progress.setValue(0)
        worker = job_worker(job)
        self.worker = worker
        worker.yielded.connect(lambda event: self._yielded(event, on_event))
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        worker.start()
        return worker

    def stop(self) -> None:
        """Ask the running job to end after its current step or image."""
        if self.job is not None:
            self.job.stop()

    def _yielded(self, event, on_event: Callable) -> None:
        try:
            self.last_event = event
            self.progress.setValue(int(PROGRESS_UNITS * min(1.0, max(0.0, event.progress))))
            if event.kind is EventKind.ERROR:
                self.status.setText(f"{self.what} failed: {event.error}")
                show_error(event.error)
            elif event.kind is EventKind.DONE:
                self._show_done(event)
            elif event.message and event.kind is not EventKind.RESULT:
                self.status.setText(event.message)
            if self.plot is not None:
                if event.kind is EventKind.STEP and event.step % 5 == 0:
                    self.plot.add(event.step, event.loss)
                elif event.kind is EventKind.EVALUATION:
                    self.plot.add(event.step, event.loss, event.val_loss)
            on_event(event)
        except RuntimeError:  # the widget was deleted (viewer closed): end the job
            self.stop()

    def _show_done(self, event) -> None:
        text = f"done: {event.message}"
        if event.warnings:
            text += "\nCheck before trusting it:\n• " + "\n• ".join(event.warnings)
            count = len(event.warnings)
            show_warning(f"MatSeg: {count} warning{'s' if count > 1 else ''}, see the dock")
        self.status.setText(text)

    def _errored(self, exc: Exception) -> None:
        show_error(f"{self.what} failed: {type(exc).__name__}: {exc}")

    def _finished(self) -> None:
        job, on_done = self.job, self._on_done
        self.worker = self.job = self._on_done = None
        try:
            self.start_button.setEnabled(True)
            self.stop_button.setEnabled(False)
            self.progress.setValue(PROGRESS_UNITS)
            if on_done is not None:
                on_done(job.result if job is not None else None)
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
        from ..api import save_with_fallback
        from pathlib import Path

        saved, note = save_with_fallback(entry.bundle.save, Path(path))
        entry.path = str(saved)
        if note:
            show_warning(note)
        else:
            show_info(f"Saved to {saved}")
        return saved
