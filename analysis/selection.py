"""Event selection (SPEC.md sec. 2): noise filters, HEM veto, the baseline and the
single-lepton validation region, as ordered named steps for a cutflow.

The event-level observables entering them are computed once by
:func:`event_observables` from the object collections, so that the signal region, the
cleaned Drell-Yan region (after cleaning) and the R&S prediction all use the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
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
)


@dataclass
class EventObservables:
    """Per-event quantities of SPEC.md sec. 2 (numpy arrays, one entry per event)."""

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


def event_observables(jets, muons, electrons, photons, taus, met_pt, met_phi, era: str) -> EventObservables:
    """Event observables from collections (jets pT-ordered, any pT)."""
    good = obj.selected_jets(jets)
    wide = jets[(jets.pt > 30.0) & (abs(jets.eta) < 5.0)]
    mht, mht_phi = obj.hard_mht(jets)
    lead = ak.firsts(good)
    hem = np.zeros(len(met_pt), bool)
    if era in HEM_ERAS:
        in_window = (wide.eta > HEM_ETA[0]) & (wide.eta < HEM_ETA[1]) & (wide.phi > HEM_PHI[0]) & (wide.phi < HEM_PHI[1])
        near = abs(obj.delta_phi(wide.phi, mht_phi)) < HEM_DPHI
        hem = _np(ak.any(in_window & near, axis=1)).astype(bool)
    return EventObservables(
        met=_np(met_pt).astype(np.float64), met_phi=_np(met_phi).astype(np.float64),
        mht=_np(mht), mht_phi=_np(mht_phi), ht=_np(obj.ht(jets)), ht5=_np(obj.ht(jets, eta_max=5.0)),
        n_jets=_np(ak.num(good)), n_btags=_np(ak.sum(obj.btagged(good), axis=1)),
        leading_jet_pt=_np(lead.pt), leading_jet_eta=_np(lead.eta), leading_jet_phi=_np(lead.phi),
        min_dphi=_np(obj.min_dphi(good, met_phi, BASELINE_CUTS.n_dphi_jets)),
        n_muons=_np(ak.num(obj.isolated_muons(muons))), n_electrons=_np(ak.num(obj.isolated_electrons(electrons))),
        n_photons=_np(ak.num(obj.isolated_photons(photons))), n_taus=_np(ak.num(obj.selected_taus(taus))),
        hem_veto=hem,
    )


def noise_filters(flags, era: str) -> np.ndarray:
    """All noise filters of SPEC.md sec. 2 (ecalBadCalib not in 2016). Missing flags pass."""
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
