"""Signal objects of the smuon search and their overlap removal (seed 002 sec. II;
docs/smuon.md sec. 2): isolated muons, electrons and photons, hadronic taus, and wide jets
reclustered (anti-kt, R = 1.0) from the reconstructed jets.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis.columnar import delta_r, offsets

from .config import LeptonCuts, ObjectCuts, OverlapRemoval
from .kinematics import antikt_recluster


def _passes(coll: ak.Array, cuts: LeptonCuts) -> ak.Array:
    mask = (coll.pt > cuts.pt) & (abs(coll.eta) < cuts.eta)
    if cuts.rel_iso is not None:
        mask = mask & (coll.pfRelIso03_all < cuts.rel_iso)
    return coll[mask]


def far_from(coll: ak.Array, ref: ak.Array, dr_min: float) -> ak.Array:
    """The objects of ``coll`` with DeltaR > dr_min to every object of ``ref`` (same events)."""
    pairs = ak.cartesian({"a": coll, "b": ref}, axis=1, nested=True)
    dr = delta_r(pairs.a.eta, pairs.a.phi, pairs.b.eta, pairs.b.phi)
    return coll[ak.all(dr > dr_min, axis=2)]


def wide_jets(jets: ak.Array, cuts: ObjectCuts) -> ak.Array:
    """Anti-kt jets of radius ``cuts.jet_radius`` from the reconstructed jets above
    ``cuts.jet_input_pt`` (all |eta|), kept with pT > jet_pt and |eta| < jet_eta; pT-ordered
    records (pt, eta, phi, mass)."""
    inputs = jets[jets.pt > cuts.jet_input_pt]
    off = offsets(inputs)
    flat = {f: np.asarray(ak.to_numpy(ak.flatten(inputs[f])), np.float64) for f in ("pt", "eta", "phi", "mass")}
    counts, fields = antikt_recluster(off, flat["pt"], flat["eta"], flat["phi"], flat["mass"], cuts.jet_radius)
    wide = ak.unflatten(ak.zip({k: v for k, v in fields.items()}), counts)
    return wide[(wide.pt > cuts.jet_pt) & (abs(wide.eta) < cuts.jet_eta)]


def signal_objects(events, cuts: ObjectCuts, overlap: OverlapRemoval) -> dict[str, ak.Array]:
    """Muons, electrons, taus, photons and wide jets after overlap removal, in the order of
    seed 002 sec. II: jets near muons and photons (dr_jet_mu_gamma) and near electrons and taus
    (dr_jet_e_tau) are removed; then electrons near the remaining jets, and photons near
    electrons and muons."""
    muons = _passes(events.Muon, cuts.muons)
    electrons = _passes(events.Electron, cuts.electrons)
    taus = _passes(events.Tau, cuts.taus)
    photons = _passes(events.Photon, cuts.photons)
    jets = wide_jets(events.Jet, cuts)
    jets = far_from(far_from(jets, muons, overlap.dr_jet_mu_gamma), photons, overlap.dr_jet_mu_gamma)
    jets = far_from(far_from(jets, electrons, overlap.dr_jet_e_tau), taus, overlap.dr_jet_e_tau)
    electrons = far_from(electrons, jets, overlap.dr_e_jet)
    photons = far_from(far_from(photons, electrons, overlap.dr_gamma_lepton), muons, overlap.dr_gamma_lepton)
    return {"muons": muons, "electrons": electrons, "taus": taus, "photons": photons, "jets": jets}
