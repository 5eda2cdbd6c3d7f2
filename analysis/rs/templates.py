"""Jet response templates (seed 004 sec. 2.4.1, eq. 2.2, Fig. 1a).

- :func:`select_template_jets`: matched (eq. 2.3), isolated (eq. 2.4) gen/reco jet pairs and
  the isolated gen jets without any reco jet ("lost" jets, below the reco threshold);
- :func:`lost_jet_responses`: the responses that stand for the lost jets;
- :func:`build_response_templates` and :func:`templates_from_histogram` (the mergeable
  accumulator of a processor): smoothed pdfs per (pT_gen, |eta_gen|) bin (App. A), linear
  interpolation in pT (sec. 2.5), as a :class:`JetResponseTemplates`;
- :func:`direction_resolution`: the jet azimuth resolution per (pT_gen, |eta_gen|) bin from
  mergeable sums of the matched pairs' phi_reco - phi_gen (the fit of the jet directions and
  their smearing, docs/physics.md sec. 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numba as nb
import numpy as np

from analysis.errors import ConfigError
from analysis.rs.arrays import _as_f8, _as_offsets, _centers, _check_edges
from analysis.rs.defaults import (
    RS_ISOLATION_DR,
    RS_ISOLATION_PT_FRACTION,
    RS_LIKELIHOOD_SMOOTH_FRACTION,
    RS_LOST_JET_ETA_MAX,
    RS_LOST_JET_POINTS,
    RS_MATCH_DR,
    RS_PDF_FLOOR_REL,
    RS_PDF_FLOOR_SLOPE,
    RS_RECO_JET_PT_MIN,
    RS_RESPONSE_EDGES,
    RS_TEMPLATE_ABSETA_EDGES,
    RS_TEMPLATE_PT_EDGES,
    RS_TEMPLATE_SMOOTH_SIGMA,
)
from analysis.rs.tables import _find_bin, _log_table


def _smooth_rows(pdf: np.ndarray, width: float, sigma: float) -> np.ndarray:
    """Gaussian-kernel smoothing along the last axis (sigma in axis units), mass-preserving:
    what the kernel would move beyond either end is reflected back (the lost-jet mass sits
    right at r = 0 and would otherwise leak out)."""
    if sigma <= 0.0:
        return pdf
    half = int(math.ceil(4.0 * sigma / width))
    t = np.arange(-half, half + 1) * width
    kern = np.exp(-0.5 * (t / sigma) ** 2)
    kern /= kern.sum()
    flat = pdf.reshape(-1, pdf.shape[-1])
    out = np.empty_like(flat)
    n = flat.shape[1]
    for i in range(flat.shape[0]):
        full = np.convolve(flat[i], kern, mode="full")  # index j: position j - half
        row = full[half:half + n].copy()
        lo, hi = full[:half], full[half + n:]
        m = min(half, n)
        row[:m] += lo[::-1][:m]  # position -1 - j folds onto j
        row[n - m:] += hi[::-1][half - m:]  # position n + j folds onto n - 1 - j
        out[i] = row
    return out.reshape(pdf.shape)


def _normalize_last(h: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    norm = (h * width).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, h / np.where(norm > 0, norm, 1.0), 0.0)


@dataclass(frozen=True, eq=False)
class JetResponseTemplates:
    """Jet response pdfs P(r = pT_reco / pT_gen | pT_gen, |eta|) (seed 004 sec. 2.4.1, Fig. 1a).

    Attributes
    ----------
    pt_edges, eta_edges, response_edges : ndarray
        Bin edges in gen-jet pT (GeV), gen-jet |eta| and response (uniform).
    pdf : ndarray, shape (n_pt, n_eta, n_r)
        Smoothed pdf per bin, normalized so that ``sum(pdf * dr) == 1`` (1/response units).
    entries : ndarray, shape (n_pt, n_eta)
        Weighted number of matched jets that filled each (pT, |eta|) bin (0: filled from the
        nearest populated pT bin of the same |eta| bin or, in an |eta| bin without any jet,
        from the nearest populated |eta| bin at the same pT).
    smooth_sigma : float
        Width (response units) of the Gaussian kernel applied.
    interpolate_pt : bool
        Linear interpolation between pT-bin centers (seed 004 sec. 2.5, default); False uses
        the pdf of the bin that contains the pT (for a detector model that is constant per bin,
        such as the project's toy, where interpolation would mix neighbouring bins' widths).
    phi_resolution : ndarray, shape (n_pt, n_eta), optional
        Jet azimuth resolution sigma(phi_reco - phi_gen) (rad) per bin (:func:`direction_resolution`).
        With it the rebalancing fits each jet's azimuth as well as its pT (Gaussian likelihood
        of this width) and the smearing draws both; without it (templates of an older file)
        the directions are kept (seed 004 eq. 2.1).
    """

    pt_edges: np.ndarray
    eta_edges: np.ndarray
    response_edges: np.ndarray
    pdf: np.ndarray
    entries: np.ndarray
    smooth_sigma: float = 0.0
    interpolate_pt: bool = True
    phi_resolution: np.ndarray | None = None
    cdf: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pte = _check_edges("pt_edges", self.pt_edges)
        ete = _check_edges("eta_edges", self.eta_edges)
        rde = _check_edges("response_edges", self.response_edges, uniform=True)
        pdf = np.ascontiguousarray(np.asarray(self.pdf, dtype=np.float64))
        shape = (pte.size - 1, ete.size - 1, rde.size - 1)
        if pdf.shape != shape or np.any(~np.isfinite(pdf)) or np.any(pdf < 0):
            raise ConfigError(
                f"response pdf must be finite, non-negative, of shape {shape}; got {pdf.shape}"
            )
        object.__setattr__(self, "pt_edges", pte)
        object.__setattr__(self, "eta_edges", ete)
        object.__setattr__(self, "response_edges", rde)
        object.__setattr__(self, "pdf", pdf)
        object.__setattr__(self, "entries", np.asarray(self.entries, dtype=np.float64))
        if self.phi_resolution is not None:
            sig = np.ascontiguousarray(np.asarray(self.phi_resolution, dtype=np.float64))
            if sig.shape != shape[:2] or np.any(~np.isfinite(sig)) or np.any(sig <= 0):
                raise ConfigError(f"phi_resolution must be finite, positive, of shape {shape[:2]}; got "
                                  f"{sig.shape}")
            object.__setattr__(self, "phi_resolution", sig)
        mass = np.cumsum(pdf * (rde[1] - rde[0]), axis=-1)
        cdf = np.concatenate([np.zeros(shape[:2] + (1,)), mass], axis=-1)
        total = cdf[..., -1:]
        cdf = np.where(total > 0, cdf / np.where(total > 0, total, 1.0), 0.0)
        object.__setattr__(self, "cdf", np.ascontiguousarray(cdf))

    def borrowed_bins(self) -> dict[str, int]:
        """Number of (pT, |eta|) bins whose pdf was borrowed: ``"pt"`` from a pT neighbour in
        the same |eta| bin, ``"abseta"`` from the nearest populated |eta| bin (every bin of
        an |eta| bin without any jet)."""
        empty = self.entries <= 0
        column = empty.all(axis=0)
        return {"pt": int(empty[:, ~column].sum()), "abseta": int(empty[:, column].sum())}

    @property
    def pt_centers(self) -> np.ndarray:
        """Centers (GeV) of the pT bins, the nodes of the linear interpolation in pT."""
        return _centers(self.pt_edges)

    def pt_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(row index into the tables, pT node) of the interpolation along pT.

        With ``interpolate_pt`` the nodes are the bin centers; without, every bin contributes
        two nodes just inside its edges, so that the linear interpolation is constant within
        a bin (and switches within 1e-9 of the bin width at the edges)."""
        n = self.pt_edges.size - 1
        if self.interpolate_pt:
            return np.arange(n), self.pt_centers
        d = 1e-9 * np.diff(self.pt_edges)
        nodes = np.column_stack([self.pt_edges[:-1] + d, self.pt_edges[1:] - d]).ravel()
        return np.repeat(np.arange(n), 2), nodes

    @property
    def response_centers(self) -> np.ndarray:
        return _centers(self.response_edges)

    def log_likelihood_table(self) -> np.ndarray:
        """log(pdf + floor) per bin, the table the rebalancing likelihood interpolates.

        The pdf is first smoothed by a Gaussian of ``RS_LIKELIHOOD_SMOOTH_FRACTION`` times
        the bin's 68% half-width. The floor is
        ``RS_PDF_FLOOR_REL * max(pdf of the bin) * exp(-|r - r_peak| * slope)``
        (``RS_PDF_FLOOR_SLOPE``): where simulation has no jets the log-likelihood keeps falling
        away from the peak instead of lying on a flat floor, which would trap the fit (a jet
        would "park" at any response in an empty region)."""
        rc = self.response_centers
        w = rc[1] - rc[0]
        # extra smoothing for the fit only, by a fixed fraction of each bin's core width:
        # statistical wiggles of the tails would otherwise create spurious local maxima
        pdf = np.empty_like(self.pdf)
        cdf = self.cdf
        for i in range(pdf.shape[0]):
            for k in range(pdf.shape[1]):
                q = np.interp([0.16, 0.84], cdf[i, k], self.response_edges)
                sig = RS_LIKELIHOOD_SMOOTH_FRACTION * 0.5 * (q[1] - q[0])
                pdf[i, k] = _smooth_rows(self.pdf[i, k], w, sig)
        peak = rc[np.argmax(pdf, axis=-1)][..., np.newaxis]
        floor = RS_PDF_FLOOR_REL * pdf.max(axis=-1, keepdims=True)
        floor = np.maximum(floor, np.finfo(np.float64).tiny) * np.exp(
            -np.abs(rc - peak) * RS_PDF_FLOOR_SLOPE
        )
        return np.ascontiguousarray(np.log(pdf + floor))

    def kernel_tables(self) -> tuple:
        """(log-pdf table, pT centers, first response center, response width, 0) for the
        kernels (a floor argument of 0 selects log-mode interpolation)."""
        w = float(self.response_edges[1] - self.response_edges[0])
        rows, nodes = self.pt_nodes()
        return (np.ascontiguousarray(self.log_likelihood_table()[rows]), nodes,
                float(self.response_edges[0] + 0.5 * w), w, 0.0)

    def evaluate(self, pt_gen, abseta, response) -> np.ndarray:
        """pdf value at (pT_gen in GeV, |eta|, response): cubic (Catmull-Rom) along the
        response, linear between pT-bin centers (seed 004 sec. 2.5), clamped at the edges.
        (The likelihood interpolates :meth:`log_likelihood_table` the same way.)"""
        pt_gen, abseta, response = np.broadcast_arrays(
            *(np.asarray(a, dtype=np.float64) for a in (pt_gen, abseta, response))
        )
        w = float(self.response_edges[1] - self.response_edges[0])
        rows, nodes = self.pt_nodes()
        out = _evaluate_response(
            np.ascontiguousarray(pt_gen.ravel()), np.ascontiguousarray(abseta.ravel()),
            np.ascontiguousarray(response.ravel()), np.ascontiguousarray(self.pdf[rows]), nodes,
            float(self.response_edges[0] + 0.5 * w), w, self.eta_edges,
        )
        return out.reshape(pt_gen.shape)

    def phi_sigma(self, pt, abseta) -> np.ndarray:
        """Azimuth resolution (rad) of jets at (pT in GeV, |eta|), from the bin that holds them
        (pT and |eta| clamped into the binning); zeros without a ``phi_resolution``."""
        pt, abseta = np.broadcast_arrays(np.asarray(pt, dtype=np.float64), np.asarray(abseta, dtype=np.float64))
        if self.phi_resolution is None:
            return np.zeros(pt.shape)
        ipt = np.clip(np.searchsorted(self.pt_edges, pt, side="right") - 1, 0, self.pt_edges.size - 2)
        ieta = np.clip(np.searchsorted(self.eta_edges, np.abs(abseta), side="right") - 1, 0, self.eta_edges.size - 2)
        return self.phi_resolution[ipt, ieta]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the response per (pT, |eta|) bin, shape (n_pt, n_eta).

        Computed from the binned pdf with Sheppard's correction for the bin width; the smoothing
        kernel's variance (``smooth_sigma**2``) is included (it is part of the template)."""
        rc = self.response_centers
        w = self.response_edges[1] - self.response_edges[0]
        norm = (self.pdf * w).sum(-1)
        safe = np.where(norm > 0, norm, 1.0)
        mean = (self.pdf * w * rc).sum(-1) / safe
        var = (self.pdf * w * rc**2).sum(-1) / safe - mean**2 - w**2 / 12.0
        return mean, np.sqrt(np.clip(var, 0.0, None))


@nb.njit(cache=True)
def _evaluate_response(pt, abseta, r, pdf, rc, c0, w, eta_edges):
    out = np.empty(pt.shape[0])
    for i in range(pt.shape[0]):
        lf, _, _ = _log_table(pdf, _find_bin(eta_edges, abseta[i]), rc, c0, w, 1e-300, pt[i],
                              r[i])
        out[i] = max(math.exp(lf) - 1e-300, 0.0)
    return out


@nb.njit(cache=True)
def _delta_r2(eta1, phi1, eta2, phi2):
    dphi = phi1 - phi2
    while dphi > math.pi:
        dphi -= 2.0 * math.pi
    while dphi < -math.pi:
        dphi += 2.0 * math.pi
    deta = eta1 - eta2
    return deta * deta + dphi * dphi


@nb.njit(cache=True)
def _isolated(pt, eta, phi, offsets, iso_dr, iso_frac):
    iso = np.ones(pt.shape[0], dtype=np.bool_)
    dr2 = iso_dr * iso_dr
    for e in range(offsets.shape[0] - 1):
        for i in range(offsets[e], offsets[e + 1]):
            s = 0.0
            for j in range(offsets[e], offsets[e + 1]):
                if j != i and _delta_r2(eta[i], phi[i], eta[j], phi[j]) < dr2:
                    s += pt[j]
            iso[i] = s < iso_frac * pt[i]
    return iso


@nb.njit(cache=True)
def _match_kernel(gpt, geta, gphi, goff, rpt, reta, rphi, roff, giso, riso, match_dr):
    """Reco index matched to each gen jet: >= 0 matched (both isolated), -1 not used,
    -2 isolated gen jet without any reco jet within ``match_dr`` (lost: below the reco
    threshold)."""
    out_g = np.full(gpt.shape[0], -1, dtype=np.int64)
    dr2max = match_dr * match_dr
    for e in range(goff.shape[0] - 1):
        for i in range(goff[e], goff[e + 1]):
            if not giso[i]:
                continue
            best = -1
            bd = dr2max
            for j in range(roff[e], roff[e + 1]):
                d = _delta_r2(geta[i], gphi[i], reta[j], rphi[j])
                if d < bd:
                    bd = d
                    best = j
            if best < 0:
                out_g[i] = -2
            elif riso[best]:
                out_g[i] = best
    return out_g


def select_template_jets(
    reco_pt, reco_eta, reco_phi, reco_offsets,
    gen_pt, gen_eta, gen_phi, gen_offsets,
    *,
    match_dr: float = RS_MATCH_DR,
    isolation_dr: float = RS_ISOLATION_DR,
    isolation_pt_fraction: float = RS_ISOLATION_PT_FRACTION,
    lost_eta_max: float = RS_LOST_JET_ETA_MAX,
) -> dict[str, np.ndarray]:
    """Matched, isolated (reco, gen) jet pairs for the response templates (seed 004 eqs. 2.3-2.4),
    and the isolated gen jets that have no reco jet at all ("lost" jets).

    A gen jet is used if the pT sum of the other gen jets within ``isolation_dr`` is below
    ``isolation_pt_fraction`` of its pT; it is matched to the closest reco jet within
    DeltaR < ``match_dr``, which must pass the same isolation among reco jets.

    An isolated gen jet inside the reco acceptance (|eta| < ``lost_eta_max``) with no reco jet
    within ``match_dr`` was measured below the reco-jet storage threshold: its response is
    r < pT_thr / pT_gen. These jets are part of the response (a hard jet lost this way is the
    single largest source of fake hard MHT in the far tail); leaving them out truncates the
    templates' low tail. They are returned separately (``lost_*``) for
    :func:`build_response_templates`.

    Parameters
    ----------
    reco_pt, reco_eta, reco_phi, reco_offsets : array_like
        Flat reco jets (GeV, rad) and their event offsets; all reco jets, no pT threshold
        (a threshold would bias the response of low-pT gen jets upwards).
    gen_pt, gen_eta, gen_phi, gen_offsets : array_like
        Flat gen jets and offsets (same number of events).

    Returns
    -------
    dict
        ``reco_pt``, ``gen_pt``, ``gen_eta`` of the pairs (flat), ``delta_phi``
        (phi_reco - phi_gen in [-pi, pi], for :func:`direction_resolution`), ``gen_index`` and
        ``reco_index`` (flat indices into the inputs) and ``event`` (event index); the lost
        jets' ``lost_gen_pt``, ``lost_gen_eta``, ``lost_gen_index`` and ``lost_event``.
    """
    rpt, reta, rphi = (_as_f8(n, a) for n, a in (("reco_pt", reco_pt), ("reco_eta", reco_eta),
                                                 ("reco_phi", reco_phi)))
    gpt, geta, gphi = (_as_f8(n, a) for n, a in (("gen_pt", gen_pt), ("gen_eta", gen_eta),
                                                 ("gen_phi", gen_phi)))
    roff = _as_offsets("reco_offsets", reco_offsets, rpt.size)
    goff = _as_offsets("gen_offsets", gen_offsets, gpt.size)
    if roff.size != goff.size:
        raise ConfigError(
            f"reco and gen offsets describe different numbers of events ({roff.size - 1} vs "
            f"{goff.size - 1})"
        )
    giso = _isolated(gpt, geta, gphi, goff, isolation_dr, isolation_pt_fraction)
    riso = _isolated(rpt, reta, rphi, roff, isolation_dr, isolation_pt_fraction)
    match = _match_kernel(gpt, geta, gphi, goff, rpt, reta, rphi, roff, giso, riso, match_dr)
    gi = np.flatnonzero(match >= 0)
    ri = match[gi]
    gev = np.repeat(np.arange(goff.size - 1), np.diff(goff))
    li = np.flatnonzero((match == -2) & (np.abs(geta) < lost_eta_max))
    return {
        "reco_pt": rpt[ri], "gen_pt": gpt[gi], "gen_eta": geta[gi],
        "delta_phi": np.angle(np.exp(1j * (rphi[ri] - gphi[gi]))),
        "gen_index": gi, "reco_index": ri, "event": gev[gi],
        "lost_gen_pt": gpt[li], "lost_gen_eta": geta[li], "lost_gen_index": li, "lost_event": gev[li],
    }


def lost_jet_responses(
    gen_pt, reco_pt_min: float = RS_RECO_JET_PT_MIN, n_points: int = RS_LOST_JET_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responses that stand for lost gen jets in the templates.

    A lost jet (no reco jet, see :func:`select_template_jets`) has r < r_thr = reco_pt_min / pT_gen
    but its value is not measured; it is spread uniformly over [0, r_thr) as ``n_points``
    equally spaced responses of weight 1/n_points each (below r_thr the smeared jet falls
    under the reco threshold, where only its small contribution to p_T^miss depends on the
    exact value). Returns ``(index into gen_pt, response, weight fraction)``.
    """
    g = _as_f8("gen_pt", gen_pt)
    if n_points < 1 or reco_pt_min <= 0:
        raise ConfigError(f"need n_points >= 1 and reco_pt_min > 0, got {n_points}, {reco_pt_min}")
    ok = np.flatnonzero(np.isfinite(g) & (g > 0))
    r_thr = np.minimum(reco_pt_min / g[ok], 1.0)
    u = (np.arange(n_points) + 0.5) / n_points
    idx = np.repeat(ok, n_points)
    return idx, (r_thr[:, None] * u[None, :]).ravel(), np.full(idx.size, 1.0 / n_points)


def build_response_templates(
    reco_pt,
    gen_pt,
    gen_eta,
    pt_edges=RS_TEMPLATE_PT_EDGES,
    eta_edges=RS_TEMPLATE_ABSETA_EDGES,
    response_edges=RS_RESPONSE_EDGES,
    weights=None,
    *,
    smooth_sigma: float = RS_TEMPLATE_SMOOTH_SIGMA,
    interpolate_pt: bool = True,
    lost_gen_pt=None,
    lost_gen_eta=None,
    lost_weights=None,
    reco_pt_min: float = RS_RECO_JET_PT_MIN,
) -> JetResponseTemplates:
    """Histogram r = pT_reco / pT_gen per (pT_gen, |eta_gen|) bin into smoothed, normalized pdfs.

    Implements the response model of seed 004 sec. 2.4.1 (eq. 2.2, Fig. 1a) and the smoothing
    step of its App. A: a Gaussian kernel of width ``smooth_sigma`` (response units, far below
    the core resolution) along the response axis, which preserves the mass in the tails.
    Responses outside the response range are dropped; pT and |eta| outside the binning are
    clamped into the edge bins. An empty (pT, |eta|) bin takes the pdf of the nearest populated
    pT bin of the same |eta| bin; an |eta| bin with no jet at all takes the pdfs of the nearest
    populated |eta| bin at the same pT (``entries`` stays 0 in both cases;
    :meth:`JetResponseTemplates.borrowed_bins` counts them).

    Parameters
    ----------
    reco_pt, gen_pt, gen_eta : array_like
        Matched, isolated pairs (GeV), e.g. from :func:`select_template_jets`.
    pt_edges, eta_edges, response_edges : array_like
        Binning (GeV, |eta|, response); the response binning must be uniform.
    weights : array_like, optional
        Per-pair weights (e.g. generator weights).
    interpolate_pt : bool
        See :class:`JetResponseTemplates`.
    lost_gen_pt, lost_gen_eta, lost_weights : array_like, optional
        Isolated gen jets without any reco jet (``lost_*`` of :func:`select_template_jets`);
        they enter below r = ``reco_pt_min`` / pT_gen (:func:`lost_jet_responses`).

    Returns
    -------
    JetResponseTemplates
    """
    pte = _check_edges("pt_edges", pt_edges)
    ete = _check_edges("eta_edges", eta_edges)
    rde = _check_edges("response_edges", response_edges, uniform=True)
    rpt = _as_f8("reco_pt", reco_pt)
    gpt = _as_f8("gen_pt", gen_pt)
    geta = np.abs(_as_f8("gen_eta", gen_eta))
    if not rpt.shape == gpt.shape == geta.shape:
        raise ConfigError(
            f"reco_pt, gen_pt and gen_eta must have one entry per matched pair, got shapes "
            f"{rpt.shape}, {gpt.shape}, {geta.shape}"
        )
    w = np.ones_like(gpt) if weights is None else _as_f8("weights", weights)
    ok = np.isfinite(rpt) & np.isfinite(gpt) & np.isfinite(geta) & (gpt > 0) & np.isfinite(w)
    r, gpt, geta, w = rpt[ok] / gpt[ok], gpt[ok], geta[ok], w[ok]
    if lost_gen_pt is not None:
        lpt = _as_f8("lost_gen_pt", lost_gen_pt)
        leta = np.abs(_as_f8("lost_gen_eta", lost_gen_eta))
        lw = np.ones_like(lpt) if lost_weights is None else _as_f8("lost_weights", lost_weights)
        if not lpt.shape == leta.shape == lw.shape:
            raise ConfigError("lost_gen_pt, lost_gen_eta and lost_weights must have one entry per lost jet")
        li, lr, lf = lost_jet_responses(lpt, reco_pt_min)
        r, gpt = np.r_[r, lr], np.r_[gpt, lpt[li]]
        geta, w = np.r_[geta, leta[li]], np.r_[w, lw[li] * lf]
    ipt = np.clip(np.searchsorted(pte, gpt, side="right") - 1, 0, pte.size - 2)
    ieta = np.clip(np.searchsorted(ete, geta, side="right") - 1, 0, ete.size - 2)
    ir = np.searchsorted(rde, r, side="right") - 1
    inr = (ir >= 0) & (ir < rde.size - 1)
    shape = (pte.size - 1, ete.size - 1, rde.size - 1)
    flat = np.ravel_multi_index((ipt[inr], ieta[inr], ir[inr]), shape)
    hist = np.bincount(flat, weights=w[inr], minlength=int(np.prod(shape))).reshape(shape)
    entries = hist.sum(-1)
    width = rde[1] - rde[0]
    pdf = _normalize_last(_smooth_rows(hist, width, smooth_sigma), width)
    pdf = _borrow_empty_bins(pdf, entries)
    return JetResponseTemplates(pte, ete, rde, pdf, entries, float(smooth_sigma),
                                bool(interpolate_pt))


def _borrow_empty_bins(table: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """``table`` (n_pt, n_eta, ...) with every bin without entries taken from the nearest
    populated pT bin of the same |eta| bin, and every |eta| bin without any entry from the
    nearest populated |eta| bin at the same pT (the lower of two equally near)."""
    out = table.copy()
    columns = np.flatnonzero((entries > 0).any(axis=0))
    if columns.size == 0:
        raise ConfigError("no matched jets in any (pT, |eta|) bin of the response templates: they need "
                          "simulated QCD with gen jets inside the template binning")
    for k in columns:
        filled = np.flatnonzero(entries[:, k] > 0)
        for j in np.flatnonzero(entries[:, k] <= 0):
            out[j, k] = out[filled[np.argmin(np.abs(filled - j))], k]
    for k in np.flatnonzero(~(entries > 0).any(axis=0)):
        out[:, k] = out[:, columns[np.argmin(np.abs(columns - k))]]
    return out


def direction_resolution(sumw, sumw_dphi2) -> np.ndarray:
    """Jet azimuth resolution per (pT_gen, |eta_gen|) bin: the weighted RMS of
    phi_reco - phi_gen of the matched, isolated template pairs (|Delta phi| < the matching
    DeltaR, eq. 2.3), from the mergeable sums ``sumw`` (weights) and ``sumw_dphi2`` (weight x
    Delta phi^2) of shape (n_pt, n_eta); empty bins borrow as the response pdfs do."""
    w = np.asarray(sumw, dtype=np.float64)
    w2 = np.asarray(sumw_dphi2, dtype=np.float64)
    if w.shape != w2.shape or w.ndim != 2:
        raise ConfigError(f"direction sums must be two (n_pt, n_eta) arrays of one shape, got {w.shape}, {w2.shape}")
    filled = (w > 0) & (w2 > 0)
    sigma = np.sqrt(np.divide(w2, w, out=np.ones_like(w), where=filled))
    return _borrow_empty_bins(sigma, np.where(filled, w, 0.0))


def templates_from_histogram(
    counts,
    pt_edges=RS_TEMPLATE_PT_EDGES,
    eta_edges=RS_TEMPLATE_ABSETA_EDGES,
    response_edges=RS_RESPONSE_EDGES,
    *,
    smooth_sigma: float = RS_TEMPLATE_SMOOTH_SIGMA,
    interpolate_pt: bool = True,
    phi_resolution=None,
) -> JetResponseTemplates:
    """Response templates (seed 004 sec. 2.4.1) from a histogram of matched pairs.

    ``counts`` has shape (n_pt, n_eta, n_response) in the given edges (the accumulator of
    the templates processor, which merges exactly across chunks). Each filled bin is handed
    to :func:`build_response_templates` as one weighted pair at the
    bin centers, so smoothing, normalization and empty-bin filling are those of the kernels.
    ``phi_resolution`` (n_pt, n_eta; :func:`direction_resolution`) is attached as it is.
    """
    h = np.asarray(counts, dtype=np.float64)
    pte, ete, rde = (np.asarray(e, dtype=np.float64) for e in (pt_edges, eta_edges, response_edges))
    shape = (pte.size - 1, ete.size - 1, rde.size - 1)
    if h.shape != shape:
        raise ConfigError(f"response histogram must have shape {shape}, got {h.shape}")
    ipt, ieta, ir = np.nonzero(h > 0)
    gen_pt = 0.5 * (pte[ipt] + pte[ipt + 1])
    gen_eta = 0.5 * (ete[ieta] + ete[ieta + 1])
    resp = 0.5 * (rde[ir] + rde[ir + 1])
    templates = build_response_templates(
        resp * gen_pt, gen_pt, gen_eta, pte, ete, rde, weights=h[ipt, ieta, ir],
        smooth_sigma=smooth_sigma, interpolate_pt=interpolate_pt,
    )
    return templates if phi_resolution is None else replace(templates, phi_resolution=phi_resolution)
