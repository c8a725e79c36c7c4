"""Creating and updating the napari layers the widgets work with; never touching painted data."""

from __future__ import annotations

import numpy as np

from ..core.bundle import default_colours, default_class_names

CLASSES_KEY = "matseg_classes"
IMAGE_KEY = "matseg_image"
ROLE_KEY = "matseg_role"
DIAGNOSIS_KEY = "matseg_diagnosis"  # the self-check of the model that predicted a phases layer


def micrograph_layers(viewer):
    """Return the viewer's Image layers that hold micrographs (not our uncertainty results)."""
    from napari.layers import Image

    return [layer for layer in viewer.layers
            if isinstance(layer, Image) and layer.metadata.get(ROLE_KEY) is None]


def scribble_layers(viewer, image_name: str | None = None):
    """Return the scribble Labels layers (of ``image_name`` only, when given)."""
    from napari.layers import Labels

    return [layer for layer in viewer.layers if isinstance(layer, Labels)
            and layer.metadata.get(ROLE_KEY) == "scribbles"
            and (image_name is None or layer.metadata.get(IMAGE_KEY) == image_name)]


def class_table(layer) -> list[dict]:
    """Return the classes stored on a layer: ``[{"name": ..., "colour": "#rrggbb"}, ...]``."""
    return list(layer.metadata.get(CLASSES_KEY, []))


def default_classes(n: int = 2) -> list[dict]:
    return [{"name": name, "colour": colour}
            for name, colour in zip(default_class_names(n), default_colours(n))]


def class_colormap(classes: list[dict]):
    """Return the napari colormap that paints label k with the colour of class k."""
    from napari.utils.colormaps import DirectLabelColormap

    colours = {i + 1: c["colour"] for i, c in enumerate(classes)}
    colours[0] = "transparent"
    colours[None] = "#808080"
    return DirectLabelColormap(color_dict=colours)


def apply_classes(layer, classes: list[dict]) -> None:
    """Store ``classes`` on a Labels layer, colour its labels 1..K with them, and name them in
    its features, so napari's status bar shows the class under the cursor."""
    import pandas as pd

    layer.metadata[CLASSES_KEY] = [dict(c) for c in classes]
    layer.colormap = class_colormap(classes)
    layer.features = pd.DataFrame({"index": list(range(len(classes) + 1)),
                                   "class": ["unlabelled"] + [c["name"] for c in classes]})


def uncertainty_colormap():
    """Return a colormap for uncertainty over a micrograph: transparent where the model is
    certain, through orange to opaque yellow where classes are equally likely."""
    from napari.utils.colormaps import Colormap

    return Colormap([[1.0, 0.3, 0.0, 0.0], [1.0, 0.5, 0.0, 0.55], [1.0, 1.0, 0.2, 0.95]],
                    name="matseg uncertainty")


def painted_pixels(layer) -> int:
    """Return how many pixels of a scribble layer are painted."""
    return int(np.count_nonzero(np.asarray(layer.data)))


def image_scribbles(viewer, image_name: str, preferred: str | None = None):
    """Return the scribble layer of ``image_name`` that training uses: ``preferred`` when it is
    one of them, else the one with the most strokes (the newest among equals), else None."""
    layers = scribble_layers(viewer, image_name)
    if not layers:
        return None
    named = [layer for layer in layers if layer.name == preferred]
    if named:
        return named[0]
    return max(reversed(layers), key=painted_pixels)


def new_scribble_layer(viewer, image_layer, classes: list[dict] | None = None):
    """Add an empty Labels layer for painting on ``image_layer`` and return it."""
    shape = image_layer.data.shape[:2]
    name = f"{image_layer.name} scribbles"
    if name in viewer.layers:
        i = 2
        while f"{name} {i}" in viewer.layers:
            i += 1
        name = f"{name} {i}"
    layer = viewer.add_labels(np.zeros(shape, np.uint8), name=name, scale=image_layer.scale[-2:],
                              translate=image_layer.translate[-2:],
                              metadata={IMAGE_KEY: image_layer.name, ROLE_KEY: "scribbles"})
    apply_classes(layer, classes or default_classes(2))
    layer.brush_size = 5
    layer.mode = "paint"
    layer.selected_label = 1
    return layer


def show_result_layer(viewer, name: str, data: np.ndarray, like, classes: list[dict] | None = None,
                      kind: str = "labels", **kwargs):
    """Create or refresh a result layer called ``name``; layers the user painted are never reused.

    A layer of that name that is not one of ours (no result role) is left alone and the result
    gets a new name instead.
    """
    existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None and existing.metadata.get(ROLE_KEY) != f"result-{kind}":
        name = f"{name} (matseg)"
        existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None and existing.data.shape == data.shape:
        existing.data = data
        layer = existing
    else:
        if existing is not None:
            viewer.layers.remove(existing)
        metadata = {ROLE_KEY: f"result-{kind}", IMAGE_KEY: like.name}
        if kind == "labels":
            if classes is not None:
                metadata[CLASSES_KEY] = [dict(c) for c in classes]
                kwargs["colormap"] = class_colormap(classes)
            add = viewer.add_labels
        else:
            add = viewer.add_image
        layer = add(data, name=name, scale=like.scale[-2:], translate=like.translate[-2:],
                    metadata=metadata, **kwargs)
    if classes is not None and kind == "labels" and layer.metadata.get(CLASSES_KEY) != classes:
        apply_classes(layer, classes)
    return layer


def show_info_band(viewer, image_layer, band_rows: int):
    """Outline the excluded information band of ``image_layer`` (a Shapes layer); remove it when
    ``band_rows`` is 0. Returns the layer or None."""
    name = f"{image_layer.name} information band"
    existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None and existing.metadata.get(ROLE_KEY) != "info-band":
        return None
    if band_rows <= 0:
        if existing is not None:
            viewer.layers.remove(existing)
        return None
    height, width = image_layer.data.shape[:2]
    rect = np.array([[height - band_rows - 0.5, -0.5], [height - 0.5, width - 0.5]])
    if existing is not None:
        existing.data = [rect]
        return existing
    return viewer.add_shapes([rect], shape_type="rectangle", name=name, edge_color="#ffcc00",
                             face_color="#ffcc0033", edge_width=2, scale=image_layer.scale[-2:],
                             translate=image_layer.translate[-2:],
                             metadata={ROLE_KEY: "info-band", IMAGE_KEY: image_layer.name})


LENGTH_UNITS_IN_UM = {"micrometer": 1.0, "micron": 1.0, "um": 1.0, "µm": 1.0, "nanometer": 1e-3,
                      "nm": 1e-3, "millimeter": 1e3, "mm": 1e3, "meter": 1e6, "m": 1e6}


def layer_pixel_size(layer) -> float | None:
    """Return the µm per pixel of an image layer whose scale is in length units (as the reader
    sets it from the file's calibration), else None."""
    scale = np.asarray(layer.scale[-2:], float)
    units = getattr(layer, "units", None)
    unit = str(units[-1]) if units is not None and len(units) else "pixel"
    factor = LENGTH_UNITS_IN_UM.get(unit.lower())
    if factor is None:
        return None
    return float(scale[-1]) * factor


def show_guidance(viewer, image_layer, regions):
    """Outline ``regions`` (:class:`~napari_matseg.core.guidance.PaintRegion`, most worth first)
    on ``image_layer`` in a Shapes layer "<image> paint here", numbered 1, 2, ...; an existing
    outline layer is refilled in place (adding or removing a layer stalls the GUI thread for a few
    hundred ms under software OpenGL; refilling takes tens) and emptied when there are none.
    Returns the layer or None."""
    import pandas as pd

    name = f"{image_layer.name} paint here"
    existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None and existing.metadata.get(ROLE_KEY) != "guidance":
        return None
    boxes = [np.array([[r.box[0] - 0.5, r.box[1] - 0.5], [r.box[2] - 0.5, r.box[3] - 0.5]])
             for r in regions or []]
    features = pd.DataFrame({"rank": [str(i + 1) for i in range(len(boxes))]})
    style = {"edge_color": "#ffd400", "face_color": "#ffd40022", "edge_width": 3}
    text = {"string": "{rank}", "color": "#ffd400", "size": 14, "anchor": "upper_left"}
    if existing is not None:
        existing.data = []
        if boxes:
            existing.add_rectangles(boxes, **style)
            existing.features = features
            existing.text = text
        return existing
    if not boxes:
        return None
    return viewer.add_shapes(boxes, shape_type="rectangle", name=name, features=features, text=text,
                             scale=image_layer.scale[-2:], translate=image_layer.translate[-2:],
                             metadata={ROLE_KEY: "guidance", IMAGE_KEY: image_layer.name}, **style)


def centre_on(viewer, image_layer, region, context: float = 3.0) -> None:
    """Move the camera to ``region`` of ``image_layer``, zoomed so the region and about
    ``context`` times its size around it fill the canvas."""
    viewer.reset_view()
    height, width = image_layer.data.shape[:2]
    top, left, bottom, right = region.box
    zoom = min(height / (context * max(1, bottom - top)), width / (context * max(1, right - left)), 6.0)
    viewer.camera.zoom = viewer.camera.zoom * max(1.0, zoom)
    scale = np.asarray(image_layer.scale[-2:], float)
    translate = np.asarray(image_layer.translate[-2:], float)
    viewer.camera.center = tuple(np.asarray(region.centre) * scale + translate)
