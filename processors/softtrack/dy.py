"""The cleaned Drell-Yan control region (docs/physics.md sec. 5)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from analysis.softtrack.cleaning import clean_events, dimuon_candidates
from processors import collections as col
from processors.base import Chunk

from .region import Collections, RegionProcessor


class DrellYanProcessor(RegionProcessor):
    """Z -> mu mu events turned into Z -> nu nu-like ones, then the signal-region selection.

    Also fills the generator pT(Z) of simulated Drell-Yan and Z -> nu nu events with
    p_T^miss (cleaned for Drell-Yan) above 200 GeV and no pT(Z) cut: the input of the
    pT(Z) weights (docs/physics.md sec. 5)."""

    name = "dy"
    stream = "singlemuon"
    event_corrections = ("ptz_weight",)

    def accepts(self, metadata) -> bool:
        """The single-muon stream and the background simulation, not the signal: the
        single-muon trigger and the dimuon selection keep no chargino event (none of the
        default sample's 54 000), and reading the 54 signal files took 40% of the pass."""
        return super().accepts(metadata) and not str(metadata["process"]).startswith("signal")

    def preselect(self, chunk: Chunk, c: Collections):
        cuts = self.config.dy
        ok, pair, mass, ptz = dimuon_candidates(c.muons, cuts.model_copy(update={"ptz": 0.0}))
        cleaned, met_pt, met_phi = clean_events(pair, c.muons, c.jets, c.tracks, c.photons, None, c.met_pt, c.met_phi,
                                                cuts)
        c2 = replace(c, jets=cleaned["jets"], muons=cleaned["muons"], photons=cleaned["photons"],
                     tracks=cleaned["tracks"], met_pt=np.where(ok, met_pt, c.met_pt),
                     met_phi=np.where(ok, met_phi, c.met_phi))
        return [("dimuon", ok), ("ptz", ptz > cuts.ptz)], c2

    def fill_extra(self, chunk: Chunk, c, o, steps, weight, hists):
        meta, dataset = chunk.metadata, chunk.dataset
        if meta["is_data"] or meta["process"] not in ("dy_mumu", "zjets_nunu"):
            return
        cuts = self.config.dy
        sel = steps["noise_filters"] & (o.met > cuts.ptz_weight_met)
        if meta["process"] == "dy_mumu":
            sel &= steps["dimuon"]
        ptz = col.gen_boson_pt(chunk.events)
        hists["ptz_gen"].fill(dataset=dataset, systematic="nominal", ptz=ptz[sel], weight=weight[sel])
        loose = steps["noise_filters"] & (steps["dimuon"] if meta["process"] == "dy_mumu" else True)
        hists["ptz_met"].fill(dataset=dataset, ptz=ptz[loose], met=o.met[loose], weight=weight[loose])
