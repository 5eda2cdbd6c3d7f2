"""Priors of the rebalancing (seed 004 sec. 2.4.2, eqs. 2.5-2.6, Fig. 1b-c).

The true hard MHT by H_T of the fitted jets and b-jet category, and DeltaPhi(hard MHT,
leading jet) by coarse hard MHT and b-jet category: from true jets (:func:`build_priors`,
fed with :func:`prior_jets`, gen pT along the measured directions) or from mergeable sums
(:func:`prior_sums`, :func:`priors_from_sums`, :func:`priors_from_histograms`), as a
:class:`RebalancePriors`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.errors import ConfigError
from analysis.rs.arrays import _as_f8, _as_offsets, _centers, _check_edges
from analysis.rs.defaults import (
    RS_JET_ETA_MAX,
    RS_N_BJET_CATEGORIES,
    RS_PDF_FLOOR_REL,
    RS_PRIOR_DPHI_EDGES,
    RS_PRIOR_DPHI_MHT_EDGES,
    RS_PRIOR_HT_EDGES,
    RS_PRIOR_MHT_EDGES,
    RS_PRIOR_MIN_EVENTS,
    RS_PRIOR_TAIL_QUANTILE,
)
from analysis.rs.mht import hard_mht
from analysis.rs.templates import _normalize_last


@dataclass(frozen=True, eq=False)
class RebalancePriors:
    """Priors of the rebalancing (seed 004 sec. 2.4.2, Fig. 1b-c, eqs. 2.5-2.6), by H_T and
    b-jet count.

    Attributes
    ----------
    mht_edges : ndarray
        Uniform bins of the true hard MHT (GeV).
    pdf_mht : ndarray, shape (n_ht, n_nb, n_mht)
        pdf of the true hard MHT (1/GeV) per H_T bin and b-jet category (0, 1, >= 2). A 2-d
        array (n_nb, n_mht) is accepted as a single H_T bin.
    dphi_mht_edges : ndarray
        Coarse hard-MHT bins (GeV) in which the DeltaPhi prior is conditioned.
    dphi_edges : ndarray
        Uniform bins of DeltaPhi(hard MHT, leading jet) in [0, pi].
    pdf_dphi : ndarray, shape (n_nb, n_mht_coarse, n_dphi)
        pdf of DeltaPhi (1/rad) given the hard MHT, per b-jet category.
    entries : ndarray, shape (n_nb,)
        Weighted events per category (0: copied from the inclusive prior).
    ht_edges : ndarray, optional
        H_T bins (GeV, scalar sum of the fitted jets' measured pT) of ``pdf_mht``; the fit
        interpolates linearly between their centres (seed 004 sec. 2.5). Default: one bin.
    """

    mht_edges: np.ndarray
    pdf_mht: np.ndarray
    dphi_mht_edges: np.ndarray
    dphi_edges: np.ndarray
    pdf_dphi: np.ndarray
    entries: np.ndarray
    ht_edges: np.ndarray | None = None

    def __post_init__(self) -> None:
        me = _check_edges("mht_edges", self.mht_edges, uniform=True)
        dme = _check_edges("dphi_mht_edges", self.dphi_mht_edges)
        de = _check_edges("dphi_edges", self.dphi_edges, uniform=True)
        pm = np.ascontiguousarray(np.asarray(self.pdf_mht, dtype=np.float64))
        if pm.ndim == 2:
            pm = pm[np.newaxis]
        he = (np.array([RS_PRIOR_HT_EDGES[0], RS_PRIOR_HT_EDGES[-1]]) if self.ht_edges is None
              else _check_edges("ht_edges", self.ht_edges))
        pd = np.ascontiguousarray(np.asarray(self.pdf_dphi, dtype=np.float64))
        if (pm.ndim != 3 or pm.shape[0] != he.size - 1 or pm.shape[2] != me.size - 1
                or np.any(~np.isfinite(pm)) or np.any(pm < 0)):
            raise ConfigError(f"hard-MHT prior must be (n_ht={he.size - 1}, n_nb, {me.size - 1}) >= 0, "
                              f"got {pm.shape}")
        if pd.shape != (pm.shape[1], dme.size - 1, de.size - 1) or np.any(~np.isfinite(pd)):
            raise ConfigError(
                f"DeltaPhi prior must be ({pm.shape[1]}, {dme.size - 1}, {de.size - 1}), "
                f"got {pd.shape}"
            )
        for name, v in (("mht_edges", me), ("dphi_mht_edges", dme), ("dphi_edges", de),
                        ("pdf_mht", pm), ("pdf_dphi", pd), ("ht_edges", he)):
            object.__setattr__(self, name, v)
        object.__setattr__(self, "entries", np.asarray(self.entries, dtype=np.float64))

    @property
    def n_bjet_categories(self) -> int:
        return int(self.pdf_mht.shape[1])

    def kernel_tables(self) -> tuple:
        """MHT and DeltaPhi tables in the kernels' (row, category, column) layout (MHT rows:
        H_T bins)."""
        mw = float(self.mht_edges[1] - self.mht_edges[0])
        dw = float(self.dphi_edges[1] - self.dphi_edges[0])
        # log-pdf tables (floor argument 0 selects log-mode interpolation in the kernels)
        tiny = np.finfo(np.float64).tiny
        mht_tab = np.log(np.maximum(self.pdf_mht, tiny))
        dfloor = RS_PDF_FLOOR_REL * max(float(self.pdf_dphi.max()), tiny)
        dphi_tab = np.log(np.transpose(self.pdf_dphi, (1, 0, 2)) + dfloor)
        return (
            np.ascontiguousarray(mht_tab), _centers(self.ht_edges),
            float(self.mht_edges[0] + 0.5 * mw), mw, 0.0,
            np.ascontiguousarray(dphi_tab), _centers(self.dphi_mht_edges),
            float(self.dphi_edges[0] + 0.5 * dw), dw, 0.0,
        )

    def mht_quantile(self, q: float) -> np.ndarray:
        """The q-quantile (GeV) of the true hard MHT per (H_T bin, b-jet category); beyond the
        table the exponential tail of the last two bins is used."""
        w = self.mht_edges[1] - self.mht_edges[0]
        cdf = np.cumsum(self.pdf_mht * w, axis=-1)
        out = np.empty(self.pdf_mht.shape[:2])
        for i, k in np.ndindex(out.shape):
            c = cdf[i, k]
            if c[-1] >= q:
                out[i, k] = np.interp(q, np.r_[0.0, c], self.mht_edges)
            else:  # exponential beyond the range: remaining mass (1 - c) decays with slope lam
                p1, p2 = self.pdf_mht[i, k, -2:]
                lam = w / max(math.log(p1 / p2), 1e-3) if p1 > 0 and p2 > 0 else 10 * w
                out[i, k] = self.mht_edges[-1] + lam * math.log(max(1.0 - c[-1], 1e-300) / (1.0 - q))
        return out

    def rejection_threshold(self, ht, n_bjets, q: float, floor: float) -> np.ndarray:
        """Per event: max(floor, q-quantile of the true hard MHT in the event's H_T bin and
        b-jet category): a rebalanced hard MHT above it is not a QCD configuration."""
        qt = self.mht_quantile(q)
        ih = np.clip(np.searchsorted(self.ht_edges, np.asarray(ht, dtype=np.float64), side="right") - 1,
                     0, self.ht_edges.size - 2)
        cat = np.minimum(np.asarray(n_bjets, dtype=np.int64), self.n_bjet_categories - 1)
        return np.maximum(floor, qt[ih, cat])


def prior_jets(
    reco_pt, reco_eta, reco_phi, reco_offsets, reco_gen_index,
    gen_pt, gen_eta, gen_phi, gen_offsets,
    *,
    pt_min: float,
    eta_max: float = RS_JET_ETA_MAX,
    directions: str = "measured",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The true jets as the rebalancing parametrizes them, for the priors (seed 004 sec. 2.4.2).

    The fit rescales the measured jets and, when the templates carry a jet azimuth
    resolution, turns them. Its target is each R&S reco jet (pT > ``pt_min``, |eta| <
    ``eta_max``) with its gen jet's pT, along the gen jet's azimuth (``directions="gen"``, the
    fit of the directions: the prior is then the true hard MHT of invisible particles and lost
    jets, the direction mis-measurement being the fit's to remove) or along the *reco*
    direction (``"measured"``: directions kept, eq. 2.1; at multi-TeV jet pT the direction
    resolution alone then gives tens to hundreds of GeV of hard MHT that the fit cannot remove
    and the prior must describe), plus the gen jets that no R&S jet measured (lost or outside
    the acceptance) as they are. Reco jets without gen jet keep their reco pT and azimuth.

    Returns flat ``(pt, eta, phi, offsets)`` of these jets and the per-event H_T of the R&S
    reco jets (the prior's conditioning variable, as the seeds see it).
    """
    rpt, reta, rphi = (_as_f8(n, a) for n, a in (("reco_pt", reco_pt), ("reco_eta", reco_eta),
                                                 ("reco_phi", reco_phi)))
    gpt, geta, gphi = (_as_f8(n, a) for n, a in (("gen_pt", gen_pt), ("gen_eta", gen_eta),
                                                 ("gen_phi", gen_phi)))
    roff = _as_offsets("reco_offsets", reco_offsets, rpt.size)
    goff = _as_offsets("gen_offsets", gen_offsets, gpt.size)
    gidx = np.asarray(reco_gen_index, dtype=np.int64)
    if gidx.shape != rpt.shape or roff.size != goff.size:
        raise ConfigError("reco_gen_index must have one entry per reco jet, and reco and gen the same events")
    n = roff.size - 1
    rev = np.repeat(np.arange(n), np.diff(roff))
    with np.errstate(invalid="ignore"):
        rs_jet = (rpt > pt_min) & (np.abs(reta) < eta_max)
    gcount = np.diff(goff)
    has_gen = rs_jet & (gidx >= 0) & (gidx < gcount[rev])
    gflat = np.where(has_gen, goff[rev] + gidx, -1)
    if directions not in ("measured", "gen"):
        raise ConfigError(f"directions must be 'measured' or 'gen', got {directions!r}")
    gsafe = np.clip(gflat, 0, max(gpt.size - 1, 0))
    true_pt = np.where(has_gen, gpt[gsafe] if gpt.size else 0.0, rpt)
    true_phi = np.where(has_gen, gphi[gsafe] if gpt.size else 0.0, rphi) if directions == "gen" else rphi
    measured = np.zeros(gpt.size, dtype=bool)
    measured[gflat[has_gen]] = True
    gev = np.repeat(np.arange(n), gcount)
    pt = np.r_[true_pt[rs_jet], gpt[~measured]]
    eta = np.r_[reta[rs_jet], geta[~measured]]
    phi = np.r_[true_phi[rs_jet], gphi[~measured]]
    ev = np.r_[rev[rs_jet], gev[~measured]]
    order = np.argsort(ev, kind="stable")
    counts = np.bincount(ev, minlength=n)
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    ht = np.bincount(rev[rs_jet], rpt[rs_jet], n)
    return pt[order], eta[order], phi[order], off, ht


def prior_event_values(gen_pt, gen_eta, gen_phi, gen_offsets, *, pt_min: float,
                       eta_max: float = RS_JET_ETA_MAX) -> tuple[np.ndarray, np.ndarray]:
    """True hard MHT (GeV) and DeltaPhi(hard MHT, leading jet) (rad) per event from true jets
    (gen jets, or :func:`prior_jets`), exactly as
    :func:`build_priors` computes them (pT > ``pt_min``, |eta| < ``eta_max``;
    seed 004 eq. 2.6). DeltaPhi is NaN for events without such a jet."""
    info = hard_mht(gen_pt, gen_eta, gen_phi, gen_offsets, pt_min, eta_max)
    dphi = np.abs(np.angle(np.exp(1j * (info["mht_phi"] - info["leading_phi"]))))
    return info["mht"], dphi


def _bjet_category(n_bjets, n_events: int, n_cat: int) -> np.ndarray:
    nbj = np.asarray(n_bjets)
    if nbj.shape != (n_events,):
        raise ConfigError(f"n_bjets must have one entry per event ({n_events}), got {nbj.shape}")
    if np.any(nbj < 0):
        raise ConfigError(f"n_bjets must be >= 0, got minimum {nbj.min()}")
    return np.ascontiguousarray(np.minimum(nbj, n_cat - 1).astype(np.int64))


def _mht_cell(sw: np.ndarray, sx: np.ndarray, cnt: np.ndarray, edges: np.ndarray, q: float) -> np.ndarray:
    """Hard-MHT histogram of one prior cell from its sums per bin (last entry: overflow): sum of
    weights ``sw``, of weight x MHT ``sx``, unweighted count ``cnt``. Above the q-quantile
    (from the first edge above the bin holding it) the bins follow an exponential with the
    maximum-likelihood slope of the events there (overflow included), so that the log-prior
    keeps decreasing where simulation has few events."""
    n_m = edges.size - 1
    h = sw[:n_m].copy()
    if cnt.sum() < 20 or sw.sum() <= 0:
        return h
    cw = np.cumsum(sw)
    k = min(int(np.searchsorted(cw, q * cw[-1])) + 1, n_m)
    if k >= n_m:
        return h
    x0 = edges[k]
    n_beyond = sw[k:].sum()
    if n_beyond <= 0:
        return h
    lam = max(float((sx[k:].sum() - x0 * n_beyond) / n_beyond), edges[1] - edges[0])
    lo, hi = edges[k:-1] - x0, edges[k + 1:] - x0
    h[k:] = n_beyond * (np.exp(-lo / lam) - np.exp(-hi / lam))
    return h


def _fill_log_gaps(h: np.ndarray) -> np.ndarray:
    """Empty bins between filled ones get the log-linear interpolation of their neighbours
    (a zero inside the prior's range would be a wall of log(0) for the fit)."""
    pos = np.flatnonzero(h > 0)
    if pos.size < 2 or pos.size == h.size:
        return h
    idx = np.arange(h.size)
    return np.exp(np.interp(idx, pos, np.log(h[pos])))


def priors_from_sums(
    sumw, sumwx, count, dphi_hist,
    mht_edges=RS_PRIOR_MHT_EDGES,
    dphi_mht_edges=RS_PRIOR_DPHI_MHT_EDGES,
    dphi_edges=RS_PRIOR_DPHI_EDGES,
    ht_edges=RS_PRIOR_HT_EDGES,
    *,
    tail_quantile: float = RS_PRIOR_TAIL_QUANTILE,
    min_events: int = RS_PRIOR_MIN_EVENTS,
) -> RebalancePriors:
    """Priors from mergeable sums (the common core of :func:`build_priors` and the templates
    processor).

    ``sumw``, ``sumwx``, ``count``: shape (n_ht, n_nb, n_mht + 1) (last: overflow), the sum of
    weights, of weight x true hard MHT, and the unweighted events per (H_T, b-jet category,
    MHT) bin; ``dphi_hist``: (n_nb, n_mht_coarse, n_dphi) weighted. A (H_T, nb) cell with
    fewer than ``min_events`` events takes the b-inclusive sums of its H_T bin; an H_T bin with
    fewer than that takes the nearest H_T bin that has enough (H_T bins are interpolated, so
    this only matters at the ends).
    """
    me, dme, de = (np.asarray(e, dtype=np.float64) for e in (mht_edges, dphi_mht_edges, dphi_edges))
    he = np.asarray(ht_edges, dtype=np.float64)
    sw, sx, cnt = (np.asarray(a, dtype=np.float64) for a in (sumw, sumwx, count))
    hd = np.array(dphi_hist, dtype=np.float64)
    n_ht, n_cat, n_m = he.size - 1, sw.shape[1] if sw.ndim == 3 else 0, me.size - 1
    if sw.shape != (n_ht, n_cat, n_m + 1) or sx.shape != sw.shape or cnt.shape != sw.shape:
        raise ConfigError(f"prior sums must have shape (n_ht={n_ht}, n_nb, {n_m + 1}), got {sw.shape}, "
                          f"{sx.shape}, {cnt.shape}")
    if hd.shape != (n_cat, dme.size - 1, de.size - 1):
        raise ConfigError(f"DeltaPhi prior histogram must be ({n_cat}, {dme.size - 1}, {de.size - 1}), "
                          f"got {hd.shape}")
    if cnt.sum() <= 0 or sw[..., :n_m].sum() <= 0:
        raise ConfigError("no gen events inside the hard-MHT prior range: check the inputs")
    row_n = cnt.sum((1, 2))
    good_rows = np.flatnonzero(row_n >= min(min_events, row_n.max()))
    hm = np.zeros((n_ht, n_cat, n_m))
    for i in range(n_ht):
        src = i if i in good_rows else int(good_rows[np.argmin(np.abs(good_rows - i))])
        inclusive = _mht_cell(sw[src].sum(0), sx[src].sum(0), cnt[src].sum(0), me, tail_quantile)
        for c in range(n_cat):
            if i == src and cnt[i, c].sum() >= min_events:
                hm[i, c] = _mht_cell(sw[i, c], sx[i, c], cnt[i, c], me, tail_quantile)
            else:
                hm[i, c] = inclusive
            hm[i, c] = _fill_log_gaps(hm[i, c])
    entries = sw.sum((0, 2))
    width = me[1] - me[0]
    norm = (hm * width).sum(-1, keepdims=True)
    pdf_mht = np.where(norm > 0, hm / np.where(norm > 0, norm, 1.0), 0.0)
    dsum = hd.sum(0)
    for c in range(n_cat):
        for j in range(dme.size - 1):
            if hd[c, j].sum() <= 0:  # empty coarse bin: inclusive, then flat
                hd[c, j] = dsum[j] if dsum[j].sum() > 0 else 1.0
    pdf_dphi = _normalize_last(hd, de[1] - de[0])
    return RebalancePriors(me, pdf_mht, dme, de, pdf_dphi, entries, he)


def prior_sums(mht, dphi, ht, cat, w, mht_edges, dphi_mht_edges, dphi_edges, ht_edges, n_cat):
    """(sumw, sumwx, count, dphi_hist) of :func:`priors_from_sums` from per-event values."""
    me, he = np.asarray(mht_edges, dtype=np.float64), np.asarray(ht_edges, dtype=np.float64)
    n_ht, n_m = he.size - 1, me.size - 1
    ih = np.clip(np.searchsorted(he, ht, side="right") - 1, 0, n_ht - 1)
    im = np.clip(np.searchsorted(me, mht, side="right") - 1, 0, n_m)  # n_m: overflow
    flat = np.ravel_multi_index((ih, cat, im), (n_ht, n_cat, n_m + 1))
    size = n_ht * n_cat * (n_m + 1)
    shape = (n_ht, n_cat, n_m + 1)
    sw = np.bincount(flat, w, size).reshape(shape)
    sx = np.bincount(flat, w * mht, size).reshape(shape)
    cnt = np.bincount(flat, None, size).astype(np.float64).reshape(shape)
    hd = np.stack([np.histogram2d(mht[cat == c], dphi[cat == c], bins=(dphi_mht_edges, dphi_edges),
                                  weights=w[cat == c])[0] for c in range(n_cat)])
    return sw, sx, cnt, hd


def build_priors(
    gen_pt, gen_eta, gen_phi, gen_offsets, n_bjets,
    weights=None,
    *,
    ht=None,
    pt_min: float,
    eta_max: float = RS_JET_ETA_MAX,
    mht_edges=RS_PRIOR_MHT_EDGES,
    dphi_mht_edges=RS_PRIOR_DPHI_MHT_EDGES,
    dphi_edges=RS_PRIOR_DPHI_EDGES,
    ht_edges=RS_PRIOR_HT_EDGES,
    n_bjet_categories: int = RS_N_BJET_CATEGORIES,
    tail_quantile: float = RS_PRIOR_TAIL_QUANTILE,
    min_events: int = RS_PRIOR_MIN_EVENTS,
) -> RebalancePriors:
    """Priors on the true hard MHT (by H_T and b-jet category) and on DeltaPhi(hard MHT, leading
    jet) (by b-jet category) (seed 004 sec. 2.4.2; the H_T dependence as in its sec. 2.5).

    The true hard MHT is |-sum pT| of the given true jets with pT > ``pt_min`` (the analysis' R&S
    jet threshold) and |eta| < ``eta_max`` (eq. 2.6); the leading jet is the highest-pT of
    those. Pass the jets of :func:`prior_jets` (gen pT along the measured directions) and its
    reco H_T as ``ht``; plain gen jets (and their own H_T, the default) are the idealized case.
    DeltaPhi is conditioned on coarse hard-MHT bins (at small hard MHT its direction is random,
    at large hard MHT it points away from the leading jet). Above the ``tail_quantile`` of the
    hard MHT each histogram is replaced by an exponential with the maximum-likelihood slope of
    the events there (overflow included); see :func:`priors_from_sums` for sparse cells.

    Parameters
    ----------
    gen_pt, gen_eta, gen_phi, gen_offsets : array_like
        Flat true jets (GeV, rad) of simulated QCD and their event offsets.
    n_bjets : array_like of int
        Number of b-tagged jets per event (reco level, as used for the seed events).
    weights : array_like, optional
        Event weights.
    ht : array_like, optional
        Per-event H_T (GeV) the hard-MHT prior is conditioned on.
    """
    me = _check_edges("mht_edges", mht_edges, uniform=True)
    dme = _check_edges("dphi_mht_edges", dphi_mht_edges)
    de = _check_edges("dphi_edges", dphi_edges, uniform=True)
    he = _check_edges("ht_edges", ht_edges)
    info = hard_mht(gen_pt, gen_eta, gen_phi, gen_offsets, pt_min, eta_max)
    n_ev = info["mht"].size
    cat = _bjet_category(n_bjets, n_ev, n_bjet_categories)
    w = np.ones(n_ev) if weights is None else _as_f8("weights", weights)
    h = info["ht"] if ht is None else _as_f8("ht", ht)
    if h.shape != (n_ev,):
        raise ConfigError(f"ht must have one entry per event ({n_ev}), got {h.shape}")
    dphi = np.abs(np.angle(np.exp(1j * (info["mht_phi"] - info["leading_phi"]))))
    ok = np.isfinite(dphi) & np.isfinite(w) & np.isfinite(h)
    sums = prior_sums(info["mht"][ok], dphi[ok], h[ok], cat[ok], w[ok], me, dme, de, he, n_bjet_categories)
    return priors_from_sums(*sums, me, dme, de, he, tail_quantile=tail_quantile, min_events=min_events)


def priors_from_histograms(
    sumw,
    sumwx,
    count,
    dphi_hist,
    mht_edges=RS_PRIOR_MHT_EDGES,
    dphi_mht_edges=RS_PRIOR_DPHI_MHT_EDGES,
    dphi_edges=RS_PRIOR_DPHI_EDGES,
    ht_edges=RS_PRIOR_HT_EDGES,
    *,
    tail_quantile: float = RS_PRIOR_TAIL_QUANTILE,
) -> RebalancePriors:
    """Priors of seed 004 sec. 2.4.2 from mergeable histograms, equal to
    :func:`build_priors` on the same events.

    Parameters
    ----------
    sumw, sumwx, count : array_like, shape (n_ht, n_nb, n_mht + 1)
        Per H_T bin, b-jet category and true-hard-MHT bin (last column: overflow above the
        last edge): sum of weights, sum of weight x hard MHT, and unweighted events. These are
        sufficient for the exponential tail of ``build_priors`` (its start is a bin edge and
        its slope the weighted mean distance beyond it). Shape (n_nb, n_mht + 1) is read as
        one H_T bin spanning ``ht_edges``.
    dphi_hist : array_like, shape (n_nb, n_mht_coarse, n_dphi)
        Weighted histogram of (hard MHT, DeltaPhi) per category (no overflow).
    """
    sw, sx, cnt = (np.asarray(a, dtype=np.float64) for a in (sumw, sumwx, count))
    he = np.asarray(ht_edges, dtype=np.float64)
    if sw.ndim == 2:
        sw, sx, cnt = sw[None], sx[None], cnt[None]
        he = he[[0, -1]]
    return priors_from_sums(sw, sx, cnt, dphi_hist, mht_edges, dphi_mht_edges, dphi_edges, he,
                               tail_quantile=tail_quantile)
