"""Table evaluation inside the numba kernels: cubic (Catmull-Rom) Hermite interpolation
along the pdf axis, linear between rows (seed 004 sec. 2.5), bin look-up."""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _hermite_row(table, row, k, c0, w, u):
    """Catmull-Rom interpolation of table[row, k, :] (values at c0 + j w); clamped outside."""
    n = table.shape[2]
    if n == 1:
        return table[row, k, 0], 0.0
    t = (u - c0) / w
    if t <= 0.0:
        return table[row, k, 0], 0.0
    if t >= n - 1:
        return table[row, k, n - 1], 0.0
    i = int(t)
    if i > n - 2:
        i = n - 2
    s = t - i
    p1 = table[row, k, i]
    p2 = table[row, k, i + 1]
    m1 = 0.5 * (p2 - table[row, k, i - 1]) if i > 0 else p2 - p1
    m2 = 0.5 * (table[row, k, i + 2] - p1) if i + 2 < n else p2 - p1
    s2 = s * s
    s3 = s2 * s
    f = (2.0 * s3 - 3.0 * s2 + 1.0) * p1 + (s3 - 2.0 * s2 + s) * m1
    f += (3.0 * s2 - 2.0 * s3) * p2 + (s3 - s2) * m2
    dfds = (6.0 * s2 - 6.0 * s) * (p1 - p2) + (3.0 * s2 - 4.0 * s + 1.0) * m1 + (3.0 * s2 - 2.0 * s) * m2
    return f, dfds / w


@nb.njit(cache=True)
def _row(table, row, k, c0, w, u, tail):
    return _log_row_tail(table, row, k, c0, w, u) if tail else _hermite_row(table, row, k, c0, w, u)


@nb.njit(cache=True)
def _log_table(table, k, rc, c0, w, floor, v, u, tail=False):
    """log(f + floor) of table[:, k, :] at (row coordinate v, column coordinate u), and its
    derivatives in u and v. Rows are interpolated linearly between their centers ``rc``
    (seed 004 sec. 2.5), clamped outside.

    ``floor > 0``: the table holds pdf values (interpolated, then the log is taken).
    ``floor <= 0``: the table already holds log-pdf values (interpolated directly), used for
    the priors, whose steeply falling tails must keep a gradient over many decades; with
    ``tail`` such a row continues beyond its last column as a straight line
    (:func:`_log_row_tail`)."""
    nrow = rc.shape[0]
    dfdv = 0.0
    if nrow == 1 or v <= rc[0]:
        f, dfdu = _row(table, np.int64(0), k, c0, w, u, tail)  # not a literal: one compiled _row
    elif v >= rc[nrow - 1]:
        f, dfdu = _row(table, nrow - 1, k, c0, w, u, tail)
    else:
        lo = _bisect(rc, v, 0, nrow - 1)
        dv = rc[lo + 1] - rc[lo]
        a = (v - rc[lo]) / dv
        fa, da = _row(table, lo, k, c0, w, u, tail)
        fb, db = _row(table, lo + 1, k, c0, w, u, tail)
        f = fa + a * (fb - fa)
        dfdu = da + a * (db - da)
        dfdv = (fb - fa) / dv
    if floor <= 0.0:
        return f, dfdu, dfdv
    if f <= 0.0:
        return math.log(floor), 0.0, 0.0
    inv = 1.0 / (f + floor)
    return math.log(f + floor), dfdu * inv, dfdv * inv


@nb.njit(cache=True)
def _log_row_tail(table, row, k, c0, w, u):
    """log-pdf table[row, k, :] at u (Catmull-Rom), and beyond the last column the straight
    line through the last two columns (the exponential tail of :func:`build_priors`)."""
    n = table.shape[2]
    last = c0 + (n - 1) * w
    if n < 2 or u <= last:
        return _hermite_row(table, row, k, c0, w, u)
    slope = min((table[row, k, n - 1] - table[row, k, n - 2]) / w, -1.0e-3 / w)
    return table[row, k, n - 1] + slope * (u - last), slope


@nb.njit(cache=True)
def _find_bin(edges, x):
    """Bin index of x in edges, clamped to [0, n_bins - 1]."""
    n = edges.shape[0] - 1
    if x < edges[1]:
        return 0
    if x >= edges[n - 1]:
        return n - 1
    return _bisect(edges, x, 1, n - 1)


@nb.njit(cache=True)
def _bisect(a, x, lo, hi):
    """Index i in [lo, hi) with a[i] <= x < a[i + 1], for sorted a with a[lo] <= x < a[hi]."""
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid
        else:
            hi = mid
    return lo
