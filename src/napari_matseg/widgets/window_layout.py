"""The window ``napari-matseg`` opens: sized to the screen, with the docks arranged so that the
canvas keeps at least half of its width, and the image fitted once they are placed.

napari opens at its layout's size hint on a fresh profile (910 x 595 on a 1366 x 768 screen,
1066 x 651 on larger ones), and its layer controls need 320 px: with the MatSeg docks in a
column of their own, the canvas was 180 to 360 px wide. Where two columns would leave the
canvas less than half the window, the MatSeg docks go into napari's column: Annotate & Train
below the layer controls, the layer list and the other docks as tabs beside the controls.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

SCREEN_SHARE = 0.9
DOCK_HANDLE = 10  # the splitter between the canvas and a dock column, with margins
MIN_CANVAS_SHARE = 0.5


def fitted_window_size(available: tuple[int, int], current: tuple[int, int],
                       share: float = SCREEN_SHARE) -> tuple[int, int]:
    """Return the window size to open at on a screen whose free area is ``available`` (width,
    height): ``share`` of it, or the ``current`` size where that is larger, never beyond it."""
    return tuple(min(free, max(now, int(free * share))) for free, now in zip(available, current))


def canvas_width(window_width: int, columns: list[int], handle: int = DOCK_HANDLE) -> int:
    """Return the canvas width left by dock ``columns`` of these widths in a window
    ``window_width`` wide."""
    return window_width - sum(columns) - handle * len(columns)


def needs_one_column(window_width: int, napari_column: int, matseg_column: int) -> bool:
    """True when napari's dock column and MatSeg's side by side would leave the canvas less than
    half the window."""
    return canvas_width(window_width, [napari_column, matseg_column]) < MIN_CANVAS_SHARE * window_width


def fit_window(viewer, docks: list) -> None:
    """Size ``viewer``'s window to its screen (unless maximised or full screen), put ``docks``
    (the MatSeg dock widgets) in napari's column when two columns would squeeze the canvas, and
    fit the image to the canvas."""
    window = viewer.window._qt_window
    if not (window.isMaximized() or window.isFullScreen()):
        screen = window.screen() or QApplication.primaryScreen()
        free = screen.availableGeometry()
        width, height = fitted_window_size((free.width(), free.height()),
                                           (window.width(), window.height()))
        window.resize(width, height)
        window.move(free.x() + (free.width() - width) // 2, free.y() + (free.height() - height) // 2)
    controls = viewer.window._qt_viewer.dockLayerControls
    docks = [dock for dock in docks if dock is not None and not dock.isFloating()]
    if docks and needs_one_column(window.width(), controls.minimumSizeHint().width(),
                                  max(dock.sizeHint().width() for dock in docks)):
        stack_in_napari_column(viewer, docks)
    QApplication.processEvents()
    viewer.reset_view()


def stack_in_napari_column(viewer, docks: list) -> None:
    """Move the first of ``docks`` below napari's layer controls, and the others in as tabs
    beside the layer controls and the layer list (a tab group is as tall as its tallest
    member's minimum: Predict & Inspect below would make the window taller than a 768-px
    screen)."""
    window = viewer.window._qt_window
    qt_viewer = viewer.window._qt_viewer
    controls, layer_list = qt_viewer.dockLayerControls, qt_viewer.dockLayerList
    first = docks[0]
    window.splitDockWidget(controls, first, Qt.Orientation.Vertical)
    for dock in [layer_list, *docks[1:]]:
        window.tabifyDockWidget(controls, dock)
    controls.raise_()
    QApplication.processEvents()
    column = controls.height() + first.height()
    top = controls.minimumSizeHint().height()
    window.resizeDocks([controls, first], [top, max(1, column - top)], Qt.Orientation.Vertical)
