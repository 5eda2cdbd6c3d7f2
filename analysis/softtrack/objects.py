"""Physics objects (docs/physics.md sec. 2): jets, leptons, photons, taus and candidate tracks.

Functions take awkward arrays of NanoAOD-like collections (records with at least the named
fields) and return masks or derived quantities; no file I/O, no histogramming.
"""

from __future__ import annotations

import math

import awkward as ak
import numba as nb
import numpy as np

from .config import OBJECT_CUTS

#: NanoAOD jetId bits: 2 = tight, 4 = tight lepton veto
JET_ID_TIGHT_LEPVETO = 4


def delta_phi(a, b):
    """phi difference wrapped to [-pi, pi)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


@nb.njit(cache=True)
def _min_delta_r(a_off, a_eta, a_phi, b_off, b_eta, b_phi):
    out = np.full(a_eta.size, np.inf)
    for e in range(a_off.size - 1):
        for i in range(a_off[e], a_off[e + 1]):
            if not (math.isfinite(a_eta[i]) and math.isfinite(a_phi[i])):
                out[i] = np.nan  # undefined direction: never "far" from anything
                continue
            best = np.inf
            for j in range(b_off[e], b_off[e + 1]):
                dphi = abs(a_phi[i] - b_phi[j]) % (2.0 * math.pi)
                if dphi > math.pi:
                    dphi = 2.0 * math.pi - dphi
                deta = a_eta[i] - b_eta[j]
                best = min(best, deta * deta + dphi * dphi)
            out[i] = math.sqrt(best)
    return out


def _flat(coll) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = ak.to_numpy(ak.num(coll, axis=1)).astype(np.int64)
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    eta, phi = (np.asarray(ak.to_numpy(ak.flatten(coll[f], axis=1)), dtype=np.float64) for f in ("eta", "phi"))
    return offsets, eta, phi


def far_from(coll, ref, dr_min: float) -> ak.Array:
    """Mask of the objects of ``coll`` farther than ``dr_min`` in DeltaR from every object of
    ``ref`` in the same event (true when ``ref`` is empty); one numba pass, no pair arrays.
    An object of ``coll`` with a non-finite eta or phi is never far; reference objects with
    one are ignored (their DeltaR comparisons are false)."""
    a_off, a_eta, a_phi = _flat(coll)
    b_off, b_eta, b_phi = _flat(ref)
    if a_off.size != b_off.size:
        raise ValueError(f"far_from: {a_off.size - 1} events in coll, {b_off.size - 1} in ref")
    dr = _min_delta_r(a_off, a_eta, a_phi, b_off, b_eta, b_phi)
    return ak.unflatten(dr > dr_min, np.diff(a_off))


def jet_id(jets) -> ak.Array:
    """Tight lepton-veto jet ID."""
    return (jets.jetId & JET_ID_TIGHT_LEPVETO) != 0


def selected_jets(jets, pt_min: float = OBJECT_CUTS.jet_pt, eta_max: float = OBJECT_CUTS.jet_eta) -> ak.Array:
    """Jets above ``pt_min`` within |eta| < ``eta_max`` passing the tight lepton-veto ID."""
    return jets[(jets.pt > pt_min) & (abs(jets.eta) < eta_max) & jet_id(jets)]


def btagged(jets, cuts=OBJECT_CUTS) -> ak.Array:
    return jets.btagDeepB > cuts.btag_loose


def isolated_muons(muons, cuts=OBJECT_CUTS):
    return muons[(muons.pt > cuts.muon_pt) & (abs(muons.eta) < cuts.muon_eta) & (muons.pfRelIso03_all < cuts.rel_iso)]


def isolated_electrons(electrons, cuts=OBJECT_CUTS):
    return electrons[(electrons.pt > cuts.electron_pt) & (abs(electrons.eta) < cuts.electron_eta)
                     & (electrons.pfRelIso03_all < cuts.rel_iso)]


def isolated_photons(photons, cuts=OBJECT_CUTS):
    return photons[(photons.pt > cuts.photon_pt) & (abs(photons.eta) < cuts.photon_eta)
                   & (photons.pfRelIso03_all < cuts.rel_iso)]


def selected_taus(taus, cuts=OBJECT_CUTS):
    return taus[(taus.pt > cuts.tau_pt) & (abs(taus.eta) < cuts.tau_eta)]


def vector_sum(pt, phi):
    """Per-event vector sum (px, py) of a jagged collection."""
    return ak.sum(pt * np.cos(phi), axis=1), ak.sum(pt * np.sin(phi), axis=1)


def hard_mht(jets, eta_max: float = OBJECT_CUTS.jet_eta_wide, pt_min: float = OBJECT_CUTS.jet_pt):
    """H_T^miss vector (magnitude, phi): minus the vector sum of jets pT > 30, |eta| < 5."""
    sel = (jets.pt > pt_min) & (abs(jets.eta) < eta_max)
    px, py = vector_sum(jets.pt[sel], jets.phi[sel])
    return np.hypot(px, py), np.arctan2(-py, -px)


def ht(jets, eta_max: float = OBJECT_CUTS.jet_eta, pt_min: float = OBJECT_CUTS.jet_pt):
    sel = (jets.pt > pt_min) & (abs(jets.eta) < eta_max)
    return ak.sum(jets.pt[sel], axis=1)


def min_dphi(jets_sorted, phi_ref, n: int = 4):
    """min |DeltaPhi(phi_ref, jet)| over the leading n jets (10 when there are none)."""
    lead = jets_sorted[:, :n]
    d = abs(delta_phi(lead.phi, phi_ref))
    return ak.fill_none(ak.min(d, axis=1), 10.0)


def candidate_tracks_mask(tracks, jets, cuts=OBJECT_CUTS) -> ak.Array:
    """Candidate tracks (docs/physics.md sec. 2; thesis Table 3.1): high purity, PF, pT < 20,
    |eta| < 2.4, |dz| < 1 cm, DeltaR > 0.4 to every jet with pT > 30 GeV. No lower pT cut and no
    cut on the associated vertex: the features w.r.t. the associated vertex must stay
    informative (a track associated with a pileup vertex is for the classifier to recognize)."""
    base = (
        tracks.highPurity & tracks.isPFcand & (tracks.pt < cuts.track_pt_max)
        & (abs(tracks.eta) < cuts.track_eta) & (abs(tracks.dz) < cuts.track_dz_max)
    )
    return base & far_from(tracks, jets[jets.pt > cuts.jet_pt], cuts.track_jet_dr)


def track_quality(columns, cuts=OBJECT_CUTS) -> np.ndarray:
    """The part of :func:`candidate_tracks_mask` that depends on the track alone (all but the
    DeltaR to the jets), on flat columns (``columns[name]``: e.g. an
    :class:`analysis.columnar.FlatColumns` of the tracks): flat bool, the same values."""
    return (columns["highPurity"] & columns["isPFcand"] & (columns["pt"] < cuts.track_pt_max)
            & (np.abs(columns["eta"]) < cuts.track_eta) & (np.abs(columns["dz"]) < cuts.track_dz_max))


def candidate_tracks_flat(quality: np.ndarray, t_off: np.ndarray, t_eta: np.ndarray, t_phi: np.ndarray, jets,
                          cuts=OBJECT_CUTS) -> np.ndarray:
    """:func:`candidate_tracks_mask` of flat tracks: ``quality`` their :func:`track_quality`,
    ``t_off`` their offsets over the events of ``jets``, ``t_eta``, ``t_phi`` float64; flat
    bool, the same values as the jagged function (a test checks it)."""
    ref = jets[jets.pt > cuts.jet_pt]
    b_off, b_eta, b_phi = _flat(ref)
    if t_off.size != b_off.size:
        raise ValueError(f"candidate_tracks_flat: {t_off.size - 1} events of tracks, {b_off.size - 1} of jets")
    return quality & (_min_delta_r(t_off, t_eta, t_phi, b_off, b_eta, b_phi) > cuts.track_jet_dr)


def not_pileup_associated(tracks) -> ak.Array:
    """Tracks not associated with a pileup vertex in reconstruction (Track_vtxIdx <= 0: the PV
    or none; all tracks where the association is not stored). Used by the track-class
    scale-factor fit only (corrections.softtrack.derive.fit_track_classes): it removes most
    pileup tracks from the large-|dz| regions, where their template is nearly degenerate with
    the spurious one, without changing the per-track rates the fit measures."""
    if "vtxIdx" in tracks.fields:
        return tracks.vtxIdx <= 0
    return ak.ones_like(tracks.pt, dtype=bool)
