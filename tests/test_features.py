"""The classifier's feature table (issue 3): names, order, finiteness, fill values and
agreement with direct helix calls."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from coffea.nanoevents import NanoEventsFactory

from analysis import contract as dc
from analysis.helix import impact_parameters
from analysis.softtrack.features import FEATURE_NAMES, feature_matrix, track_feature_table
from analysis.softtrack.objects import candidate_tracks_mask
from processors.schema import SoftTrackSchema


@pytest.fixture(scope="module")
def table(small_sample):
    out, _ = small_sample
    ev = NanoEventsFactory.from_root({str(out / "signal_m115_dm0p27_2018.root"): "Events"},
                                     schemaclass=SoftTrackSchema, mode="eager").events()
    cand = candidate_tracks_mask(ev.Track, ev.Jet)
    tab, idx = track_feature_table(ev.Track, cand, ev.PV, ev.OtherPV, ev.SV, ev.Jet, ev.MET.pt, ev.MET.phi)
    return ev, cand, tab, idx


def test_names_order_and_count(table):
    _, _, tab, _ = table
    assert len(FEATURE_NAMES) == 37 and len(set(FEATURE_NAMES)) == 37
    assert tab.dtype.names == FEATURE_NAMES
    assert feature_matrix(tab).shape == (len(tab), 37)


def test_finite_and_fill_values(table):
    ev, cand, tab, idx = table
    m = feature_matrix(tab)
    assert len(tab) > 1000
    assert np.isfinite(m).all()
    # tracks without an associated vertex get the documented fill value
    vtx = ak.to_numpy(ak.flatten(ev.Track.vtxIdx[cand]))
    assert np.all(tab["log10_ipxy_assoc"][vtx < 0] == dc.FILL_LOG10_UNDEFINED)
    assert np.all(tab["delta_xy_pv_assoc_pv"][vtx < 0] == dc.FILL_DISTANCE)
    assert np.all(tab["log10_ipxy_assoc"][vtx >= 0] > dc.FILL_LOG10_UNDEFINED)
    sv = ak.to_numpy(ak.flatten(ev.Track.svIdx[cand]))
    assert np.all((tab["delta_xy_pv_sv"] == dc.FILL_DISTANCE) == (sv < 0))
    assert np.array_equal(np.bincount(idx, minlength=len(ev)), ak.to_numpy(ak.sum(cand, axis=1)))


def test_pv_features_match_helix(table):
    ev, cand, tab, idx = table
    t = ev.Track[cand]

    def flat(x):
        return ak.to_numpy(ak.flatten(x)).astype(np.float64)

    n = len(tab)
    pv = {c: ak.to_numpy(ev.PV[c]).astype(np.float64)[idx] for c in ("x", "y", "z", *dc.VERTEX_COV_BRANCHES)}
    ip = impact_parameters(flat(t.pt), flat(t.eta), flat(t.phi), flat(t.charge), flat(t.refX), flat(t.refY),
                           flat(t.refZ), pv["x"], pv["y"], pv["z"],
                           tuple(flat(t[b]) for b in dc.TRACK_COV_BRANCHES),
                           tuple(pv[b] for b in dc.VERTEX_COV_BRANCHES))
    expected = np.log10(np.maximum(ip.ipxy_sig, 1e-6))
    np.testing.assert_allclose(tab["log10_ipxy_sig_pv"], expected, rtol=1e-5, atol=1e-5)
    assert n == len(expected)
    np.testing.assert_allclose(tab["pt"], flat(t.pt), rtol=1e-6)


def test_signal_pions_are_displaced(table):
    """Helix IP significance w.r.t. the PV separates signal pions from prompt tracks."""
    ev, cand, tab, idx = table
    gen = ev.Track.matched_gen[cand]
    pdg = ak.to_numpy(ak.flatten(ak.fill_none(abs(gen.pdgId), 0)))
    mother = ak.to_numpy(ak.flatten(ak.fill_none(abs(gen.parent.pdgId), 0)))
    sig = (pdg == 211) & (mother == dc.PDG_CHARGINO)
    prompt = (ak.to_numpy(ak.flatten(ev.Track.genOrigin[cand])) == 0) & ~sig & (pdg != 0)
    assert sig.sum() > 30
    assert np.median(tab["log10_ipxy_sig_pv"][sig]) > np.median(tab["log10_ipxy_sig_pv"][prompt]) + 0.5


def test_track_rows_give_the_scores_of_the_straightforward_path(table):
    """The scorer with a chunk's TrackRows (track and vertex features and refined values
    computed once per track, shared by the jet energy scale variations) gives bit for bit
    the max logits, best tracks and origins of the straightforward path, for selections that
    overlap, nest and add events; and the three Delta m evaluated on one input matrix give
    the logits of one evaluation per Delta m."""
    from analysis.softtrack.config import CLASSIFIER_DMS
    from processors.softtrack.scoring import TrackScorer

    ev, _, tab, _ = table
    scorer = TrackScorer.from_directory(None)
    rng = np.random.default_rng(7)
    n = len(ev)
    rows = scorer.track_rows(ak.to_numpy(ak.num(ev.Track)))
    selections = [rng.random(n) < 0.6, rng.random(n) < 0.6, np.ones(n, bool), rng.random(n) < 0.05]
    for k, sel in enumerate(selections):
        e = ev[sel]
        jets = ak.with_field(e.Jet, e.Jet.pt * (1.0 + 0.02 * k), "pt")  # as a jet energy scale variation
        cand = candidate_tracks_mask(e.Track, jets)
        met = ak.to_numpy(e.MET.pt) * (1.0 + 0.01 * k)
        args = (e.Track, cand, e.PV, e.OtherPV, e.SV, jets, met, ak.to_numpy(e.MET.phi), "2018", False)
        plain = scorer.max_logits_and_best(*args)
        shared = scorer.max_logits_and_best(*args, rows=rows, events=np.flatnonzero(sel))
        for a, b in zip(plain, shared, strict=True):
            assert np.array_equal(a, b)
    assert rows.ids.size == np.unique(rows.ids).size
    logits = scorer.classifier.signal_logits(tab, CLASSIFIER_DMS, "2018")
    for j, dm in enumerate(CLASSIFIER_DMS):
        assert np.array_equal(logits[:, j], scorer.classifier.signal_logit(tab, dm, "2018"))


def test_flat_track_rows_give_the_scores_of_the_straightforward_path(table):
    """TrackRows that describe the tracks from the chunk's flat columns and vertex arrays
    (analysis.columnar.FlatColumns, track_vertex_features_flat) give bit for bit the max
    logits, best tracks and origins of the straightforward path, and the flat feature table
    of any tracks equals the jagged one row for row."""
    from analysis.columnar import FlatColumns
    from analysis.softtrack.features import (
        track_vertex_features,
        track_vertex_features_flat,
        vertex_arrays,
    )
    from processors.softtrack.scoring import TrackScorer

    ev, _, _, _ = table
    scorer = TrackScorer.from_directory(None)
    rng = np.random.default_rng(11)
    n = len(ev)
    columns = FlatColumns(ev.Track)
    rows = scorer.track_rows(columns.counts, columns, lambda: vertex_arrays(ev.PV, ev.OtherPV, ev.SV))
    assert rows.flat
    for k, sel in enumerate([rng.random(n) < 0.6, rng.random(n) < 0.6, np.ones(n, bool), rng.random(n) < 0.05]):
        e = ev[sel]
        jets = ak.with_field(e.Jet, e.Jet.pt * (1.0 - 0.02 * k), "pt")
        cand = candidate_tracks_mask(e.Track, jets)
        met = ak.to_numpy(e.MET.pt) * (1.0 + 0.01 * k)
        args = (e.Track, cand, e.PV, e.OtherPV, e.SV, jets, met, ak.to_numpy(e.MET.phi), "2018", False)
        plain = scorer.max_logits_and_best(*args)
        shared = scorer.max_logits_and_best(*args, rows=rows, events=np.flatnonzero(sel))
        for a, b in zip(plain, shared, strict=True):
            assert np.array_equal(a, b)
        # the table itself, for these candidates
        jagged, jev = track_vertex_features(e.Track, cand, e.PV, e.OtherPV, e.SV)
        ids = columns.ids(np.flatnonzero(sel), cand)
        flat, fev = track_vertex_features_flat(columns, ids, vertex_arrays(ev.PV, ev.OtherPV, ev.SV))
        assert np.array_equal(np.flatnonzero(sel)[jev], fev)
        for name in FEATURE_NAMES:
            assert np.array_equal(jagged[name], flat[name]), name


def test_flat_columns_ids_and_chunk_once():
    """FlatColumns: the ids of a selection index the flat columns as flattening the selected
    collection does; Chunk.once computes once per identical objects."""
    from analysis.columnar import FlatColumns
    from processors.base import Chunk

    coll = ak.zip({"x": ak.Array([[1.0, 2.0], [], [3.0, 4.0, 5.0], [6.0]])})
    cols = FlatColumns(coll)
    events = np.array([0, 2, 3])
    mask = coll.x[events] > 1.5
    assert np.array_equal(cols["x"][cols.ids(events, mask)], ak.to_numpy(ak.flatten(coll.x[events][mask])))
    assert np.array_equal(cols["x"][cols.ids(events)], ak.to_numpy(ak.flatten(coll.x[events])))
    assert np.array_equal(cols.event_of(cols.ids(events)), [0, 0, 2, 2, 2, 3])
    chunk = Chunk(ak.Array([{"a": 1}]), {"dataset": "d", "era": "2018", "is_data": True})
    calls = []
    a, b = object(), object()
    assert chunk.once("k", (a,), lambda: calls.append(1) or 1) == 1
    assert chunk.once("k", (a,), lambda: calls.append(1) or 2) == 1
    assert chunk.once("k", (b,), lambda: calls.append(1) or 3) == 3
    assert len(calls) == 2


def test_flat_candidates_equal_the_jagged_mask(table):
    """The candidate tracks from flat columns (per-track cuts once, DeltaR to the varied jets)
    are the jagged candidate_tracks_mask, for selections and scaled jets."""
    from analysis.columnar import FlatColumns, count_per_event, offsets_from_counts
    from analysis.softtrack.objects import candidate_tracks_flat, track_quality

    ev, _, _, _ = table
    columns = FlatColumns(ev.Track)
    quality = track_quality(columns)
    rng = np.random.default_rng(5)
    for k, sel in enumerate([np.ones(len(ev), bool), rng.random(len(ev)) < 0.3]):
        e = ev[sel]
        jets = ak.with_field(e.Jet, e.Jet.pt * (1.0 + 0.05 * k), "pt")
        jagged = candidate_tracks_mask(e.Track, jets)
        events = np.flatnonzero(sel)
        every = columns.ids(events)
        counts = columns.counts[events]
        flat = candidate_tracks_flat(quality[every], offsets_from_counts(counts), columns.float64("eta")[every],
                                     columns.float64("phi")[every], jets)
        assert np.array_equal(flat, ak.to_numpy(ak.flatten(jagged)))
        assert np.array_equal(count_per_event(flat, counts), ak.to_numpy(ak.sum(jagged, axis=1)))


def test_chunk_track_classes_equal_the_candidates_classes(table):
    """The background classes of every track of a chunk, computed once (track_class_codes),
    indexed by a selection's candidates, are candidate_classes of that selection."""
    from analysis.columnar import FlatColumns
    from processors.base import Chunk
    from processors.softtrack.region import candidate_classes, track_class_codes

    ev, _, _, _ = table
    chunk = Chunk(ev, {"dataset": "signal", "era": "2018", "is_data": False})
    names, codes = track_class_codes(chunk, ev.Track)
    columns = FlatColumns(ev.Track)
    sel = np.random.default_rng(3).random(len(ev)) < 0.5
    cand = candidate_tracks_mask(ev.Track[sel], ev.Jet[sel])
    plain = candidate_classes(chunk, sel, ev.Track[sel][cand])
    assert plain.size > 100 and np.array_equal(names[codes[columns.ids(np.flatnonzero(sel), cand)]], plain)
