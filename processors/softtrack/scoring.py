"""Track scores inside processors: refiner then classifier through ONNX Runtime (docs/physics.md
sec. 4, 7), the event-level maximum logit per Delta m, the category and the 12 signal
regions.

The scorer pickles without its onnxruntime sessions (models/inference.py opens them lazily
on each worker); :meth:`TrackScorer.validate` opens them once on the client before any chunk
runs, so that a corrupt model or one of the wrong input width stops the run there. A
non-finite max logit puts its event in no signal region.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from analysis.errors import ModelError
from analysis.softtrack.config import (
    CLASSIFIER_DM_INPUT,
    CLASSIFIER_DMS,
    CLASSIFIER_ERA_INPUTS,
    N_SR_BINS_PER_CATEGORY,
    SR_LOGIT_EDGES,
)
from analysis.softtrack.features import (
    FEATURE_NAMES,
    add_event_features,
    track_feature_table,
    track_vertex_features,
    track_vertex_features_flat,
)

#: max logit of an event without candidate tracks
NO_TRACK_LOGIT = -20.0
#: the columns :meth:`TrackScorer.max_logits` passes to the refiner
REFINER_INPUTS = ("pt", "dxyErr", "dzErr")


def _flat(x) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(x)), dtype=np.float64)


def signal_region(max_logits: np.ndarray, sr_edges: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Category (index of the Delta m with the largest max logit) and signal region
    (category * 4 + bin; -1 below the first edge) per event (docs/physics.md sec. 4); ``sr_edges``
    (dm -> 4 lower edges) defaults to config.SR_LOGIT_EDGES. An event with a non-finite max
    logit for any Delta m is in no signal region (-1): NaN sorts above every edge and would
    land in the tightest one."""
    sr_edges = sr_edges or SR_LOGIT_EDGES
    category = np.argmax(max_logits, axis=1)
    value = max_logits[np.arange(len(category)), category]
    finite = np.isfinite(max_logits).all(axis=1) if len(category) else np.ones(0, bool)
    sr = np.full(len(category), -1, np.int64)
    for c, dm in enumerate(CLASSIFIER_DMS):
        edges = np.asarray(sr_edges[dm])
        b = np.searchsorted(edges, value, side="right") - 1
        in_cat = (category == c) & (b >= 0) & finite
        sr[in_cat] = c * N_SR_BINS_PER_CATEGORY + np.minimum(b[in_cat], N_SR_BINS_PER_CATEGORY - 1)
    return category, sr


class TrackRows:
    """The rows of the candidate tracks of one chunk already described: their features that
    depend only on the track and the vertices (:func:`analysis.softtrack.features.track_vertex_features`),
    refined in simulation, by the track's index among all tracks of the chunk.

    A jet energy scale variation changes the jets, p_T^miss, the selected events and the
    candidates, not the tracks or the vertices: :meth:`TrackScorer.max_logits_and_best` with
    a chunk's TrackRows computes those features and runs the refiner once per track of the
    chunk, whatever the variations that select it, and only the features of the jets and
    p_T^miss (and the classifier) per variation.

    Parameters
    ----------
    counts : tracks per event of the chunk (all tracks of the collection the scorer is given,
        before any event selection).
    """

    def __init__(self, counts: np.ndarray, columns=None, vertices=None):
        counts = np.asarray(counts, np.int64)
        self.offsets = np.zeros(counts.size + 1, np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        #: the tracks described (chunk-wide indices) and their rows, in the order added
        self.ids = np.zeros(0, np.int64)
        self.rows: np.ndarray | None = None
        self._position: np.ndarray | None = None  # track -> its row (-1: none), once one is added
        #: optional: the chunk's tracks as flat columns (analysis.columnar.FlatColumns) and a
        #: callable giving its vertices (analysis.softtrack.features.vertex_arrays of all its
        #: events): the tracks are then described from flat arrays of the whole chunk
        self.columns = columns
        self._vertices = vertices

    @property
    def flat(self) -> bool:
        """Are the tracks described from the chunk's flat columns?"""
        return self.columns is not None and self._vertices is not None

    def vertices(self) -> dict:
        if callable(self._vertices):
            self._vertices = self._vertices()
        return self._vertices

    def track_ids(self, events: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Chunk-wide index of every track (flat) of the events ``events`` (indices into the
        chunk, ascending) that hold ``counts`` tracks each."""
        start = np.repeat(self.offsets[events] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return start + np.arange(start.size)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in :attr:`rows` of ``ids`` and whether each is there."""
        if self._position is None:
            return np.zeros(ids.size, np.int64), np.zeros(ids.size, bool)
        pos = self._position[ids]
        return pos, pos >= 0

    def add(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Add the ``rows`` of the tracks ``ids`` (none there yet): appended, their positions
        noted in a map of every track of the chunk (no sorting)."""
        if self._position is None:
            self._position = np.full(int(self.offsets[-1]), -1, np.int64)
        start = 0 if self.rows is None else len(self.rows)
        self._position[ids] = np.arange(start, start + ids.size)
        if self.rows is None:  # the first variation: nothing to append to
            self.ids, self.rows = ids, rows
            return
        self.ids = np.concatenate([self.ids, ids])
        self.rows = np.concatenate([self.rows, rows])


class TrackScorer:
    """Refine simulated tracks, then classify every candidate track for each Delta m."""

    def __init__(self, classifier_path: Path, refiner_path: Path | None):
        from models.softtrack.inference import ClassifierModel, RefinerModel

        self.classifier = ClassifierModel(classifier_path)
        self.refiner = RefinerModel(refiner_path) if refiner_path is not None else None

    @classmethod
    def from_directory(cls, directory: Path | None = None) -> TrackScorer:
        from models.softtrack.inference import DEFAULT_CLASSIFIER, DEFAULT_REFINER

        clf = Path(directory) / "classifier.onnx" if directory else DEFAULT_CLASSIFIER
        ref = Path(directory) / "refiner.onnx" if directory else DEFAULT_REFINER
        if not clf.is_file():
            raise ModelError(f"no classifier at {clf}: train one with `python run.py train classifier` "
                             "or run without scores (--no-scores)")
        return cls(clf, ref if ref.is_file() else None)

    def validate(self) -> None:
        """Open the onnxruntime sessions (ModelError naming the file and the fix when a model
        is corrupt or its graph does not match its description, e.g. another input width)
        and check that the classifier reads only features this code computes."""
        for model in (self.classifier, self.refiner):
            if model is not None:
                model.session  # noqa: B018 - opening is the check
        tail = (CLASSIFIER_DM_INPUT, *CLASSIFIER_ERA_INPUTS)
        unknown = [f for f in self.classifier.feature_order if f not in FEATURE_NAMES and f not in tail]
        if unknown:
            raise ModelError(f"classifier {self.classifier.path} takes features {unknown} this code does not "
                             "compute: retrain it with `python run.py train classifier` or restore the shipped file")
        refined = [f for f in self.refiner.feature_order if f not in REFINER_INPUTS] if self.refiner else []
        if refined:
            raise ModelError(f"refiner {self.refiner.path} takes inputs {refined} this code does not pass "
                             f"({', '.join(REFINER_INPUTS)}): retrain it with `python run.py train refiner` "
                             "or restore the shipped file")

    def hashes(self) -> dict[str, str]:
        out = {"classifier": self.classifier.meta.get("onnx_sha256", "")}
        if self.refiner is not None:
            out["refiner"] = self.refiner.meta.get("onnx_sha256", "")
        return out

    def max_logits(self, tracks, candidate, pv, other_pv, sv, jets, met_pt, met_phi, era: str,
                   is_data: bool) -> tuple[np.ndarray, np.ndarray]:
        """(n_events, 3) maximum logit over candidate tracks for each Delta m, and the
        generator origin (analysis.contract.TRACK_ORIGINS; -1: none or data) of the track
        with the largest logit of the event."""
        out, best_origin, _ = self.max_logits_and_best(tracks, candidate, pv, other_pv, sv, jets, met_pt, met_phi,
                                                       era, is_data)
        return out, best_origin

    def track_rows(self, counts: np.ndarray, columns=None, vertices=None) -> TrackRows:
        """An empty :class:`TrackRows` for a chunk of ``counts`` tracks per event (with
        ``columns`` and ``vertices``: described from the chunk's flat arrays, see TrackRows)."""
        return TrackRows(counts, columns, vertices)

    def refine(self, table: np.ndarray) -> None:
        """Replace pt, log10_dxy_err and log10_dz_err of the simulated tracks of the feature
        table by their refined values (docs/physics.md sec. 7); nothing without a refiner."""
        if self.refiner is None or not len(table):
            return
        flat = {"pt": table["pt"].astype(np.float32),  # the REFINER_INPUTS
                "dxyErr": (10.0 ** table["log10_dxy_err"]).astype(np.float32),
                "dzErr": (10.0 ** table["log10_dz_err"]).astype(np.float32)}
        refined = self.refiner.refine(flat)
        table["pt"] = refined["pt"]
        table["log10_dxy_err"] = np.log10(np.maximum(refined["dxyErr"], 1e-6))
        table["log10_dz_err"] = np.log10(np.maximum(refined["dzErr"], 1e-6))

    def _described(self, rows: TrackRows, events, tracks, candidate, pv, other_pv, sv,
                   is_data: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The feature table of the candidates without the event features, from ``rows``
        (the tracks not yet there described, refined and added first), the event of each
        row (index among the events given) and its track's index in the chunk."""
        counts = ak.to_numpy(ak.num(candidate))
        cand = ak.to_numpy(ak.flatten(candidate))
        ids = rows.track_ids(np.asarray(events, np.int64), counts)[cand]
        _, found = rows.find(ids)
        if not found.all():
            if rows.flat:
                table, _ = track_vertex_features_flat(rows.columns, ids[~found], rows.vertices())
            else:
                new = np.zeros(cand.size, bool)
                new[np.flatnonzero(cand)[~found]] = True
                table, _ = track_vertex_features(tracks, ak.unflatten(new, counts), pv, other_pv, sv)
            if not is_data:
                self.refine(table)
            rows.add(ids[~found], table)
        pos, _ = rows.find(ids)
        passed = np.zeros(cand.size + 1, np.int64)
        np.cumsum(cand, out=passed[1:])
        bounds = np.zeros(counts.size + 1, np.int64)
        np.cumsum(counts, out=bounds[1:])
        n_cand = passed[bounds[1:]] - passed[bounds[:-1]]
        return rows.rows[pos], np.repeat(np.arange(counts.size), n_cand), ids

    def max_logits_and_best(self, tracks, candidate, pv, other_pv, sv, jets, met_pt, met_phi, era: str,
                            is_data: bool, rows: TrackRows | None = None,
                            events: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`max_logits` and, per event, the index of its highest-scoring track among
        its candidate tracks (the largest logit over the three Delta m; -1: none).

        With ``rows`` (the chunk's :class:`TrackRows`) and ``events`` (the indices in the
        chunk of the events given), the features of the tracks and vertices and the refined
        values come from ``rows`` where a call for another variation of the chunk computed
        them already: the same values as without (a test checks it)."""
        n = len(met_pt)
        out = np.full((n, len(CLASSIFIER_DMS)), NO_TRACK_LOGIT)
        best_origin = np.full(n, -1, np.int64)
        best_index = np.full(n, -1, np.int64)
        if n == 0 or ak.sum(candidate) == 0:
            return out, best_origin, best_index
        if rows is None:
            table, event = track_feature_table(tracks, candidate, pv, other_pv, sv, jets, met_pt, met_phi)
            if not is_data:
                self.refine(table)
        else:
            table, event, ids = self._described(rows, events, tracks, candidate, pv, other_pv, sv, is_data)
            if rows.flat:
                eta, phi = rows.columns.float64("eta")[ids], rows.columns.float64("phi")[ids]
            else:
                cand = tracks[candidate]
                eta, phi = _flat(cand.eta), _flat(cand.phi)
            add_event_features(table, event, eta, phi, jets, met_pt, met_phi)
        best = np.full(len(event), -np.inf)
        logits = self.classifier.signal_logits(table, CLASSIFIER_DMS, era)  # one input matrix for the three
        for j in range(len(CLASSIFIER_DMS)):
            logit = logits[:, j]
            np.maximum.at(out[:, j], event, logit)
            best = np.maximum(best, logit)
        order = np.lexsort((best, event))  # per event ascending: the last is the best
        last = np.r_[event[order][1:] != event[order][:-1], True]
        first_of_event = np.searchsorted(event, np.arange(n))  # event is sorted (flattened layout)
        best_index[event[order][last]] = order[last] - first_of_event[event[order][last]]
        if not is_data and "genOrigin" in tracks.fields:
            if rows is not None and rows.flat:
                origin = rows.columns["genOrigin"][ids].astype(np.int64)
            else:
                origin = ak.to_numpy(ak.flatten(tracks.genOrigin[candidate])).astype(np.int64)
            best_origin[event[order][last]] = origin[order][last]
        return out, best_origin, best_index
