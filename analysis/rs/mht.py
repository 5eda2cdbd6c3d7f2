"""Hard MHT of seed 004 eq. 2.6: |-sum pT| of the jets above an analysis' thresholds."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from analysis.rs.arrays import _as_f8, _as_offsets


@nb.njit(cache=True)
def _hard_mht_kernel(pt, eta, phi, offsets, pt_min, eta_max):
    n_ev = offsets.shape[0] - 1
    mht = np.zeros(n_ev)
    mphi = np.zeros(n_ev)
    ht = np.zeros(n_ev)
    lead_phi = np.full(n_ev, np.nan)
    for e in range(n_ev):
        mx = 0.0
        my = 0.0
        best = -1.0
        for j in range(offsets[e], offsets[e + 1]):
            if pt[j] > pt_min and abs(eta[j]) < eta_max:
                mx -= pt[j] * math.cos(phi[j])
                my -= pt[j] * math.sin(phi[j])
                ht[e] += pt[j]
                if pt[j] > best:
                    best = pt[j]
                    lead_phi[e] = phi[j]
        mht[e] = math.sqrt(mx * mx + my * my)
        mphi[e] = math.atan2(my, mx)
    return mht, mphi, ht, lead_phi


def hard_mht(
    pt, eta, phi, offsets,
    pt_min: float,
    eta_max: float,
) -> dict[str, np.ndarray]:
    """Hard MHT of seed 004 eq. 2.6 per event: |-sum pT| of jets with pT > pt_min, |eta| < eta_max.

    Returns a dict with ``mht`` (GeV), ``mht_phi`` (rad), ``ht`` (scalar sum, GeV) and
    ``leading_phi`` (azimuth of the leading selected jet, NaN without jets), each per event.
    ``pt_min`` (GeV) and ``eta_max`` are the analysis' jets of the hard MHT.
    """
    p = _as_f8("pt", pt)
    off = _as_offsets("offsets", offsets, p.size)
    mht, mphi, ht, lphi = _hard_mht_kernel(p, _as_f8("eta", eta), _as_f8("phi", phi), off,
                                           float(pt_min), float(eta_max))
    return {"mht": mht, "mht_phi": mphi, "ht": ht, "leading_phi": lphi}
