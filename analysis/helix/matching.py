"""Helical truth matching of tracks to generator particles, with the DeltaR fallback.

docs/physics.md sec. 3; thesis sec. 3.1 "Track Matching": the 3D closest approach of the track
helix to the generator production vertex and the DeltaR of the extrapolated track,
assigned greedily one-to-one per event; the plain DeltaR matching as reference; the
preselected pairs for the validation plots (thesis Fig. 3.2).
"""

from __future__ import annotations

from typing import NamedTuple

import awkward as ak
import numba as nb
import numpy as np

from analysis.columnar import flat
from analysis.constants import BFIELD_TESLA

from ._arrays import _as_flat, _offsets
from ._math import _wrap_angle, radius_constant_cm
from .charge import gen_charge
from .closest_approach import _closest_approach_one

# --- Cuts (thesis sec. 3.1 "Track Matching") ------------------------------------------
#: Delta_xyz: 3D closest approach of the track helix to the generator vertex (cm)
HELICAL_MATCH_MAX_DXYZ_CM = 0.2
#: DeltaR between the generator momentum and the track extrapolated to the closest point
HELICAL_MATCH_MAX_DR_EXTRAPOLATED = 0.05
#: preselection of helical-match candidates: |pT - pT_gen| / pT_gen
HELICAL_PRESEL_MAX_REL_DPT = 0.2
#: preselection: |eta_gen - eta_track|
HELICAL_PRESEL_MAX_DETA = 0.1
#: preselection: |phi_gen - phi0_track| (rad)
HELICAL_PRESEL_MAX_DPHI0 = 1.57
#: plain DeltaR matching (fallback and stand-alone)
DELTA_R_MATCH_MAX = 0.02

#: method codes returned by the matching
MATCH_NONE = 0
MATCH_HELICAL = 1
MATCH_DELTA_R = 2


# =========================================================================================
# Truth matching (docs/physics.md sec. 3; thesis sec. 3.1 "Track Matching")
# =========================================================================================
@nb.njit(cache=True, inline="always")
def _delta_r(eta1, phi1, eta2, phi2):
    dphi = _wrap_angle(phi1 - phi2)
    deta = eta1 - eta2
    return np.sqrt(dphi * dphi + deta * deta)


@nb.njit(cache=True, inline="always")
def _preselected(tpt, teta, tphi, gpt, geta, gphi):
    """Kinematic preselection of helical-match candidates (charge not included)."""
    return (
        abs(tpt - gpt) < HELICAL_PRESEL_MAX_REL_DPT * gpt
        and abs(teta - geta) < HELICAL_PRESEL_MAX_DETA
        and abs(_wrap_angle(gphi - tphi)) < HELICAL_PRESEL_MAX_DPHI0
    )


@nb.njit(cache=True)
def _helical_distances(tpt, teta, tphi, tq, rx, ry, rz, gpt, geta, gphi, gvx, gvy, gvz, r1):
    """(Delta_xyz, DeltaR_extrapolated) of one track-gen pair."""
    t, _, dx, dy, dz, _, _, _ = _closest_approach_one(tpt, teta, tphi, tq, rx, ry, rz, gvx, gvy, gvz, r1)
    dxyz = np.sqrt(dx * dx + dy * dy + dz * dz)
    return dxyz, _delta_r(geta, gphi, teta, tphi - t)


@nb.njit(cache=True)
def _greedy_assign(quality, pair_t, pair_g, trk_gen, gen_trk, trk_method, method, t_off, g_off):
    """Assign pairs in increasing quality, each track and gen particle at most once."""
    order = np.argsort(quality, kind="mergesort")
    for p in order:
        it = pair_t[p]
        ig = pair_g[p]
        if trk_gen[t_off + it] < 0 and gen_trk[g_off + ig] < 0:
            trk_gen[t_off + it] = ig
            gen_trk[g_off + ig] = it
            trk_method[t_off + it] = method


@nb.njit(cache=True)
def _helical_match_kernel(
    tpt, teta, tphi, tq, rx, ry, rz, t_offsets,
    gpt, geta, gphi, gq, gvx, gvy, gvz, g_ok, g_offsets,
    r1, use_helical, fallback_same_charge,
):  # fmt: skip
    n_ev = t_offsets.shape[0] - 1
    trk_gen = np.full(tpt.shape[0], -1, dtype=np.int64)
    trk_method = np.zeros(tpt.shape[0], dtype=np.int8)
    gen_trk = np.full(gpt.shape[0], -1, dtype=np.int64)
    for ev in range(n_ev):
        t0 = t_offsets[ev]
        nt = t_offsets[ev + 1] - t0
        g0 = g_offsets[ev]
        ng = g_offsets[ev + 1] - g0
        if nt == 0 or ng == 0:
            continue
        cap = nt * ng
        pair_t = np.empty(cap, dtype=np.int64)
        pair_g = np.empty(cap, dtype=np.int64)
        qual = np.empty(cap)
        # helical matching: same charge, preselection, Delta_xyz and DeltaR_extrapolated
        npair = 0
        if use_helical:
            for ig in range(ng):
                g = g0 + ig
                if not g_ok[g] or gq[g] == 0.0:
                    continue
                for it in range(nt):
                    k = t0 + it
                    if tq[k] != gq[g]:
                        continue
                    if not _preselected(tpt[k], teta[k], tphi[k], gpt[g], geta[g], gphi[g]):
                        continue
                    dxyz, drx = _helical_distances(
                        tpt[k], teta[k], tphi[k], tq[k], rx[k], ry[k], rz[k],
                        gpt[g], geta[g], gphi[g], gvx[g], gvy[g], gvz[g], r1,
                    )  # fmt: skip
                    if dxyz < HELICAL_MATCH_MAX_DXYZ_CM and drx < HELICAL_MATCH_MAX_DR_EXTRAPOLATED:
                        pair_t[npair] = it
                        pair_g[npair] = ig
                        qual[npair] = drx
                        npair += 1
            _greedy_assign(
                qual[:npair], pair_t[:npair], pair_g[:npair],
                trk_gen, gen_trk, trk_method, MATCH_HELICAL, t0, g0,
            )  # fmt: skip
        # DeltaR fallback for the gen particles left, over the tracks left
        npair = 0
        for ig in range(ng):
            g = g0 + ig
            if not g_ok[g] or gq[g] == 0.0 or gen_trk[g] >= 0:
                continue
            for it in range(nt):
                k = t0 + it
                if trk_gen[k] >= 0:
                    continue
                if fallback_same_charge and tq[k] != gq[g]:
                    continue
                dr = _delta_r(geta[g], gphi[g], teta[k], tphi[k])
                if dr < DELTA_R_MATCH_MAX:
                    pair_t[npair] = it
                    pair_g[npair] = ig
                    qual[npair] = dr
                    npair += 1
        _greedy_assign(
            qual[:npair], pair_t[:npair], pair_g[:npair],
            trk_gen, gen_trk, trk_method, MATCH_DELTA_R, t0, g0,
        )  # fmt: skip
    return trk_gen, trk_method, gen_trk


class TrackMatch(NamedTuple):
    """Result of a truth matching; indices are local to the event (NanoAOD convention).

    ``track_gen_idx`` (per track): matched generator particle, -1 if none;
    ``track_method`` (per track): MATCH_NONE, MATCH_HELICAL or MATCH_DELTA_R;
    ``gen_track_idx`` (per generator particle): matched track, -1 if none.
    """

    track_gen_idx: np.ndarray
    track_method: np.ndarray
    gen_track_idx: np.ndarray


def _match_inputs(tracks, track_offsets, gens, gen_offsets, gen_mask):
    """Flat float arrays, offsets and the gen mask of the helical matching, validated."""
    tr = _as_flat(*tracks)
    ge = _as_flat(*gens)
    t_off = _offsets(track_offsets, tr[0].shape[0], "track_offsets")
    g_off = _offsets(gen_offsets, ge[0].shape[0], "gen_offsets")
    if t_off.shape != g_off.shape:
        raise ValueError("track and gen offsets describe different numbers of events")
    mask = np.ones(ge[0].shape[0], dtype=np.bool_) if gen_mask is None else np.asarray(gen_mask, dtype=np.bool_)
    if mask.shape != ge[0].shape:
        raise ValueError(f"gen_mask has {mask.shape[0]} entries for {ge[0].shape[0]} generator particles")
    return tr, t_off, ge, mask, g_off


def helical_match(
    track_pt: np.ndarray,
    track_eta: np.ndarray,
    track_phi: np.ndarray,
    track_charge: np.ndarray,
    track_ref_x: np.ndarray,
    track_ref_y: np.ndarray,
    track_ref_z: np.ndarray,
    track_offsets: np.ndarray,
    gen_pt: np.ndarray,
    gen_eta: np.ndarray,
    gen_phi: np.ndarray,
    gen_charge: np.ndarray,
    gen_vx: np.ndarray,
    gen_vy: np.ndarray,
    gen_vz: np.ndarray,
    gen_offsets: np.ndarray,
    gen_mask: np.ndarray | None = None,
    bfield: float = BFIELD_TESLA,
    fallback_same_charge: bool = False,
) -> TrackMatch:
    """Helical truth matching of tracks to generator particles, with DeltaR fallback.

    Per event (docs/physics.md sec. 3; thesis sec. 3.1): a track is a candidate for a generator
    particle if it has the same charge, |pT - pT_gen|/pT_gen < 0.2, |Delta eta| < 0.1 and
    |phi_gen - phi0_track| < 1.57; it matches if the 3D closest approach of its helix to the
    production vertex, Delta_xyz < 0.2 cm, and DeltaR_extrapolated < 0.05, computed with the
    track azimuth extrapolated to that closest point, phi(t_min) = phi0 - t_min.
    One-to-one assignment: all passing pairs of the event are taken greedily in increasing
    DeltaR_extrapolated (stable order: gen index, then track index, on ties); a pair is
    kept if neither member is taken. So each particle gets its best track and each track
    its best particle, unless a better pair took it first.
    Fallback: generator particles left unmatched get the plain DeltaR(eta, phi_gen;
    eta, phi0_track) < 0.02 matching over the tracks left, greedy in DeltaR; following the
    thesis ("attempted on all tracks") any charge is accepted unless
    ``fallback_same_charge``. Neutral or masked generator particles are never matched.

    Parameters
    ----------
    track_* : flat arrays
        Track fields (GeV, cm, rad, e) of all events, concatenated.
    track_offsets, gen_offsets : 1D int arrays
        Per-event counts (length n_events) or offsets (length n_events + 1, starting at 0).
    gen_* : flat arrays
        Generator particles: pT, eta, phi (at production), charge (see :func:`gen_charge`),
        production vertex (cm).
    gen_mask : bool array, optional
        Generator particles eligible for matching (e.g. status == 1); default all.
    bfield : float
        Field (T).
    fallback_same_charge : bool
        Require the same charge also in the DeltaR fallback.

    Returns
    -------
    TrackMatch
    """
    tr, t_off, ge, mask, g_off = _match_inputs(
        (track_pt, track_eta, track_phi, track_charge, track_ref_x, track_ref_y, track_ref_z), track_offsets,
        (gen_pt, gen_eta, gen_phi, gen_charge, gen_vx, gen_vy, gen_vz), gen_offsets, gen_mask)
    out = _helical_match_kernel(*tr, t_off, *ge, mask, g_off, radius_constant_cm(bfield), True,
                                fallback_same_charge)  # fmt: skip
    return TrackMatch(*out)


def delta_r_match(
    track_eta: np.ndarray,
    track_phi: np.ndarray,
    track_charge: np.ndarray,
    track_offsets: np.ndarray,
    gen_eta: np.ndarray,
    gen_phi: np.ndarray,
    gen_charge: np.ndarray,
    gen_offsets: np.ndarray,
    gen_mask: np.ndarray | None = None,
    same_charge: bool = False,
) -> TrackMatch:
    """Plain DeltaR(eta, phi_gen; eta, phi0_track) < 0.02 matching alone (docs/physics.md sec. 3).

    The reference for efficiency comparisons: greedy one-to-one in increasing DeltaR, any
    charge unless ``same_charge``; neutral or masked generator particles are not matched.
    Arguments as in :func:`helical_match`; the method code is MATCH_DELTA_R.
    """
    te, tp, tq = _as_flat(track_eta, track_phi, track_charge)
    ge, gp, gq = _as_flat(gen_eta, gen_phi, gen_charge)
    nt = te.shape[0]
    ng = ge.shape[0]
    t_off = _offsets(track_offsets, nt, "track_offsets")
    g_off = _offsets(gen_offsets, ng, "gen_offsets")
    if t_off.shape != g_off.shape:
        raise ValueError("track and gen offsets describe different numbers of events")
    mask = np.ones(ng, dtype=np.bool_) if gen_mask is None else np.asarray(gen_mask, dtype=np.bool_)
    one_t = np.ones(nt)
    one_g = np.ones(ng)
    out = _helical_match_kernel(one_t, te, tp, tq, one_t, one_t, one_t, t_off,
                                one_g, ge, gp, gq, one_g, one_g, one_g, mask, g_off,
                                1.0, False, same_charge)  # fmt: skip
    return TrackMatch(*out)


@nb.njit(cache=True)
def _pair_kernel(
    tpt, teta, tphi, tq, rx, ry, rz, t_offsets,
    gpt, geta, gphi, gq, gvx, gvy, gvz, g_ok, g_offsets, r1, fill,
):  # fmt: skip
    n_ev = t_offsets.shape[0] - 1
    npair = 0
    for ev in range(n_ev):
        for g in range(g_offsets[ev], g_offsets[ev + 1]):
            if not g_ok[g] or gq[g] == 0.0:
                continue
            for k in range(t_offsets[ev], t_offsets[ev + 1]):
                if _preselected(tpt[k], teta[k], tphi[k], gpt[g], geta[g], gphi[g]):
                    if fill.shape[1] > 0:
                        dxyz, drx = _helical_distances(
                            tpt[k], teta[k], tphi[k], tq[k], rx[k], ry[k], rz[k],
                            gpt[g], geta[g], gphi[g], gvx[g], gvy[g], gvz[g], r1,
                        )  # fmt: skip
                        fill[0, npair] = ev
                        fill[1, npair] = k - t_offsets[ev]
                        fill[2, npair] = g - g_offsets[ev]
                        fill[3, npair] = 1.0 if tq[k] == gq[g] else 0.0
                        fill[4, npair] = dxyz
                        fill[5, npair] = drx
                    npair += 1
    return npair


class MatchPairs(NamedTuple):
    """Preselected track-gen pairs for the validation of the helical matching (Fig. 3.2).

    ``event``, ``track_idx``, ``gen_idx`` (local), ``same_charge`` (bool), ``delta_xyz`` (cm),
    ``delta_r_extrapolated``.
    """

    event: np.ndarray
    track_idx: np.ndarray
    gen_idx: np.ndarray
    same_charge: np.ndarray
    delta_xyz: np.ndarray
    delta_r_extrapolated: np.ndarray


def helical_match_pairs(
    track_pt: np.ndarray,
    track_eta: np.ndarray,
    track_phi: np.ndarray,
    track_charge: np.ndarray,
    track_ref_x: np.ndarray,
    track_ref_y: np.ndarray,
    track_ref_z: np.ndarray,
    track_offsets: np.ndarray,
    gen_pt: np.ndarray,
    gen_eta: np.ndarray,
    gen_phi: np.ndarray,
    gen_charge: np.ndarray,
    gen_vx: np.ndarray,
    gen_vy: np.ndarray,
    gen_vz: np.ndarray,
    gen_offsets: np.ndarray,
    gen_mask: np.ndarray | None = None,
    bfield: float = BFIELD_TESLA,
) -> MatchPairs:
    """Delta_xyz and DeltaR_extrapolated of every preselected pair, either charge.

    The pairs pass the kinematic preselection of :func:`helical_match` except the charge
    requirement; ``same_charge`` separates the two panels of thesis Fig. 3.2. Arguments as
    in :func:`helical_match`.
    """
    tr, t_off, ge, mask, g_off = _match_inputs(
        (track_pt, track_eta, track_phi, track_charge, track_ref_x, track_ref_y, track_ref_z), track_offsets,
        (gen_pt, gen_eta, gen_phi, gen_charge, gen_vx, gen_vy, gen_vz), gen_offsets, gen_mask)
    r1 = radius_constant_cm(bfield)
    n = _pair_kernel(*tr, t_off, *ge, mask, g_off, r1, np.empty((6, 0)))
    fill = np.empty((6, n))
    _pair_kernel(*tr, t_off, *ge, mask, g_off, r1, fill)
    return MatchPairs(
        event=fill[0].astype(np.int64),
        track_idx=fill[1].astype(np.int64),
        gen_idx=fill[2].astype(np.int64),
        same_charge=fill[3].astype(bool),
        delta_xyz=fill[4],
        delta_r_extrapolated=fill[5],
    )


def helical_match_jagged(
    tracks: ak.Array,
    genparts: ak.Array,
    gen_mask: ak.Array | None = None,
    bfield: float = BFIELD_TESLA,
    fallback_same_charge: bool = False,
) -> ak.Array:
    """:func:`helical_match` for jagged Track and GenPart collections.

    ``genparts`` needs pt, eta, phi, pdgId, vx, vy, vz (charge from :func:`gen_charge`).
    Returns a jagged record array aligned with the tracks: ``genPartIdx`` (local, -1: none)
    and ``method`` (MATCH_NONE, MATCH_HELICAL, MATCH_DELTA_R).
    """
    t_counts = ak.to_numpy(ak.num(tracks, axis=1))
    g_counts = ak.to_numpy(ak.num(genparts, axis=1))
    mask = None if gen_mask is None else ak.to_numpy(ak.flatten(gen_mask))
    res = helical_match(
        *(flat(tracks[f]) for f in ("pt", "eta", "phi", "charge", "refX", "refY", "refZ")),
        t_counts,
        *(flat(genparts[f]) for f in ("pt", "eta", "phi")),
        gen_charge(ak.to_numpy(ak.flatten(genparts.pdgId))),
        *(flat(genparts[f]) for f in ("vx", "vy", "vz")),
        g_counts, gen_mask=mask, bfield=bfield, fallback_same_charge=fallback_same_charge,
    )  # fmt: skip
    out = ak.zip({"genPartIdx": res.track_gen_idx, "method": res.track_method})
    return ak.unflatten(out, t_counts)
