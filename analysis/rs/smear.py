"""Smearing (seed 004 sec. 2, 2.2): every rebalanced jet's response drawn n times from the
templates, weight 1/n, reproducible from (seed, file, entry) (:func:`smear`); batched, with
an exact hard-MHT skim of the smeared events (:func:`smear_skimmed`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numba as nb
import numpy as np

from analysis.errors import ConfigError
from analysis.rs.arrays import _as_f8, _as_offsets
from analysis.rs.defaults import RS_N_SMEAR, RS_PREDICTION_SKIM_MHT, RS_SMEAR_BATCH_EVENTS
from analysis.rs.rng import _MASK64, _STREAM_SMEAR, _draw, _event_keys, file_key
from analysis.rs.tables import _find_bin
from analysis.rs.templates import JetResponseTemplates


@nb.njit(cache=True, inline="always")
def _smear_jet(key, k, j, p, ae, f, cdf, rc, eta_edges, r0, rw, sphi):
    """The smeared (pT, phi) of jet j (rebalanced pT p, |eta| ae, azimuth f) in smearing k of
    the event of ``key``: the response by inverse CDF from the template row, linear within
    the response bin; the linear interpolation in pT (sec. 2.5) sampled exactly as the mixture
    of the two neighbouring pT rows; with ``sphi`` the azimuth Gaussian with the resolution of
    the same (pT, |eta|) row (Box-Muller)."""
    nrow = rc.shape[0]
    nr = cdf.shape[2] - 1
    u_row = _draw(key, k, j, 0)
    u = _draw(key, k, j, 1)
    if nrow == 1 or p <= rc[0]:
        row = 0
    elif p >= rc[nrow - 1]:
        row = nrow - 1
    else:
        row = 0
        while rc[row + 1] <= p:
            row += 1
        if u_row < (p - rc[row]) / (rc[row + 1] - rc[row]):
            row += 1
    eb = _find_bin(eta_edges, ae)
    lo = 0
    hi = nr
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if cdf[row, eb, mid] <= u:
            lo = mid
        else:
            hi = mid
    c0 = cdf[row, eb, lo]
    dc = cdf[row, eb, lo + 1] - c0
    frac = (u - c0) / dc if dc > 0.0 else 0.5
    pt_out = p * (r0 + (lo + frac) * rw)
    if sphi.shape[0] > 0:
        u1 = max(_draw(key, k, j, 2), 1e-300)
        u2 = _draw(key, k, j, 3)
        f += sphi[row, eb] * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        f = math.atan2(math.sin(f), math.cos(f))
    return pt_out, f


@nb.njit(cache=True)
def _smear_kernel(pt, offsets, abseta, sel, out_off, n_smear, keys, cdf, rc, eta_edges,
                  r_edges, phi, sphi):
    n_out = out_off[out_off.shape[0] - 1]
    out_pt = np.empty(n_out)
    out_phi = np.empty(n_out)
    src = np.empty(n_out, dtype=np.int64)
    r0 = r_edges[0]
    rw = r_edges[1] - r_edges[0]
    for s in range(sel.shape[0]):
        e = sel[s]
        a = offsets[e]
        nj = offsets[e + 1] - a
        for k in range(n_smear):
            o = out_off[s * n_smear + k]
            for j in range(nj):
                out_pt[o + j], out_phi[o + j] = _smear_jet(keys[s], k, j, pt[a + j], abseta[a + j], phi[a + j],
                                                           cdf, rc, eta_edges, r0, rw, sphi)
                src[o + j] = a + j
    return out_pt, out_phi, src


@nb.njit(cache=True)
def _smear_skim_kernel(pt, offsets, eta, sel, n_smear, keys, cdf, rc, eta_edges, r_edges, phi, sphi,
                       mht_pt_min, mht_eta_max, skim_mht):
    """:func:`_smear_kernel` followed by the hard-MHT skim (``analysis.rs.mht``, the same sums
    in the same order), without storing the smeared events that fail it: a first pass
    smears every (event, smearing) and keeps the pairs that pass, a second smears those
    again (the same draws) into the output. Returns the passing pairs' positions in ``sel``,
    their jet offsets, and the jets' pT, phi and flat seed index."""
    r0 = r_edges[0]
    rw = r_edges[1] - r_edges[0]
    pos = np.empty(sel.shape[0] * n_smear, dtype=np.int64)
    rep = np.empty(sel.shape[0] * n_smear, dtype=np.int64)
    n_pass = 0
    n_jets = 0
    for s in range(sel.shape[0]):
        a = offsets[sel[s]]
        nj = offsets[sel[s] + 1] - a
        for k in range(n_smear):
            mx = 0.0
            my = 0.0
            for j in range(nj):
                pj, fj = _smear_jet(keys[s], k, j, pt[a + j], abs(eta[a + j]), phi[a + j],
                                    cdf, rc, eta_edges, r0, rw, sphi)
                if pj > mht_pt_min and abs(eta[a + j]) < mht_eta_max:
                    mx -= pj * math.cos(fj)
                    my -= pj * math.sin(fj)
            if math.sqrt(mx * mx + my * my) > skim_mht:
                pos[n_pass] = s
                rep[n_pass] = k
                n_pass += 1
                n_jets += nj
    out_off = np.zeros(n_pass + 1, dtype=np.int64)
    out_pt = np.empty(n_jets)
    out_phi = np.empty(n_jets)
    src = np.empty(n_jets, dtype=np.int64)
    o = 0
    for q in range(n_pass):
        s = pos[q]
        a = offsets[sel[s]]
        nj = offsets[sel[s] + 1] - a
        for j in range(nj):
            out_pt[o + j], out_phi[o + j] = _smear_jet(keys[s], rep[q], j, pt[a + j], abs(eta[a + j]), phi[a + j],
                                                       cdf, rc, eta_edges, r0, rw, sphi)
            src[o + j] = a + j
        o += nj
        out_off[q + 1] = o
    return pos[:n_pass].copy(), out_off, out_pt, out_phi, src


@dataclass(frozen=True, eq=False)
class SmearResult:
    """Output of :func:`smear`: the prediction sample, flat jets plus per-smeared-event arrays.

    Attributes
    ----------
    pt, eta, phi : ndarray
        Smeared jets (GeV, rad); eta is the rebalanced (= seed) one; phi is smeared with the
        templates' azimuth resolution when they have one, else kept (eq. 2.1).
        Jets keep the seed order (not re-sorted by pT).
    offsets : ndarray of int64
        Offsets of the smeared events (length n_smeared_events + 1).
    event_index : ndarray of int64
        Index of the seed event (in the arrays given to :func:`smear`) of each smeared event.
    replica : ndarray of int32
        Smearing iteration 0..n-1 of each smeared event.
    weight : ndarray
        Event weight: seed weight / n (sec. 2.2).
    """

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    offsets: np.ndarray
    event_index: np.ndarray
    replica: np.ndarray
    weight: np.ndarray


def _entries(entry, n_events: int) -> np.ndarray:
    ent = np.asarray(entry)
    if ent.shape != (n_events,) or not np.issubdtype(ent.dtype, np.integer) or np.any(ent < 0):
        raise ConfigError(
            f"entry must be one non-negative integer file entry number per event ({n_events}), "
            f"got shape {ent.shape} dtype {ent.dtype}"
        )
    return np.ascontiguousarray(ent.astype(np.int64))


def smear(
    pt, eta, phi, offsets,
    templates: JetResponseTemplates,
    *,
    seed: int,
    file_id: str | bytes | int,
    entry,
    n_smear: int = RS_N_SMEAR,
    keep=None,
    event_weight=None,
) -> SmearResult:
    """Smear every jet of each (kept) rebalanced event n times with responses drawn from the
    templates (seed 004 sec. 2 and 2.2; App. A ``smearJets``), weight 1/n.

    The response of a jet of rebalanced pT p is drawn from the template at (p, |eta|) by
    inverse CDF, linear within the response bin; the linear interpolation in pT (sec. 2.5) is
    sampled exactly as the mixture of the two neighbouring pT bins. With templates that have a
    ``phi_resolution`` each jet's azimuth is also drawn, Gaussian with the resolution of the
    same (pT, |eta|) bin (the directions the rebalancing fitted; docs/physics.md sec. 8). Random numbers come from a
    counter-based hash (splitmix64) of (seed, file key, entry, replica, jet), so the output of an
    event does not depend on how the file is split into chunks. For the response systematics
    pass templates from :func:`vary_response`.

    Parameters
    ----------
    pt, eta, phi, offsets : array_like
        Rebalanced jets (GeV, rad; :attr:`RebalanceResult.pt`) and event offsets.
    templates : JetResponseTemplates
    seed : int
        Global seed of the prediction.
    file_id : str, bytes or int
        Identifier of the input file (path or UUID), see :func:`file_key`.
    entry : array_like of int
        Entry number in the file of each event (``events.entry`` style, global, not
        chunk-local).
    n_smear : int
        Smearing iterations per event (sec. 2.2; 100 by default).
    keep : array_like of bool, optional
        Events to smear (:attr:`RebalanceResult.keep`); default all.
    event_weight : array_like, optional
        Seed event weights (e.g. prescales), default 1.

    Returns
    -------
    SmearResult
    """
    if int(n_smear) < 1:
        raise ConfigError(f"n_smear must be >= 1, got {n_smear}")
    n_smear = int(n_smear)
    p = _as_f8("pt", pt)
    ae = np.abs(_as_f8("eta", eta))
    ph = _as_f8("phi", phi)
    off = _as_offsets("offsets", offsets, p.size)
    n_ev = off.size - 1
    ent = _entries(entry, n_ev)
    sel = np.arange(n_ev) if keep is None else np.flatnonzero(np.asarray(keep, dtype=bool))
    if keep is not None and np.asarray(keep).shape != (n_ev,):
        raise ConfigError(f"keep must have one entry per event ({n_ev}), got {np.shape(keep)}")
    ew = np.ones(n_ev) if event_weight is None else _as_f8("event_weight", event_weight)
    counts = np.repeat(np.diff(off)[sel], n_smear)
    out_off = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=out_off[1:])
    keys = _event_keys(np.uint64(int(seed) & _MASK64), np.uint64(file_key(file_id)),
                       _STREAM_SMEAR, ent[sel])
    rows, nodes = templates.pt_nodes()
    sphi = (np.zeros((0, 0)) if templates.phi_resolution is None
            else np.ascontiguousarray(templates.phi_resolution[rows]))
    out_pt, out_phi, src = _smear_kernel(p, off, ae, sel.astype(np.int64), out_off, n_smear, keys,
                                         np.ascontiguousarray(templates.cdf[rows]), nodes,
                                         templates.eta_edges, templates.response_edges, ph, sphi)
    eta_flat = _as_f8("eta", eta)
    return SmearResult(
        pt=out_pt, eta=eta_flat[src], phi=out_phi, offsets=out_off,
        event_index=np.repeat(sel, n_smear).astype(np.int64),
        replica=np.tile(np.arange(n_smear, dtype=np.int32), sel.size),
        weight=np.repeat(ew[sel] / n_smear, n_smear),
    )


@dataclass(frozen=True)
class SmearedBatch:
    """Smeared events that pass the hard-MHT skim (flat jets, event arrays).

    Attributes
    ----------
    pt, eta, phi : ndarray
        Smeared jets (seed order, not pT-sorted).
    source : ndarray of int64
        Index of each jet in the flat seed-jet arrays given to :func:`smear_skimmed`.
    offsets : ndarray of int64
        Event offsets of the skimmed smeared events.
    event_index : ndarray of int64
        Seed event of each smeared event.
    weight : ndarray
        Seed weight / n_smear (seed 004 sec. 2.2).
    """

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    source: np.ndarray
    offsets: np.ndarray
    event_index: np.ndarray
    weight: np.ndarray


def smear_skimmed(
    rebalanced_pt, eta, phi, offsets, keep, templates: JetResponseTemplates, *,
    seed: int, file_id: str, entry, n_smear: int, mht_pt_min: float, mht_eta_max: float,
    event_weight=None,
    skim_mht: float = RS_PREDICTION_SKIM_MHT, batch_events: int = RS_SMEAR_BATCH_EVENTS,
) -> Iterator[tuple[SmearedBatch, float, int]]:
    """Smear the kept rebalanced events (seed 004 sec. 2.2) in batches of seed events and keep
    only smeared events with hard MHT (eq. 2.6, jets with pT > ``mht_pt_min`` and
    |eta| < ``mht_eta_max``, the analysis' hard-MHT jets) > ``skim_mht``.

    The random numbers depend only on (seed, file, entry, replica, jet) (:func:`smear`), so
    batching does not change the result; the events are those :func:`smear` makes and
    :func:`analysis.rs.hard_mht` keeps, bit for bit, without storing the ~90% the skim drops
    (one kernel, :func:`_smear_skim_kernel`). Yields ``(batch, smeared_weight, n_smeared)``: the
    skimmed events and the total weight and number of smeared events of the batch before the
    skim (for the cutflow).
    """
    if int(n_smear) < 1:
        raise ConfigError(f"n_smear must be >= 1, got {n_smear}")
    n_smear = int(n_smear)
    p = _as_f8("pt", rebalanced_pt)
    eta = _as_f8("eta", eta)
    phi = _as_f8("phi", phi)
    off = _as_offsets("offsets", offsets, p.size)
    n_ev = off.size - 1
    ent = _entries(entry, n_ev)
    ew = np.ones(n_ev) if event_weight is None else _as_f8("event_weight", event_weight)
    kept = np.flatnonzero(np.asarray(keep, dtype=bool))
    fkey = np.uint64(file_key(file_id))
    rows, nodes = templates.pt_nodes()
    sphi = (np.zeros((0, 0)) if templates.phi_resolution is None
            else np.ascontiguousarray(templates.phi_resolution[rows]))
    cdf = np.ascontiguousarray(templates.cdf[rows])
    for start in range(0, kept.size, max(int(batch_events), 1)):
        sel = kept[start:start + batch_events]
        keys = _event_keys(np.uint64(int(seed) & _MASK64), fkey, _STREAM_SMEAR, ent[sel])
        pos, out_off, pt_s, phi_s, source = _smear_skim_kernel(
            p, off, eta, sel.astype(np.int64), n_smear, keys, cdf, nodes, templates.eta_edges,
            templates.response_edges, phi, sphi, float(mht_pt_min), float(mht_eta_max), float(skim_mht))
        w = ew[sel] / n_smear
        batch = SmearedBatch(pt_s, eta[source], phi_s, source, out_off, sel[pos], w[pos])
        # the weight and number of the smeared events before the skim, as smear() makes them
        yield batch, float(np.repeat(w, n_smear).sum()), int(sel.size * n_smear)
