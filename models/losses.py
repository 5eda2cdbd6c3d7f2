"""Losses of the refinement (docs/physics.md sec. 7; thesis Part I sec. 1.2-1.3): MMD and MDMM;
the distance correlation (DisCo) and the inequality MDMM of the decorrelated ABCD (docs/svj.md).

* :func:`gaussian_kernel` -- k(a, b) = exp(-sum_l (b_l - a_l)^2 / sigma_l^2) (thesis eq. 1.3,
  eq. 6.5), one bandwidth per dimension.
* :func:`median_bandwidths` -- the median heuristic: sigma_l = median |a_l - b_l| over pairs
  of input and target samples, per dimension (thesis sec. 1.2 and 6.2.2).
* :func:`mmd_biased` (MMD_b, eq. 1.1, bounded below by 0: the training loss) and
  :func:`mmd_unbiased` (MMD_u, eq. 1.2, expectation 0 for identical distributions: the
  natural MDMM constraint).
* :class:`MDMMConstraint` -- the modified differential method of multipliers (thesis sec.
  1.3.2): a Lagrange multiplier lambda updated by gradient *ascent*, with damping.

torch is imported here: this module belongs to the training path (extra ``[train]``).
"""

from __future__ import annotations

import torch
from torch import nn

#: pairs drawn for the median heuristic (a subsample keeps it O(n) in memory)
MEDIAN_HEURISTIC_MAX_PAIRS = 1_000_000
#: lower bound of a bandwidth, against a degenerate (constant) dimension
MIN_BANDWIDTH = 1.0e-6


def median_bandwidths(
    a: torch.Tensor, b: torch.Tensor, *, seed: int, max_pairs: int = MEDIAN_HEURISTIC_MAX_PAIRS
) -> torch.Tensor:
    """Per-dimension median of |a_i,l - b_j,l| over random pairs (i, j) (thesis sec. 1.2).

    Parameters
    ----------
    a, b : tensors of shape (n_a, d) and (n_b, d) (e.g. simulation and data).
    seed : seed of the pair sampling.
    max_pairs : number of random pairs used (all pairs if n_a * n_b is smaller).

    Returns
    -------
    Tensor of shape (d,): the bandwidths sigma_l (at least :data:`MIN_BANDWIDTH`).
    """
    gen = torch.Generator().manual_seed(int(seed))
    n_pairs = min(max_pairs, a.shape[0] * b.shape[0])
    i = torch.randint(a.shape[0], (n_pairs,), generator=gen)
    j = torch.randint(b.shape[0], (n_pairs,), generator=gen)
    dist = (a[i] - b[j]).abs()
    return dist.median(dim=0).values.clamp_min(MIN_BANDWIDTH)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """Kernel matrix k(a_i, b_j) = exp(-sum_l (a_il - b_jl)^2 / sigma_l^2), shape (n_a, n_b)."""
    a_s = a / bandwidths
    b_s = b / bandwidths
    # |a|^2 + |b|^2 - 2 a.b: one matrix product (cdist's exact mode is ~50x slower in
    # backward); clamped at 0 against rounding on the diagonal
    sq = (a_s.pow(2).sum(dim=1, keepdim=True) + b_s.pow(2).sum(dim=1)[None, :] - 2.0 * a_s @ b_s.T)
    return torch.exp(-sq.clamp_min(0.0))


def mmd_biased(x: torch.Tensor, y: torch.Tensor, bandwidths: torch.Tensor,
               x_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Biased MMD^2 estimator MMD_b between samples x (n, d) and y (m, d) (thesis eq. 1.1).

    All pairs, diagonals included: mean k(x, x) + mean k(y, y) - 2 mean k(x, y) >= 0. With
    ``x_weights`` (n,) the means over x are weighted: w^T K_xx w / W^2 and w^T K_xy 1 / (W m),
    the MMD between the weighted distribution of x and y (weights may be negative, W > 0).
    """
    if x_weights is None:
        return (
            gaussian_kernel(x, x, bandwidths).mean()
            + gaussian_kernel(y, y, bandwidths).mean()
            - 2.0 * gaussian_kernel(x, y, bandwidths).mean()
        )
    w = x_weights / x_weights.sum()
    return (
        w @ gaussian_kernel(x, x, bandwidths) @ w
        + gaussian_kernel(y, y, bandwidths).mean()
        - 2.0 * (w @ gaussian_kernel(x, y, bandwidths)).mean()
    )


def mmd_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 estimator MMD_u (thesis eq. 1.2): the diagonals i = j are left out."""
    n, m = x.shape[0], y.shape[0]
    kxx = gaussian_kernel(x, x, bandwidths)
    kyy = gaussian_kernel(y, y, bandwidths)
    kxy = gaussian_kernel(x, y, bandwidths)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean()


class MDMMConstraint(nn.Module):
    """An equality constraint g(theta) = epsilon for the MDMM (thesis sec. 1.3.2, eq. 1.6).

    The Lagrangian term is ``-lambda (epsilon - g) + damping / 2 (epsilon - g)^2``, added to
    the primary loss. lambda is a parameter whose gradient is reversed (a hook negates
    it), so one optimizer step does gradient descent on the network and gradient ascent on
    lambda (Platt and Barr 1988).

    Parameters
    ----------
    target : epsilon, the value the constrained loss is driven to (0 for MMD_u).
    damping : the damping strength delta of the quadratic term.
    lambda_init : starting value of the multiplier (thesis: choose it != 0 so that the
        primary loss does not dominate the start of the training).
    """

    def __init__(self, target: float, damping: float, lambda_init: float) -> None:
        super().__init__()
        self.target = float(target)
        self.damping = float(damping)
        self.lmbda = nn.Parameter(torch.tensor(float(lambda_init)))
        self.lmbda.register_hook(lambda grad: -grad)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """The Lagrangian term for the current value g(theta) of the constrained loss."""
        infeasibility = self.target - value
        return -self.lmbda * infeasibility + 0.5 * self.damping * infeasibility.pow(2)


def distance_correlation(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted distance correlation dCorr(x, y) in [0, 1] of two 1D samples (the biased
    V-statistic; Szekely, Rizzo, Bakirov, Ann. Statist. 35 (2007) 2769, eq. 2.8 ff.; weighted as
    in the DisCo loss, Kasieczka, Shih, arXiv:2001.05310, and SVJ talk "3D-ABCDisCoTEC: Loss
    details (ii)", eqs. 5.18-5.28).

    With weights w (sum W): a_ij = |x_i - x_j| doubly centred with the weighted row, column and
    grand means, dCov^2 = sum_ij w_i w_j A_ij B_ij / W^2, dCorr = dCov / sqrt(dVar_x dVar_y)
    (the square roots of the V-statistics). Unit weights give the unweighted statistic of
    ``dcor.distance_correlation``. O(n^2) memory: call it on mini-batches.
    """
    x = x.reshape(-1)
    y = y.reshape(-1)
    w = torch.ones_like(x) if weights is None else weights.reshape(-1)
    w = w / w.sum()

    def centred(v: torch.Tensor) -> torch.Tensor:
        d = (v[:, None] - v[None, :]).abs()
        row = d @ w
        grand = w @ row
        return d - row[:, None] - row[None, :] + grand

    a, b = centred(x), centred(y)
    wij = w[:, None] * w[None, :]
    dcov2 = (wij * a * b).sum()
    dvar_x = (wij * a * a).sum()
    dvar_y = (wij * b * b).sum()
    # V-statistic dCov^2 >= 0 up to rounding; clamp before the square roots
    denom = torch.sqrt(torch.sqrt(dvar_x.clamp_min(1e-30) * dvar_y.clamp_min(1e-30)))
    return torch.sqrt(dcov2.clamp_min(0.0)) / denom


class MDMMInequality(nn.Module):
    """An inequality constraint g(theta) <= epsilon for the MDMM with a slack variable s
    (Platt and Barr 1988; SVJ talk, "Modified Differential Multiplier Method"):

        phi = epsilon - g - s^2,   term = alpha (-lambda phi + rho / 2 phi^2)

    lambda's gradient is reversed (dual ascent in the same optimizer step as the descent on
    the network and on s), as in :class:`MDMMConstraint`.
    """

    def __init__(self, target: float, damping: float, lambda_init: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        self.target = float(target)
        self.damping = float(damping)
        self.scale = float(scale)
        self.lmbda = nn.Parameter(torch.tensor(float(lambda_init)))
        self.lmbda.register_hook(lambda grad: -grad)
        # s^2 starts at the slack of a satisfied constraint's target (s = sqrt(epsilon))
        self.slack = nn.Parameter(torch.tensor(float(target) ** 0.5))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        phi = self.target - value - self.slack.pow(2)
        return self.scale * (-self.lmbda * phi + 0.5 * self.damping * phi.pow(2))



# --- the distance correlation of large batches in O(n log n) -------------------------------
#
# For 1D samples the O(n^2) double centring is not needed: with normalised weights w,
#
#   dCov^2 = S(x, y) - 2 sum_i w_i a_i b_i + (sum_i w_i a_i)(sum_i w_i b_i),
#   a_i = sum_j w_j |x_i - x_j|,  b_i = sum_j w_j |y_i - y_j|,
#   S(x, y) = sum_ij w_i w_j |x_i - x_j| |y_i - y_j|
#
# (the expansion of sum_ij w_i w_j A_ij B_ij; the unweighted case: Huo, Szekely, Technometrics
# 58 (2016) 435). a_i is a cumulative sum in x order, S(x, x) = 2 Var_w(x), and S(x, y) is a
# dominance sum: around each point i the others fall into four quadrants (x_j below/above
# x_i, y_j below/above y_i), where |x_i - x_j| |y_i - y_j| is +-(x_i - x_j)(y_i - y_j); a
# Fenwick tree over the y ranks, swept in x order, gives each quadrant's sums of w, w x, w y
# and w x y. Ties fall into either quadrant, where their products vanish.

_QUADRANT_KERNEL = None


def _quadrant_kernel():
    global _QUADRANT_KERNEL
    if _QUADRANT_KERNEL is None:
        import numba
        import numpy as np

        @numba.njit(cache=True)
        def kernel(x, y, w):
            n = x.size
            ox = np.argsort(x, kind="mergesort")
            oy = np.argsort(y, kind="mergesort")
            ry = np.empty(n, np.int64)
            for k in range(n):
                ry[oy[k]] = k
            vals = np.empty((4, n))
            for i in range(n):
                vals[0, i] = w[i]
                vals[1, i] = w[i] * x[i]
                vals[2, i] = w[i] * y[i]
                vals[3, i] = w[i] * x[i] * y[i]
            below = np.zeros((4, n))  # y_j < y_i, any x_j
            acc = np.zeros(4)
            for k in range(n):
                i = oy[k]
                for q in range(4):
                    below[q, i] = acc[q]
                    acc[q] += vals[q, i]
            tree = np.zeros((4, n + 1))
            left = np.zeros(4)
            out = np.empty((4, 4, n))  # quadrant (LL, LU, RL, RU), sum (w, wx, wy, wxy), point
            s = np.zeros(4)
            for k in range(n):
                i = ox[k]
                s[:] = 0.0
                r = ry[i]
                while r > 0:
                    for q in range(4):
                        s[q] += tree[q, r]
                    r -= r & (-r)
                for q in range(4):
                    out[0, q, i] = s[q]
                    out[1, q, i] = left[q] - s[q]
                    out[2, q, i] = below[q, i] - s[q]
                    out[3, q, i] = acc[q] - vals[q, i] - left[q] - below[q, i] + s[q]
                r = ry[i] + 1
                while r <= n:
                    for q in range(4):
                        tree[q, r] += vals[q, i]
                    r += r & (-r)
                for q in range(4):
                    left[q] += vals[q, i]
            return out

        _QUADRANT_KERNEL = kernel
    return _QUADRANT_KERNEL


class _PairProductSum(torch.autograd.Function):
    """S(x, y) = sum_ij w_i w_j |x_i - x_j| |y_i - y_j| in O(n log n), differentiable in x and y
    (the weights are constants)."""

    @staticmethod
    def forward(ctx, x, y, w):
        import numpy as np

        xn, yn, wn = (t.detach().cpu().double().numpy() for t in (x, y, w))
        q = _quadrant_kernel()(np.ascontiguousarray(xn), np.ascontiguousarray(yn), np.ascontiguousarray(wn))
        sign = np.array([1.0, -1.0, -1.0, 1.0])[:, None]  # concordant LL, RU; discordant LU, RL
        W, X, Y, XY = q[:, 0], q[:, 1], q[:, 2], q[:, 3]  # (4 quadrants, n)
        row = (sign * (xn * yn * W - xn * Y - yn * X + XY)).sum(axis=0)
        # dS/dx_i = 2 w_i sum_j w_j sign(x_i - x_j) |y_i - y_j|; the same for y
        sx = np.array([1.0, 1.0, -1.0, -1.0])[:, None]  # x_j below x_i in LL, LU
        sy = np.array([1.0, -1.0, 1.0, -1.0])[:, None]  # y_j below y_i in LL, RL
        gx = 2.0 * wn * (sx * sy * (yn * W - Y)).sum(axis=0)
        gy = 2.0 * wn * (sx * sy * (xn * W - X)).sum(axis=0)
        ctx.save_for_backward(torch.as_tensor(gx, dtype=x.dtype), torch.as_tensor(gy, dtype=y.dtype))
        return torch.as_tensor((wn * row).sum(), dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        gx, gy = ctx.saved_tensors
        return grad * gx, grad * gy, None


def _abs_deviation_sums(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """a_i = sum_j w_j |v_i - v_j| (normalised w) by a cumulative sum in sorted order."""
    order = torch.argsort(v)
    vs, ws = v[order], w[order]
    below_w = torch.cumsum(ws, 0) - ws
    below_wv = torch.cumsum(ws * vs, 0) - ws * vs
    total_wv = (ws * vs).sum()
    above_w = 1.0 - below_w - ws
    above_wv = total_wv - below_wv - ws * vs
    a_sorted = vs * below_w - below_wv + above_wv - vs * above_w
    return torch.empty_like(a_sorted).scatter(0, order, a_sorted)


def distance_correlation_fast(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`distance_correlation` (the same weighted V-statistic) in O(n log n) time and O(n)
    memory, for the large DisCo batches of the ABCDisCoTEC training (the block comment above;
    tested equal to the O(n^2) form and to ``dcor``, values and gradients)."""
    x = x.reshape(-1)
    y = y.reshape(-1)
    w = torch.ones_like(x) if weights is None else weights.reshape(-1).to(x.dtype)
    w = (w / w.sum()).detach()
    a, b = _abs_deviation_sums(x, w), _abs_deviation_sums(y, w)
    a_mean, b_mean = (w * a).sum(), (w * b).sum()

    def var2(v):  # S(v, v) = 2 Var_w(v)
        m = (w * v).sum()
        return 2.0 * (w * (v - m) ** 2).sum()

    dcov2 = _PairProductSum.apply(x, y, w) - 2.0 * (w * a * b).sum() + a_mean * b_mean
    dvar_x = var2(x) - 2.0 * (w * a * a).sum() + a_mean**2
    dvar_y = var2(y) - 2.0 * (w * b * b).sum() + b_mean**2
    denom = torch.sqrt(torch.sqrt(dvar_x.clamp_min(1e-30) * dvar_y.clamp_min(1e-30)))
    return torch.sqrt(dcov2.clamp_min(0.0)) / denom
