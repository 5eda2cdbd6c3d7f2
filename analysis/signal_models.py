"""Signal models: cross sections and lifetimes of the new-physics benchmarks.

Higgsino pair production (all chargino/neutralino pairs) with the chargino decaying to the
lightest neutralino and a soft pion: the grid of thesis Table 2.1 (NLO+NLL cross sections)
and the chargino lifetime as a function of the mass splitting.
"""

from __future__ import annotations

import numpy as np

from analysis.constants import PION_MASS

# --- Signal model (thesis Table 2.1; docs/physics.md sec. 10) ----------------------------------
#: chargino mass (GeV) -> (list of Delta m+- in GeV, cross section in pb)
SIGNAL_GRID: dict[float, tuple[tuple[float, ...], float]] = {
    100.0: ((0.16, 0.26, 0.36, 0.46, 0.56, 0.76, 0.96, 1.26, 1.76), 16.79721),
    115.0: ((0.17, 0.27, 0.37, 0.47, 0.57, 0.77, 0.97, 1.27, 1.77), 10.83394),
    140.0: ((0.18, 0.28, 0.38, 0.48, 0.58, 0.78, 0.98, 1.28, 1.78), 5.16630),
    160.0: ((0.19, 0.29, 0.39, 0.49, 0.59, 0.79, 0.99, 1.29, 1.79), 3.10902),
    180.0: ((0.19, 0.29, 0.39, 0.49, 0.59, 0.79, 0.99, 1.29, 1.79), 2.04076),
    200.0: ((0.20, 0.30, 0.40, 0.50, 0.60, 0.80, 1.00, 1.30, 1.80), 1.33561),
    250.0: ((0.21, 0.31, 0.41, 0.51, 0.61, 0.81, 1.01, 1.31, 1.81), 0.57731),
    300.0: ((0.22, 0.32, 0.42, 0.52, 0.62, 0.82, 1.02, 1.32, 1.82), 0.28486),
    500.0: ((0.22, 0.32, 0.42, 0.52, 0.62, 0.82, 1.02, 1.32, 1.82), 0.03385),
}
#: benchmark points (m_chargino, dm) of the default sample
SIGNAL_BENCHMARKS: tuple[tuple[float, float], ...] = ((115.0, 0.27), (140.0, 0.58), (200.0, 1.00))

#: c*tau of the chargino (cm) at the reference Delta m (docs/physics.md sec. 10)
CHARGINO_CTAU_REF_CM = 1.1
CHARGINO_DM_REF = 0.3


def chargino_ctau_cm(dm: float | np.ndarray) -> float | np.ndarray:
    """Proper decay length c*tau (cm) of the chargino for a mass splitting dm (GeV).

    c*tau = 1.1 cm * (dm / 300 MeV)^-3 * (1 - m_pi^2 / dm^2)^-1/2 (docs/physics.md sec. 10).
    Defined for dm > m_pi.
    """
    dm = np.asarray(dm, dtype=np.float64)
    if np.any(dm <= PION_MASS):
        raise ValueError(f"chargino decay to a pion needs dm > m_pi = {PION_MASS} GeV, got {dm}")
    out = CHARGINO_CTAU_REF_CM * (dm / CHARGINO_DM_REF) ** -3 / np.sqrt(1.0 - PION_MASS**2 / dm**2)
    return float(out) if out.ndim == 0 else out


def signal_xsec_pb(m_chargino: float) -> float:
    """Higgsino production cross section (pb) at a chargino mass, log-interpolated in Table 2.1."""
    masses = np.array(sorted(SIGNAL_GRID))
    if not masses[0] <= m_chargino <= masses[-1]:
        raise ValueError(
            f"chargino mass {m_chargino} GeV outside the signal grid "
            f"[{masses[0]:g}, {masses[-1]:g}] GeV"
        )
    xs = np.log([SIGNAL_GRID[m][1] for m in masses])
    return float(np.exp(np.interp(m_chargino, masses, xs)))
