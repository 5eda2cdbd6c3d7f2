"""Asimov significance and the flat-S signal-region binning (docs/physics.md sec. 4; seed 003).

Z_A of a counting experiment with background uncertainty sigma_b (Cowan, "Discovery
sensitivity for a counting experiment with background uncertainty", quoted in seed 003,
"Boundary Optimization - FOM Details"):

    Z_A = sqrt(2 [ (s+b) ln((s+b)(b+sigma_b^2) / (b^2 + (s+b) sigma_b^2))
                   - (b^2 / sigma_b^2) ln(1 + sigma_b^2 s / (b (b + sigma_b^2))) ])

which tends to sqrt(2 ((s+b) ln(1+s/b) - s)) for sigma_b -> 0. Bins combine in
quadrature (seed 003: Z^A_k = sqrt(sum_i Z^A_{k,i}^2)).

The SR edges of one Delta m category (docs/physics.md sec. 4: "Asimov significance with 20%
background uncertainty, flat-S binning, tightest bin split in two"):

1. for each candidate lower edge t (signal-score quantiles, above an optional lowest
   edge such as the sideband's upper edge), split the signal above t
   into ``SR_FLAT_S_BINS`` bins of equal signal yield (flat S) and compute the combined
   Z_A with sigma_b = ``SR_BACKGROUND_REL_UNC`` * b; a candidate is valid only if every
   bin holds at least ``SR_MIN_BACKGROUND_ENTRIES`` background MC entries and a relative
   MC statistical uncertainty sqrt(sum w^2) / sum w of at most
   ``SR_MAX_BACKGROUND_REL_MC_UNC`` (Z_A grows without bound as b -> 0, so an
   empty-background bin is not an optimum but an MC fluctuation);
2. split the tightest (highest-score) bin in two at its signal median, or, where a half
   would not meet the MC-statistics requirement, at the nearest of ``SR_SPLIT_QUANTILES``
   that does (no such split: the candidate is not valid);
3. take the t of largest combined Z_A of the 4 bins, returned as their 4 lower edges (the
   last bin is open above, as in summary Table 2).
"""

from __future__ import annotations

import numpy as np

from analysis.errors import ConfigError
from analysis.stats.defaults import (
    SR_BACKGROUND_REL_UNC,
    SR_FLAT_S_BINS,
    SR_MAX_BACKGROUND_REL_MC_UNC,
    SR_MIN_BACKGROUND_ENTRIES,
    SR_SPLIT_QUANTILES,
    SR_THRESHOLD_MAX_QUANTILE,
    SR_THRESHOLD_SCAN_POINTS,
)


def asimov_significance(
    s: np.ndarray | float, b: np.ndarray | float, sigma_b: np.ndarray | float = 0.0
) -> np.ndarray | float:
    """Median discovery significance Z_A per bin (Cowan's formula, seed 003).

    Parameters
    ----------
    s, b : array_like
        Expected signal and background (b > 0).
    sigma_b : array_like
        Absolute background uncertainty (0: the known-background formula).
    """
    s, b, sb = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (s, b, sigma_b)))
    if np.any(b <= 0):
        raise ValueError("asimov_significance needs b > 0 in every bin")
    z2 = np.empty_like(s)
    known = sb == 0
    z2[known] = 2.0 * ((s[known] + b[known]) * np.log1p(s[known] / b[known]) - s[known])
    u = ~known
    s_, b_, v = s[u], b[u], sb[u] ** 2
    z2[u] = 2.0 * (
        (s_ + b_) * np.log((s_ + b_) * (b_ + v) / (b_ * b_ + (s_ + b_) * v))
        - (b_ * b_ / v) * np.log1p(v * s_ / (b_ * (b_ + v)))
    )
    z = np.sqrt(np.clip(z2, 0.0, None))
    return float(z) if z.ndim == 0 else z


def combined_asimov_significance(s: np.ndarray, b: np.ndarray, rel_unc: float = SR_BACKGROUND_REL_UNC) -> float:
    """Z_A of several bins combined in quadrature, sigma_b = rel_unc * b in each."""
    b = np.asarray(b, dtype=np.float64)
    return float(np.sqrt(np.sum(asimov_significance(s, b, rel_unc * b) ** 2)))


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    return v[np.clip(np.searchsorted(cdf, q, side="left"), 0, v.size - 1)]


def _bin_sums(scores, weights, edges) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sums and entry counts in [e0, e1), ..., [e_last, inf)."""
    idx = np.searchsorted(edges, scores, side="right") - 1
    sel = idx >= 0
    n = len(edges)
    return (
        np.bincount(idx[sel], weights=weights[sel], minlength=n),
        np.bincount(idx[sel], minlength=n),
    )


def _bin_rel_mc_unc(scores, weights, edges) -> np.ndarray:
    """sqrt(sum w^2) / sum w per bin (inf where empty)."""
    s, _ = _bin_sums(scores, weights, edges)
    s2, _ = _bin_sums(scores, weights**2, edges)
    return np.where(s > 0, np.sqrt(s2) / np.where(s > 0, s, 1.0), np.inf)


def flat_s_edges(
    signal_score: np.ndarray,
    signal_weight: np.ndarray,
    background_score: np.ndarray,
    background_weight: np.ndarray,
    *,
    rel_unc: float = SR_BACKGROUND_REL_UNC,
    n_flat: int = SR_FLAT_S_BINS,
    min_entries: int = SR_MIN_BACKGROUND_ENTRIES,
    min_edge: float | None = None,
    max_rel_mc_unc: float | None = SR_MAX_BACKGROUND_REL_MC_UNC,
) -> tuple[np.ndarray, float]:
    """The n_flat + 1 (default 4) lower SR edges of one category and their combined Z_A (module docstring).

    Parameters
    ----------
    signal_score, signal_weight : arrays (n_signal,)
        Event score (the category's max logit, docs/physics.md sec. 4) and weight of signal events.
    background_score, background_weight : arrays (n_background,)
        The same for background events.
    min_edge : float, optional
        The signal regions start at or above this score (e.g. the upper edge of the sideband
        in which the background normalization is measured, so that the two are disjoint).
    max_rel_mc_unc : float, optional
        Largest relative MC statistical uncertainty of the background in any bin, the split
        halves of the tightest bin included (None: no requirement). The split is at the
        signal median of the tightest bin, or the nearest of SR_SPLIT_QUANTILES that meets it.

    Returns
    -------
    edges : array (n_flat + 1,)
        Increasing lower edges; the last bin is open above.
    z_asimov : float
        Combined Z_A of the n_flat + 1 bins.

    Raises
    ------
    ConfigError
        If no lower edge leaves enough background MC entries in every bin.
    """
    ss, sw = np.asarray(signal_score, float), np.asarray(signal_weight, float)
    bs, bw = np.asarray(background_score, float), np.asarray(background_weight, float)
    if ss.shape != sw.shape or bs.shape != bw.shape:
        raise ConfigError("score and weight arrays must have the same length")
    if ss.size == 0 or bs.size == 0 or sw.sum() <= 0:
        raise ConfigError("flat-S binning needs signal (positive total weight) and background events")
    allowed = ss >= min_edge if min_edge is not None else np.ones(ss.size, bool)
    if sw[allowed].sum() <= 0:
        raise ConfigError(f"no signal (positive total weight) at or above the lowest allowed edge {min_edge:g}")
    def mc_ok(edges) -> bool:
        return max_rel_mc_unc is None or bool(np.all(_bin_rel_mc_unc(bs, bw, edges) <= max_rel_mc_unc))

    def split(edges) -> np.ndarray | None:
        """The edges with the tightest bin split in two (None: no split meets the requirements)."""
        tight = ss >= edges[-1]
        for q in SR_SPLIT_QUANTILES:
            cut = _weighted_quantiles(ss[tight], sw[tight], np.array([q]))[0]
            out = np.append(edges, cut)
            if np.all(np.diff(out) > 0) and mc_ok(out) and np.all(_bin_sums(bs, bw, out)[0] > 0):
                return out
        return None

    best: tuple[float, np.ndarray] | None = None
    for q in np.linspace(0.0, SR_THRESHOLD_MAX_QUANTILE, SR_THRESHOLD_SCAN_POINTS):
        t = _weighted_quantiles(ss[allowed], sw[allowed], np.array([q]))[0]
        above = ss >= t
        if above.sum() < n_flat:
            continue
        inner = _weighted_quantiles(ss[above], sw[above], np.arange(1, n_flat) / n_flat)
        edges = np.concatenate([[t], inner])
        if np.any(np.diff(edges) <= 0):
            continue
        s_sum, _ = _bin_sums(ss, sw, edges)
        b_sum, b_n = _bin_sums(bs, bw, edges)
        if np.any(b_n < min_entries) or np.any(b_sum <= 0) or not mc_ok(edges):
            continue
        full = split(edges)
        if full is None:
            continue
        z = combined_asimov_significance(_bin_sums(ss, sw, full)[0], _bin_sums(bs, bw, full)[0], rel_unc)
        if best is None or z > best[0]:
            best = (z, full)
    if best is None:
        above = "" if min_edge is None else f" at or above {min_edge:g}"
        mc = "" if max_rel_mc_unc is None else f" and a relative MC statistical uncertainty <= {max_rel_mc_unc:g}"
        raise ConfigError(
            f"no SR lower edge{above} leaves >= {min_entries} background MC entries{mc} in each of "
            f"{n_flat} flat-S bins and the two halves of the tightest; provide more background events"
        )
    return best[1], best[0]


def sr_edges_by_category(
    signal: dict[str, np.ndarray],
    background: dict[str, np.ndarray],
    categories: tuple[float, ...],
    **kwargs,
) -> dict[float, tuple[np.ndarray, float]]:
    """:func:`flat_s_edges` for each Delta m category.

    ``signal`` and ``background`` hold arrays ``score``, ``weight`` and ``category`` (the
    index into ``categories`` of each event's category, docs/physics.md sec. 4).
    """
    out = {}
    for i, dm in enumerate(categories):
        s_sel = np.asarray(signal["category"]) == i
        b_sel = np.asarray(background["category"]) == i
        out[dm] = flat_s_edges(
            np.asarray(signal["score"])[s_sel], np.asarray(signal["weight"])[s_sel],
            np.asarray(background["score"])[b_sel], np.asarray(background["weight"])[b_sel],
            **kwargs,
        )
    return out
