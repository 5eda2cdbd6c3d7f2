"""Objects, event observables and the preselection of the semi-visible-jet search.

SVJ talk, "I) Trigger & Preselection" and "3D-ABCDisCoTEC Method - Input Features":

    M_T^2 = (E_T,JJ + p_T^miss)^2 - |p_T,JJ + p_T^miss|^2,  E_T,JJ = sqrt(m_JJ^2 + p_T,JJ^2)
    R_T = p_T^miss / M_T,  z(a, b) = min(p_T,a, p_T,b) / (p_T,a + p_T,b)

with JJ the two leading AK8 jets (the CMS SVJ transverse-mass convention, CMS-EXO-19-020
sec. 4). Every function takes flat numpy arrays or awkward arrays of whole chunks.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .config import Preselection, Trigger

#: the 12 event-tagger inputs, in the order of the SVJ talk's input-feature table
EVENT_FEATURES: tuple[str, ...] = (
    "met", "met_phi", "rt", "dphi_min", "dphi_j0j1", "dphi_j0met", "dphi_j1met",
    "z_j0j1", "z_j0met", "z_j1met", "lundnet_j0", "lundnet_j1",
)


def delta_phi(a, b):
    """|phi_a - phi_b| folded into [0, pi]."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % (2.0 * np.pi)
    return np.where(d > np.pi, 2.0 * np.pi - d, d)


def good_fatjets(fatjets, cuts: Preselection):
    """AK8 jets with p_T >= fatjet_pt and |eta| <= fatjet_eta (p_T-ordered as stored)."""
    return fatjets[(fatjets.pt >= cuts.fatjet_pt) & (np.abs(fatjets.eta) <= cuts.fatjet_eta)]


def scouting_ht(jets, trigger: Trigger) -> np.ndarray:
    """Scalar sum of AK4 jet p_T above trigger.jet_pt within |eta| < trigger.jet_eta (GeV)."""
    sel = (jets.pt > trigger.jet_pt) & (np.abs(jets.eta) < trigger.jet_eta)
    return ak.to_numpy(ak.sum(jets.pt[sel], axis=1)).astype(np.float64)


def leading_two(fatjets) -> dict[str, np.ndarray]:
    """pt, eta, phi, mass of the two leading jets (0 where absent) and the jets' local index."""
    padded = ak.pad_none(fatjets, 2, clip=True)
    out = {}
    for k in (0, 1):
        for f in ("pt", "eta", "phi", "mass"):
            out[f"j{k}_{f}"] = ak.to_numpy(ak.fill_none(padded[:, k][f], 0.0)).astype(np.float64)
    return out


def event_observables(j: dict[str, np.ndarray], met: np.ndarray, met_phi: np.ndarray) -> dict[str, np.ndarray]:
    """M_T, R_T, the DeltaPhi's, DeltaEta and the z balances of the two leading jets and
    p_T^miss (module docstring); ``j``: :func:`leading_two`."""
    px = j["j0_pt"] * np.cos(j["j0_phi"]) + j["j1_pt"] * np.cos(j["j1_phi"])
    py = j["j0_pt"] * np.sin(j["j0_phi"]) + j["j1_pt"] * np.sin(j["j1_phi"])
    pz = j["j0_pt"] * np.sinh(j["j0_eta"]) + j["j1_pt"] * np.sinh(j["j1_eta"])
    e = sum(np.sqrt((j[f"j{k}_pt"] * np.cosh(j[f"j{k}_eta"])) ** 2 + j[f"j{k}_mass"] ** 2) for k in (0, 1))
    m2 = np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0)
    et_jj = np.sqrt(m2 + px**2 + py**2)
    mx, my = met * np.cos(met_phi), met * np.sin(met_phi)
    mt = np.sqrt(np.maximum((et_jj + met) ** 2 - (px + mx) ** 2 - (py + my) ** 2, 0.0))
    dphi0, dphi1 = delta_phi(j["j0_phi"], met_phi), delta_phi(j["j1_phi"], met_phi)

    def balance(a, b):
        s = a + b
        return np.divide(np.minimum(a, b), s, out=np.zeros_like(s), where=s > 0)

    return {
        "mt": mt, "met": met, "met_phi": met_phi,
        "rt": np.divide(met, mt, out=np.zeros_like(mt), where=mt > 0),
        "dphi_min": np.minimum(dphi0, dphi1), "dphi_j0j1": delta_phi(j["j0_phi"], j["j1_phi"]),
        "dphi_j0met": dphi0, "dphi_j1met": dphi1,
        "deta": np.abs(j["j0_eta"] - j["j1_eta"]),
        "z_j0j1": balance(j["j0_pt"], j["j1_pt"]), "z_j0met": balance(j["j0_pt"], met),
        "z_j1met": balance(j["j1_pt"], met),
    }


def preselection_steps(n_fatjets: np.ndarray, ht: np.ndarray, obs: dict[str, np.ndarray],
                       trigger: Trigger, cuts: Preselection) -> list[tuple[str, np.ndarray]]:
    """The ordered cutflow steps after "all" (SVJ talk, preselection table): scouting H_T,
    two AK8 jets, M_T, R_T, DeltaPhi_min. The plane (SP: |DeltaEta| < deta_signal_plane, VP
    beyond) is a category, not a cut (:func:`signal_plane`)."""
    return [
        ("scouting_ht", ht > trigger.ht),
        ("two_fatjets", n_fatjets >= cuts.n_fatjets),
        ("mt", obs["mt"] > cuts.mt),
        ("rt", obs["rt"] > cuts.rt),
        ("dphi_min", obs["dphi_min"] < cuts.dphi_min),
    ]


def signal_plane(deta: np.ndarray, cuts: Preselection) -> np.ndarray:
    """True in the signal plane (|DeltaEta(J0, J1)| < deta_signal_plane), False in the VP."""
    return np.asarray(deta) < cuts.deta_signal_plane


def split_index(event: np.ndarray, modulus: int) -> np.ndarray:
    """The split slot (event number mod ``modulus``) of each event."""
    return (np.asarray(event).astype(np.int64) % modulus).astype(np.int64)


def abcd_region(x: np.ndarray, y: np.ndarray, x_cut: float, y_cut: float) -> np.ndarray:
    """ABCD region of each event as a letter: A (X > x_cut, Y > y_cut; the signal region),
    B (X pass, Y fail), C (X fail, Y pass), D (both fail) (analysis.stats.abcd's convention)."""
    xp, yp = np.asarray(x) > x_cut, np.asarray(y) > y_cut
    return np.where(xp & yp, "A", np.where(xp, "B", np.where(yp, "C", "D")))
