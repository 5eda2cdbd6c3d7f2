"""The 37 network inputs of the smuon search (seed 002 Table 2, sec. II and III.2;
docs/smuon.md sec. 3): 27 low- and high-level features and 10 derived ones, per event.

Low level: the multiplicities of electrons, muons and jets; pT, eta, phi of the two leading
jets, electrons and muons (NULL_VALUE for an absent object, seed footnote 2); p_T^miss and its
azimuth. High level: m_ll (the two leading muons), M_CT, M_T2 (massless invisible test
particle), H_T (scalar sum of the jets' pT). Derived: the muons' scalar pT sum S_T and
vector pT sum pT(ll), their DeltaR, DeltaPhi and DeltaEta; the ratios of hadronic to
leptonic activity pT(j1)/pT(mu1), H_T/pT(mu1), pT(j1)/S_T, H_T/S_T (the dynamic-veto
proxies, docs/smuon.md sec. 4), and m_eff = H_T + S_T + p_T^miss. In the ratios an absent jet
counts as no activity (0), never NULL_VALUE.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis.columnar import delta_phi
from analysis.constants import MUON_MASS

from .kinematics import mct, mt2

LOW_LEVEL: tuple[str, ...] = (
    "n_electrons", "n_muons", "n_jets",
    "jet1_pt", "jet1_eta", "jet1_phi", "jet2_pt", "jet2_eta", "jet2_phi",
    "electron1_pt", "electron1_eta", "electron1_phi", "electron2_pt", "electron2_eta", "electron2_phi",
    "muon1_pt", "muon1_eta", "muon1_phi", "muon2_pt", "muon2_eta", "muon2_phi",
    "met", "met_phi",
)
HIGH_LEVEL: tuple[str, ...] = ("m_ll", "mct", "mt2", "ht")
DERIVED: tuple[str, ...] = (
    "st", "pt_ll", "dr_mumu", "dphi_mumu", "deta_mumu",
    "ratio_jet1_mu1", "ratio_ht_mu1", "ratio_jet1_st", "ratio_ht_st", "m_eff",
)
#: the network's input order (37 columns)
FEATURES: tuple[str, ...] = (*LOW_LEVEL, *HIGH_LEVEL, *DERIVED)
assert len(LOW_LEVEL) + len(HIGH_LEVEL) == 27 and len(DERIVED) == 10


def _leading(coll: ak.Array, k: int, field: str, null: float) -> np.ndarray:
    padded = ak.pad_none(coll[field], k, clip=True)
    return np.asarray(ak.to_numpy(ak.fill_none(padded[:, k - 1], null)), np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def event_features(objects: dict[str, ak.Array], met: np.ndarray, met_phi: np.ndarray, null: float) -> dict[str, np.ndarray]:
    """Every feature of FEATURES per event (float64 arrays of the chunk's length). Events
    with fewer than two muons get NULL_VALUE for the pair's observables (m_ll, M_CT, M_T2 and
    the derived ones): the preselection needs two."""
    mu, el, jets = objects["muons"], objects["electrons"], objects["jets"]
    out: dict[str, np.ndarray] = {
        "n_electrons": ak.to_numpy(ak.num(el)).astype(np.float64),
        "n_muons": ak.to_numpy(ak.num(mu)).astype(np.float64),
        "n_jets": ak.to_numpy(ak.num(jets)).astype(np.float64),
    }
    for name, coll in (("jet", jets), ("electron", el), ("muon", mu)):
        for k in (1, 2):
            for f in ("pt", "eta", "phi"):
                out[f"{name}{k}_{f}"] = _leading(coll, k, f, null)
    met = np.asarray(met, np.float64)
    met_phi = np.asarray(met_phi, np.float64)
    out["met"], out["met_phi"] = met, met_phi
    two = out["n_muons"] >= 2
    pt1, eta1, phi1 = (np.where(two, out[f"muon1_{f}"], 0.0) for f in ("pt", "eta", "phi"))
    pt2, eta2, phi2 = (np.where(two, out[f"muon2_{f}"], 0.0) for f in ("pt", "eta", "phi"))
    px1, py1, pz1 = pt1 * np.cos(phi1), pt1 * np.sin(phi1), pt1 * np.sinh(eta1)
    px2, py2, pz2 = pt2 * np.cos(phi2), pt2 * np.sin(phi2), pt2 * np.sinh(eta2)
    e = np.sqrt(px1**2 + py1**2 + pz1**2 + MUON_MASS**2) + np.sqrt(px2**2 + py2**2 + pz2**2 + MUON_MASS**2)
    m_ll = np.sqrt(np.maximum(e**2 - (px1 + px2) ** 2 - (py1 + py2) ** 2 - (pz1 + pz2) ** 2, 0.0))
    mt2_values = np.full(two.size, null)
    if two.any():
        mt2_values[two] = mt2(MUON_MASS, px1[two], py1[two], MUON_MASS, px2[two], py2[two],
                              (met * np.cos(met_phi))[two], (met * np.sin(met_phi))[two], 0.0)
    ht = ak.to_numpy(ak.sum(jets.pt, axis=1)).astype(np.float64)
    jet1 = np.where(out["n_jets"] > 0, out["jet1_pt"], 0.0)
    st = pt1 + pt2
    derived = {
        "m_ll": m_ll, "mct": mct(MUON_MASS, px1, py1, MUON_MASS, px2, py2), "mt2": mt2_values, "ht": ht,
        "st": st, "pt_ll": np.hypot(px1 + px2, py1 + py2),
        "dr_mumu": np.hypot(eta1 - eta2, delta_phi(phi1, phi2)), "dphi_mumu": np.abs(delta_phi(phi1, phi2)),
        "deta_mumu": np.abs(eta1 - eta2),
        "ratio_jet1_mu1": _ratio(jet1, pt1), "ratio_ht_mu1": _ratio(ht, pt1),
        "ratio_jet1_st": _ratio(jet1, st), "ratio_ht_st": _ratio(ht, st), "m_eff": ht + st + met,
    }
    for k, v in derived.items():
        out[k] = v if k in ("ht",) else np.where(two, v, null)
    out["mt2"] = mt2_values
    return {k: out[k] for k in FEATURES}


def feature_matrix(features: dict[str, np.ndarray], mask: np.ndarray | None = None) -> np.ndarray:
    """(n, 37) float32 matrix in FEATURES order (rows of ``mask``)."""
    cols = [np.asarray(features[k]) if mask is None else np.asarray(features[k])[mask] for k in FEATURES]
    return np.ascontiguousarray(np.stack(cols, axis=1).astype(np.float32))
