"""Evaluation metrics of the models, numpy only (no torch needed).

* Classifier (thesis sec. 4.3-4.4): weighted ROC AUC (one class vs another, or vs rest)
  and the calibration (reliability) curve of a class probability.
* Refiner (docs/physics.md sec. 7; thesis sec. 1.2): the biased and unbiased MMD^2 with a Gaussian
  kernel and median-heuristic bandwidths, and the per-variable 1D Wasserstein distance.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

#: rows per block of the kernel sums (bounds memory at block x n doubles)
KERNEL_BLOCK_ROWS = 2048
#: random pairs used by the median heuristic
MEDIAN_HEURISTIC_PAIRS = 1_000_000
MIN_BANDWIDTH = 1.0e-6


def roc_auc(scores: np.ndarray, is_positive: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve of ``scores`` separating positives from negatives.

    The weighted Mann-Whitney statistic: P(score_pos > score_neg) + 0.5 P(equal), with
    per-entry weights. NaN if either class is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(is_positive, dtype=bool)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    w_pos, w_neg = w[pos].sum(), w[~pos].sum()
    if w_pos <= 0 or w_neg <= 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    s, p, ww = scores[order], pos[order], w[order]
    # group ties: for each unique score, negative weight below and at that score
    uniq, start = np.unique(s, return_index=True)
    neg_w = np.where(~p, ww, 0.0)
    pos_w = np.where(p, ww, 0.0)
    neg_at = np.add.reduceat(neg_w, start)
    pos_at = np.add.reduceat(pos_w, start)
    neg_below = np.concatenate([[0.0], np.cumsum(neg_at)[:-1]])
    auc = np.sum(pos_at * (neg_below + 0.5 * neg_at)) / (w_pos * w_neg)
    return float(auc)


def calibration_curve(
    probability: np.ndarray,
    is_positive: np.ndarray,
    weights: np.ndarray | None = None,
    n_bins: int = 10,
) -> dict[str, list[float]]:
    """Reliability curve: mean predicted probability vs observed positive fraction per bin.

    Bins are equal-width in [0, 1]. Returns a dict of lists (JSON-ready): ``bin_edges``,
    ``mean_predicted``, ``fraction_positive`` (NaN in empty bins) and ``weight`` per bin.
    """
    prob = np.asarray(probability, dtype=np.float64)
    pos = np.asarray(is_positive, dtype=bool)
    w = np.ones_like(prob) if weights is None else np.asarray(weights, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, n_bins - 1)
    sum_w = np.bincount(idx, weights=w, minlength=n_bins)
    sum_wp = np.bincount(idx, weights=w * prob, minlength=n_bins)
    sum_pos = np.bincount(idx, weights=w * pos, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(sum_w > 0, sum_wp / sum_w, np.nan)
        frac = np.where(sum_w > 0, sum_pos / sum_w, np.nan)
    return {
        "bin_edges": edges.tolist(),
        "mean_predicted": mean_pred.tolist(),
        "fraction_positive": frac.tolist(),
        "weight": sum_w.tolist(),
    }


def median_bandwidths(a: np.ndarray, b: np.ndarray, seed: int, max_pairs: int = MEDIAN_HEURISTIC_PAIRS) -> np.ndarray:
    """Per-dimension median |a_il - b_jl| over random pairs (thesis sec. 1.2), shape (d,)."""
    rng = np.random.default_rng(seed)
    n = min(max_pairs, a.shape[0] * b.shape[0])
    i = rng.integers(0, a.shape[0], n)
    j = rng.integers(0, b.shape[0], n)
    return np.maximum(np.median(np.abs(a[i] - b[j]), axis=0), MIN_BANDWIDTH)


def _kernel_sum(a: np.ndarray, b: np.ndarray, bandwidths: np.ndarray, wa: np.ndarray | None = None,
                wb: np.ndarray | None = None) -> float:
    """sum_ij wa_i wb_j k(a_i, b_j) (unit weights where None)."""
    a_s, b_s = a / bandwidths, b / bandwidths
    b2 = np.sum(b_s**2, axis=1)
    total = 0.0
    for start in range(0, a_s.shape[0], KERNEL_BLOCK_ROWS):
        blk = a_s[start : start + KERNEL_BLOCK_ROWS]
        sq = np.sum(blk**2, axis=1)[:, None] + b2[None, :] - 2.0 * blk @ b_s.T
        k = np.exp(-np.maximum(sq, 0.0))
        if wb is not None:
            k = k @ wb
        else:
            k = k.sum(axis=1)
        total += float(k.sum() if wa is None else k @ wa[start : start + KERNEL_BLOCK_ROWS])
    return total


def mmd(x: np.ndarray, y: np.ndarray, bandwidths: np.ndarray, biased: bool = True,
        x_weights: np.ndarray | None = None) -> float:
    """MMD^2 between samples x (n, d) and y (m, d), Gaussian kernel (thesis eqs. 1.1-1.3).

    ``x_weights``: per-row weights of x (e.g. the event and track weights of simulation);
    the weighted biased estimator sum_ij w_i w_j k(x_i, x_j) / W^2 + ... (the unbiased one
    leaves out the diagonal, sum_i w_i^2 k(x_i, x_i) = sum_i w_i^2, and divides by W^2 - sum w^2).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    bw = np.asarray(bandwidths, dtype=np.float64)
    n, m = x.shape[0], y.shape[0]
    if x_weights is not None:
        w = np.asarray(x_weights, np.float64)
        sw, sw2 = w.sum(), (w**2).sum()
        kxx, kyy, kxy = _kernel_sum(x, x, bw, w, w), _kernel_sum(y, y, bw), _kernel_sum(x, y, bw, w, None)
        if biased:
            return kxx / sw**2 + kyy / m**2 - 2.0 * kxy / (sw * m)
        return (kxx - sw2) / (sw**2 - sw2) + (kyy - m) / (m * (m - 1)) - 2.0 * kxy / (sw * m)
    kxx, kyy, kxy = _kernel_sum(x, x, bw), _kernel_sum(y, y, bw), _kernel_sum(x, y, bw)
    if biased:
        return kxx / n**2 + kyy / m**2 - 2.0 * kxy / (n * m)
    return (kxx - n) / (n * (n - 1)) + (kyy - m) / (m * (m - 1)) - 2.0 * kxy / (n * m)


def wasserstein_1d(x: np.ndarray, y: np.ndarray, x_weights: np.ndarray | None = None) -> float:
    """First Wasserstein (earth mover's) distance between two 1D samples (x weighted by
    ``x_weights``: non-negative)."""
    return float(wasserstein_distance(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                      u_weights=None if x_weights is None else np.asarray(x_weights, np.float64)))
