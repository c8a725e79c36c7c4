"""The plugin's sample micrograph (NASA Ni superalloy, MIT licence; see data/ATTRIBUTION.md)."""

from __future__ import annotations

from importlib.resources import files

import numpy as np

SAMPLE_FILE = "ni_superalloy_spot7_180d_3.png"


def sample_image() -> np.ndarray:
    """Return the 512x512 8-bit sample micrograph."""
    from .core.imageio import read_image

    return read_image(files("napari_matseg") / "data" / SAMPLE_FILE)


def ni_superalloy() -> list[tuple]:
    """Return napari layer data for the sample: one grey image with its attribution."""
    return [(sample_image(), {"name": "Ni superalloy (NASA)", "colormap": "gray",
                              "metadata": {"source": "nasa/pretrained-microscopy-models, MIT; "
                                                     "Stuckner et al., npj Comput. Mater. 8, 200 (2022)"}},
             "image")]
