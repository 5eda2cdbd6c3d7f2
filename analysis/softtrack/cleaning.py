"""The cleaned Drell-Yan control region (docs/physics.md sec. 5; thesis sec. 6.1).

Events with a Z -> mu mu of high pT are turned into Z -> nu nu-like events: both muons'
pT vectors are added to p_T^miss, the muons and the tracks, PF candidates and photons
within DeltaR < 0.05 of them and the jets within DeltaR < 0.4 are removed, and every event
observable is recomputed from what is left.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from . import objects as obj
from .config import DY_CUTS


def dimuon_candidates(muons, cuts=DY_CUTS):
    """Per event: the leading two isolated muons if they form an opposite-charge pair with
    75 < m <= 105 GeV and pT(mumu) > 200 GeV. Returns (mask, muon pair array [n, 2], mass, pt)."""
    good = muons[(muons.pt > cuts.muon_pt) & (abs(muons.eta) < 2.4) & (muons.pfRelIso03_all < cuts.rel_iso)]
    two = ak.num(good) >= 2
    pair = ak.pad_none(good, 2, clip=True)
    m1, m2 = pair[:, 0], pair[:, 1]
    px = m1.pt * np.cos(m1.phi) + m2.pt * np.cos(m2.phi)
    py = m1.pt * np.sin(m1.phi) + m2.pt * np.sin(m2.phi)
    pz = m1.pt * np.sinh(m1.eta) + m2.pt * np.sinh(m2.eta)
    e = np.sqrt((m1.pt * np.cosh(m1.eta)) ** 2 + 0.10566**2) + np.sqrt((m2.pt * np.cosh(m2.eta)) ** 2 + 0.10566**2)
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
    pt = np.hypot(px, py)
    ok = two & (m1.charge * m2.charge < 0) & (mass > cuts.mass_low) & (mass <= cuts.mass_high) & (pt > cuts.ptz)
    ok = ak.to_numpy(ak.fill_none(ok, False))
    return ok, pair, ak.to_numpy(ak.fill_none(mass, 0.0)), ak.to_numpy(ak.fill_none(pt, 0.0))


def clean_events(pair, muons, jets, tracks, photons, pfcands, met_pt, met_phi, cuts=DY_CUTS):
    """Remove the muon pair from events (already selected): returns the cleaned collections
    and the new p_T^miss (pt, phi) with both muons added."""
    pair = ak.drop_none(pair)
    px = met_pt * np.cos(met_phi) + ak.sum(pair.pt * np.cos(pair.phi), axis=1)
    py = met_pt * np.sin(met_phi) + ak.sum(pair.pt * np.sin(pair.phi), axis=1)
    out = {
        "muons": muons[obj.far_from(muons, pair, cuts.muon_cleaning_dr)],
        "jets": jets[obj.far_from(jets, pair, cuts.jet_cleaning_dr)],
        "tracks": tracks[obj.far_from(tracks, pair, cuts.muon_cleaning_dr)],
        "photons": photons[obj.far_from(photons, pair, cuts.muon_cleaning_dr)],
        "pfcands": None if pfcands is None else pfcands[obj.far_from(pfcands, pair, cuts.muon_cleaning_dr)],
    }
    return out, np.hypot(px, py), np.arctan2(py, px)
