"""Training data of the models: from feature tables to arrays, splits and weights.

numpy only (torch enters in :mod:`models.softtrack.training`).

Classifier (docs/physics.md sec. 4; thesis ch. 4 intro and Table 4.1)
    :func:`build_classifier_data` takes any per-track feature table (numpy structured
    array or a mapping name -> 1D array, e.g. the record array of
    ``analysis.softtrack.features``), the class labels (indices into TRACK_CLASSES), event ids, the
    Delta m of signal tracks and the era, and returns :class:`ClassifierData`:
    inputs (features, dm, one-hot era), labels, weights and a train/validation/test split
    *by event* (all tracks of an event land in the same split). Signal tracks are weighted
    flat in (m, Delta m): every signal point gets the same total weight. Background tracks
    get a Delta m drawn from the signal tracks' weighted Delta m distribution. Signal and
    background totals are equal.

Refiner (docs/physics.md sec. 7; thesis sec. 6.2.2)
    :func:`refiner_track_columns` selects, from generator output, cleaned Drell-Yan events:
    a Z -> mu mu candidate (two opposite-charge isolated muons with pT > 30 GeV and 75 < m
    <= 105 GeV) with pT(mumu) > ``ptz_min`` (200 GeV in the cleaned-DY region, docs/physics.md
    sec. 5), and their candidate tracks (docs/physics.md sec. 2: high purity, PF, pT < 20
    GeV, |eta| < 2.4, |dz| < 1 cm, away from jets; the muons' own tracks fail pT < 20 GeV).
    Each simulated track carries the weight the analysis gives it: genWeight x the pT(Z)
    weight of its event x the track-class scale factor of its class (PV-associated for
    tracks of the primary interaction, spurious; pileup tracks 1), from a correctionlib file
    (:class:`RefinerWeights`); data tracks weigh 1. :func:`refiner_samples` does that for the
    files of a fileset: simulated ``dy_mumu`` and the (pseudo-)data stream
    ``data_singlemuon``, read with uproot (:func:`read_collections`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from analysis.errors import ConfigError
from analysis.softtrack.config import (
    CLASSIFIER_DM_INPUT,
    CLASSIFIER_ERA_INPUTS,
    DY_CUTS,
    ERAS,
    REFINER_VARIABLES,
    TRACK_CLASSES,
    TRACK_SF_CLASSES,
)

SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2
#: train / validation / test fractions of events (thesis: validation = 10% of training)
DEFAULT_SPLIT_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)
SIGNAL_CLASS = TRACK_CLASSES.index("signal")


# --- Tables ---------------------------------------------------------------------------
def column_names(table: Any) -> tuple[str, ...]:
    """Column names of a structured array, a mapping, or an awkward record array."""
    if isinstance(table, np.ndarray) and table.dtype.names:
        return tuple(table.dtype.names)
    if isinstance(table, Mapping):
        return tuple(table.keys())
    if hasattr(table, "fields"):
        return tuple(table.fields)
    raise ConfigError(f"a feature table must be a structured array or a mapping of columns, got {type(table).__name__}")


def table_to_matrix(table: Any, names: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Feature table -> (float32 matrix (n, k), column names) in the order ``names``."""
    available = column_names(table)
    names = tuple(available if names is None else names)
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(f"feature table lacks column(s) {missing}")
    cols = [np.asarray(table[n], dtype=np.float32).reshape(-1) for n in names]
    if len({c.size for c in cols}) > 1:
        raise ConfigError("feature table columns have different lengths")
    return np.stack(cols, axis=1), names


def era_indices(era: Any, n: int) -> np.ndarray:
    """Era names / indices (scalar or (n,)) -> int64 indices into ERAS."""
    arr = np.asarray(era)
    if arr.ndim == 0:
        arr = np.full(n, arr.item())
    if arr.dtype.kind in "iu":
        idx = arr.astype(np.int64)
    else:
        lookup = {e: i for i, e in enumerate(ERAS)}
        idx = np.array([lookup.get(str(e), -1) for e in arr], dtype=np.int64)
    if idx.shape != (n,) or np.any((idx < 0) | (idx >= len(ERAS))):
        raise ConfigError(f"eras must be names in {ERAS} or indices, one per track")
    return idx


def split_by_event(
    event_ids: np.ndarray, seed: int, fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
) -> np.ndarray:
    """Assign every track to train (0), validation (1) or test (2) by its event.

    Unique event ids are shuffled with ``numpy.random.default_rng(seed)`` and cut by
    ``fractions``; all tracks of one event share a split. Event ids must be unique per
    event across all samples (e.g. ``sample_index * 2**32 + event``).
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ConfigError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    uniq, inverse = np.unique(np.asarray(event_ids), return_inverse=True)
    rng = np.random.default_rng(seed)
    u = rng.permutation(uniq.size) / max(uniq.size, 1)
    cut1, cut2 = fractions[0], fractions[0] + fractions[1]
    code = np.where(u < cut1, SPLIT_TRAIN, np.where(u < cut2, SPLIT_VAL, SPLIT_TEST)).astype(np.int8)
    return code[inverse.reshape(-1)]


@dataclass(frozen=True)
class ClassifierData:
    """Classifier inputs and targets (all arrays of the same length n).

    Attributes
    ----------
    x : float32 (n, N + 1 + n_eras): track features, Delta m, one-hot era.
    y : int64 (n,): class index into TRACK_CLASSES.
    weight : float32 (n,): training weight (flat in signal (m, dm); S and B totals equal).
    split : int8 (n,): 0 train, 1 validation, 2 test (by event).
    dm_point : float32 (n,): true Delta m of signal tracks (NaN for background).
    input_names : names of the columns of x.
    """

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    split: np.ndarray
    dm_point: np.ndarray
    input_names: tuple[str, ...]

    @property
    def n_features(self) -> int:
        return len(self.input_names) - 1 - len(CLASSIFIER_ERA_INPUTS)

    def subset(self, which: int) -> ClassifierData:
        m = self.split == which
        return replace(self, x=self.x[m], y=self.y[m], weight=self.weight[m], split=self.split[m],
                       dm_point=self.dm_point[m])

    def with_dm(self, dm: float) -> np.ndarray:
        """x with the Delta m column set to ``dm`` for every track (evaluation at a hypothesis)."""
        x = self.x.copy()
        x[:, self.n_features] = dm
        return x


def build_classifier_data(
    features: Any,
    labels: np.ndarray,
    event_ids: np.ndarray,
    dm: np.ndarray,
    era: Any,
    *,
    seed: int,
    m_chargino: np.ndarray | None = None,
    background_weight: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
    fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
) -> ClassifierData:
    """Build the classifier's training arrays from a per-track feature table (docs/physics.md sec. 4).

    Parameters
    ----------
    features : structured array or mapping name -> (n,) of the track features.
    labels : (n,) class indices into TRACK_CLASSES.
    event_ids : (n,) unique event key of each track (split by event).
    dm : (n,) Delta m (GeV) of the signal point of each signal track (ignored for
        background tracks, which get a value drawn from the signal distribution).
    era : era name, or (n,) era names / indices.
    seed : seeds the split and the background Delta m draws.
    m_chargino : (n,) chargino mass of signal tracks (flat weighting in (m, dm)); if
        None, flat in dm only.
    background_weight : (n,) relative weights of background tracks (e.g. cross section
        / generated events); 1 if None.
    feature_names : columns and their order (default: all columns of the table).
    """
    x_feat, names = table_to_matrix(features, feature_names)
    n = x_feat.shape[0]
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    dm = np.asarray(dm, dtype=np.float64).reshape(-1)
    if labels.shape != (n,) or dm.shape != (n,) or np.asarray(event_ids).reshape(-1).shape != (n,):
        raise ConfigError(f"labels, dm and event_ids need one entry per track ({n})")
    if np.any((labels < 0) | (labels >= len(TRACK_CLASSES))):
        raise ConfigError(f"labels must be class indices 0..{len(TRACK_CLASSES) - 1} ({', '.join(TRACK_CLASSES)})")
    is_sig = labels == SIGNAL_CLASS
    if not is_sig.any() or is_sig.all():
        raise ConfigError("the classifier needs both signal and background tracks")
    rng = np.random.default_rng(seed)
    mass = np.zeros(n) if m_chargino is None else np.asarray(m_chargino, dtype=np.float64).reshape(-1)
    # flat in (m, dm): equal total weight per signal point
    points = np.stack([mass[is_sig], dm[is_sig]], axis=1)
    _, point_idx, point_counts = np.unique(points, axis=0, return_inverse=True, return_counts=True)
    weight = np.zeros(n)
    weight[is_sig] = 1.0 / point_counts[point_idx.reshape(-1)]
    bkg_w = np.ones(n) if background_weight is None else np.asarray(background_weight, dtype=np.float64).reshape(-1)
    weight[~is_sig] = bkg_w[~is_sig]
    weight[is_sig] *= weight[~is_sig].sum() / weight[is_sig].sum()
    weight *= n / weight.sum()  # mean weight 1 keeps the loss scale independent of n
    # background Delta m from the (weighted) signal distribution
    sig_dm, sig_w = dm[is_sig], weight[is_sig]
    dm_input = dm.copy()
    dm_input[~is_sig] = rng.choice(sig_dm, size=int((~is_sig).sum()), p=sig_w / sig_w.sum())
    era_idx = era_indices(era, n)
    one_hot = np.zeros((n, len(ERAS)), dtype=np.float32)
    one_hot[np.arange(n), era_idx] = 1.0
    x = np.concatenate([x_feat, dm_input[:, None].astype(np.float32), one_hot], axis=1)
    return ClassifierData(
        x=np.ascontiguousarray(x, dtype=np.float32),
        y=labels,
        weight=weight.astype(np.float32),
        split=split_by_event(np.asarray(event_ids).reshape(-1), seed, fractions),
        dm_point=np.where(is_sig, dm, np.nan).astype(np.float32),
        input_names=(*names, CLASSIFIER_DM_INPUT, *CLASSIFIER_ERA_INPUTS),
    )


def synthetic_track_table(n_tracks: int, n_features: int, seed: int, separation: float = 1.5) -> dict[str, np.ndarray]:
    """A synthetic per-track table with separable classes, for tests and pipeline checks.

    NOT physics: Gaussian features whose means depend on the class (and, for signal, on
    Delta m), ``separation`` standard deviations apart. Returns a dict with the feature
    columns ``f0..f{k-1}`` and ``label``, ``event``, ``dm``, ``m_chargino``, ``era``.
    """
    rng = np.random.default_rng(seed)
    n_classes = len(TRACK_CLASSES)
    label = rng.integers(0, n_classes, n_tracks)
    dm_points = np.array([0.3, 0.6, 1.0])
    m_points = np.array([115.0, 200.0])
    dm = np.where(label == SIGNAL_CLASS, rng.choice(dm_points, n_tracks), np.nan)
    mass = np.where(label == SIGNAL_CLASS, rng.choice(m_points, n_tracks), np.nan)
    centres = rng.normal(0.0, separation, (n_classes, n_features))
    x = rng.normal(0.0, 1.0, (n_tracks, n_features)) + centres[label]
    x[:, 0] += np.where(label == SIGNAL_CLASS, separation * (np.nan_to_num(dm) - 0.6), 0.0)
    out = {f"f{i}": x[:, i].astype(np.float32) for i in range(n_features)}
    out |= {"label": label, "event": rng.integers(0, max(n_tracks // 4, 1), n_tracks), "dm": dm,
            "m_chargino": mass, "era": rng.choice(np.array(ERAS), n_tracks)}
    return out


# --- Refiner --------------------------------------------------------------------------
#: the refiner's samples: simulated Z -> mu mu and the single-muon data stream (processes
#: of the fileset metadata)
REFINER_SIMULATION = "dy_mumu"
REFINER_DATA = "data_singlemuon"
#: the fields of the collections the refiner's selection reads
REFINER_MUON_FIELDS = ("pt", "eta", "phi", "charge", "pfRelIso03_all")
REFINER_JET_FIELDS = ("pt", "eta", "phi")


def _collection(branches: dict, name: str, fields: Sequence[str]):
    """Generator collection (a toymc Jagged) -> awkward record array with ``fields``."""
    import awkward as ak

    jag = branches[name]
    return ak.zip({f: ak.unflatten(np.asarray(jag[f]), jag.counts) for f in fields}, depth_limit=2)


def read_collections(path, collections: Mapping[str, Sequence[str]], tree: str = "Events",
                     scalars: Sequence[str] = ()) -> dict:
    """{name: awkward record array (one list per event) with ``fields``} of the NanoAOD
    collections ``collections`` ({name: fields}, branches ``<name>_<field>``) of a ROOT file,
    and {branch: array} of the flat branches ``scalars``."""
    import awkward as ak
    import uproot

    branches = [f"{name}_{f}" for name, fields in collections.items() for f in fields]
    with uproot.open(path) as f:
        arrays = f[tree].arrays([*branches, *scalars], library="ak")
    out = {name: ak.zip({f: arrays[f"{name}_{f}"] for f in fields}, depth_limit=2)
           for name, fields in collections.items()}
    return out | {b: arrays[b] for b in scalars}


def refiner_track_fields(conditions: Sequence[str] = ()) -> tuple[str, ...]:
    """The Track fields :func:`refiner_track_columns` needs for ``conditions``."""
    fields = {"pt", "eta", "phi", "dz", "highPurity", "isPFcand", *REFINER_VARIABLES}
    return tuple(sorted(fields | {c for c in conditions if c != "abseta"}))


@dataclass(frozen=True)
class RefinerWeights:
    """Per-track weights of simulated refiner tracks from a corrections file (the analysis'
    correctionlib set): ``ptz_weight(era, generator pT(Z))`` x ``track_class_sf(era, class)``
    for tracks of the primary interaction ("pv") and spurious tracks, 1 for pileup tracks."""

    corrections: Any  # corrections.softtrack.apply.SoftTrackCorrections

    def __call__(self, era: str, ptz: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(event weights for ``ptz``, track weights for the flat ``origin`` codes)."""
        from analysis.contract import TRACK_ORIGINS

        event_w = np.asarray(self.corrections.ptz_weight(era, np.asarray(ptz, np.float64)), np.float64)
        track_w = np.ones(origin.size)
        for cls, name in TRACK_SF_CLASSES.items():
            track_w[origin == TRACK_ORIGINS[name]] = self.corrections.track_class_sf(era, cls)
        return event_w, track_w


def refiner_track_columns(
    events: Mapping[str, Any], *, ptz_min: float = 0.0, conditions: Sequence[str] = (),
    weights: RefinerWeights | None = None, era: str | None = None,
) -> dict[str, np.ndarray]:
    """Candidate tracks of Z -> mu mu events of one sample (see module doc).

    Parameters
    ----------
    events : {"Muon", "Jet", "Track"}: awkward record arrays, one list per event, with the
        fields REFINER_MUON_FIELDS, REFINER_JET_FIELDS and :func:`refiner_track_fields`
        (e.g. :func:`read_collections` of a NanoAOD file); for simulation with ``weights``
        also "GenPart" (pt, pdgId), "genWeight" and Track ``genOrigin``.
    ptz_min : minimum pT(mumu) in GeV (docs/physics.md sec. 5 uses 200).
    conditions : extra Track fields to return (e.g. "eta"); ``abseta`` gives |eta|.
    weights, era : the simulated tracks' weights (:class:`RefinerWeights`) for ``era``;
        None: every track weighs 1.

    Returns
    -------
    dict of float32 arrays: the refined variables (REFINER_VARIABLES), the conditions,
    ``weight`` (float64) and ``event`` (index of the track's event in the sample).
    """
    import awkward as ak

    from analysis.softtrack.cleaning import dimuon_candidates
    from analysis.softtrack.objects import candidate_tracks_mask

    tracks = events["Track"]
    ok, *_ = dimuon_candidates(events["Muon"], DY_CUTS.model_copy(update={"ptz": ptz_min}))
    sel = candidate_tracks_mask(tracks, events["Jet"]) & ok[:, None]
    flat_sel = ak.to_numpy(ak.flatten(sel))
    counts = ak.to_numpy(ak.num(tracks))

    def flat(field: str) -> np.ndarray:
        return ak.to_numpy(ak.flatten(tracks[field]))

    out = {v: flat(v)[flat_sel].astype(np.float32) for v in REFINER_VARIABLES}
    for c in conditions:
        raw = np.abs(flat("eta")) if c == "abseta" else flat(c)
        out[c] = np.asarray(raw)[flat_sel].astype(np.float32)
    ev = np.repeat(np.arange(counts.size), counts)[flat_sel]
    out["event"] = ev
    out["weight"] = np.ones(ev.size)
    if weights is not None:
        gp = events["GenPart"]
        ptz = ak.to_numpy(ak.fill_none(ak.firsts(gp.pt[gp.pdgId == 23]), 0.0)).astype(np.float64)
        event_w, track_w = weights(str(era), ptz, flat("genOrigin").astype(np.int64)[flat_sel])
        gen_w = ak.to_numpy(events["genWeight"]).astype(np.float64)
        out["weight"] = gen_w[ev] * event_w[ev] * track_w
    return out


def _stack(parts: list[dict[str, np.ndarray]], offsets: list[int]) -> dict[str, np.ndarray]:
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "event"}
    out["event"] = np.concatenate([p["event"] + off for p, off in zip(parts, offsets, strict=True)])
    return out


def refiner_samples(
    fileset: Mapping[str, Mapping],
    eras: Sequence[str],
    *,
    simulation: str = REFINER_SIMULATION,
    data: str = REFINER_DATA,
    ptz_min: float = 0.0,
    conditions: Sequence[str] = (),
    weights: RefinerWeights | None = None,
    progress: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The refiner track columns (:func:`refiner_track_columns`) of the files of a coffea
    fileset (``{dataset: {"files": {path: tree}, "metadata": {"process", "era", ...}}}``):
    the datasets of process ``simulation`` and ``data`` of each era, returned as
    (simulation, data); ``weights`` weight the simulated tracks. Event indices are made
    unique across files (offset by the events read before).
    """
    collections = {"Muon": REFINER_MUON_FIELDS, "Jet": REFINER_JET_FIELDS, "Track": refiner_track_fields(conditions)}
    sim_collections = collections | {"Track": (*refiner_track_fields(conditions), "genOrigin"),
                                     "GenPart": ("pt", "pdgId")}
    parts: dict[str, tuple[list, list]] = {simulation: ([], []), data: ([], [])}
    read = dict.fromkeys(parts, 0)
    for era in eras:
        for process in (simulation, data):
            entries = [e for e in fileset.values() if e["metadata"]["process"] == process
                       and str(e["metadata"]["era"]) == str(era)]
            if not entries:
                raise ConfigError(f"the fileset has no {process} dataset of era {era}")
            for entry in entries:
                for path, tree in entry["files"].items():
                    if progress:
                        progress(f"reading {process} {era} from {path}")
                    weighted = weights is not None and process == simulation
                    events = read_collections(path, sim_collections if weighted else collections, tree,
                                              scalars=("genWeight",) if weighted else ())
                    parts[process][0].append(refiner_track_columns(
                        events, ptz_min=ptz_min, conditions=conditions, weights=weights if weighted else None,
                        era=str(era)))
                    parts[process][1].append(read[process])
                    read[process] += len(events["Track"])
    return _stack(*parts[simulation]), _stack(*parts[data])


def classifier_track_table(branches: dict) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Branches of a simulated sample (``{name: array}`` as read or generated, with the GenPart
    truth) -> (the feature table, the truth-matching class, the event index) of the candidate
    tracks (docs/physics.md sec. 3-4)."""
    import awkward as ak

    from analysis.softtrack.features import FEATURE_NAMES, TRACK_INPUTS, track_feature_table
    from analysis.softtrack.labels import track_class_labels
    from analysis.softtrack.objects import candidate_tracks_mask

    trk = branches["Track"]
    tracks = _collection(branches, "Track", sorted({*TRACK_INPUTS, "highPurity", "isPFcand"}))
    jets = _collection(branches, "Jet", ("pt", "eta", "phi"))
    other = _collection(branches, "OtherPV", tuple(branches["OtherPV"].fields))
    sv = _collection(branches, "SV", tuple(branches["SV"].fields))
    pv = ak.zip({k[3:]: np.asarray(v) for k, v in branches.items() if k.startswith("PV_")})
    cand = candidate_tracks_mask(tracks, jets)
    table, _ = track_feature_table(tracks, cand, pv, other, sv, jets,
                                   np.asarray(branches["MET_pt"]), np.asarray(branches["MET_phi"]))
    gp = branches["GenPart"]
    labels = track_class_labels(trk["genPartIdx"], trk.counts, gp["pdgId"], gp["genPartIdxMother"],
                                gp["vx"], gp["vy"], gp["vz"], gp.counts)
    flat = ak.to_numpy(ak.flatten(cand))
    event = np.repeat(np.arange(trk.counts.size), trk.counts)[flat]
    return {n: table[n] for n in FEATURE_NAMES}, labels[flat], event
