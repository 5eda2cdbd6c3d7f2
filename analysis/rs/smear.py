"""Smearing (seed 004 sec. 2, 2.2): every rebalanced jet's response drawn n times from the
templates, weight 1/n, reproducible from (seed, file, entry) (:func:`smear`); batched, with
an exact hard-MHT skim of the smeared events (:func:`smear_skimmed`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numba as nb
import numpy as np

from analysis.columnar import offsets_from_counts
from analysis.errors import ConfigError
from analysis.rs.arrays import _as_f8, _as_offsets
from analysis.rs.defaults import RS_N_SMEAR, RS_PREDICTION_SKIM_MHT, RS_SMEAR_BATCH_EVENTS
from analysis.rs.mht import hard_mht
from analysis.rs.rng import _MASK64, _STREAM_SMEAR, _draw, _event_keys, file_key
from analysis.rs.tables import _find_bin
from analysis.rs.templates import JetResponseTemplates


@nb.njit(cache=True)
def _smear_kernel(pt, offsets, abseta, sel, out_off, n_smear, keys, cdf, rc, eta_edges,
                  r_edges, phi, sphi):
    n_out = out_off[out_off.shape[0] - 1]
    out_pt = np.empty(n_out)
    out_phi = np.empty(n_out)
    smear_dir = sphi.shape[0] > 0
    src = np.empty(n_out, dtype=np.int64)
    nrow = rc.shape[0]
    nr = cdf.shape[2] - 1
    r0 = r_edges[0]
    rw = r_edges[1] - r_edges[0]
    for s in range(sel.shape[0]):
        e = sel[s]
        a = offsets[e]
        nj = offsets[e + 1] - a
        for k in range(n_smear):
            o = out_off[s * n_smear + k]
            for j in range(nj):
                u_row = _draw(keys[s], k, j, 0)
                u = _draw(keys[s], k, j, 1)
                p = pt[a + j]
                # linear interpolation between pT bins = mixture of the neighbouring pdfs
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
                eb = _find_bin(eta_edges, abseta[a + j])
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
                out_pt[o + j] = p * (r0 + (lo + frac) * rw)
                src[o + j] = a + j
                f = phi[a + j]
                if smear_dir:
                    # Gaussian azimuth (Box-Muller), the resolution of the same (pT, |eta|) row
                    u1 = max(_draw(keys[s], k, j, 2), 1e-300)
                    u2 = _draw(keys[s], k, j, 3)
                    f += sphi[row, eb] * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
                    f = math.atan2(math.sin(f), math.cos(f))
                out_phi[o + j] = f
    return out_pt, out_phi, src


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
    batching does not change the result. Yields ``(batch, smeared_weight, n_smeared)``: the
    skimmed events and the total weight and number of smeared events of the batch before the
    skim (for the cutflow).
    """
    p = np.asarray(rebalanced_pt, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    ent = np.asarray(entry, dtype=np.int64)
    n_ev = off.size - 1
    ew = np.ones(n_ev) if event_weight is None else np.asarray(event_weight, dtype=np.float64)
    kept = np.flatnonzero(np.asarray(keep, dtype=bool))
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    for start in range(0, kept.size, max(int(batch_events), 1)):
        sel = kept[start:start + batch_events]
        counts = off[sel + 1] - off[sel]
        sub_off = offsets_from_counts(counts)
        src = np.repeat(off[sel] - sub_off[:-1], counts) + np.arange(sub_off[-1])
        sm = smear(p[src], eta[src], phi[src], sub_off, templates, seed=seed, file_id=file_id,
                      entry=ent[sel], n_smear=n_smear, event_weight=ew[sel])
        info = hard_mht(sm.pt, sm.eta, sm.phi, sm.offsets, mht_pt_min, mht_eta_max)
        with np.errstate(invalid="ignore"):
            passed = np.flatnonzero(info["mht"] > skim_mht)
        cnt = np.diff(sm.offsets)[passed]
        out_off = offsets_from_counts(cnt)
        jets = np.repeat(sm.offsets[passed] - out_off[:-1], cnt) + np.arange(out_off[-1])
        # smear() keeps the jet order of each event: the source jet is found by position
        local = jets - np.repeat(sm.offsets[passed], cnt)
        seed_ev = sel[sm.event_index[passed]]
        source = np.repeat(off[seed_ev], cnt) + local
        batch = SmearedBatch(sm.pt[jets], sm.eta[jets], sm.phi[jets], source, out_off, seed_ev,
                             sm.weight[passed])
        yield batch, float(sm.weight.sum()), int(sm.weight.size)
