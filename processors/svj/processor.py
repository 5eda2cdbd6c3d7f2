"""The semi-visible-jet processor: preselection with its cutflow, Lund declusterings, LundNet and
the event tagger through ONNX, M_T templates per plane and ABCD region (docs/svj.md).

Hooks (the analysis note's order): objects (AK8 jets passing p_T and |eta|, AK4 jets) ->
observables (scouting H_T, M_T, R_T, the DeltaPhi's and z balances; for events with two AK8
jets and the trigger: the primary Lund declusterings of the two leading jets, their LundNet
scores and the event tagger's X, Y) -> selection (the preselection steps) -> categories (SP /
VP, region A-D at the configured working point) -> fill (M_T per plane and region, the (X, Y)
score plane per plane, the LundNet scores). The output's ``columns`` hold, per dataset, the
per-event features of the events with two AK8 jets and the trigger (and with
``lund_columns`` their padded Lund graphs): the input of the training and of the working-point
scan (``commands/svj.py``).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import hist
import numpy as np

from analysis.errors import InputFileError
from analysis.svj import contract
from analysis.svj.config import SVJConfig
from analysis.svj.lund import jet_constituents, padded_graph, primary_declusterings
from analysis.svj.selection import (
    EVENT_FEATURES,
    abcd_region,
    event_observables,
    good_fatjets,
    leading_two,
    preselection_steps,
    scouting_ht,
    signal_plane,
    split_index,
)
from processors.base import AnalysisProcessor, Chunk, selection_from_steps
from processors.histograms import HistogramSpec

#: value of a score where it is not evaluated (events without two AK8 jets or the trigger)
NO_SCORE = -1.0


class SVJProcessor(AnalysisProcessor):
    """Semi-visible jets: preselection, Lund plane, LundNet, ABCDisCoTEC, M_T templates."""

    name = "svj"
    config_class = SVJConfig
    finite_inputs = contract.FINITE_INPUTS

    def __init__(self, config: SVJConfig | None = None, lumi_fb=None, systematics: bool = True,
                 lundnet: str | Path | None = None, tagger: str | Path | None = None,
                 columns: bool = True, lund_columns: bool = False):
        super().__init__(config, lumi_fb, systematics)
        from models.svj.inference import EventTaggerModel, LundNetModel

        self.lundnet = LundNetModel(lundnet) if lundnet is not None else None
        self.tagger = EventTaggerModel(tagger) if tagger is not None else None
        self.columns = bool(columns)
        self.lund_columns = bool(lund_columns)
        edges = list(self.config.statistics.mt_edges)
        self.histograms = (
            HistogramSpec("mt", (hist.axis.Variable(edges, name="mt", label=r"$M_T$ [GeV]"),),
                          categories=("dataset", "region"), fill=None),
            HistogramSpec("scores", (hist.axis.Regular(40, 0.0, 1.0, name="x", label="X"),
                                     hist.axis.Regular(40, 0.0, 1.0, name="y", label="Y")),
                          categories=("dataset", "region"), fill=None),
            HistogramSpec("lundnet", (hist.axis.Regular(40, 0.0, 1.0, name="score", label="LundNet score"),),
                          categories=("dataset", "region"), fill=None),
        )

    def validate(self, fileset) -> None:
        for model in (self.lundnet, self.tagger):
            if model is not None:
                model.session  # noqa: B018 - opens the graph: a bad model fails before any chunk
        if self.lundnet is not None and self.lundnet.max_nodes != self.config.lund.max_nodes:
            from analysis.errors import ModelError

            raise ModelError(f"{self.lundnet.path} takes {self.lundnet.max_nodes} Lund nodes, the configuration "
                             f"lund.max_nodes = {self.config.lund.max_nodes}: set it or retrain")

    # -- hooks ---------------------------------------------------------------------------------
    def objects(self, chunk: Chunk):
        events = chunk.events
        missing = [c for c in (contract.FATJET, contract.FATJET_PFCANDS, contract.PFCANDS, contract.JET,
                               contract.MET) if c not in events.fields]
        if missing:
            raise InputFileError(f"{chunk.metadata.get('filename')}: collections {missing} missing (the search "
                                 "needs PFNano's FatJet, FatJetPFCands and PFCands)")
        fatjets = events[contract.FATJET]
        fatjets = ak.with_field(fatjets, ak.local_index(fatjets, axis=1), "index")
        return {"fatjets": good_fatjets(fatjets, self.config.preselection), "jets": events[contract.JET],
                "met": events[contract.MET]}

    def observables(self, chunk: Chunk, objects):
        cfg = self.config
        lead = leading_two(objects["fatjets"])
        met = ak.to_numpy(objects["met"].pt).astype(np.float64)
        met_phi = ak.to_numpy(objects["met"].phi).astype(np.float64)
        obs = event_observables(lead, met, met_phi)
        obs["ht"] = scouting_ht(objects["jets"], cfg.trigger)
        obs["n_fatjets"] = ak.to_numpy(ak.num(objects["fatjets"]))
        obs["event"] = ak.to_numpy(chunk.events.event).astype(np.int64)
        base = (obs["ht"] > cfg.trigger.ht) & (obs["n_fatjets"] >= cfg.preselection.n_fatjets)
        obs["base"] = base
        rows = np.flatnonzero(base)
        for k in (0, 1):
            obs[f"lundnet_j{k}"] = np.full(chunk.size, NO_SCORE)
        obs["x"], obs["y"] = np.full(chunk.size, NO_SCORE), np.full(chunk.size, NO_SCORE)
        if rows.size:
            index = ak.to_numpy(objects["fatjets"].index[rows][:, :2]).astype(np.int64)
            ev = np.repeat(rows, 2)
            cons = jet_constituents(chunk.events[contract.PFCANDS], chunk.events[contract.FATJET_PFCANDS], ev,
                                    index.reshape(-1), cand_field=contract.FATJET_PFCANDS_CAND,
                                    jet_field=contract.FATJET_PFCANDS_JET)
            decl = primary_declusterings(cons, cfg.lund.ca_radius, cfg.lund.max_nodes)
            feats, mask = padded_graph(decl, cfg.lund.max_nodes, cfg.lund.kt_min)
            obs["_graph"] = (rows, feats, mask)
            if self.lundnet is not None:
                s = self.lundnet.score(feats, mask).reshape(-1, 2)
                obs["lundnet_j0"][rows], obs["lundnet_j1"][rows] = s[:, 0], s[:, 1]
            if self.tagger is not None and self.lundnet is not None:
                x, y = self.tagger.scores({f: obs[f][rows] for f in EVENT_FEATURES})
                obs["x"][rows], obs["y"][rows] = x, y
        return obs

    def selection(self, chunk: Chunk, objects, observables):
        steps = preselection_steps(observables["n_fatjets"], observables["ht"], observables,
                                   self.config.trigger, self.config.preselection)
        return selection_from_steps([("all", np.ones(chunk.size, bool)), *steps])

    def categories(self, chunk: Chunk, objects, observables, selected, variation):
        cfg = self.config
        plane = np.where(signal_plane(observables["deta"], cfg.preselection), "SP", "VP")
        region = abcd_region(observables["x"], observables["y"], cfg.working_point.x, cfg.working_point.y)
        return {"plane": plane, "region": region}

    def fill(self, hists, chunk: Chunk, objects, observables, selected, weights, categories, variation):
        if variation != "nominal":
            return
        w = weights.weight()
        obs = observables
        for plane in ("SP", "VP"):
            in_plane = selected & (categories["plane"] == plane)
            hists["lundnet"].fill(dataset=chunk.dataset, region=plane,
                                  score=np.concatenate([obs["lundnet_j0"][in_plane], obs["lundnet_j1"][in_plane]]),
                                  weight=np.concatenate([w[in_plane], w[in_plane]]))
            if self.tagger is None:
                continue
            hists["scores"].fill(dataset=chunk.dataset, region=plane, x=obs["x"][in_plane], y=obs["y"][in_plane],
                                 weight=w[in_plane])
            for region in ("A", "B", "C", "D"):
                m = in_plane & (categories["region"] == region)
                hists["mt"].fill(dataset=chunk.dataset, region=f"{plane}_{region}", mt=obs["mt"][m], weight=w[m])

    def collect(self, out, chunk: Chunk, objects, observables, selected, weights, categories, variation):
        """The per-event columns (module docstring) as a one-element list per dataset."""
        if variation == "nominal" and self.columns:
            out.setdefault("columns", {})[chunk.dataset] = [_columns(self, observables, selected, weights,
                                                                     categories)]


def _columns(proc: SVJProcessor, observables, selected, weights, categories) -> dict:
    base = observables["base"]
    cols = {name: np.asarray(observables[name])[base] for name in
            (*EVENT_FEATURES, "mt", "deta", "event", "x", "y", "ht")}
    cols["weight"] = weights.weight()[base]
    cols["preselected"] = np.asarray(selected)[base]
    cols["signal_plane"] = categories["plane"][base] == "SP"
    cols["split"] = split_index(cols["event"], proc.config.split.modulus)
    if proc.lund_columns and "_graph" in observables:
        _, feats, mask = observables["_graph"]
        cols["lund_features"] = feats.reshape(-1, 2, *feats.shape[1:])
        cols["lund_mask"] = mask.reshape(-1, 2, mask.shape[1])
    return cols
