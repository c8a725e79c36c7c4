"""napari-matseg: segment micrographs from a few painted strokes.

The headless engine lives in :mod:`napari_matseg.core`; the napari widgets are thin
callers into it, and so is the ``matseg`` command line.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
