"""Measurements a lab report needs from a segmentation: phase fractions with a confidence interval
over a batch (:mod:`.fractions`), the ASTM E112 grain size of a grain-boundary class
(:mod:`.grains`, on the boundaries thinned to a closed network by :mod:`.boundary_network`)
and particle statistics of a phase (:mod:`.particles`); which of them a model's self-check casts
doubt on (:mod:`.selfcheck`). No Qt; lengths in µm
when the pixel size is known, in pixels otherwise."""

from .boundary_network import BoundaryNetworkConfig, closed_network
from .fractions import FractionSummary, area_fractions, summarise_fractions
from .grains import (GrainSize, astm_g_from_density, astm_g_from_intercept, grain_size,
                     wide_lines_doubt)
from .particles import ParticleStatistics, particle_statistics
from .selfcheck import DOUBTFUL, SelfCheckDoubts, self_check_doubts

__all__ = ["DOUBTFUL", "BoundaryNetworkConfig", "FractionSummary", "GrainSize", "ParticleStatistics",
           "SelfCheckDoubts", "area_fractions", "astm_g_from_density", "astm_g_from_intercept",
           "closed_network", "grain_size", "particle_statistics", "self_check_doubts",
           "summarise_fractions", "wide_lines_doubt"]
