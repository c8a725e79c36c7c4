"""Stand-ins for a person and a microscope, for tests and benchmarks: simulated strokes from a
dense label (:mod:`.simulate`) and synthetic micrographs with known phases (:mod:`.synthetic`).
Not used by the plugin itself."""

from .simulate import ScribbleSimulation, simulate_corrections, simulate_scribbles
from .synthetic import voronoi_micrograph

__all__ = ["ScribbleSimulation", "simulate_corrections", "simulate_scribbles", "voronoi_micrograph"]
