"""Event selection (docs/physics.md sec. 2): noise filters, HEM veto, the baseline and the
single-lepton validation region, as ordered named steps for a cutflow.

The event-level observables entering them are computed once by
:func:`event_observables` from the object collections, so that the signal region, the
cleaned Drell-Yan region (after cleaning) and the R&S prediction all use the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import awkward as ak
import numba as nb
import numpy as np

from . import objects as obj
from .config import (
    BASELINE_CUTS,
    HEM_DPHI,
    HEM_ERAS,
    HEM_ETA,
    HEM_PHI,
    NOISE_FILTERS,
    NOISE_FILTERS_SKIP,
    OBJECT_CUTS,
)


@dataclass
class EventObservables:
    """Per-event quantities of docs/physics.md sec. 2 (numpy arrays, one entry per event)."""

    met: np.ndarray
    met_phi: np.ndarray
    mht: np.ndarray
    mht_phi: np.ndarray
    ht: np.ndarray
    ht5: np.ndarray
    n_jets: np.ndarray
    n_btags: np.ndarray
    leading_jet_pt: np.ndarray
    leading_jet_eta: np.ndarray
    leading_jet_phi: np.ndarray
    min_dphi: np.ndarray
    n_muons: np.ndarray
    n_electrons: np.ndarray
    n_photons: np.ndarray
    n_taus: np.ndarray
    hem_veto: np.ndarray


def _np(x) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(x, 0))


def lepton_counts(muons, electrons, photons, taus, cuts=OBJECT_CUTS) -> dict[str, np.ndarray]:
    """The numbers of isolated muons, electrons, photons and of selected taus per event (the
    ``n_muons`` ... ``n_taus`` of :class:`EventObservables`): they do not depend on the jets or
    p_T^miss, so a processor may compute them once for all its jet variations."""
    return {"n_muons": _np(ak.num(obj.isolated_muons(muons, cuts))),
            "n_electrons": _np(ak.num(obj.isolated_electrons(electrons, cuts))),
            "n_photons": _np(ak.num(obj.isolated_photons(photons, cuts))),
            "n_taus": _np(ak.num(obj.selected_taus(taus, cuts)))}


def event_observables(jets, muons, electrons, photons, taus, met_pt, met_phi, era: str, cuts=OBJECT_CUTS,
                      baseline=BASELINE_CUTS, hem=None, leptons: dict | None = None) -> EventObservables:
    """Event observables from collections (jets pT-ordered, any pT).

    ``leptons``: the :func:`lepton_counts` of these muons, electrons, photons and taus when the
    caller has them already (e.g. from another jet variation of the chunk); computed here if not.

    The jet quantities come from one numba pass over the flat jets (:func:`_jet_observables`),
    with the object definitions of :mod:`analysis.softtrack.objects`: selected jets (pT > 30 GeV,
    |eta| < 2.4, tight lepton-veto ID) for N_jets, N_b, the leading jet and min DeltaPhi
    (leading four); jets with pT > 30 GeV, |eta| < 5 for H_T^miss and the HEM veto.
    """
    counts = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])

    def flat(field, dtype=np.float64):
        return np.asarray(ak.to_numpy(ak.flatten(jets[field], axis=1)), dtype=dtype)

    met_pt, met_phi = _np(met_pt).astype(np.float64), _np(met_phi).astype(np.float64)
    c = cuts
    hem_eta, hem_phi, hem_dphi, hem_eras = ((HEM_ETA, HEM_PHI, HEM_DPHI, HEM_ERAS) if hem is None
                                            else (hem.eta, hem.phi, hem.dphi, hem.eras))
    f, i = _jet_observables(
        offsets, flat("pt"), flat("eta"), flat("phi"), flat("jetId", np.int64), flat("btagDeepB"), met_phi,
        c.jet_pt, c.jet_eta, c.jet_eta_wide, obj.JET_ID_TIGHT_LEPVETO, c.btag_loose, baseline.n_dphi_jets,
        era in hem_eras, np.array([*hem_eta, *hem_phi, hem_dphi]),
    )
    return EventObservables(
        met=met_pt, met_phi=met_phi, mht=f[0], mht_phi=f[1], ht=f[2], ht5=f[3], n_jets=i[0], n_btags=i[1],
        leading_jet_pt=f[4], leading_jet_eta=f[5], leading_jet_phi=f[6], min_dphi=f[7],
        **(lepton_counts(muons, electrons, photons, taus, c) if leptons is None else leptons),
        hem_veto=i[2].astype(bool),
    )


@nb.njit(cache=True)
def _abs_dphi(a, b):
    d = abs(a - b) % (2.0 * math.pi)
    return 2.0 * math.pi - d if d > math.pi else d


@nb.njit(cache=True)
def _jet_observables(off, pt, eta, phi, jet_id, btag, met_phi, pt_min, eta_max, eta_wide, id_bit, btag_cut,
                     n_dphi, hem_era, hem):
    """floats (mht, mht_phi, ht, ht5, lead pt, lead eta, lead phi, min_dphi) and ints (n_jets,
    n_btags, hem_veto) per event; see :func:`event_observables`. A jet with NaN pT or eta is
    not selected; a NaN phi of a leading jet or of p_T^miss makes min DeltaPhi NaN (fails
    every cut on it)."""
    n = off.size - 1
    f = np.zeros((8, n))
    it = np.zeros((3, n), np.int64)
    for e in range(n):
        px = py = ht = ht5 = 0.0
        min_dphi = 10.0
        n_good = 0
        for j in range(off[e], off[e + 1]):
            if not pt[j] > pt_min:
                continue
            a = abs(eta[j])
            if a < eta_wide:
                px += pt[j] * math.cos(phi[j])
                py += pt[j] * math.sin(phi[j])
                ht5 += pt[j]
            if a < eta_max:
                ht += pt[j]
                if jet_id[j] & id_bit:
                    if n_good == 0:
                        f[4, e], f[5, e], f[6, e] = pt[j], eta[j], phi[j]
                    if n_good < n_dphi:
                        d = _abs_dphi(phi[j], met_phi[e])
                        min_dphi = d if (math.isnan(d) or d < min_dphi) else min_dphi  # NaN stays NaN
                    n_good += 1
                    it[1, e] += btag[j] > btag_cut
        mht_phi = math.atan2(-py, -px)
        f[0, e], f[1, e], f[2, e], f[3, e], f[7, e] = math.hypot(px, py), mht_phi, ht, ht5, min_dphi
        it[0, e] = n_good
        if hem_era:
            for j in range(off[e], off[e + 1]):
                if (pt[j] > pt_min and abs(eta[j]) < eta_wide and hem[0] < eta[j] < hem[1]
                        and hem[2] < phi[j] < hem[3] and _abs_dphi(phi[j], mht_phi) < hem[4]):
                    it[2, e] = 1
                    break
    return f, it


def noise_filters(flags, era: str) -> np.ndarray:
    """All noise filters of docs/physics.md sec. 2 (ecalBadCalib not in 2016). Missing flags pass."""
    skip = NOISE_FILTERS_SKIP.get(era, ())
    ok = np.ones(len(flags), bool)
    for name in NOISE_FILTERS:
        if name in skip or name not in flags.fields:
            continue
        ok &= ak.to_numpy(flags[name])
    return ok


def baseline_steps(o: EventObservables, n_leptons_required: int = 0, cuts=BASELINE_CUTS) -> list[tuple[str, np.ndarray]]:
    """Ordered (name, mask) steps of the baseline; ``n_leptons_required=1`` gives the
    single-lepton validation region (exactly one isolated e or mu instead of none)."""
    n_lep = o.n_muons + o.n_electrons
    return [
        ("met", o.met > cuts.met),
        ("leading_jet", o.leading_jet_pt > cuts.leading_jet_pt),
        ("mht", o.mht > cuts.mht),
        ("ht5_over_ht", o.ht5 <= cuts.ht5_over_ht * np.maximum(o.ht, 1e-9)),
        ("min_dphi", o.min_dphi > cuts.min_dphi),
        ("n_jets", o.n_jets < cuts.max_jets),
        ("btag_veto", o.n_btags == 0),
        ("photon_veto", o.n_photons == 0),
        ("lepton" if n_leptons_required else "lepton_veto", n_lep == n_leptons_required),
        ("tau_veto", o.n_taus == 0),
        ("hem_veto", ~o.hem_veto),
    ]
