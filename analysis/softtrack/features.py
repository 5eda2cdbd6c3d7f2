"""The soft-track classifier's per-track feature table (docs/physics.md sec. 3; thesis Table 4.2).

:data:`FEATURE_NAMES` lists the 37 observables in the order the classifier takes them;
:func:`track_feature_table` computes them for the tracks of a chunk as a flat numpy record
array. The four vertex choices are

    (a) ``pv``     the leading primary vertex,
    (b) ``pu``     the closest pileup vertex (smallest straight-line |dz|),
    (c) ``assoc``  the vertex associated in reconstruction (Track_vtxIdx),
    (d) ``other``  the closest vertex (PV or pileup) other than the associated one.

Fill values (documented, never NaN): logarithms of quantities that are zero or tiny are
floored at :data:`LOG10_FLOOR` (1e-6 of the unit); a quantity that is undefined because the
vertex does not exist (no pileup vertex, no associated vertex) gets
:data:`~analysis.contract.FILL_LOG10_UNDEFINED`; a distance to a missing vertex
:data:`~analysis.contract.FILL_DISTANCE`; a DeltaR to a missing object
:data:`~analysis.contract.FILL_DR`.
"""

from __future__ import annotations

import awkward as ak
import numba as nb
import numpy as np

from analysis import contract as dc
from analysis.helix import impact_parameters

from .config import OBJECT_CUTS

LOG10_FLOOR = 1e-6
#: track pT threshold of the "closest track" DeltaR features (GeV)
NEIGHBOUR_TRACK_PT = 5.0
SOFT_JET_PT = 15.0
VERTICES = ("pv", "pu", "assoc", "other")

FEATURE_NAMES: tuple[str, ...] = (
    "pt", "abs_eta", "abs_dphi_met", "abs_dphi_leading_jet", "abs_deta_leading_jet",
    "log10_dxy_pv", "log10_dz_pv", "log10_dxy_pu", "log10_dz_pu",
    "log10_dxy_err", "log10_dz_err",
    *(f"log10_{q}_{v}" for v in VERTICES for q in ("ipxy", "ipz", "ipxy_sig", "ipz_sig")),
    "delta_xy_pv_assoc_pv", "delta_z_pv_assoc_pv", "delta_xy_pv_sv", "delta_z_pv_sv",
    "pf_iso_abs",
    "dr_jet30", "dr_jet15", "dr_track5_first", "dr_track5_second",
    "met",
)
assert len(FEATURE_NAMES) == 37
#: the features that depend on the event's jets and p_T^miss (:func:`add_event_features`);
#: the others only on the track, the other tracks and the vertices (:func:`track_vertex_features`)
EVENT_FEATURES: tuple[str, ...] = ("abs_dphi_met", "abs_dphi_leading_jet", "abs_deta_leading_jet", "dr_jet30",
                                   "dr_jet15", "met")

#: fields the table needs from each collection
TRACK_INPUTS = ("pt", "eta", "phi", "charge", "refX", "refY", "refZ", "dxy", "dz", "dxyErr", "dzErr",
                "vtxIdx", "svIdx", "pfIso03", *dc.TRACK_COV_BRANCHES)


def _log10(x: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(np.abs(x), LOG10_FLOOR))


@nb.njit(cache=True)
def _vertex_choices(t_off, ref_x, ref_y, ref_z, phi, tanl, vtx_idx, pv_z, v_off, v_x, v_y, v_z):
    """Per track: index (into OtherPV, -1 none) of the closest pileup vertex, and the
    combined index (0 = PV, k = OtherPV[k-1], -1 none) of the closest vertex other than the
    associated one; closeness by straight-line |dz|."""
    n = ref_x.size
    pu = np.full(n, -1, np.int64)
    other = np.full(n, -1, np.int64)
    for e in range(t_off.size - 1):
        for i in range(t_off[e], t_off[e + 1]):
            c, s = np.cos(phi[i]), np.sin(phi[i])
            best_pu, best_other = 1e300, 1e300
            # the PV as a candidate of (d)
            if vtx_idx[i] != 0:
                dz = abs(ref_z[i] - pv_z[e] - (ref_x[i] * c + ref_y[i] * s) * tanl[i])
                best_other, other[i] = dz, 0
            for k in range(v_off[e + 1] - v_off[e]):
                j = v_off[e] + k
                dx, dy = ref_x[i] - v_x[j], ref_y[i] - v_y[j]
                dz = abs(ref_z[i] - v_z[j] - (dx * c + dy * s) * tanl[i])
                if dz < best_pu:
                    best_pu, pu[i] = dz, k
                if k + 1 != vtx_idx[i] and dz < best_other:
                    best_other, other[i] = dz, k + 1
    return pu, other


@nb.njit(cache=True)
def _delta_r_jets(t_off, eta, phi, j_off, j_eta, j_phi, j_pt, pt_hard, pt_soft, fill):
    """DeltaR of each selected track to the closest jet above pt_hard and above pt_soft."""
    n = eta.size
    out = np.full((n, 2), fill)
    for e in range(t_off.size - 1):
        for i in range(t_off[e], t_off[e + 1]):
            d30, d15 = fill, fill
            for j in range(j_off[e], j_off[e + 1]):
                dphi = (j_phi[j] - phi[i] + np.pi) % (2 * np.pi) - np.pi
                dr = np.sqrt((j_eta[j] - eta[i]) ** 2 + dphi * dphi)
                if j_pt[j] > pt_hard and dr < d30:
                    d30 = dr
                if j_pt[j] > pt_soft and dr < d15:
                    d15 = dr
            out[i, 0], out[i, 1] = d30, d15
    return out


@nb.njit(cache=True)
def _delta_r_tracks(t_off, eta, phi, sel, all_off, all_eta, all_phi, all_pt, pt_track, fill):
    """DeltaR of each selected track to the closest and second-closest other track above
    pt_track (``sel``: the track's index among all tracks of its event)."""
    n = eta.size
    out = np.full((n, 2), fill)
    for e in range(t_off.size - 1):
        for i in range(t_off[e], t_off[e + 1]):
            d1, d2 = fill, fill
            for j in range(all_off[e], all_off[e + 1]):
                if all_pt[j] <= pt_track or j - all_off[e] == sel[i]:
                    continue
                dphi = (all_phi[j] - phi[i] + np.pi) % (2 * np.pi) - np.pi
                dr = np.sqrt((all_eta[j] - eta[i]) ** 2 + dphi * dphi)
                if dr < d1:
                    d2, d1 = d1, dr
                elif dr < d2:
                    d2 = dr
            out[i, 0], out[i, 1] = d1, d2
    return out


def _offsets(counts: np.ndarray) -> np.ndarray:
    off = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=off[1:])
    return off


def _flat(x) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(x)), dtype=np.float64)


def track_feature_table(tracks, candidate, pv, other_pv, sv, jets, met_pt, met_phi) -> np.ndarray:
    """The 37 features of the candidate tracks of a chunk, as a flat record array.

    Parameters
    ----------
    tracks : jagged records with the fields of :data:`TRACK_INPUTS` (all tracks of the
        event: the neighbour-track features look at all of them).
    candidate : jagged bool mask of the tracks to describe (docs/physics.md sec. 2 candidates).
    pv : records (one per event) with x, y, z and the six covariance fields covXX ... covZZ.
    other_pv, sv : jagged vertex records with x, y, z (OtherPV also the covariances).
    jets : jagged jets with pt, eta, phi (pT-ordered); the leading jet is the first with
        pT > 30 GeV and |eta| < 2.4.
    met_pt, met_phi : per-event p_T^miss.

    Returns
    -------
    numpy structured array of float32 fields named by :data:`FEATURE_NAMES`, one row per
    candidate track, in event order; and the event index of each row (second return value).
    The features of the track and the vertices (:func:`track_vertex_features`) and those of
    the event's jets and p_T^miss (:func:`add_event_features`, :data:`EVENT_FEATURES`).
    """
    out, ev = track_vertex_features(tracks, candidate, pv, other_pv, sv)
    sel_tracks = tracks[candidate]
    add_event_features(out, ev, _flat(sel_tracks.eta), _flat(sel_tracks.phi), jets, met_pt, met_phi)
    return out, ev


def track_vertex_features(tracks, candidate, pv, other_pv, sv) -> tuple[np.ndarray, np.ndarray]:
    """The features of :func:`track_feature_table` that depend only on the track, the other
    tracks and the vertices of its event (all but :data:`EVENT_FEATURES`, left 0): the same
    values whatever the jets and p_T^miss (e.g. under a jet energy scale variation).
    Same parameters and returns as :func:`track_feature_table`."""
    counts_all = ak.to_numpy(ak.num(tracks.pt))
    sel_tracks = tracks[candidate]
    counts = ak.to_numpy(ak.num(sel_tracks.pt))
    ev = np.repeat(np.arange(len(counts)), counts)
    local = ak.to_numpy(ak.flatten(ak.local_index(tracks.pt)[candidate])).astype(np.int64)
    f = {k: _flat(sel_tracks[k]) for k in TRACK_INPUTS}
    neighbours = (_offsets(counts_all), _flat(tracks.eta), _flat(tracks.phi), _flat(tracks.pt))
    return _track_vertex_table(f, ev, local, _offsets(counts), neighbours, vertex_arrays(pv, other_pv, sv)), ev


def vertex_arrays(pv, other_pv, sv) -> dict:
    """The vertices of a set of events as flat float64 arrays (and their event offsets), as
    :func:`track_vertex_features` reads them: pv (x, y, z, cov (n, 6)), OtherPV (offsets,
    x, y, z, cov) and SV (offsets, x, y, z; ``n_sv`` their number)."""
    pvx, pvy, pvz = (np.asarray(ak.to_numpy(pv[c]), np.float64) for c in ("x", "y", "z"))
    pv_cov = np.stack([np.asarray(ak.to_numpy(pv[c]), np.float64) for c in dc.VERTEX_COV_BRANCHES], 1)
    v_off = _offsets(ak.to_numpy(ak.num(other_pv.x)))
    vx, vy, vz = (_flat(other_pv[c]) for c in ("x", "y", "z"))
    v_cov = np.stack([_flat(other_pv[c]) for c in dc.VERTEX_COV_BRANCHES], 1) if vx.size else np.zeros((0, 6))
    n_sv = int(ak.count(sv.x))
    out = {"pv": (pvx, pvy, pvz, pv_cov), "other": (v_off, vx, vy, vz, v_cov),
           "sv_offsets": _offsets(ak.to_numpy(ak.num(sv.x))), "n_sv": n_sv}
    if n_sv > 0:
        out["sv"] = tuple(_flat(sv[c]) for c in ("x", "y", "z"))
    return out


def track_vertex_features_flat(columns, ids: np.ndarray, vertices: dict) -> tuple[np.ndarray, np.ndarray]:
    """:func:`track_vertex_features` of the tracks ``ids`` (indices among all tracks of a chunk,
    ascending) from the chunk's flat track columns (``columns``: an
    :class:`analysis.columnar.FlatColumns` of all its tracks) and its :func:`vertex_arrays`:
    the same values, row for row, as the jagged function gives for these tracks (a test
    checks it); the second return value is the event (index into the chunk) of each row."""
    ids = np.asarray(ids, np.int64)
    ev = columns.event_of(ids)
    local = ids - columns.offsets[ev]
    f = {k: np.ascontiguousarray(columns[k][ids], dtype=np.float64) for k in TRACK_INPUTS}
    t_off = _offsets(np.bincount(ev, minlength=columns.counts.size))
    neighbours = (columns.offsets, *(columns.float64(k) for k in ("eta", "phi", "pt")))
    return _track_vertex_table(f, ev, local, t_off, neighbours, vertices), ev


def _track_vertex_table(f: dict, ev: np.ndarray, local: np.ndarray, t_off: np.ndarray, neighbours: tuple,
                        vertices: dict) -> np.ndarray:
    """The table of :func:`track_vertex_features` from flat float64 columns ``f`` of the tracks
    to describe (grouped by event: ``t_off`` their offsets over the events, ``ev`` the event of
    each, ``local`` its index among all tracks of its event), ``neighbours`` (offsets, eta,
    phi, pt of all tracks of the events) and the events' :func:`vertex_arrays`."""
    n = ev.size
    tanl = np.sinh(f["eta"])
    vtx_idx = f["vtxIdx"].astype(np.int64)
    sv_idx = f["svIdx"].astype(np.int64)
    pvx, pvy, pvz, pv_cov = vertices["pv"]
    v_off, vx, vy, vz, v_cov = vertices["other"]
    pu_k, other_k = _vertex_choices(t_off, f["refX"], f["refY"], f["refZ"], f["phi"], tanl, vtx_idx, pvz, v_off, vx, vy, vz)

    def combined_vertex(k_combined):
        """Vertex arrays (x, y, z, cov, valid) for combined indices (0 = PV, k = OtherPV[k-1])."""
        valid = k_combined >= 0
        is_pv = k_combined == 0
        j = np.where(valid & ~is_pv, v_off[ev] + k_combined - 1, 0)
        if vx.size == 0:
            j = np.zeros_like(j)
            pick = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros((n, 6)))
        else:
            pick = (vx[j], vy[j], vz[j], v_cov[j])
        x = np.where(is_pv, pvx[ev], pick[0])
        y = np.where(is_pv, pvy[ev], pick[1])
        z = np.where(is_pv, pvz[ev], pick[2])
        cov = np.where(is_pv[:, None], pv_cov[ev], pick[3])
        valid = valid & (is_pv | (vx.size > 0))
        return x, y, z, cov, valid

    choices = {
        "pv": combined_vertex(np.zeros(n, np.int64)),
        "pu": combined_vertex(np.where(pu_k >= 0, pu_k + 1, -1)),
        "assoc": combined_vertex(vtx_idx),
        "other": combined_vertex(other_k),
    }
    track_cov = np.stack([f[b] for b in dc.TRACK_COV_BRANCHES], 1)
    out = np.zeros(n, dtype=[(name, np.float32) for name in FEATURE_NAMES])
    helix_args = (f["pt"], f["eta"], f["phi"], f["charge"], f["refX"], f["refY"], f["refZ"])
    for name, (x, y, z, cov, valid) in choices.items():
        ip = impact_parameters(*helix_args, x, y, z, track_cov, cov)
        for q, v in (("ipxy", ip.ipxy), ("ipz", ip.ipz), ("ipxy_sig", ip.ipxy_sig), ("ipz_sig", ip.ipz_sig)):
            vals = np.where(valid & np.isfinite(v), _log10(v), dc.FILL_LOG10_UNDEFINED)
            out[f"log10_{q}_{name}"] = vals
    # straight line w.r.t. PV (the stored branches) and the closest pileup vertex
    out["log10_dxy_pv"], out["log10_dz_pv"] = _log10(f["dxy"]), _log10(f["dz"])
    x, y, z, _, valid = choices["pu"]
    c, s = np.cos(f["phi"]), np.sin(f["phi"])
    dx, dy = f["refX"] - x, f["refY"] - y
    out["log10_dxy_pu"] = np.where(valid, _log10(-dx * s + dy * c), dc.FILL_LOG10_UNDEFINED)
    out["log10_dz_pu"] = np.where(valid, _log10((f["refZ"] - z) - (dx * c + dy * s) * tanl), dc.FILL_LOG10_UNDEFINED)
    out["log10_dxy_err"], out["log10_dz_err"] = _log10(f["dxyErr"]), _log10(f["dzErr"])
    # vertex distances
    x, y, z, _, valid = choices["assoc"]
    out["delta_xy_pv_assoc_pv"] = np.where(valid, np.hypot(x - pvx[ev], y - pvy[ev]), dc.FILL_DISTANCE)
    out["delta_z_pv_assoc_pv"] = np.where(valid, np.abs(z - pvz[ev]), dc.FILL_DISTANCE)
    s_off, n_sv = vertices["sv_offsets"], vertices["n_sv"]
    has_sv = (sv_idx >= 0) & (n_sv > 0)
    j = np.where(has_sv, s_off[ev] + sv_idx, 0)
    if n_sv > 0:
        svx, svy, svz = vertices["sv"]
        out["delta_xy_pv_sv"] = np.where(has_sv, np.hypot(svx[j] - pvx[ev], svy[j] - pvy[ev]), dc.FILL_DISTANCE)
        out["delta_z_pv_sv"] = np.where(has_sv, np.abs(svz[j] - pvz[ev]), dc.FILL_DISTANCE)
    else:
        out["delta_xy_pv_sv"] = dc.FILL_DISTANCE
        out["delta_z_pv_sv"] = dc.FILL_DISTANCE
    out["pt"], out["abs_eta"] = f["pt"], np.abs(f["eta"])
    out["pf_iso_abs"] = np.nan_to_num(f["pfIso03"], nan=0.0)
    dr = _delta_r_tracks(t_off, f["eta"], f["phi"], local, *neighbours, NEIGHBOUR_TRACK_PT, dc.FILL_DR)
    out["dr_track5_first"], out["dr_track5_second"] = dr.T
    return out


def add_event_features(out: np.ndarray, ev: np.ndarray, eta: np.ndarray, phi: np.ndarray, jets, met_pt,
                       met_phi) -> None:
    """Fill the :data:`EVENT_FEATURES` of the rows ``out`` (tracks of azimuth ``phi`` and
    pseudorapidity ``eta``, float64, in events ``ev``) from the jets and p_T^miss of their
    events (:func:`track_feature_table` for the parameters)."""
    # kinematics relative to p_T^miss and the leading jet
    met_pt = np.asarray(met_pt, np.float64)
    met_phi = np.asarray(met_phi, np.float64)
    t_off = _offsets(np.bincount(ev, minlength=met_pt.size))
    out["abs_dphi_met"] = np.abs((phi - met_phi[ev] + np.pi) % (2 * np.pi) - np.pi)
    good = jets[(jets.pt > OBJECT_CUTS.jet_pt) & (abs(jets.eta) < OBJECT_CUTS.jet_eta)]
    lead = ak.firsts(good)
    has_lead = ak.to_numpy(~ak.is_none(lead))
    lphi = ak.to_numpy(ak.fill_none(lead.phi, 0.0)).astype(np.float64)
    leta = ak.to_numpy(ak.fill_none(lead.eta, 0.0)).astype(np.float64)
    out["abs_dphi_leading_jet"] = np.where(has_lead[ev], np.abs((phi - lphi[ev] + np.pi) % (2 * np.pi) - np.pi),
                                           dc.FILL_DR)
    out["abs_deta_leading_jet"] = np.where(has_lead[ev], np.abs(eta - leta[ev]), dc.FILL_DR)
    dr = _delta_r_jets(t_off, eta, phi, _offsets(ak.to_numpy(ak.num(jets.pt))), _flat(jets.eta), _flat(jets.phi),
                       _flat(jets.pt), OBJECT_CUTS.jet_pt, SOFT_JET_PT, dc.FILL_DR)
    out["dr_jet30"], out["dr_jet15"] = dr.T
    out["met"] = met_pt[ev]


def feature_matrix(table: np.ndarray) -> np.ndarray:
    """(n, 37) float32 matrix in FEATURE_NAMES order from a feature table."""
    return np.stack([table[name] for name in FEATURE_NAMES], 1).astype(np.float32)
