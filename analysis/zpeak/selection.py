"""Dimuon selection of the Z -> mu mu example: selected muons, the leading pair, its mass and pT."""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis.constants import MUON_MASS

from .config import MuonCuts


def selected_muons(muons: ak.Array, cuts: MuonCuts) -> ak.Array:
    """Muons passing pT, |eta|, isolation and (if configured and present) the ID flag."""
    mask = (muons.pt > cuts.pt) & (abs(muons.eta) < cuts.eta) & (muons.pfRelIso03_all < cuts.rel_iso)
    if cuts.id:
        mask = mask & (muons[cuts.id] if cuts.id in muons.fields else True)
    return muons[mask]


def leading_pair(muons: ak.Array) -> dict[str, np.ndarray]:
    """The two leading muons (pT-ordered input) of each event: whether they exist, their
    charge product, leading pT, and the pair's invariant mass and pT (GeV; 0 without a pair).
    Muons are taken with the muon mass."""
    two = ak.to_numpy(ak.num(muons) >= 2)
    padded = ak.pad_none(muons, 2, clip=True)
    m1, m2 = padded[:, 0], padded[:, 1]

    def first(x):
        return ak.to_numpy(ak.fill_none(x, 0.0)).astype(np.float64)

    pt1, eta1, phi1, q1 = first(m1.pt), first(m1.eta), first(m1.phi), first(m1.charge)
    pt2, eta2, phi2, q2 = first(m2.pt), first(m2.eta), first(m2.phi), first(m2.charge)
    px = pt1 * np.cos(phi1) + pt2 * np.cos(phi2)
    py = pt1 * np.sin(phi1) + pt2 * np.sin(phi2)
    pz = pt1 * np.sinh(eta1) + pt2 * np.sinh(eta2)
    e = np.sqrt((pt1 * np.cosh(eta1)) ** 2 + MUON_MASS**2) + np.sqrt((pt2 * np.cosh(eta2)) ** 2 + MUON_MASS**2)
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    return {"two_muons": two, "charge_product": q1 * q2, "leading_pt": pt1,
            "mass": np.where(two, mass, 0.0), "pt": np.where(two, np.hypot(px, py), 0.0)}
