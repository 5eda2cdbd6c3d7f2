"""Track helix kernels: closest approach, impact parameters, helical truth matching.

The helix of thesis sec. 3.1 (eq. 3.1) in the convention of :mod:`analysis.contract`: a
track of charge q, pT, azimuth phi0 and dip angle lambda (tan(lambda) = sinh(eta)) at its
reference point (x0, y0, z0) is

    x(t) = x0 + R (sin(phi0) - sin(phi0 - t))
    y(t) = y0 + R (cos(phi0 - t) - cos(phi0))
    z(t) = z0 + R tan(lambda) t,          R = pT R1 / q  (signed; R1 = 87.78 cm at 3.8 T)

Numba kernels on flat float64 arrays with thin awkward wrappers, one concept a module:
:mod:`~analysis.helix.closest_approach` (the signs and degenerate inputs are documented
there), :mod:`~analysis.helix.impact`, :mod:`~analysis.helix.matching` and
:mod:`~analysis.helix.charge` (generator charge from the PDG id).
"""

from ._math import ETA_CLIP, PT_FLOOR_GEV, radius_constant_cm
from .charge import gen_charge
from .closest_approach import (
    NEWTON_MAX_ITER,
    NEWTON_STEP_CONVERGED,
    T_TOLERANCE,
    ClosestApproach,
    closest_approach,
    closest_approach_jagged,
)
from .impact import (
    SERIES_THRESHOLD,
    ImpactParameters,
    StraightLineImpact,
    impact_parameters,
    straight_line_impact,
)
from .matching import (
    DELTA_R_MATCH_MAX,
    HELICAL_MATCH_MAX_DR_EXTRAPOLATED,
    HELICAL_MATCH_MAX_DXYZ_CM,
    HELICAL_PRESEL_MAX_DETA,
    HELICAL_PRESEL_MAX_DPHI0,
    HELICAL_PRESEL_MAX_REL_DPT,
    MATCH_DELTA_R,
    MATCH_HELICAL,
    MATCH_NONE,
    MatchPairs,
    TrackMatch,
    delta_r_match,
    helical_match,
    helical_match_jagged,
    helical_match_pairs,
)

__all__ = [
    # numerical settings
    "ETA_CLIP",
    "PT_FLOOR_GEV",
    "NEWTON_MAX_ITER",
    "NEWTON_STEP_CONVERGED",
    "T_TOLERANCE",
    "SERIES_THRESHOLD",
    "radius_constant_cm",
    # closest approach
    "ClosestApproach",
    "closest_approach",
    "closest_approach_jagged",
    # impact parameters
    "StraightLineImpact",
    "straight_line_impact",
    "ImpactParameters",
    "impact_parameters",
    # generator charge
    "gen_charge",
    # truth matching
    "HELICAL_MATCH_MAX_DXYZ_CM",
    "HELICAL_MATCH_MAX_DR_EXTRAPOLATED",
    "HELICAL_PRESEL_MAX_REL_DPT",
    "HELICAL_PRESEL_MAX_DETA",
    "HELICAL_PRESEL_MAX_DPHI0",
    "DELTA_R_MATCH_MAX",
    "MATCH_NONE",
    "MATCH_HELICAL",
    "MATCH_DELTA_R",
    "TrackMatch",
    "MatchPairs",
    "helical_match",
    "delta_r_match",
    "helical_match_pairs",
    "helical_match_jagged",
]
