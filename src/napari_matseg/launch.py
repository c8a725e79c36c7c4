"""``napari-matseg``: open napari on the sample micrograph with both MatSeg widgets docked."""

from __future__ import annotations

import argparse
import sys


def open_viewer(images: list[str] | None = None, model: str | None = None, show: bool = True):
    """Return a viewer with ``images`` (default: the sample micrograph) and the widgets docked."""
    import napari

    from .core.imageio import read_image
    from .sample_data import ni_superalloy

    viewer = napari.Viewer(title="napari-matseg", show=show)
    if images:
        from pathlib import Path

        from .reader import get_reader

        for path in images:
            reader = get_reader(path)
            if reader is not None:  # calibrated: opens with its scale in µm
                data, kwargs, _ = reader(path)[0]
                viewer.add_image(data, **kwargs)
            else:
                viewer.add_image(read_image(path), name=Path(path).stem)
    else:
        data, meta, _ = ni_superalloy()[0]
        viewer.add_image(data, **meta)
    train_dock, train = viewer.window.add_plugin_dock_widget("napari-matseg", "Annotate & Train")
    predict_dock, _ = viewer.window.add_plugin_dock_widget("napari-matseg", "Predict & Inspect")
    if model:
        train.load_model(model)
    train.new_scribble_layer()
    if show:
        from .widgets.window_layout import fit_window

        fit_window(viewer, [train_dock, predict_dock])
    return viewer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="napari-matseg",
        description="Open napari ready to paint: the sample Ni-superalloy micrograph (or your "
                    "images), a scribble layer, and the Annotate & Train / Predict & Inspect widgets.")
    parser.add_argument("images", nargs="*", help="micrographs to open instead of the sample")
    parser.add_argument("--model", help="a .matseg model to offer as the starting model")
    args = parser.parse_args(argv)
    import napari

    from .core.errors import MatsegError

    try:
        open_viewer(args.images, args.model)
    except MatsegError as exc:
        print(f"napari-matseg: error: {exc}", file=sys.stderr)
        return 2
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
