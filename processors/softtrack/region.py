"""The soft-track region processors on the framework's hooks (docs/physics.md sec. 2, 4, 5).

objects: jets, leptons, tracks, p_T^miss (and a region's preselection, e.g. the Drell-Yan
cleaning); variations: the jet energy scale up/down; observables: the event quantities of
:func:`analysis.softtrack.selection.event_observables`; selection: noise filters, trigger, the region's
steps and the baseline; weights: normalization, pileup, p_T^miss and pT(Z) corrections;
categories: candidate tracks and, with a scorer, the max logit per Delta m and the signal
region; fill: the declared histograms (:mod:`processors.softtrack.histograms`).

Before any chunk (:meth:`RegionProcessor.validate`): the models open (graph, input width,
sha256) and the corrections file covers, for every simulated dataset, its era and the
systematic labels and classes this code evaluates, for every correction the processor applies
(unless ``optional_corrections`` of the configuration declares it optional for that era).
Events with a non-finite value in a branch of :data:`FINITE_INPUTS` are excluded
(processors.base, cutflow step ``finite_inputs``), and a non-finite track score puts its
event in no signal region (:func:`processors.softtrack.scoring.signal_region`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import awkward as ak
import numpy as np

from analysis.columnar import FlatColumns, count_per_event, offsets_from_counts
from analysis.contract import (
    HLT_JETHT,
    HLT_MET,
    HLT_SINGLEMUON,
    TRACK_COV_BRANCHES,
    TRACK_FIELDS,
    TRACK_ORIGINS,
    VERTEX_FIELDS,
)
from analysis.errors import CorrectionError
from analysis.softtrack import objects as obj
from analysis.softtrack.config import (
    CLASSIFIER_DMS,
    CORRECTION_SYSTEMATICS,
    TRACK_SF_CLASSES,
    SoftTrackConfig,
)
from analysis.softtrack.features import vertex_arrays
from analysis.softtrack.labels import (
    BACKGROUND_CLASS_CODE_NAMES,
    background_class_codes,
    background_class_names,
    track_class_labels_jagged,
)
from analysis.softtrack.selection import (
    baseline_steps,
    event_observables,
    lepton_counts,
    noise_filters,
)
from processors import collections as col
from processors.base import AnalysisProcessor, Chunk, selection_from_steps
from processors.histograms import fill_observables
from processors.weights import EventWeights

from .histograms import REGION_HISTOGRAMS, SCORE_HISTOGRAMS
from .scoring import signal_region

ORIGIN_NAMES = {v: k for k, v in TRACK_ORIGINS.items()}
JES_VARIATIONS = ("nominal", "jesUp", "jesDown")
TRIGGERS = {"met": HLT_MET, "singlemuon": HLT_SINGLEMUON, "jetht": HLT_JETHT}
#: observables of the event histograms
EVENT_OBSERVABLES = ("met", "mht", "ht", "n_jets", "leading_jet_pt", "min_dphi")
#: the string inputs besides the era with which the region processors evaluate each correction
CORRECTION_INPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "pileup_weight": {"syst": CORRECTION_SYSTEMATICS},
    "met_weight": {"syst": ("nominal",)},
    "ptz_weight": {},
    "track_class_sf": {"class": tuple(TRACK_SF_CLASSES), "syst": ("nominal",)},
}
#: the float branches of the event, jets and leptons that the selections read
EVENT_FINITE_INPUTS: tuple[str, ...] = (
    "genWeight", "MET_pt", "MET_phi",
    *(f"Jet_{f}" for f in ("pt", "eta", "phi", "mass", "btagDeepB")),
    *(f"{c}_{f}" for c in ("Muon", "Electron", "Photon") for f in ("pt", "eta", "phi", "pfRelIso03_all")),
    "Photon_pfRelIso03_chg", "Tau_pt", "Tau_eta", "Tau_phi",
)
#: every float branch the region processors read (selection, observables, weights, track
#: features): an event with a NaN or infinity in one of them is excluded and counted
#: (processors.base.AnalysisProcessor.finite_inputs); the fallbacks of real NanoAOD included
FINITE_INPUTS: tuple[str, ...] = (
    *EVENT_FINITE_INPUTS, "Pileup_nTrueInt", "GenPart_pt",
    *(f"Track_{f}" for f in (*col.TRACK_FIELDS, *TRACK_COV_BRANCHES) if TRACK_FIELDS[f][0].startswith("float")),
    *(f"{v}_{f}" for v in ("PV", "OtherPV") for f in VERTEX_FIELDS), "SV_x", "SV_y", "SV_z",
    *(f"IsoTrack_{f}" for f in ("pt", "eta", "phi", "dxy", "dz", "pfRelIso03_all")),
    *(f"PFCands_{f}" for f in ("pt", "eta", "phi", "d0", "dz", "d0Err", "dzErr")),
)


@dataclass
class Collections:
    """The objects of a chunk, after the region's preselection."""

    jets: ak.Array
    muons: ak.Array
    electrons: ak.Array
    photons: ak.Array
    taus: ak.Array
    tracks: ak.Array
    met_pt: np.ndarray
    met_phi: np.ndarray
    track_source: str
    #: the pre-baseline steps (noise filters, trigger, the region's own): (name, mask)
    steps: tuple = ()

    def take(self, mask: np.ndarray) -> Collections:
        return Collections(self.jets[mask], self.muons[mask], self.electrons[mask], self.photons[mask],
                           self.taus[mask], self.tracks[mask], self.met_pt[mask], self.met_phi[mask],
                           self.track_source, tuple((n, m[mask]) for n, m in self.steps))


def vary_jets(c: Collections, variation: str, jes_uncertainty: float, pt_min: float) -> Collections:
    """Jet energy scale up/down (docs/physics.md sec. 6): jets scaled by 1 +- jes_uncertainty and
    p_T^miss corrected for the change of all jets above ``pt_min``."""
    if variation == "nominal":
        return c
    scale = 1.0 + (jes_uncertainty if variation == "jesUp" else -jes_uncertainty)
    jets = ak.with_field(c.jets, c.jets.pt * scale, "pt")
    moved = c.jets.pt > pt_min
    dpx, dpy = obj.vector_sum((c.jets.pt * (scale - 1.0))[moved], c.jets.phi[moved])
    mx = c.met_pt * np.cos(c.met_phi) - ak.to_numpy(dpx)
    my = c.met_pt * np.sin(c.met_phi) - ak.to_numpy(dpy)
    return replace(c, jets=jets, met_pt=np.hypot(mx, my), met_phi=np.arctan2(my, mx))


def track_origins(tracks, is_data: bool, n: int) -> np.ndarray:
    """Generator origin name of each (flattened) track: "data" in data, "unknown" without truth."""
    if is_data:
        return np.full(n, "data", dtype=object)
    if "genOrigin" in tracks.fields:
        names = np.array([ORIGIN_NAMES[i] for i in range(len(ORIGIN_NAMES))], dtype=object)
        return names[ak.to_numpy(ak.flatten(tracks.genOrigin)).astype(np.int64)]
    return np.full(n, "unknown", dtype=object)


def candidate_classes(chunk: Chunk, selected: np.ndarray, tracks) -> np.ndarray:
    """Background class (analysis.softtrack.labels.background_class_names) of each candidate
    track of the selected events, flat: "data" in data, "unknown" in simulation without the
    generator truth (GenPart, Track_genPartIdx)."""
    n = int(ak.sum(ak.num(tracks.pt)))
    if chunk.is_data:
        return np.full(n, "data", dtype=object)
    events = chunk.events
    if "GenPart" not in events.fields or "genPartIdx" not in tracks.fields:
        return np.full(n, "unknown", dtype=object)
    labels = ak.to_numpy(ak.flatten(track_class_labels_jagged(tracks.genPartIdx, events.GenPart[selected])))
    origins = ak.to_numpy(ak.flatten(tracks.genOrigin)) if "genOrigin" in tracks.fields else None
    return background_class_names(labels, origins)


def track_class_codes(chunk: Chunk, tracks) -> tuple[np.ndarray, np.ndarray]:
    """:func:`candidate_classes` of every track of ``tracks`` (all events of the chunk) as
    (names, codes): the class of track k is ``names[codes[k]]``; a selection's classes are
    these indexed (a track's class depends on its own event only)."""
    n = int(ak.sum(ak.num(tracks.pt)))
    events = chunk.events
    if chunk.is_data or "GenPart" not in events.fields or "genPartIdx" not in tracks.fields:
        return np.array(["data" if chunk.is_data else "unknown"], dtype=object), np.zeros(n, np.int8)
    labels = ak.to_numpy(ak.flatten(track_class_labels_jagged(tracks.genPartIdx, events.GenPart)))
    origins = ak.to_numpy(ak.flatten(tracks.genOrigin)) if "genOrigin" in tracks.fields else None
    return BACKGROUND_CLASS_CODE_NAMES, background_class_codes(labels, origins)


def track_origins_flat(columns, ids: np.ndarray, is_data: bool) -> np.ndarray:
    """:func:`track_origins` of the tracks ``ids`` of the chunk's flat columns."""
    if is_data:
        return np.full(ids.size, "data", dtype=object)
    if "genOrigin" in columns:
        names = np.array([ORIGIN_NAMES[i] for i in range(len(ORIGIN_NAMES))], dtype=object)
        return names[columns["genOrigin"][ids].astype(np.int64)]
    return np.full(ids.size, "unknown", dtype=object)


def best_class(classes: np.ndarray, n_candidates: np.ndarray, best: np.ndarray, is_data: bool) -> np.ndarray:
    """The class of each event's highest-scoring candidate track (``best``: its index among the
    event's candidates, -1 none: "data" in data, else "none")."""
    out = np.full(n_candidates.size, "data" if is_data else "none", dtype=object)
    has = best >= 0
    first = np.concatenate([[0], np.cumsum(n_candidates)[:-1]]).astype(np.int64)
    out[has] = classes[first[has] + best[has]]
    return out


def _flat(x) -> np.ndarray:
    return ak.to_numpy(ak.flatten(x)).astype(np.float64)


class RegionProcessor(AnalysisProcessor):
    """Base of the soft-track region processors.

    Parameters
    ----------
    config : :class:`analysis.softtrack.config.SoftTrackConfig` (cuts, eras, luminosities, SR edges).
    lumi_fb : era -> integrated luminosity normalizing simulation (default: the config's;
        the runner passes the pseudo-data stream's).
    scorer : optional object with ``max_logits(...) -> ((n_events, 3), best_origin)`` giving the
        per-event maximum logit for each Delta m (refiner + classifier via ONNX).
    systematics : fill the jet-energy-scale and weight variations.
    sr_edges : Delta m -> the 4 lower max-logit edges of its signal regions (default: the
        config's; the main job derives them with analysis.stats).
    corrections : optional corrections.softtrack.apply.SoftTrackCorrections; simulation is then
        weighted by pileup, pT(Z) for Drell-Yan in the dy region, the p_T^miss line in the
        signal-like regions and, with a scorer, the track-class scale factor of the event's
        highest-scoring track (:meth:`applied_corrections`). The file must provide each for
        the era of every simulated dataset (checked by :meth:`validate` before any chunk);
        one the configuration's ``optional_corrections`` declares optional for an era may be
        absent there and is then not applied, with a notice. The sideband scale factors and
        the residual shape are not event weights: they scale the background of the signal
        regions and are applied to the ``sr`` histogram of the corrected output
        (corrections.softtrack.signal_regions). The ``nocorr`` variation keeps the
        uncorrected weight, ``puUp/puDown`` vary pileup.
    """

    name = "base"
    config_class = SoftTrackConfig
    stream = "met"
    n_leptons = 0
    finite_inputs = FINITE_INPUTS
    #: imported by the futures executor's forkserver before it forks workers (processors.preload)
    preload_modules = ("models.softtrack.inference", "corrections.softtrack.apply")
    #: event-level corrections of this region (besides pileup and the track-class SFs)
    event_corrections: tuple[str, ...] = ("met_weight",)

    def __init__(self, config: SoftTrackConfig | None = None, lumi_fb=None, scorer=None, systematics: bool = True,
                 corrections=None, sr_edges: dict | None = None):
        super().__init__(config, lumi_fb, systematics)
        self.sr_edges = {float(k): tuple(v) for k, v in (sr_edges or self.config.sr_edges).items()}
        self.scorer = scorer
        self.corrections = corrections
        self.histograms = REGION_HISTOGRAMS + (SCORE_HISTOGRAMS if scorer is not None else ())

    # -- before any chunk: models and corrections ---------------------------------------------
    def validate(self, fileset) -> None:
        """Open the models (ModelError naming the file and the fix) and check that the
        corrections cover every simulated dataset of ``fileset`` (CorrectionError naming the
        correction, what is missing and the fix)."""
        if self.scorer is not None and hasattr(self.scorer, "validate"):
            self.scorer.validate()
        if self.corrections is None:
            return
        for dataset, entry in fileset.items():
            meta = entry["metadata"]
            if meta["is_data"]:
                continue
            for name in self.applied_corrections(meta):
                self._correction_applies(name, str(meta["era"]), dataset)

    def applied_corrections(self, metadata) -> tuple[str, ...]:
        """The corrections this processor weights a simulated dataset with."""
        names = ["pileup_weight"]
        if "met_weight" in self.event_corrections:
            names.append("met_weight")
        if "ptz_weight" in self.event_corrections and metadata["process"] == "dy_mumu":
            names.append("ptz_weight")
        if self.scorer is not None:
            names.append("track_class_sf")
        return tuple(names)

    def _correction_applies(self, name: str, era: str, dataset: str, chunk: Chunk | None = None) -> bool:
        """Does correction ``name`` weight ``dataset`` (era ``era``)? True when the file covers
        it; False when the file lacks it for this era and the configuration declares it
        optional there (a notice on ``chunk`` says so); else a CorrectionError."""
        corr = self.corrections
        if corr is None:
            return False
        inputs = CORRECTION_INPUTS[name]
        problem = corr.missing(name, era=era, **inputs)
        if problem is None:
            return True
        kind, reason = problem
        optional = era in self.config.optional_corrections.get(name, ())
        if optional and kind in ("correction", "era"):
            if chunk is not None:
                chunk.notices.add(f"{name} not applied to {era} simulation: corrections file {corr.path} has no "
                                  f"{era} entry (declared optional for {era} in the configuration)")
            return False
        if kind in ("correction", "era"):
            fix = (f"derive it with `python run.py corrections` from outputs that cover {era}, or declare it "
                   f"optional for {era} with `optional_corrections = {{{name} = [\"{era}\"]}}` in --config")
        else:
            fix = "derive the file again with `python run.py corrections` (it must provide " + \
                  ", ".join(f"{k} {'/'.join(v)}" for k, v in inputs.items()) + ")"
        raise CorrectionError(f"corrections file {corr.path}: {reason}, which the {self.name} processor applies "
                              f"to dataset {dataset} (era {era}): {fix}")

    # -- objects ------------------------------------------------------------------------------
    def objects(self, chunk: Chunk) -> Collections:
        events, n = chunk.events, chunk.size
        tracks, source = col.tracks(events)
        if source != "Track":
            chunk.notices.add(f"{chunk.dataset}: no Track extension, using {source} (straight-line observables only)")
        mu, el, ph, ta = col.leptons(events)
        met_pt, met_phi = col.met(events)
        c = Collections(col.jets(events), mu, el, ph, ta, tracks, met_pt, met_phi, source)
        steps = [("all", np.ones(n, bool))]
        flags = events.Flag if "Flag" in events.fields else None
        steps.append(("noise_filters", noise_filters(flags, chunk.era) if flags is not None else np.ones(n, bool)))
        trigger = TRIGGERS[self.stream]
        if "HLT" in events.fields and trigger in events.HLT.fields:
            steps.append(("trigger", ak.to_numpy(events.HLT[trigger])))
        else:
            chunk.notices.add(f"{chunk.dataset}: trigger HLT_{trigger} not in file, not required")
        pre_steps, c = self.preselect(chunk, c)
        return replace(c, steps=tuple(steps + pre_steps))

    def preselect(self, chunk: Chunk, c: Collections) -> tuple[list, Collections]:
        """Region-specific steps before the baseline; may return transformed collections."""
        return [], c

    # -- variations and observables -----------------------------------------------------------
    def variations(self, chunk: Chunk):
        return JES_VARIATIONS

    def vary(self, objects: Collections, variation: str, chunk: Chunk) -> Collections:
        return vary_jets(objects, variation, self.config.jes_uncertainty, self.config.objects.jet_pt_rs)

    def observables(self, chunk: Chunk, c: Collections):
        cfg = self.config
        # the lepton counts do not change with the jets: once per chunk for all variations
        leptons = chunk.once("lepton_counts", (c.muons, c.electrons, c.photons, c.taus),
                             lambda: lepton_counts(c.muons, c.electrons, c.photons, c.taus, cfg.objects))
        o = event_observables(c.jets, c.muons, c.electrons, c.photons, c.taus, c.met_pt, c.met_phi, chunk.era,
                              cfg.objects, cfg.baseline, cfg.hem, leptons=leptons)
        events = chunk.events
        has_npv = "PV" in events.fields and "npvs" in events.PV.fields
        values = {name: getattr(o, name) for name in EVENT_OBSERVABLES}
        values["n_pv"] = ak.to_numpy(events.PV.npvs) if has_npv else np.zeros(chunk.size, int)
        values["_event"] = o
        return values

    # -- selection ----------------------------------------------------------------------------
    def selection(self, chunk: Chunk, c: Collections, observables):
        return selection_from_steps(list(c.steps) + baseline_steps(observables["_event"], self.n_leptons,
                                                                   self.config.baseline))

    # -- weights ------------------------------------------------------------------------------
    def weights(self, chunk: Chunk, c: Collections) -> EventWeights:
        """Normalization, then (simulation with corrections) pileup with its up/down
        variations and the region's event corrections, in this order."""
        w = EventWeights(chunk.size)
        w.add("normalization", self.normalization(chunk))
        meta, era, events = chunk.metadata, chunk.era, chunk.events
        if chunk.is_data or self.corrections is None:
            return w

        def full(v):
            v = np.asarray(v)
            return v.astype(np.float64) if v.shape else np.full(chunk.size, float(v))

        applied = self.applied_corrections(meta)
        dataset = chunk.dataset
        if ("Pileup" in events.fields and "pileup_weight" in applied
                and self._correction_applies("pileup_weight", era, dataset, chunk)):
            ntrue = ak.to_numpy(events.Pileup.nTrueInt).astype(np.float64)
            w.add("pileup", *(full(self.corrections.pileup_weight(era, ntrue, s)) for s in ("nominal", "up", "down")))
        if "met_weight" in applied and self._correction_applies("met_weight", era, dataset, chunk):
            w.add("met_weight", full(self.corrections.met_weight(era, c.met_pt)))
        if "ptz_weight" in applied and self._correction_applies("ptz_weight", era, dataset, chunk):
            w.add("ptz_weight", full(self.corrections.ptz_weight(era, col.gen_boson_pt(events))))
        return w

    def track_weight(self, chunk: Chunk, best_origin: np.ndarray) -> np.ndarray:
        """Track-class scale factor of the event's highest-scoring track (1 where unknown)."""
        w = np.ones(len(best_origin))
        era = chunk.era
        if not self._correction_applies("track_class_sf", era, chunk.dataset, chunk):
            return w
        for origin, cls in ((TRACK_ORIGINS["primary"], "pv"), (TRACK_ORIGINS["spurious"], "spurious")):
            w[best_origin == origin] = self.corrections.track_class_sf(era, cls)
        return w

    # -- categories ---------------------------------------------------------------------------
    def categories(self, chunk: Chunk, c: Collections, observables, selected, variation):
        """Candidate tracks of the selected events and, with a scorer, their max logit per
        Delta m, the category, the signal region and the track-class weight."""
        sel_c = c.take(selected)
        cuts = self.config.objects
        # on the chunk's flat track columns: the per-track cuts once per chunk, the DeltaR to
        # the (varied) jets per variation; the same mask as obj.candidate_tracks_mask
        flat = self._flat_tracks(chunk, c)
        quality = chunk.once("track_quality", (c.tracks,), lambda: obj.track_quality(flat, cuts))
        events = np.flatnonzero(selected)
        counts = flat.counts[events]
        every = flat.ids(events)
        cand_flat = obj.candidate_tracks_flat(quality[every], offsets_from_counts(counts), flat.float64("eta")[every],
                                              flat.float64("phi")[every], sel_c.jets, cuts)
        cand = ak.unflatten(cand_flat, counts)
        ncand = count_per_event(cand_flat, counts)
        out = {"tracks": sel_c.tracks[cand], "n_candidates": ncand, "scores": None, "track_sf": 1.0}
        # the class of a track does not depend on the variation: all tracks' once per chunk
        names, codes = chunk.once("track_classes", (c.tracks,), lambda: track_class_codes(chunk, c.tracks))
        out["track_ids"] = every[cand_flat]
        classes = names[codes[out["track_ids"]]]
        out["track_classes"] = classes
        if self.scorer is not None and c.track_source == "Track":
            ev = chunk.events[selected]
            scores, best_origin, best = self.scorer.max_logits_and_best(
                sel_c.tracks, cand, ev.PV, ev.OtherPV, ev.SV, sel_c.jets, sel_c.met_pt, sel_c.met_phi, chunk.era,
                chunk.is_data, **self._track_rows(chunk, c, selected))
            out["best_class"] = best_class(classes, ncand, best, chunk.is_data)
            finite = np.isfinite(scores).all(axis=1)
            if not finite.all():
                chunk.notices.add(f"{chunk.dataset}: non-finite track scores: their events are in no signal region "
                                  "and no score histogram")
            out["scores"], out["finite_scores"] = scores, finite
            out["category"], out["sr"] = signal_region(scores, self.sr_edges)
            if not chunk.is_data:
                out["track_sf"] = self.track_weight(chunk, best_origin)
        elif self.scorer is not None:
            chunk.notices.add(f"{chunk.dataset}: no helix covariance ({c.track_source}), track scores not evaluated")
        return out

    def _track_rows(self, chunk: Chunk, c: Collections, selected: np.ndarray) -> dict:
        """The scorer's per-chunk rows of described tracks (processors.softtrack.scoring.TrackRows),
        shared by the jet energy scale variations of the chunk, as keyword arguments; none for
        a scorer without them."""
        if not hasattr(self.scorer, "track_rows"):
            return {}
        flat = self._flat_tracks(chunk, c)
        events = chunk.events

        def vertices():
            return vertex_arrays(events.PV, events.OtherPV, events.SV)

        rows = chunk.once("track_rows", (c.tracks,), lambda: self.scorer.track_rows(flat.counts, flat, vertices))
        return {"rows": rows, "events": np.flatnonzero(selected)}

    @staticmethod
    def _flat_tracks(chunk: Chunk, c: Collections) -> FlatColumns:
        """The chunk's tracks (after the region's preselection) as flat columns, once per chunk."""
        return chunk.once("flat_tracks", (c.tracks,), lambda: FlatColumns(c.tracks))

    # -- fill ---------------------------------------------------------------------------------
    def fill(self, hists, chunk: Chunk, c: Collections, observables, selected, weights: EventWeights, cats,
             variation):
        dataset = chunk.dataset
        weight = weights.weight()
        simulation_systematics = self.systematics and not chunk.is_data
        if variation == "nominal":
            self.fill_inputs(hists, chunk, c, weights)
        sf = cats["track_sf"]
        fills = [(variation, weight[selected] * sf)]
        if variation == "nominal" and simulation_systematics:
            # pileup up/down (the nominal weight where no pileup weight applies) and the
            # uncorrected weight, which takes no track-class scale factor either
            for label, modifier in (("puUp", "pileupUp"), ("puDown", "pileupDown")):
                varied = weights.weight(modifier) if modifier in weights.variations else weight
                fills.append((label, varied[selected] * sf))
            fills.append(("nocorr", weights.product(include=("normalization",))[selected]))
        n_cand = np.zeros(chunk.size, np.int64)
        n_cand[selected] = cats["n_candidates"]
        values = dict(observables, n_candidates=n_cand)
        scores = cats["scores"]
        for syst, ws in fills:
            fill_observables(hists, self.histograms, values, selected, ws, dataset=dataset, systematic=syst)
            if scores is not None:
                self.fill_scores(hists, dataset, syst, cats, ws)
        if variation == "nominal":
            self.fill_tracks(hists, dataset, self._flat_tracks(chunk, c), cats["track_ids"],
                             np.repeat(weight[selected], cats["n_candidates"]), chunk.is_data, cats["track_classes"])
            self.fill_extra(chunk, c, observables["_event"], dict(c.steps), weight, hists)

    def fill_inputs(self, hists, chunk: Chunk, c: Collections, weights: EventWeights) -> None:
        """Pileup profile (raw weight), log10|dz| of the candidate tracks not associated with a
        pileup vertex (analysis.softtrack.objects.not_pileup_associated) and event count after
        the preselection (before the baseline): the inputs of the corrections (cleaned DY)."""
        dataset, is_data = chunk.dataset, chunk.is_data
        events = chunk.events
        if not is_data and "Pileup" in events.fields:
            hists["n_true_int"].fill(dataset=dataset, n_true_int=ak.to_numpy(events.Pileup.nTrueInt),
                                     weight=weights.product(include=("normalization",)))
        weight = weights.weight()
        pre = np.logical_and.reduce([m for _, m in c.steps])
        cp = c.take(pre)
        # the track-class fit's tracks: candidates not associated with a pileup vertex (on the
        # chunk's flat columns: the values of candidate_tracks_mask & not_pileup_associated)
        flat = self._flat_tracks(chunk, c)
        cuts = self.config.objects
        quality = chunk.once("track_quality", (c.tracks,), lambda: obj.track_quality(flat, cuts))
        events_pre = np.flatnonzero(pre)
        counts = flat.counts[events_pre]
        every = flat.ids(events_pre)
        cand = obj.candidate_tracks_flat(quality[every], offsets_from_counts(counts), flat.float64("eta")[every],
                                         flat.float64("phi")[every], cp.jets, cuts)
        if "vtxIdx" in flat:
            cand &= flat["vtxIdx"][every] <= 0
        ids = every[cand]
        w = np.repeat(weight[pre], count_per_event(cand, counts))
        with np.errstate(divide="ignore"):
            v = np.log10(np.abs(flat["dz"][ids].astype(np.float64)))
        origin = track_origins_flat(flat, ids, is_data)
        ok = np.isfinite(v)
        hists["track_log10_dz_presel"].fill(dataset=dataset, origin=origin[ok], track_log10_dz=v[ok], weight=w[ok])
        hists["n_events_presel"].fill(dataset=dataset, systematic="nominal", met=cp.met_pt, weight=weight[pre])
        if not is_data and "Pileup" in events.fields:
            # the same by true interactions, without a pileup weight this pass applies: the
            # track-class fit weights them with the pileup weights it derives (in any pass)
            w_pu = weights.product(exclude=("pileup",))[pre]
            n_true = ak.to_numpy(events.Pileup.nTrueInt)[pre]
            hists["track_log10_dz_presel_pileup"].fill(
                dataset=dataset, origin=origin[ok], n_true_int=np.repeat(n_true, count_per_event(cand, counts))[ok],
                track_log10_dz=v[ok], weight=np.repeat(w_pu, count_per_event(cand, counts))[ok])
            hists["n_events_presel_pileup"].fill(dataset=dataset, n_true_int=n_true, weight=w_pu)

    def fill_scores(self, hists, dataset: str, syst: str, cats, ws: np.ndarray) -> None:
        scores, category, sr = cats["scores"], cats["category"], cats["sr"]
        has = (cats["n_candidates"] > 0) & cats["finite_scores"]
        for j, dm in enumerate(CLASSIFIER_DMS):
            hists["max_logit"].fill(dataset=dataset, systematic=syst, dm=f"{dm:g}", max_logit=scores[has, j],
                                    weight=ws[has])
        if syst == "nominal":
            cat_value = scores[np.arange(len(category)), category]
            labels = np.array([f"{dm:g}" for dm in CLASSIFIER_DMS], dtype=object)[category]
            hists["max_logit_category"].fill(dataset=dataset, dm=labels[has], max_logit=cat_value[has],
                                             weight=ws[has])
        in_sr = sr >= 0
        hists["sr"].fill(dataset=dataset, systematic=syst, sr=sr[in_sr], weight=ws[in_sr])
        if "best_class" in cats:
            cls = cats["best_class"]
            hists["sr_class"].fill(dataset=dataset, systematic=syst, track_class=cls[in_sr], sr=sr[in_sr],
                                   weight=ws[in_sr])
            if syst == "nominal":
                for j, dm in enumerate(CLASSIFIER_DMS):
                    hists["max_logit_class"].fill(dataset=dataset, dm=f"{dm:g}", track_class=cls[has],
                                                  max_logit=scores[has, j], weight=ws[has])

    def fill_tracks(self, hists, dataset, columns, ids, w, is_data, classes=None):
        """The candidate-track histograms: the tracks ``ids`` of the chunk's flat ``columns``,
        each with its event's weight ``w``."""
        origin = track_origins_flat(columns, ids, is_data)

        def _flat(name):
            return columns[name][ids].astype(np.float64)

        if classes is not None:
            with np.errstate(divide="ignore"):
                dz = np.log10(np.abs(_flat("dz")))
            ok = np.isfinite(dz)
            hists["track_log10_dz_class"].fill(dataset=dataset, track_class=classes[ok], track_log10_dz=dz[ok],
                                               weight=w[ok])
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {
                "track_pt": _flat("pt"),
                "track_log10_dz": np.log10(np.abs(_flat("dz"))),
                "track_log10_dxy": np.log10(np.abs(_flat("dxy"))),
                "track_log10_dxyerr": np.log10(_flat("dxyErr")),
                "track_log10_dzerr": np.log10(_flat("dzErr")),
                "track_log10_iso": np.log10(_flat("pfIso03")),
            }
        for name, v in values.items():
            finite = np.isfinite(v)
            hists[name].fill(dataset=dataset, origin=origin[finite], **{name: v[finite]}, weight=w[finite])

    def fill_extra(self, chunk: Chunk, c: Collections, o, steps: dict, weight, hists) -> None:
        """Region-specific histograms (nominal only); ``steps`` are the pre-baseline masks."""
