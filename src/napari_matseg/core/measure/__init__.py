"""Measurements a lab report needs from a segmentation: phase fractions with a confidence interval
over a batch (:mod:`.fractions`), the ASTM E112 grain size of a grain-boundary class
(:mod:`.grains`) and particle statistics of a phase (:mod:`.particles`). No Qt; lengths in µm
when the pixel size is known, in pixels otherwise."""

from .fractions import FractionSummary, area_fractions, summarise_fractions
from .grains import GrainSize, astm_g_from_density, astm_g_from_intercept, grain_size
from .particles import ParticleStatistics, particle_statistics

__all__ = ["FractionSummary", "GrainSize", "ParticleStatistics", "area_fractions",
           "astm_g_from_density", "astm_g_from_intercept", "grain_size", "particle_statistics",
           "summarise_fractions"]
