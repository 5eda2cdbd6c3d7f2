"""The processor skeleton shared by the signal region, the single-lepton validation region
and the cleaned Drell-Yan region (SPEC.md sec. 2, 4, 5): read, select, fill, return.

A region is a subclass that names its trigger, its stream of pseudo-data and, if needed, a
preselection that may transform the collections (the Drell-Yan cleaning). The physics is in
``analysis/``; this module only wires it to coffea and hist.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
from coffea import processor

from analysis import config as cfg
from analysis import objects as obj
from analysis.config import CLASSIFIER_DMS
from analysis.contract import HLT_JETHT, HLT_MET, HLT_SINGLEMUON, TRACK_ORIGINS
from analysis.errors import InputFileError
from analysis.selection import baseline_steps, event_observables, noise_filters

from . import collections as col
from .histograms import new_histograms
from .scoring import signal_region

ORIGIN_NAMES = {v: k for k, v in TRACK_ORIGINS.items()}
VARIATIONS = ("nominal", "jesUp", "jesDown")
TRIGGERS = {"met": HLT_MET, "singlemuon": HLT_SINGLEMUON, "jetht": HLT_JETHT}


@dataclass
class Collections:
    jets: ak.Array
    muons: ak.Array
    electrons: ak.Array
    photons: ak.Array
    taus: ak.Array
    tracks: ak.Array
    met_pt: np.ndarray
    met_phi: np.ndarray
    track_source: str

    def take(self, mask: np.ndarray) -> Collections:
        return Collections(self.jets[mask], self.muons[mask], self.electrons[mask], self.photons[mask],
                           self.taus[mask], self.tracks[mask], self.met_pt[mask], self.met_phi[mask], self.track_source)


def vary_jets(c: Collections, variation: str) -> Collections:
    """Jet energy scale up/down (SPEC.md sec. 6): jets scaled by 1 +- JES_UNCERTAINTY and
    p_T^miss corrected for the change of all jets above 15 GeV."""
    if variation == "nominal":
        return c
    scale = 1.0 + (cfg.JES_UNCERTAINTY if variation == "jesUp" else -cfg.JES_UNCERTAINTY)
    jets = ak.with_field(c.jets, c.jets.pt * scale, "pt")
    moved = c.jets.pt > cfg.OBJECT_CUTS.jet_pt_rs
    dpx, dpy = obj.vector_sum((c.jets.pt * (scale - 1.0))[moved], c.jets.phi[moved])
    mx = c.met_pt * np.cos(c.met_phi) - ak.to_numpy(dpx)
    my = c.met_pt * np.sin(c.met_phi) - ak.to_numpy(dpy)
    return Collections(jets, c.muons, c.electrons, c.photons, c.taus, c.tracks, np.hypot(mx, my),
                       np.arctan2(my, mx), c.track_source)


class RegionProcessor(processor.ProcessorABC):
    """Base of the region processors. Configuration enters through ``__init__``; no state
    is kept between chunks.

    Parameters
    ----------
    lumi_fb : era -> integrated luminosity used to normalize simulation (default: the
        eras' luminosities of config; the command passes the pseudo-data's).
    scorer : optional object with ``max_logits(tracks, events_info) -> (n_events, 3)``
        giving the per-event maximum logit for each Delta m (refiner + classifier via ONNX).
    systematics : fill the jet-energy-scale and weight variations.
    sr_edges : Delta m -> the 4 lower max-logit edges of its signal regions (default
        config.SR_LOGIT_EDGES; the main job derives them with analysis.stats).
    corrections : optional corrections.apply.SoftTrackCorrections; simulation is then
        weighted by what the file provides (pileup; pT(Z) for Drell-Yan in the dy region;
        the p_T^miss line in the signal-like regions; the track-class scale factor of the
        event's highest-scoring track). The sideband scale factors and the residual shape are
        not event weights: they scale the background of the signal regions and are applied to
        the ``sr`` histogram of the corrected output (corrections.signal_regions). The
        ``nocorr`` variation keeps the uncorrected weight, ``puUp/puDown`` vary pileup.
    """

    region = "base"
    stream = "met"
    n_leptons = 0

    #: event-level corrections of this region (besides pileup and the track-class SFs)
    event_corrections: tuple[str, ...] = ("met_weight",)

    def __init__(self, lumi_fb: dict[str, float] | None = None, scorer=None, systematics: bool = True,
                 corrections=None, sr_edges: dict | None = None):
        self.sr_edges = {float(k): tuple(v) for k, v in (sr_edges or cfg.SR_LOGIT_EDGES).items()}
        self.lumi_fb = dict(lumi_fb or cfg.LUMI_FB)
        self.scorer = scorer
        self.systematics = systematics
        self.corrections = corrections

    def _has(self, name: str, era: str | None = None) -> bool:
        """The corrections provide ``name`` (for ``era``, when given)."""
        if self.corrections is None or name not in self.corrections.names:
            return False
        return era is None or era in self.corrections.eras(name)

    def correction_weights(self, events, meta, c: Collections) -> dict[str, np.ndarray]:
        """Per-event correction factors of simulation: name -> array (before the selection)."""
        era, n = str(meta["era"]), len(events)
        out = {}
        if meta["is_data"] or self.corrections is None:
            return out
        if self._has("pileup_weight", era) and "Pileup" in events.fields:
            ntrue = ak.to_numpy(events.Pileup.nTrueInt).astype(np.float64)
            for syst in ("nominal", "up", "down"):
                out[f"pileup_{syst}"] = np.asarray(self.corrections.pileup_weight(era, ntrue, syst))
        if "met_weight" in self.event_corrections and self._has("met_weight", era):
            out["met_weight"] = np.asarray(self.corrections.met_weight(era, c.met_pt))
        if "ptz_weight" in self.event_corrections and self._has("ptz_weight", era) and meta["process"] == "dy_mumu":
            out["ptz_weight"] = np.asarray(self.corrections.ptz_weight(era, col.gen_boson_pt(events)))
        return {k: v.astype(np.float64) if v.shape else np.full(n, float(v)) for k, v in out.items()}

    def track_weight(self, era: str, best_origin: np.ndarray) -> np.ndarray:
        """Track-class scale factor of the event's highest-scoring track (1 where unknown)."""
        w = np.ones(len(best_origin))
        if not self._has("track_class_sf", era):
            return w
        for origin, cls in ((TRACK_ORIGINS["primary"], "pv"), (TRACK_ORIGINS["spurious"], "spurious")):
            w[best_origin == origin] = self.corrections.track_class_sf(era, cls)
        return w

    # -- hooks --------------------------------------------------------------------------
    def accepts(self, metadata: dict) -> bool:
        """Datasets this region reads: all simulation and its pseudo-data stream."""
        return (not metadata["is_data"]) or metadata["process"] == f"data_{self.stream}"

    def preselect(self, events, c: Collections, out: dict, weight: np.ndarray):
        """Region-specific steps before the baseline; may return transformed collections.

        Returns (steps, collections) with steps a list of (name, mask)."""
        return [], c

    # -- the chunk ----------------------------------------------------------------------
    def event_weight(self, events, meta) -> np.ndarray:
        if meta["is_data"]:
            return np.ones(len(events))
        era = str(meta["era"])
        if "genWeight" not in events.fields:
            raise InputFileError(f"branch genWeight missing from {meta.get('filename')}: a simulation dataset "
                                 "needs it (is the dataset data? set is_data in the fileset)")
        norm = float(meta["xsec_pb"]) * 1000.0 * self.lumi_fb[era] / float(meta["sum_genweight"])
        return norm * ak.to_numpy(events.genWeight).astype(np.float64)

    def process(self, events):
        meta = dict(events.metadata)
        dataset, era, is_data = meta["dataset"], str(meta["era"]), bool(meta["is_data"])
        n = len(events)
        hists = new_histograms(with_scores=self.scorer is not None)
        cutflow: dict[str, dict[str, float]] = {}
        out = {
            "histograms": hists,
            "cutflow": {dataset: cutflow},
            "chunks": [{"dataset": dataset, "file": meta.get("filename", ""), "entrystart": int(meta.get("entrystart", 0)),
                        "entrystop": int(meta.get("entrystop", n)), "events": n}],
            "notices": set(),
        }
        weight = self.event_weight(events, meta)
        if not is_data and "Pileup" in events.fields:
            hists["n_true_int"].fill(dataset=dataset, n_true_int=ak.to_numpy(events.Pileup.nTrueInt), weight=weight)
        tracks, source = col.tracks(events)
        if source != "Track":
            out["notices"].add(f"{dataset}: no Track extension, using {source} (straight-line observables only)")
        mu, el, ph, ta = col.leptons(events)
        met_pt, met_phi = col.met(events)
        c = Collections(col.jets(events), mu, el, ph, ta, tracks, met_pt, met_phi, source)

        steps = [("all", np.ones(n, bool))]
        flags = events.Flag if "Flag" in events.fields else None
        steps.append(("noise_filters", noise_filters(flags, era) if flags is not None else np.ones(n, bool)))
        trigger = TRIGGERS[self.stream]
        if "HLT" in events.fields and trigger in events.HLT.fields:
            steps.append(("trigger", ak.to_numpy(events.HLT[trigger])))
        else:
            out["notices"].add(f"{dataset}: trigger HLT_{trigger} not in file, not required")
        pre_steps, c = self.preselect(events, c, out, weight)
        steps += pre_steps
        raw_weight = weight
        corr = self.correction_weights(events, meta, c)
        pu = {s: corr.get(f"pileup_{s}", 1.0) for s in ("nominal", "up", "down")}
        others = [v for k, v in corr.items() if not k.startswith("pileup_")]
        other = np.prod(others, axis=0) if others else 1.0
        weight = raw_weight * pu["nominal"] * other
        weight_variations = {"puUp": raw_weight * pu["up"] * other, "puDown": raw_weight * pu["down"] * other,
                             "nocorr": raw_weight}
        self.fill_presel(events, c, steps, weight, hists, dataset, is_data)
        npv = ak.to_numpy(events.PV.npvs) if "PV" in events.fields and "npvs" in events.PV.fields else np.zeros(n, int)

        variations = VARIATIONS if (self.systematics and not is_data) else ("nominal",)
        for variation in variations:
            cv = vary_jets(c, variation)
            o = event_observables(cv.jets, cv.muons, cv.electrons, cv.photons, cv.taus, cv.met_pt, cv.met_phi, era)
            vsteps = steps + baseline_steps(o, self.n_leptons)
            selected = np.logical_and.reduce([m for _, m in vsteps])
            if variation == "nominal":
                running = np.ones(n, bool)
                for name, mask in vsteps:
                    running &= mask
                    cutflow[name] = {"events": int(running.sum()), "weighted": float(weight[running].sum())}
            sel_c = cv.take(selected)
            cand = obj.candidate_tracks_mask(sel_c.tracks, sel_c.jets)
            ncand = ak.to_numpy(ak.sum(cand, axis=1))
            scores = None
            if self.scorer is not None and c.track_source == "Track":
                sel_ev = events[selected]
                scores = self.scorer.max_logits(sel_c.tracks, cand, sel_ev.PV, sel_ev.OtherPV, sel_ev.SV, sel_c.jets,
                                                sel_c.met_pt, sel_c.met_phi, era, is_data)
                scores, best_origin = scores
                category, sr = signal_region(scores, self.sr_edges)
            elif self.scorer is not None:
                out["notices"].add(f"{dataset}: no helix covariance ({c.track_source}), track scores not evaluated")
            # weights of the selected events: event corrections times the track-class SF
            track_sf = self.track_weight(era, best_origin) if scores is not None and not is_data else 1.0
            fills = [(variation, weight[selected] * track_sf)]
            if variation == "nominal" and self.systematics and not is_data:
                fills += [(name, w[selected] * (1.0 if name == "nocorr" else track_sf))
                          for name, w in weight_variations.items()]
            for syst, ws in fills:
                values = {"met": o.met, "mht": o.mht, "ht": o.ht, "n_jets": o.n_jets, "leading_jet_pt": o.leading_jet_pt,
                          "min_dphi": o.min_dphi, "n_pv": npv}
                for name, v in values.items():
                    hists[name].fill(dataset=dataset, systematic=syst, **{name: v[selected]}, weight=ws)
                hists["n_candidates"].fill(dataset=dataset, systematic=syst, n_candidates=ncand, weight=ws)
                if scores is not None:
                    has = ncand > 0
                    for j, dm in enumerate(CLASSIFIER_DMS):
                        hists["max_logit"].fill(dataset=dataset, systematic=syst, dm=f"{dm:g}",
                                                max_logit=scores[has, j], weight=ws[has])
                    if syst == "nominal":
                        cat_value = scores[np.arange(len(category)), category]
                        labels = np.array([f"{dm:g}" for dm in CLASSIFIER_DMS], dtype=object)[category]
                        hists["max_logit_category"].fill(dataset=dataset, dm=labels[has],
                                                         max_logit=cat_value[has], weight=ws[has])
                    in_sr = sr >= 0
                    hists["sr"].fill(dataset=dataset, systematic=syst, sr=sr[in_sr], weight=ws[in_sr])
            if variation == "nominal":
                self.fill_tracks(hists, dataset, sel_c.tracks[cand], weight[selected], is_data)
                self.fill_extra(events, c, o, dict(steps), weight, hists, dataset, meta)
        return out

    def fill_tracks(self, hists, dataset, tracks, event_weight, is_data):
        w = ak.to_numpy(ak.flatten(ak.broadcast_arrays(event_weight, tracks.pt)[0]))
        origin = self._origins(tracks, is_data, w.size)

        def flat(x):
            return ak.to_numpy(ak.flatten(x)).astype(np.float64)

        with np.errstate(divide="ignore", invalid="ignore"):
            values = {
                "track_pt": flat(tracks.pt),
                "track_log10_dz": np.log10(np.abs(flat(tracks.dz))),
                "track_log10_dxy": np.log10(np.abs(flat(tracks.dxy))),
                "track_log10_dxyerr": np.log10(flat(tracks.dxyErr)),
                "track_log10_dzerr": np.log10(flat(tracks.dzErr)),
                "track_log10_iso": np.log10(flat(tracks.pfIso03)),
            }
        for name, v in values.items():
            finite = np.isfinite(v)
            hists[name].fill(dataset=dataset, origin=origin[finite], **{name: v[finite]}, weight=w[finite])

    def fill_presel(self, events, c: Collections, steps, weight, hists, dataset, is_data):
        """Candidate-track log10|dz| and event count after the preselection (before the
        baseline): the inputs of the track-class scale factors (cleaned DY)."""
        pre = np.logical_and.reduce([m for _, m in steps])
        cp = c.take(pre)
        cand = obj.candidate_tracks_mask(cp.tracks, cp.jets)
        tr = cp.tracks[cand]
        w = ak.to_numpy(ak.flatten(ak.broadcast_arrays(weight[pre], tr.pt)[0]))
        with np.errstate(divide="ignore"):
            v = np.log10(np.abs(ak.to_numpy(ak.flatten(tr.dz)).astype(np.float64)))
        origin = self._origins(tr, is_data, w.size)
        ok = np.isfinite(v)
        hists["track_log10_dz_presel"].fill(dataset=dataset, origin=origin[ok], track_log10_dz=v[ok], weight=w[ok])
        hists["n_events_presel"].fill(dataset=dataset, systematic="nominal", met=cp.met_pt, weight=weight[pre])

    @staticmethod
    def _origins(tracks, is_data: bool, n: int) -> np.ndarray:
        if is_data:
            return np.full(n, "data", dtype=object)
        if "genOrigin" in tracks.fields:
            names = np.array([ORIGIN_NAMES[i] for i in range(len(ORIGIN_NAMES))], dtype=object)
            return names[ak.to_numpy(ak.flatten(tracks.genOrigin)).astype(np.int64)]
        return np.full(n, "unknown", dtype=object)

    def fill_extra(self, events, c, o, steps: dict, weight, hists, dataset, meta):
        """Region-specific histograms (nominal only); ``steps`` are the pre-baseline masks."""

    def postprocess(self, accumulator):
        return accumulator
