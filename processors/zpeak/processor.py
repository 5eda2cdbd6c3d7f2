"""The Z -> mu mu example processor: the framework's hooks, nothing else."""

from __future__ import annotations

import hist
import numpy as np

from analysis.zpeak.config import ZPeakConfig
from analysis.zpeak.selection import leading_pair, selected_muons
from processors.base import AnalysisProcessor, Chunk, selection_from_steps
from processors.histograms import HistogramSpec


class ZPeakProcessor(AnalysisProcessor):
    """m(mu mu) and pT(mu mu) of two opposite-sign isolated muons, with a cutflow."""

    name = "zpeak"
    config_class = ZPeakConfig
    #: the float branches it reads: an event with a NaN or infinity in one is excluded and counted
    finite_inputs = ("genWeight", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_pfRelIso03_all")
    histograms = (
        HistogramSpec("mass", (hist.axis.Regular(120, 0.0, 240.0, name="mass", label=r"$m_{\mu\mu}$ [GeV]"),)),
        HistogramSpec("pt", (hist.axis.Regular(50, 0.0, 500.0, name="pt", label=r"$p_T^{\mu\mu}$ [GeV]"),)),
    )

    def objects(self, chunk: Chunk):
        if "Muon" not in chunk.events.fields:
            from analysis.errors import InputFileError

            raise InputFileError(f"collection Muon missing from {chunk.metadata.get('filename')}")
        return {"muons": selected_muons(chunk.events.Muon, self.config.muons)}

    def observables(self, chunk: Chunk, objects):
        return leading_pair(objects["muons"])

    def selection(self, chunk: Chunk, objects, observables):
        cfg = self.config
        mass = observables["mass"]
        return selection_from_steps([
            ("all", np.ones(chunk.size, bool)),
            ("two_muons", observables["two_muons"]),
            ("leading_pt", observables["leading_pt"] > cfg.muons.leading_pt),
            ("opposite_charge", observables["charge_product"] < 0),
            ("mass_window", (mass > cfg.mass_low) & (mass < cfg.mass_high)),
        ])
