"""The processor base of every analysis: named hooks in the order an analysis note reads.

    objects -> observables -> selection -> weights -> categories -> fill (-> collect)

:class:`AnalysisProcessor.process` calls the hooks for each chunk; an analysis overrides the
ones it needs. Selections are :class:`coffea.analysis_tools.PackedSelection` (the cutflow,
unweighted and weighted, comes from it: :func:`cutflow`); weights and their named variations
are :class:`processors.weights.EventWeights` (coffea's ``Weights``); histograms are declared
as data (:class:`processors.histograms.HistogramSpec`). A processor is stateless and
picklable: configuration enters through ``__init__``, models and corrections open lazily on
the worker, and the output is a plain dict that merges exactly.

Non-finite inputs: a processor declares the branches it reads that must be finite
(``finite_inputs``, NanoAOD names such as ``MET_pt``, ``Jet_pt``, ``genWeight``). An event with
a NaN or an infinity in any of them (any object of a collection) reaches no hook: the hooks
see the chunk without it, and the cutflow counts it in ``"all"`` and not in the step
``"finite_inputs"`` that follows (:func:`finite_mask`, :func:`add_finite_step`). Before any
chunk runs, :meth:`AnalysisProcessor.validate` checks what the processor holds (models,
corrections) against the datasets it will read.

The output of a chunk::

    {"histograms": {name: hist.Hist}, "cutflow": {dataset: {step: {"events", "weighted"}}},
     "chunks": [{"dataset", "file", "entrystart", "entrystop", "events"}], "notices": set()}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import awkward as ak
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection

from analysis.configuration import AnalysisConfig
from analysis.errors import ConfigError, InputFileError

from .histograms import HistogramSpec, book, fill_observables
from .schema import FILLED_BRANCHES, filled_branches
from .weights import EventWeights


@dataclass
class Chunk:
    """What the hooks know of the chunk being processed."""

    events: Any
    metadata: dict
    notices: set = field(default_factory=set)
    #: what the hooks compute once per chunk and share across its object variations (e.g.
    #: per-track quantities a variation of the jets does not change), by name
    cache: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # branches the schema filled in (processors.schema.FILLED_BRANCHES): said once per dataset
        for branch in filled_branches(self.events):
            self.notices.add(f"{self.metadata.get('dataset', '')}: {branch} not in the file, filled with "
                             f"{FILLED_BRANCHES[branch][1]:g} (coffea's {FILLED_BRANCHES[branch][0]} behaviour "
                             "needs it; nothing here reads it)")

    def once(self, name: str, of: tuple, compute):
        """The value of ``compute()`` for the objects ``of`` (compared by identity), computed
        once per chunk and kept in :attr:`cache` under ``name``: the hooks of every variation
        that passes the same objects (collections the variation does not change) share it."""
        held = self.cache.get(name)
        if held is None or len(held[0]) != len(of) or any(a is not b for a, b in zip(held[0], of, strict=True)):
            held = self.cache[name] = (tuple(of), compute())
        return held[1]

    @property
    def dataset(self) -> str:
        return self.metadata["dataset"]

    @property
    def era(self) -> str:
        return str(self.metadata["era"])

    @property
    def is_data(self) -> bool:
        return bool(self.metadata["is_data"])

    @property
    def size(self) -> int:
        return len(self.events)

    def record(self) -> dict:
        """The chunk's entry of the output's ``chunks`` list."""
        m = self.metadata
        return {"dataset": self.dataset, "file": m.get("filename", ""), "entrystart": int(m.get("entrystart", 0)),
                "entrystop": int(m.get("entrystop", self.size)), "events": self.size}


def cutflow(selection: PackedSelection, weight: np.ndarray, names: Sequence[str] | None = None,
            start: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Cumulative cutflow of the ``names`` steps of ``selection`` (default: all, in the order
    added): step -> {"events": unweighted count, "weighted": sum of ``weight``}, each step
    requiring all before it (and ``start``, a mask applied before the first step)."""
    names = list(selection.names if names is None else names)
    out = {}
    for i, name in enumerate(names):
        passed = selection.all(*names[: i + 1])
        if start is not None:
            passed = passed & start
        out[name] = {"events": int(passed.sum()), "weighted": float(weight[passed].sum())}
    return out


#: the cutflow step after "all" that keeps the events whose ``finite_inputs`` are all finite
FINITE_STEP = "finite_inputs"


def _branch(events, name: str):
    """The branch ``name`` (``Collection_field`` or a top-level name) of NanoEvents, or None
    if the file does not have it."""
    if name in events.fields:
        return events[name]
    collection, _, fld = name.partition("_")
    if not fld or collection not in events.fields:
        return None
    try:  # the field itself: the collection's behaviour (e.g. vector) may need fields the file lacks
        return events[collection, fld]
    except ak.errors.FieldNotFoundError:
        return None


def finite_mask(events, branches: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Per event: are all values of ``branches`` finite (every object of a collection)? And
    the branches that were not. Branches the file lacks are not checked (the code reading
    them says so), integer and boolean ones cannot be non-finite."""
    ok = np.ones(len(events), bool)
    bad_branches = []
    for name in branches:
        values = _branch(events, name)
        if values is None:
            continue
        jagged = values.ndim > 1
        flat = ak.to_numpy(ak.flatten(values, axis=None) if jagged else values)
        if flat.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(flat)
        if not bad.any():
            continue
        bad_branches.append(name)
        if jagged:
            counts = ak.to_numpy(ak.num(values, axis=1))
            ok[np.repeat(np.arange(len(counts)), counts)[bad]] = False
        else:
            ok[bad] = False
    return ok, bad_branches


def add_finite_step(flow: dict[str, dict], excluded: int, excluded_weight: float,
                    step: str = FINITE_STEP) -> dict[str, dict]:
    """The cutflow ``flow`` of the events with finite inputs, whose first step counts all of
    them, with ``step`` inserted after that first step: the first step then counts the
    ``excluded`` events too (their weight ``excluded_weight``), ``step`` what the first one
    counted. Without exclusions the counts are those of ``flow`` unchanged."""
    if not flow:
        return flow
    first, *rest = flow
    kept = dict(flow[first])
    total = kept if not excluded else {"events": kept["events"] + int(excluded),
                                       "weighted": kept["weighted"] + float(excluded_weight)}
    out = {first: dict(total), step: kept}
    out.update((k, flow[k]) for k in rest)
    return out


def selection_from_steps(steps: Sequence[tuple[str, np.ndarray]]) -> PackedSelection:
    """A PackedSelection of named boolean masks, in order (at most 64 steps)."""
    sel = PackedSelection(dtype="uint64")
    for name, mask in steps:
        sel.add(name, np.asarray(mask, dtype=bool))
    return sel


class AnalysisProcessor(processor.ProcessorABC):
    """Base of every analysis' processors.

    Parameters
    ----------
    config : the analysis' configuration (its ``config_class``; default: its defaults).
    lumi_fb : era -> integrated luminosity normalizing simulation (default: the config's).
    systematics : fill the variations (object variations and weight variations).

    Class attributes an analysis sets: ``name`` (its name in the registry), ``config_class``,
    ``histograms`` (the :class:`HistogramSpec` list), ``stream`` (the pseudo-data or data
    stream it reads, ``None`` for every data stream) and ``finite_inputs`` (the float
    branches it reads that must be finite; an event with a NaN or infinity in one is
    excluded and counted, see the module docstring; empty: nothing checked, no step).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[AnalysisConfig]] = AnalysisConfig
    histograms: ClassVar[Sequence[HistogramSpec]] = ()
    stream: ClassVar[str | None] = None
    finite_inputs: ClassVar[Sequence[str]] = ()

    def __init__(self, config: AnalysisConfig | None = None, lumi_fb: Mapping[str, float] | None = None,
                 systematics: bool = True):
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise ConfigError(f"processor {self.name or type(self).__name__} needs a {self.config_class.__name__}, "
                              f"got {type(config).__name__}")
        self.config = config
        self.lumi_fb = dict(lumi_fb or config.lumi_fb)
        self.systematics = bool(systematics)

    # -- before any chunk ---------------------------------------------------------------------
    def validate(self, fileset: Mapping[str, Mapping]) -> None:
        """Check what the processor holds (models, corrections, templates) against the
        datasets it will read (``fileset``: those it accepts), on the client before any chunk
        runs; raise a :class:`analysis.errors.SoftTrackError` naming the thing and the fix.
        Default: nothing to check."""

    # -- hooks, in the order of the analysis note ----------------------------------------------
    def accepts(self, metadata: Mapping) -> bool:
        """The datasets this processor reads: all simulation and its data stream."""
        return (not metadata["is_data"]) or self.stream is None or metadata["process"] == f"data_{self.stream}"

    def objects(self, chunk: Chunk) -> Any:
        """The physics objects of the chunk (collections the later hooks use)."""
        raise NotImplementedError

    def variations(self, chunk: Chunk) -> Sequence[str]:
        """Object variations to run observables, selection, categories and fill for."""
        return ("nominal",)

    def vary(self, objects: Any, variation: str, chunk: Chunk) -> Any:
        """The objects under ``variation`` (``"nominal"``: unchanged)."""
        if variation != "nominal":
            raise ConfigError(f"{type(self).__name__} has no variation {variation!r}")
        return objects

    def observables(self, chunk: Chunk, objects: Any) -> Mapping[str, np.ndarray]:
        """Per-event observables by name (numpy arrays of the chunk's length)."""
        return {}

    def selection(self, chunk: Chunk, objects: Any, observables: Mapping) -> PackedSelection:
        """The ordered selection steps; the event is selected when it passes all of them."""
        return PackedSelection()

    def weights(self, chunk: Chunk, objects: Any) -> EventWeights:
        """Event weights: the normalization of simulation (genWeight, cross section,
        luminosity, sum of generator weights) and the analysis' corrections."""
        w = EventWeights(chunk.size)
        w.add("normalization", self.normalization(chunk))
        return w

    def categories(self, chunk: Chunk, objects: Any, observables: Mapping, selected: np.ndarray,
                   variation: str) -> Mapping[str, Any]:
        """Per-event categories and extra values of the selected events (e.g. signal regions)."""
        return {}

    def fill(self, hists: dict, chunk: Chunk, objects: Any, observables: Mapping, selected: np.ndarray,
             weights: EventWeights, categories: Mapping, variation: str) -> None:
        """Fill the histograms: by default every observable-filled spec, nominal weight."""
        fill_observables(hists, self.histograms, observables, selected, weights.weight()[selected],
                         dataset=chunk.dataset, systematic=variation)

    def collect(self, out: dict, chunk: Chunk, objects: Any, observables: Mapping, selected: np.ndarray,
                weights: EventWeights, categories: Mapping, variation: str) -> None:
        """Add accumulators other than histograms to the chunk's output ``out`` (e.g.
        per-event columns as lists of per-chunk arrays, which merge by concatenation in the
        order of the chunks). Default: nothing."""

    # -- helpers ------------------------------------------------------------------------------
    def normalization(self, chunk: Chunk) -> np.ndarray:
        """1 for data; xsec * lumi * genWeight / sum_genweight for simulation."""
        if chunk.is_data:
            return np.ones(chunk.size)
        meta = chunk.metadata
        if "genWeight" not in chunk.events.fields:
            raise InputFileError(f"branch genWeight missing from {meta.get('filename')}: a simulation dataset "
                                 "needs it (is the dataset data? set is_data in the fileset)")
        era = chunk.era
        if era not in self.lumi_fb:
            raise ConfigError(f"dataset {chunk.dataset}: era {era!r} has no luminosity "
                              f"(configured: {sorted(self.lumi_fb)})")
        norm = float(meta["xsec_pb"]) * 1000.0 * self.lumi_fb[era] / float(meta["sum_genweight"])
        return norm * ak.to_numpy(chunk.events.genWeight).astype(np.float64)

    def new_output(self, chunk: Chunk) -> dict:
        return {"histograms": book(self.histograms), "cutflow": {chunk.dataset: {}}, "chunks": [chunk.record()],
                "notices": chunk.notices}

    def finite_events(self, chunk: Chunk) -> np.ndarray:
        """The events whose ``finite_inputs`` are all finite; a notice names each branch
        that was not."""
        ok, bad = finite_mask(chunk.events, self.finite_inputs)
        for name in bad:
            chunk.notices.add(f"{chunk.dataset}: non-finite {name} values: their events are excluded "
                              f"(cutflow step {FINITE_STEP!r})")
        return ok

    def excluded_weight(self, chunk: Chunk, finite: np.ndarray) -> float:
        """The weighted count of the events excluded for non-finite inputs: their
        normalization (no correction is evaluated on them), 0 where it is not finite."""
        if finite.all():
            return 0.0
        w = self.normalization(chunk)[~finite]
        return float(w[np.isfinite(w)].sum())

    # -- the chunk ----------------------------------------------------------------------------
    def process(self, events):
        full = Chunk(events, dict(events.metadata))
        out = self.new_output(full)
        finite = self.finite_events(full)
        # the hooks see only the events with finite inputs (the same chunk when all are)
        chunk = full if finite.all() else Chunk(events[finite], full.metadata, full.notices)
        objects = self.objects(chunk)
        weights = self.weights(chunk, objects)
        variations = self.variations(chunk) if self.systematics and not chunk.is_data else ("nominal",)
        for variation in variations:
            varied = self.vary(objects, variation, chunk)
            obs = self.observables(chunk, varied)
            sel = self.selection(chunk, varied, obs)
            if variation == "nominal":
                flow = cutflow(sel, weights.weight())
                if self.finite_inputs:
                    flow = self._finite_cutflow(flow, full, finite, weights)
                out["cutflow"][chunk.dataset] = flow
            selected = sel.all(*sel.names) if sel.names else np.ones(chunk.size, bool)
            cats = self.categories(chunk, varied, obs, selected, variation)
            self.fill(out["histograms"], chunk, varied, obs, selected, weights, cats, variation)
            self.collect(out, chunk, varied, obs, selected, weights, cats, variation)
        return out

    def _finite_cutflow(self, flow: dict, full: Chunk, finite: np.ndarray, weights: EventWeights) -> dict:
        """``flow`` with the step FINITE_STEP after "all" (both prepended when the selection
        does not start with "all")."""
        excluded, excluded_weight = int((~finite).sum()), self.excluded_weight(full, finite)
        if next(iter(flow), None) != "all":
            kept = {"events": int(finite.sum()), "weighted": float(weights.weight().sum())}
            flow = {"all": kept, **flow}
        return add_finite_step(flow, excluded, excluded_weight)

    def postprocess(self, accumulator):
        return accumulator
