"""The cleaned Drell-Yan control region (SPEC.md sec. 5)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from analysis.cleaning import clean_events, dimuon_candidates
from analysis.config import DY_CUTS

from . import collections as col
from .base import Collections, RegionProcessor


class DrellYanProcessor(RegionProcessor):
    """Z -> mu mu events turned into Z -> nu nu-like ones, then the signal-region selection.

    Also fills the generator pT(Z) of simulated Drell-Yan and Z -> nu nu events with
    p_T^miss (cleaned for Drell-Yan) above 200 GeV and no pT(Z) cut: the input of the
    pT(Z) weights (SPEC.md sec. 5)."""

    region = "dy"
    stream = "singlemuon"
    event_corrections = ("ptz_weight",)

    def preselect(self, events, c: Collections, out: dict, weight: np.ndarray):
        ok, pair, mass, ptz = dimuon_candidates(c.muons, replace(DY_CUTS, ptz=0.0))
        cleaned, met_pt, met_phi = clean_events(pair, c.muons, c.jets, c.tracks, c.photons, None, c.met_pt, c.met_phi)
        c2 = Collections(cleaned["jets"], cleaned["muons"], c.electrons, cleaned["photons"], c.taus, cleaned["tracks"],
                         np.where(ok, met_pt, c.met_pt), np.where(ok, met_phi, c.met_phi), c.track_source)
        return [("dimuon", ok), ("ptz", ptz > DY_CUTS.ptz)], c2

    def fill_extra(self, events, c, o, steps, weight, hists, dataset, meta):
        if meta["is_data"] or meta["process"] not in ("dy_mumu", "zjets_nunu"):
            return
        sel = steps["noise_filters"] & (o.met > DY_CUTS.ptz_weight_met)
        if meta["process"] == "dy_mumu":
            sel &= steps["dimuon"]
        ptz = col.gen_boson_pt(events)
        hists["ptz_gen"].fill(dataset=dataset, systematic="nominal", ptz=ptz[sel], weight=weight[sel])
        loose = steps["noise_filters"] & (steps["dimuon"] if meta["process"] == "dy_mumu" else True)
        hists["ptz_met"].fill(dataset=dataset, ptz=ptz[loose], met=o.met[loose], weight=weight[loose])
