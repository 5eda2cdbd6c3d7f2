"""Rebalance and Smear (R&S) kernels for the QCD multijet background (SPEC.md sec. 8, seed 004).

Everything here works on flat float64 arrays plus per-event ``offsets`` (length
``n_events + 1``, ``offsets[0] == 0``), the layout of ``ak.flatten`` / ``ak.num``; the caller
flattens the awkward arrays around these calls and restores them afterwards. The heavy loops
are numba kernels (``@njit(cache=True)``), no Python call per event.

Steps, with the seed-004 equations they implement:

1. **Templates** (sec. 2.4): :func:`select_template_jets` (matching eq. 2.3, isolation eq. 2.4),
   :func:`build_response_templates` (response pdfs per (pT_gen, |eta|) bin, smoothed, linear
   interpolation in pT, sec. 2.4.1 and 2.5) and :func:`build_priors` (true hard MHT by H_T and
   b-jet multiplicity, DeltaPhi(hard MHT, leading jet) by b-jet multiplicity, sec. 2.4.2,
   eqs. 2.5-2.6). Both serialize to correctionlib (:func:`to_correctionset`,
   :func:`from_correctionset`). Two extensions found necessary in the closure (issue 7):
   isolated gen jets without any reco jet are part of the response, below the reco threshold
   (:func:`lost_jet_responses`; a hard jet lost this way is a leading source of fake hard MHT),
   and the prior describes the true hard MHT in the fit's own parametrization, gen pT along
   the measured directions (:func:`prior_jets`), which grows with H_T through the jet
   direction resolution.
2. **Rebalance** (sec. 2.5): :func:`rebalance` maximizes the posterior of eq. 2.9 for each seed
   event, starting from eq. 2.10, and drops non-converged events and events whose rebalanced
   hard MHT stays above max(100 GeV, the prior's 0.999 quantile at the event's H_T).
3. **Smear** (sec. 2, 2.2): :func:`smear` draws every rebalanced jet's response n times from
   the templates, weight 1/n, reproducible from (seed, file, entry).
4. **Bootstrap** (sec. 2.2, sec. 4 item 1): :func:`bootstrap_weights`,
   :func:`bootstrap_histograms` and :func:`bootstrap_mean_std`.

Conventions. The fit parameter of jet i is its *scale factor* ``c_i = pT_true,i / pT_reco,i``
(the rebalanced jet has ``pT = c_i * pT_reco``); the response is ``r_i = 1 / c_i`` (seed eq. 2.1
writes the response as c_i; we follow the issue's convention). Jet directions are kept (eq. 2.1).
Leptons and photons are not changed by rebalancing or smearing (seed sec. 2.6): the caller
keeps them as they are and only passes the R&S jets (pT > ``OBJECT_CUTS.jet_pt_rs``) here.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numba as nb
import numpy as np

from analysis.config import (
    OBJECT_CUTS,
    RS_CORE_WINDOW_NSIGMA,
    RS_FIT_FTOL,
    RS_FIT_GTOL,
    RS_FIT_MAX_ITER,
    RS_FIT_MEMORY,
    RS_INIT_HT_FRACTION,
    RS_INIT_MAX_RESPONSE_SHIFT,
    RS_INIT_MHT_MAX,
    RS_INIT_MHT_MIN,
    RS_ISOLATION_DR,
    RS_ISOLATION_PT_FRACTION,
    RS_JET_ETA_MAX,
    RS_LIKELIHOOD_SMOOTH_FRACTION,
    RS_LOST_JET_ETA_MAX,
    RS_LOST_JET_POINTS,
    RS_MATCH_DR,
    RS_MAX_REBALANCED_MHT,
    RS_N_BJET_CATEGORIES,
    RS_N_BOOTSTRAP,
    RS_N_SMEAR,
    RS_PDF_FLOOR_REL,
    RS_PDF_FLOOR_SLOPE,
    RS_PRIOR_DPHI_EDGES,
    RS_PRIOR_DPHI_MHT_EDGES,
    RS_PRIOR_HT_EDGES,
    RS_PRIOR_MHT_EDGES,
    RS_PRIOR_MIN_EVENTS,
    RS_PRIOR_TAIL_QUANTILE,
    RS_RECO_JET_PT_MIN,
    RS_REJECT_PRIOR_QUANTILE,
    RS_RESPONSE_EDGES,
    RS_TEMPLATE_ABSETA_EDGES,
    RS_TEMPLATE_PT_EDGES,
    RS_TEMPLATE_SMOOTH_SIGMA,
)
from analysis.errors import ConfigError, CorrectionError, InputFileError

__all__ = [
    "STATUS_CONVERGED",
    "STATUS_MAX_ITER",
    "STATUS_LINE_SEARCH_FAILED",
    "STATUS_TOO_FEW_JETS",
    "STATUS_NAN_INPUT",
    "CORRECTION_RESPONSE",
    "CORRECTION_PRIOR_MHT",
    "CORRECTION_PRIOR_DPHI",
    "JetResponseTemplates",
    "RebalancePriors",
    "RebalanceResult",
    "SmearResult",
    "select_template_jets",
    "lost_jet_responses",
    "build_response_templates",
    "build_priors",
    "prior_jets",
    "prior_sums",
    "priors_from_sums",
    "vary_response",
    "hard_mht",
    "to_correctionset",
    "from_correctionset",
    "write_correctionset",
    "read_correctionset",
    "rebalance",
    "rebalance_scipy",
    "neg_log_posterior",
    "smear",
    "file_key",
    "bootstrap_weights",
    "bootstrap_histograms",
    "bootstrap_mean_std",
]

#: fit status codes, per event (:attr:`RebalanceResult.status`)
STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_LINE_SEARCH_FAILED = 2
STATUS_TOO_FEW_JETS = 3
STATUS_NAN_INPUT = 4

#: correctionlib names (the portable file layout, see :func:`to_correctionset`)
CORRECTION_RESPONSE = "jet_response_pdf"
CORRECTION_PRIOR_MHT = "rs_prior_mht"
CORRECTION_PRIOR_DPHI = "rs_prior_dphi"

_MASK64 = (1 << 64) - 1
#: domain-separation constants of the counter-based random streams
_STREAM_SMEAR = np.uint64(0x5EED5EED00000001)
_STREAM_BOOTSTRAP = np.uint64(0xB0075EED00000002)


# =========================================================================================
# Small helpers
# =========================================================================================
def _as_f8(name: str, a) -> np.ndarray:
    try:
        return np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"R&S input '{name}' must be convertible to float64: {err}") from None


def _as_offsets(name: str, offsets, n_flat: int) -> np.ndarray:
    off = np.ascontiguousarray(np.asarray(offsets, dtype=np.int64))
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != n_flat or np.any(np.diff(off) < 0):
        raise ConfigError(
            f"R&S '{name}' must be non-decreasing event offsets from 0 to the number of jets "
            f"({n_flat}), got shape {off.shape} ending at {off[-1] if off.size else 'nothing'}"
        )
    return off


def _check_edges(name: str, edges, uniform: bool = False) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ConfigError(f"R&S binning '{name}' must be >= 2 finite increasing edges, got {edges}")
    if uniform and not np.allclose(np.diff(e), e[1] - e[0], rtol=1e-6, atol=0.0):
        raise ConfigError(f"R&S binning '{name}' must be uniform, got widths {np.diff(e)}")
    return e


def _centers(edges: np.ndarray) -> np.ndarray:
    return 0.5 * (edges[1:] + edges[:-1])


def file_key(file_id: str | bytes | int) -> int:
    """Stable 64-bit key of a file identifier (e.g. its path or UUID) for the random streams.

    Uses BLAKE2b (8 bytes), independent of Python's salted ``hash``; an ``int`` is used as is.
    """
    if isinstance(file_id, (int, np.integer)):
        return int(file_id) & _MASK64
    data = file_id.encode() if isinstance(file_id, str) else bytes(file_id)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


# =========================================================================================
# Numba: counter-based random numbers (splitmix64), reproducible per (seed, file, entry)
# =========================================================================================
@nb.njit(cache=True)
def _splitmix64(x):
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def _unit_uniform(h):
    # 53 random bits, shifted by half a step: strictly inside (0, 1)
    return (np.float64(h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True)
def _event_keys(seed, fkey, stream, entry):
    out = np.empty(entry.shape[0], dtype=np.uint64)
    base = _splitmix64(_splitmix64(seed ^ stream) ^ fkey)
    for i in range(entry.shape[0]):
        out[i] = _splitmix64(base ^ np.uint64(entry[i]))
    return out


@nb.njit(cache=True)
def _draw(key, replica, jet, k):
    # counter: replica (32 bits) | jet (29 bits) | draw (3 bits)
    ctr = (np.uint64(replica) << np.uint64(32)) | (np.uint64(jet) << np.uint64(3)) | np.uint64(k)
    return _unit_uniform(_splitmix64(key ^ _splitmix64(ctr)))


# =========================================================================================
# Numba: table evaluation (cubic Hermite along the pdf axis, linear between rows)
# =========================================================================================
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
        f, dfdu = _row(table, 0, k, c0, w, u, tail)
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


# =========================================================================================
# Numba: the posterior of seed 004 eq. 2.9 and its gradient in x_i = log c_i
# =========================================================================================
@nb.njit(cache=True)
def _objective(x, pt, px, py, etab, lead, nbcat, tabs, grad):
    """-log posterior (eq. 2.9) of one event and its gradient d/dx_i, x_i = log c_i.

    Likelihood term per jet: the density of pT_reco given pT_true = c pT_reco,
    P(pT_reco | pT_true) = p_r(1/c; pT_true, |eta|) / pT_true. Prior: P(hard MHT; H_T, nb)
    times P(DeltaPhi(hard MHT, leading jet) | hard MHT; nb); the ur-prior pi_0 is flat
    (eq. 2.5). H_T is the seed's scalar sum of the fitted jets (a fixed conditioning variable).
    """
    (resp, resp_rc, r_c0, r_w, resp_floor, mht_tab, mht_rc, m_c0, m_w, mht_floor,
     dphi_tab, dphi_rc, d_c0, d_w, dphi_floor) = tabs
    n = x.shape[0]
    f = 0.0
    mx = 0.0
    my = 0.0
    ht = 0.0
    for i in range(n):
        ht += pt[i]
    for i in range(n):
        c = math.exp(x[i])
        r = 1.0 / c
        ptt = pt[i] * c
        lf, dlu, dlv = _log_table(resp, etab[i], resp_rc, r_c0, r_w, resp_floor, ptt, r)
        f -= lf - math.log(ptt)
        grad[i] = -(dlu * (-r) + dlv * ptt - 1.0)
        mx -= c * px[i]
        my -= c * py[i]
    m = math.sqrt(mx * mx + my * my)
    # hard-MHT prior by H_T (rows), continued beyond its range: clamping there would make the
    # prior flat, without gradient, and events starting above the range would stay unbalanced
    lm, dlm, _ = _log_table(mht_tab, nbcat, mht_rc, m_c0, m_w, mht_floor, ht, m, True)
    f -= lm
    if m > 1e-9:
        cl = px[lead] / pt[lead]
        sl = py[lead] / pt[lead]
        d = math.atan2((my * cl - mx * sl) / m, (mx * cl + my * sl) / m)
        sgn = 1.0 if d >= 0.0 else -1.0
        ld, dld_u, dld_v = _log_table(dphi_tab, nbcat, dphi_rc, d_c0, d_w, dphi_floor, m, abs(d))
        f -= ld
        inv_m = 1.0 / m
        for i in range(n):
            c = math.exp(x[i])
            dmx = -c * px[i]
            dmy = -c * py[i]
            dm = (mx * dmx + my * dmy) * inv_m
            dphi = (mx * dmy - my * dmx) * inv_m * inv_m
            grad[i] -= dlm * dm + dld_u * sgn * dphi + dld_v * dm
    else:
        ld, _, _ = _log_table(dphi_tab, nbcat, dphi_rc, d_c0, d_w, dphi_floor, 0.0, 0.5 * math.pi)
        f -= ld
    return f


@nb.njit(cache=True)
def _lbfgs(x, lo, hi, pt, px, py, etab, lead, nbcat, tabs, max_iter, gtol, ftol, m_mem):
    """Projected L-BFGS with Armijo backtracking on the box [lo, hi]; x updated in place.

    Returns (status, iterations, -log posterior at the end)."""
    n = x.shape[0]
    S = np.zeros((m_mem, n))
    Y = np.zeros((m_mem, n))
    rho = np.zeros(m_mem)
    alph = np.zeros(m_mem)
    g = np.empty(n)
    gn = np.empty(n)
    pg = np.empty(n)
    d = np.empty(n)
    xn = np.empty(n)
    f = _objective(x, pt, px, py, etab, lead, nbcat, tabs, g)
    k = 0
    for it in range(max_iter):
        pgmax = 0.0
        for i in range(n):
            if (x[i] <= lo and g[i] > 0.0) or (x[i] >= hi and g[i] < 0.0):
                pg[i] = 0.0
            else:
                pg[i] = g[i]
                if abs(g[i]) > pgmax:
                    pgmax = abs(g[i])
        if pgmax < gtol:
            return STATUS_CONVERGED, it, f
        # two-loop recursion on the projected gradient
        for i in range(n):
            d[i] = pg[i]
        for j in range(k - 1, -1, -1):
            a = 0.0
            for i in range(n):
                a += S[j, i] * d[i]
            a *= rho[j]
            alph[j] = a
            for i in range(n):
                d[i] -= a * Y[j, i]
        if k > 0:
            sy = 0.0
            yy = 0.0
            for i in range(n):
                sy += S[k - 1, i] * Y[k - 1, i]
                yy += Y[k - 1, i] * Y[k - 1, i]
            gamma = sy / yy
        else:
            gamma = min(1.0, 0.1 / pgmax)
        for i in range(n):
            d[i] *= gamma
        for j in range(k):
            b = 0.0
            for i in range(n):
                b += Y[j, i] * d[i]
            b *= rho[j]
            for i in range(n):
                d[i] += S[j, i] * (alph[j] - b)
        dg = 0.0
        for i in range(n):
            d[i] = -d[i] if pg[i] != 0.0 else 0.0
            dg += d[i] * g[i]
        if not dg < 0.0:
            k = 0
            gamma = min(1.0, 0.1 / pgmax)
            for i in range(n):
                d[i] = -gamma * pg[i]
        # backtracking line search along the projected path
        step = 1.0
        ok = False
        fn = f
        for _ in range(40):
            dec = 0.0
            for i in range(n):
                xi = x[i] + step * d[i]
                xn[i] = lo if xi < lo else (hi if xi > hi else xi)
                dec += g[i] * (xn[i] - x[i])
            fn = _objective(xn, pt, px, py, etab, lead, nbcat, tabs, gn)
            if fn <= f + 1e-4 * dec:
                ok = True
                break
            step *= 0.5
        if not ok:
            if k > 0:
                k = 0
                continue
            # no descent even along the steepest direction: stationary up to the
            # resolution of the interpolated tables
            if pgmax < 100.0 * gtol:
                return STATUS_CONVERGED, it, f
            return STATUS_LINE_SEARCH_FAILED, it, f
        sy = 0.0
        for i in range(n):
            sy += (xn[i] - x[i]) * (gn[i] - g[i])
        if sy > 1e-12:
            if k == m_mem:
                for j in range(m_mem - 1):
                    rho[j] = rho[j + 1]
                    for i in range(n):
                        S[j, i] = S[j + 1, i]
                        Y[j, i] = Y[j + 1, i]
                k -= 1
            for i in range(n):
                S[k, i] = xn[i] - x[i]
                Y[k, i] = gn[i] - g[i]
            rho[k] = 1.0 / sy
            k += 1
        df = f - fn
        for i in range(n):
            x[i] = xn[i]
            g[i] = gn[i]
        f = fn
        if df <= ftol * max(1.0, abs(f)):
            return STATUS_CONVERGED, it + 1, f
    return STATUS_MAX_ITER, max_iter, f


@nb.njit(cache=True)
def _initial_log_scales(pt, px, py, lo, hi, mht_min, mht_max, ht_frac, max_shift):
    """Starting points of the fit from seed 004 eq. 2.10.

    Target hard MHT = max(30, min(90, HT/3)) GeV. If the seed's hard MHT is above it, every
    jet whose rescaling alone reaches the target with |c_init - 1| < 0.8 (c_init being the
    response 1/c of our convention) gives one start (all other jets unscaled), ordered by
    |log c|; the seed paper keeps the first, we fit from each and keep the best posterior
    (the posterior is multi-modal when it is unclear which jet was mis-measured). Otherwise
    the single start is the unscaled event. Returns an array (n_starts, n_jets) of log c.
    """
    n = pt.shape[0]
    ht = 0.0
    mx = 0.0
    my = 0.0
    for i in range(n):
        ht += pt[i]
        mx -= px[i]
        my -= py[i]
    target = max(mht_min, min(mht_max, ht * ht_frac))
    m2 = mx * mx + my * my
    cand = np.zeros(n)
    ok = np.zeros(n, dtype=np.bool_)
    if m2 > target * target:
        for i in range(n):
            p2 = px[i] * px[i] + py[i] * py[i]
            mp = mx * px[i] + my * py[i]
            disc = mp * mp - p2 * (m2 - target * target)
            if disc < 0.0 or p2 <= 0.0:
                continue
            sq = math.sqrt(disc)
            for root in ((mp - sq) / p2, (mp + sq) / p2):
                c = 1.0 + root
                if c <= 0.0 or abs(1.0 / c - 1.0) >= max_shift:
                    continue
                xi = math.log(c)
                if xi < lo or xi > hi:
                    continue
                if not ok[i] or abs(xi) < abs(cand[i]):
                    cand[i] = xi
                    ok[i] = True
    n_ok = 0
    key = np.empty(n)
    for i in range(n):
        key[i] = abs(cand[i]) if ok[i] else np.inf
        if ok[i]:
            n_ok += 1
    starts = np.zeros((max(n_ok, 1), n))
    order = np.argsort(key)
    for s in range(n_ok):
        starts[s, order[s]] = cand[order[s]]
    return starts


@nb.njit(cache=True)
def _rebalance_kernel(pt, eta, phi, offsets, fit_mask, nbcat, eta_edges, pt_lo, pt_hi, tabs,
                      lo, hi, max_iter, gtol, ftol, m_mem, init_pars):
    n_ev = offsets.shape[0] - 1
    scale = np.ones(pt.shape[0])
    mht = np.full(n_ev, np.nan)
    mht_phi = np.full(n_ev, np.nan)
    nll = np.full(n_ev, np.nan)
    status = np.zeros(n_ev, dtype=np.int8)
    n_iter = np.zeros(n_ev, dtype=np.int32)
    # counters: pt below / above template, |eta| beyond template, jets ending at a bound
    counts = np.zeros(4, dtype=np.int64)
    for e in range(n_ev):
        a = offsets[e]
        b = offsets[e + 1]
        bad = False
        nfit = 0
        for j in range(a, b):
            if not (np.isfinite(pt[j]) and np.isfinite(eta[j]) and np.isfinite(phi[j])):
                bad = True
            elif fit_mask[j]:
                nfit += 1
        if bad:
            status[e] = STATUS_NAN_INPUT
            continue
        if nfit < 2:
            status[e] = STATUS_TOO_FEW_JETS
            continue
        idx = np.empty(nfit, dtype=np.int64)
        p = np.empty(nfit)
        qx = np.empty(nfit)
        qy = np.empty(nfit)
        eb = np.empty(nfit, dtype=np.int64)
        q = 0
        lead = 0
        for j in range(a, b):
            if fit_mask[j]:
                idx[q] = j
                p[q] = pt[j]
                qx[q] = pt[j] * math.cos(phi[j])
                qy[q] = pt[j] * math.sin(phi[j])
                ae = abs(eta[j])
                eb[q] = _find_bin(eta_edges, ae)
                if ae >= eta_edges[eta_edges.shape[0] - 1]:
                    counts[2] += 1
                if pt[j] < pt_lo:
                    counts[0] += 1
                elif pt[j] > pt_hi:
                    counts[1] += 1
                if p[q] > p[lead]:
                    lead = q
                q += 1
        starts = _initial_log_scales(p, qx, qy, lo, hi, init_pars[0], init_pars[1],
                                     init_pars[2], init_pars[3])
        x = starts[0].copy()
        st, it, fv = _lbfgs(x, lo, hi, p, qx, qy, eb, lead, nbcat[e], tabs, max_iter, gtol,
                            ftol, m_mem)
        for s in range(1, starts.shape[0]):
            xs = starts[s].copy()
            st_s, it_s, fv_s = _lbfgs(xs, lo, hi, p, qx, qy, eb, lead, nbcat[e], tabs,
                                      max_iter, gtol, ftol, m_mem)
            it += it_s
            if st_s == STATUS_CONVERGED and (st != STATUS_CONVERGED or fv_s < fv):
                x = xs
                st = st_s
                fv = fv_s
        status[e] = st
        n_iter[e] = it
        nll[e] = fv
        mx = 0.0
        my = 0.0
        for q in range(nfit):
            c = math.exp(x[q])
            scale[idx[q]] = c
            mx -= c * qx[q]
            my -= c * qy[q]
            if x[q] <= lo or x[q] >= hi:
                counts[3] += 1
        mht[e] = math.sqrt(mx * mx + my * my)
        mht_phi[e] = math.atan2(my, mx)
    return scale, mht, mht_phi, status, n_iter, nll, counts


# =========================================================================================
# Numba: hard MHT, matching/isolation, smearing, bootstrap
# =========================================================================================
@nb.njit(cache=True)
def _hard_mht_kernel(pt, eta, phi, offsets, pt_min, eta_max):
    n_ev = offsets.shape[0] - 1
    mht = np.zeros(n_ev)
    mphi = np.zeros(n_ev)
    ht = np.zeros(n_ev)
    lead_phi = np.full(n_ev, np.nan)
    for e in range(n_ev):
        mx = 0.0
        my = 0.0
        best = -1.0
        for j in range(offsets[e], offsets[e + 1]):
            if pt[j] > pt_min and abs(eta[j]) < eta_max:
                mx -= pt[j] * math.cos(phi[j])
                my -= pt[j] * math.sin(phi[j])
                ht[e] += pt[j]
                if pt[j] > best:
                    best = pt[j]
                    lead_phi[e] = phi[j]
        mht[e] = math.sqrt(mx * mx + my * my)
        mphi[e] = math.atan2(my, mx)
    return mht, mphi, ht, lead_phi


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


@nb.njit(cache=True)
def _smear_kernel(pt, offsets, abseta, sel, out_off, n_smear, keys, cdf, rc, eta_edges,
                  r_edges):
    n_out = out_off[out_off.shape[0] - 1]
    out_pt = np.empty(n_out)
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
    return out_pt, src


@nb.njit(cache=True)
def _bootstrap_kernel(keys, n_boot):
    out = np.empty((keys.shape[0], n_boot))
    e1 = math.exp(-1.0)
    for i in range(keys.shape[0]):
        for b in range(n_boot):
            u = _draw(keys[i], b, 0, 0)
            kk = 0
            pk = e1
            c = pk
            while u > c and kk < 30:
                kk += 1
                pk /= kk
                c += pk
            out[i, b] = kk
    return out


# =========================================================================================
# Templates and priors (seed 004 sec. 2.4)
# =========================================================================================
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
        nearest populated pT bin of the same |eta| bin).
    smooth_sigma : float
        Width (response units) of the Gaussian kernel applied.
    interpolate_pt : bool
        Linear interpolation between pT-bin centers (seed 004 sec. 2.5, default); False uses
        the pdf of the bin that contains the pT (for a detector model that is constant per bin,
        such as the project's toy, where interpolation would mix neighbouring bins' widths).
    """

    pt_edges: np.ndarray
    eta_edges: np.ndarray
    response_edges: np.ndarray
    pdf: np.ndarray
    entries: np.ndarray
    smooth_sigma: float = 0.0
    interpolate_pt: bool = True
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
        mass = np.cumsum(pdf * (rde[1] - rde[0]), axis=-1)
        cdf = np.concatenate([np.zeros(shape[:2] + (1,)), mass], axis=-1)
        total = cdf[..., -1:]
        cdf = np.where(total > 0, cdf / np.where(total > 0, total, 1.0), 0.0)
        object.__setattr__(self, "cdf", np.ascontiguousarray(cdf))

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
        ``reco_pt``, ``gen_pt``, ``gen_eta`` of the pairs (flat), ``gen_index`` and
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
    pT bin of the same |eta| bin (``entries`` stays 0 there).

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
    for k in range(shape[1]):
        filled = np.flatnonzero(entries[:, k] > 0)
        if filled.size == 0:
            raise ConfigError(
                f"no matched jets in |eta| bin [{ete[k]}, {ete[k + 1]}) of the response "
                "templates: use fewer |eta| bins or more simulated QCD"
            )
        for j in np.flatnonzero(entries[:, k] <= 0):
            pdf[j, k] = pdf[filled[np.argmin(np.abs(filled - j))], k]
    return JetResponseTemplates(pte, ete, rde, pdf, entries, float(smooth_sigma),
                                bool(interpolate_pt))


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


def hard_mht(
    pt, eta, phi, offsets,
    pt_min: float = OBJECT_CUTS.jet_pt,
    eta_max: float = OBJECT_CUTS.jet_eta_wide,
) -> dict[str, np.ndarray]:
    """Hard MHT of seed 004 eq. 2.6 per event: |-sum pT| of jets with pT > pt_min, |eta| < eta_max.

    Returns a dict with ``mht`` (GeV), ``mht_phi`` (rad), ``ht`` (scalar sum, GeV) and
    ``leading_phi`` (azimuth of the leading selected jet, NaN without jets), each per event.
    """
    p = _as_f8("pt", pt)
    off = _as_offsets("offsets", offsets, p.size)
    mht, mphi, ht, lphi = _hard_mht_kernel(p, _as_f8("eta", eta), _as_f8("phi", phi), off,
                                           float(pt_min), float(eta_max))
    return {"mht": mht, "mht_phi": mphi, "ht": ht, "leading_phi": lphi}


def prior_jets(
    reco_pt, reco_eta, reco_phi, reco_offsets, reco_gen_index,
    gen_pt, gen_eta, gen_phi, gen_offsets,
    *,
    pt_min: float = OBJECT_CUTS.jet_pt_rs,
    eta_max: float = RS_JET_ETA_MAX,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The true jets as the rebalancing parametrizes them, for the priors (seed 004 sec. 2.4.2).

    The fit can only rescale the measured jets along their measured directions (eq. 2.1), so
    its target is each R&S reco jet (pT > ``pt_min``, |eta| < ``eta_max``) with its gen jet's
    pT along the *reco* direction, plus the gen jets that no R&S jet measured (lost or outside
    the acceptance) as they are. The hard MHT of these jets is the true hard MHT the prior must
    describe: at multi-TeV jet pT the jet direction resolution alone gives tens to hundreds of
    GeV of it, which a prior from gen directions (exactly balanced) would force the fit to
    absorb into the jets' magnitudes (fake rescaled soft jets, wrong DeltaPhi of the smeared
    p_T^miss). Reco jets without gen jet keep their reco pT.

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
    true_pt = np.where(has_gen, gpt[np.clip(gflat, 0, max(gpt.size - 1, 0))] if gpt.size else 0.0, rpt)
    measured = np.zeros(gpt.size, dtype=bool)
    measured[gflat[has_gen]] = True
    gev = np.repeat(np.arange(n), gcount)
    pt = np.r_[true_pt[rs_jet], gpt[~measured]]
    eta = np.r_[reta[rs_jet], geta[~measured]]
    phi = np.r_[rphi[rs_jet], gphi[~measured]]
    ev = np.r_[rev[rs_jet], gev[~measured]]
    order = np.argsort(ev, kind="stable")
    counts = np.bincount(ev, minlength=n)
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    ht = np.bincount(rev[rs_jet], rpt[rs_jet], n)
    return pt[order], eta[order], phi[order], off, ht


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
    pt_min: float = OBJECT_CUTS.jet_pt_rs,
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

    The true hard MHT is |-sum pT| of the given true jets with pT > ``pt_min`` (15 GeV, the R&S
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


def vary_response(
    templates: JetResponseTemplates,
    core_width_scale: float = 1.0,
    tail_fraction_scale: float = 1.0,
    *,
    window_nsigma: float = RS_CORE_WINDOW_NSIGMA,
) -> JetResponseTemplates:
    """Response templates with a widened Gaussian core and/or scaled tails (seed 004 sec. 4).

    Per (pT, |eta|) bin the pdf is split into a Gaussian core G(mu, sigma) and a non-Gaussian
    remainder: mu and sigma come from the truncated mean and RMS within +-``window_nsigma``
    sigma (iterated, corrected for the truncation); the core is
    ``min(pdf, A * G(mu, sigma))`` with the amplitude A matched at the peak, the tail is the rest.
    The varied pdf is ``f_core' * core_k + t * tail`` where ``core_k(r) = core(mu + (r - mu) / k) / k``
    is the core stretched by ``k = core_width_scale`` around mu, ``t = tail_fraction_scale``
    and ``f_core' = 1 - t * f_tail`` (the total stays normalized; t is capped so that
    f_core' >= 0). No variation (k = t = 1) returns the template. Typical one-sigma variations
    are in ``analysis.config.RS_SYST_CORE_WIDTH_SCALE`` and ``RS_SYST_TAIL_FRACTION_SCALE``.
    """
    if core_width_scale <= 0 or tail_fraction_scale < 0:
        raise ConfigError(
            f"core_width_scale must be > 0 and tail_fraction_scale >= 0, got "
            f"{core_width_scale}, {tail_fraction_scale}"
        )
    rc = templates.response_centers
    w = templates.response_edges[1] - templates.response_edges[0]
    out = templates.pdf.copy()
    z = window_nsigma
    phi_z = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    trunc_var = 1.0 - 2.0 * z * phi_z / math.erf(z / math.sqrt(2.0))
    for i in range(out.shape[0]):
        for k in range(out.shape[1]):
            p = templates.pdf[i, k]
            mu = rc[np.argmax(p)]
            sigma = math.sqrt(max((p * w * (rc - mu) ** 2).sum(), w * w))
            for _ in range(10):
                sel = np.abs(rc - mu) < z * sigma
                m = (p[sel] * w).sum()
                if m <= 0:
                    break
                mu = (p[sel] * w * rc[sel]).sum() / m
                sigma = max(math.sqrt((p[sel] * w * (rc[sel] - mu) ** 2).sum() / m / trunc_var), w)
            g = np.exp(-0.5 * ((rc - mu) / sigma) ** 2)
            peak = np.abs(rc - mu) < sigma
            amp = (p[peak] / g[peak]).min() if np.any(peak) else 0.0
            core = np.minimum(p, amp * g)
            tail = p - core
            f_tail = (tail * w).sum()
            t = min(tail_fraction_scale, 1.0 / f_tail) if f_tail > 0 else tail_fraction_scale
            # the core stretched by k around mu (exactly the core for k = 1)
            core_k = np.interp(mu + (rc - mu) / core_width_scale, rc, core, left=0.0, right=0.0)
            m_core = (core_k * w).sum()
            if m_core > 0:
                core_k *= (1.0 - f_tail) / m_core
            out[i, k] = (1.0 - t * f_tail) / max(1.0 - f_tail, 1e-12) * core_k + t * tail
    return replace(templates, pdf=_normalize_last(np.clip(out, 0.0, None), w))


# =========================================================================================
# correctionlib serialisation (STYLE: the schema is the single truth)
# =========================================================================================
def _edges_list(e: np.ndarray) -> list[float]:
    return [float(x) for x in e]


def to_correctionset(templates: JetResponseTemplates, priors: RebalancePriors):
    """Templates and priors as a correctionlib ``CorrectionSet`` (schema v2 pydantic models).

    Layout (all ``MultiBinning`` with C-ordered content, ``flow="clamp"``):

    - ``jet_response_pdf`` (pt [GeV, gen jet], abseta, response) -> pdf [1/response]; the
      smoothed histogram values (bin-center values of the interpolation nodes).
    - ``rs_prior_mht`` (ht [GeV], nb, mht [GeV]) -> pdf [1/GeV]; nb edges 0, 1, ..., n_cat - 1,
      +inf; ht: H_T of the fitted jets (files without the ht input are read as one H_T bin).
    - ``rs_prior_dphi`` (nb, mht [GeV], dphi [rad]) -> pdf [1/rad], DeltaPhi(hard MHT, leading
      jet) given coarse hard-MHT bins.

    The smoothing width and the template entries per bin are in the descriptions (JSON).
    """
    import correctionlib.schemav2 as cs

    n_cat = priors.n_bjet_categories
    nb_edges: list[float | str] = [float(i) for i in range(n_cat)] + ["inf"]
    meta = {
        "smooth_sigma": templates.smooth_sigma,
        "interpolate_pt": templates.interpolate_pt,
        "entries": templates.entries.tolist(),
    }
    resp = cs.Correction(
        name=CORRECTION_RESPONSE,
        description=(
            "R&S jet response pdf P(pT_reco/pT_gen | pT_gen, |eta_gen|) (seed 004 sec. 2.4.1), "
            "normalized per (pt, abseta) bin; softtrack metadata: " + json.dumps(meta)
        ),
        version=1,
        inputs=[
            cs.Variable(name="pt", type="real", description="gen-jet pT (GeV)"),
            cs.Variable(name="abseta", type="real", description="gen-jet |eta|"),
            cs.Variable(name="response", type="real", description="pT_reco / pT_gen"),
        ],
        output=cs.Variable(name="pdf", type="real", description="probability density (1/response)"),
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=["pt", "abseta", "response"],
            edges=[_edges_list(templates.pt_edges), _edges_list(templates.eta_edges),
                   _edges_list(templates.response_edges)],
            content=[float(v) for v in templates.pdf.ravel()],
            flow="clamp",
        ),
    )
    nb_var = cs.Variable(name="nb", type="real", description="number of b-tagged jets")
    mht_var = cs.Variable(name="mht", type="real", description="true hard MHT (GeV)")
    prior_m = cs.Correction(
        name=CORRECTION_PRIOR_MHT,
        description=(
            "R&S prior on the true hard MHT per b-jet category (seed 004 sec. 2.4.2); "
            "softtrack metadata: " + json.dumps({"entries": priors.entries.tolist()})
        ),
        version=1,
        inputs=[cs.Variable(name="ht", type="real", description="H_T of the fitted jets (GeV)"),
                nb_var, mht_var],
        output=cs.Variable(name="pdf", type="real", description="probability density (1/GeV)"),
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=["ht", "nb", "mht"],
            edges=[_edges_list(priors.ht_edges), nb_edges, _edges_list(priors.mht_edges)],
            content=[float(v) for v in priors.pdf_mht.ravel()],
            flow="clamp",
        ),
    )
    prior_d = cs.Correction(
        name=CORRECTION_PRIOR_DPHI,
        description=(
            "R&S prior on DeltaPhi(true hard MHT, leading jet) given the hard MHT, per b-jet "
            "category (seed 004 sec. 2.4.2, eq. 2.5)"
        ),
        version=1,
        inputs=[nb_var, mht_var,
                cs.Variable(name="dphi", type="real", description="DeltaPhi (rad), [0, pi]")],
        output=cs.Variable(name="pdf", type="real", description="probability density (1/rad)"),
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=["nb", "mht", "dphi"],
            edges=[nb_edges, _edges_list(priors.dphi_mht_edges), _edges_list(priors.dphi_edges)],
            content=[float(v) for v in priors.pdf_dphi.ravel()],
            flow="clamp",
        ),
    )
    return cs.CorrectionSet(
        schema_version=2,
        description="softtrack Rebalance and Smear inputs (SPEC.md sec. 8, seed 004 sec. 2.4)",
        corrections=[resp, prior_m, prior_d],
    )


def _metadata(description: str | None) -> dict:
    if not description or "softtrack metadata: " not in description:
        return {}
    return json.loads(description.split("softtrack metadata: ", 1)[1])


def from_correctionset(cset) -> tuple[JetResponseTemplates, RebalancePriors]:
    """Read templates and priors back from a CorrectionSet model, a JSON string/dict or a path
    (``.json`` or ``.json.gz``) written by :func:`to_correctionset` / :func:`write_correctionset`.
    """
    import correctionlib.schemav2 as cs

    if isinstance(cset, (str, Path)) and not str(cset).lstrip().startswith("{"):
        return read_correctionset(cset)
    if isinstance(cset, str):
        cset = cs.CorrectionSet.model_validate_json(cset)
    elif isinstance(cset, dict):
        cset = cs.CorrectionSet.model_validate(cset)
    by_name = {c.name: c for c in cset.corrections}
    missing = [n for n in (CORRECTION_RESPONSE, CORRECTION_PRIOR_MHT, CORRECTION_PRIOR_DPHI)
               if n not in by_name]
    if missing:
        raise CorrectionError(
            f"R&S correction set lacks {missing} (has {sorted(by_name)}): write it with "
            "analysis.rebalance_smear.write_correctionset"
        )

    def grid(corr, n_in):
        data = corr.data
        if not isinstance(data, cs.MultiBinning) or len(data.edges) != n_in:
            raise CorrectionError(f"correction '{corr.name}' is not a {n_in}-d MultiBinning")
        edges = []
        for e in data.edges:
            if isinstance(e, cs.UniformBinning):
                edges.append(np.linspace(e.low, e.high, e.n + 1))
            else:
                edges.append(np.array([float(v) for v in e]))
        shape = tuple(e.size - 1 for e in edges)
        return edges, np.asarray(data.content, dtype=np.float64).reshape(shape)

    (pte, ete, rde), pdf = grid(by_name[CORRECTION_RESPONSE], 3)
    meta = _metadata(by_name[CORRECTION_RESPONSE].description)
    entries = np.asarray(meta.get("entries", np.ones(pdf.shape[:2])), dtype=np.float64)
    templates = JetResponseTemplates(pte, ete, rde, pdf, entries,
                                     float(meta.get("smooth_sigma", 0.0)),
                                     bool(meta.get("interpolate_pt", True)))
    cm = by_name[CORRECTION_PRIOR_MHT]
    if isinstance(cm.data, cs.MultiBinning) and len(cm.data.edges) == 2:  # one H_T bin
        (_, me), pm = grid(cm, 2)
        he = None
    else:
        (he, _, me), pm = grid(cm, 3)
    (_, dme, de), pd = grid(by_name[CORRECTION_PRIOR_DPHI], 3)
    pmeta = _metadata(cm.description)
    pentries = np.asarray(pmeta.get("entries", np.ones(pm.shape[-2])), dtype=np.float64)
    return templates, RebalancePriors(me, pm, dme, de, pd, pentries, he)


def write_correctionset(path: str | Path, templates: JetResponseTemplates,
                        priors: RebalancePriors) -> Path:
    """Write :func:`to_correctionset` as JSON (gzip-compressed if the name ends in ``.gz``)."""
    path = Path(path)
    text = to_correctionset(templates, priors).model_dump_json(exclude_unset=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def read_correctionset(path: str | Path) -> tuple[JetResponseTemplates, RebalancePriors]:
    """Read a file written by :func:`write_correctionset` into (templates, priors)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"R&S template file '{path}' does not exist: build it first")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as fh:
                text = fh.read()
        else:
            text = path.read_text()
    except (OSError, EOFError) as err:
        raise InputFileError(f"cannot read R&S template file '{path}': {err}") from None
    return from_correctionset(text)


# =========================================================================================
# Rebalance (seed 004 sec. 2.5)
# =========================================================================================
@dataclass(frozen=True, eq=False)
class RebalanceResult:
    """Output of :func:`rebalance` (flat jets in the input layout, per-event arrays).

    Attributes
    ----------
    pt : ndarray
        Rebalanced jet pT (GeV) = ``scale * pT_reco``; jets not fitted keep their pT.
    scale : ndarray
        Best-fit scale factor c_i per jet (1 for jets not fitted).
    mht, mht_phi : ndarray
        Rebalanced hard MHT (GeV) of the fitted jets and its azimuth, per event (NaN if no fit).
    status : ndarray of int8
        ``STATUS_*`` code per event.
    n_iter : ndarray of int32
        Optimizer iterations per event.
    neg_log_posterior : ndarray
        -log of the posterior (eq. 2.9) at the optimum, per event.
    keep : ndarray of bool
        Converged and rebalanced hard MHT below the threshold: the events to smear.
    summary : dict[str, int]
        Counters: events, converged, max_iter, line_search_failed, too_few_jets, nan_input,
        mht_too_large, kept; jets_fitted, jets_pt_below_template, jets_pt_above_template,
        jets_eta_beyond_template (all clamped to the edge bins), jets_at_scale_bound.
    """

    pt: np.ndarray
    scale: np.ndarray
    mht: np.ndarray
    mht_phi: np.ndarray
    status: np.ndarray
    n_iter: np.ndarray
    neg_log_posterior: np.ndarray
    keep: np.ndarray
    summary: dict[str, int]


def _scale_bounds(templates: JetResponseTemplates) -> tuple[float, float]:
    """Box for x = log c: the response 1/c stays within the template's first/last bin centers."""
    rc = templates.response_centers
    r_lo = max(float(rc[0]), 1e-3)
    return -math.log(float(rc[-1])), -math.log(r_lo)


def _kernel_tabs(templates: JetResponseTemplates, priors: RebalancePriors) -> tuple:
    return templates.kernel_tables() + priors.kernel_tables()


def _fit_inputs(pt, eta, phi, offsets, n_bjets, priors, pt_min, eta_max):
    p = _as_f8("pt", pt)
    e = _as_f8("eta", eta)
    f = _as_f8("phi", phi)
    if not p.shape == e.shape == f.shape or p.ndim != 1:
        raise ConfigError(f"pt, eta, phi must be flat arrays of one shape, got {p.shape}, "
                          f"{e.shape}, {f.shape}")
    off = _as_offsets("offsets", offsets, p.size)
    cat = _bjet_category(n_bjets, off.size - 1, priors.n_bjet_categories)
    with np.errstate(invalid="ignore"):
        fit = (p > pt_min) & (np.abs(e) < eta_max)
    return p, e, f, off, cat, np.ascontiguousarray(fit)


def rebalance(
    pt, eta, phi, offsets, n_bjets,
    templates: JetResponseTemplates,
    priors: RebalancePriors,
    *,
    max_rebalanced_mht: float = RS_MAX_REBALANCED_MHT,
    reject_quantile: float = RS_REJECT_PRIOR_QUANTILE,
    pt_min: float = OBJECT_CUTS.jet_pt_rs,
    eta_max: float = RS_JET_ETA_MAX,
    max_iter: int = RS_FIT_MAX_ITER,
    gtol: float = RS_FIT_GTOL,
    ftol: float = RS_FIT_FTOL,
    memory: int = RS_FIT_MEMORY,
) -> RebalanceResult:
    """Rebalance seed events: maximize the posterior of seed 004 eq. 2.9 over the jet scale factors.

    For every event the jets with pT > ``pt_min`` and |eta| < ``eta_max`` are fitted (the others
    are passed through unchanged and do not enter the hard MHT). The posterior is

        prod_i p_r(1/c_i; c_i pT_i, |eta_i|) / (c_i pT_i) * P(MHT_reb; nb) * P(dphi | MHT_reb; nb)

    with MHT_reb = |-sum_i c_i pT_i| (eq. 2.6 at the R&S threshold), dphi the angle between it
    and the leading seed jet, the response pdf interpolated linearly in pT (sec. 2.5) and
    cubically in the response. It is maximized by a projected L-BFGS in x_i = log c_i within the
    template's response range, started from eq. 2.10 (:func:`_initial_log_scales`). Events
    with fewer than two fitted jets or non-finite jet inputs are not fitted (status codes);
    jets outside the template's pT or |eta| range use the edge bins and are counted.
    Leptons and photons are not touched (seed sec. 2.6): the caller keeps them.

    Parameters
    ----------
    pt, eta, phi : array_like
        Flat reco jets (GeV, rad) of the seed events.
    offsets : array_like of int
        Event offsets into the flat jets (length n_events + 1).
    n_bjets : array_like of int
        b-tagged jets per event (prior category 0, 1, >= 2).
    templates, priors : JetResponseTemplates, RebalancePriors
    max_rebalanced_mht, reject_quantile : float
        Events whose rebalanced hard MHT (GeV) stays above max(``max_rebalanced_mht``, the
        ``reject_quantile`` of the true hard MHT prior at the event's H_T and b-jet count) are
        dropped (``keep`` False; seed 004 sec. 2.5 uses a fixed 100 GeV, which at multi-TeV H_T
        would drop ordinary QCD seeds whose imbalance comes from the jet directions).

    Returns
    -------
    RebalanceResult
    """
    p, e, f, off, cat, fit = _fit_inputs(pt, eta, phi, offsets, n_bjets, priors, pt_min, eta_max)
    lo, hi = _scale_bounds(templates)
    init = np.array([RS_INIT_MHT_MIN, RS_INIT_MHT_MAX, RS_INIT_HT_FRACTION,
                     RS_INIT_MAX_RESPONSE_SHIFT])
    scale, mht, mphi, status, n_iter, nll, counts = _rebalance_kernel(
        p, e, f, off, fit, cat, templates.eta_edges, float(templates.pt_edges[0]),
        float(templates.pt_edges[-1]), _kernel_tabs(templates, priors), lo, hi, int(max_iter),
        float(gtol), float(ftol), int(memory), init,
    )
    converged = status == STATUS_CONVERGED
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    ht = np.bincount(ev[fit], p[fit], off.size - 1)
    threshold = priors.rejection_threshold(ht, cat, reject_quantile, max_rebalanced_mht)
    with np.errstate(invalid="ignore"):
        small = mht <= threshold
    keep = converged & small
    summary = {
        "events": int(status.size),
        "converged": int(converged.sum()),
        "max_iter": int((status == STATUS_MAX_ITER).sum()),
        "line_search_failed": int((status == STATUS_LINE_SEARCH_FAILED).sum()),
        "too_few_jets": int((status == STATUS_TOO_FEW_JETS).sum()),
        "nan_input": int((status == STATUS_NAN_INPUT).sum()),
        "mht_too_large": int((converged & ~small).sum()),
        "kept": int(keep.sum()),
        "jets_fitted": int(fit.sum()),
        "jets_pt_below_template": int(counts[0]),
        "jets_pt_above_template": int(counts[1]),
        "jets_eta_beyond_template": int(counts[2]),
        "jets_at_scale_bound": int(counts[3]),
    }
    return RebalanceResult(p * scale, scale, mht, mphi, status, n_iter, nll, keep, summary)


def neg_log_posterior(
    log_scale, pt, phi, abseta, n_bjets: int,
    templates: JetResponseTemplates, priors: RebalancePriors,
) -> tuple[float, np.ndarray]:
    """-log posterior (seed 004 eq. 2.9) of one event and its gradient in x = log c.

    ``pt``, ``phi``, ``abseta`` are the fitted jets of the event (leading jet = highest pT);
    for validation and the per-event reference implementation :func:`rebalance_scipy`.
    """
    x = _as_f8("log_scale", log_scale).copy()
    p = _as_f8("pt", pt)
    ph = _as_f8("phi", phi)
    etab = np.clip(np.searchsorted(templates.eta_edges, np.abs(_as_f8("abseta", abseta)),
                                   side="right") - 1, 0, templates.eta_edges.size - 2)
    grad = np.empty_like(x)
    cat = min(int(n_bjets), priors.n_bjet_categories - 1)
    val = _objective(x, p, p * np.cos(ph), p * np.sin(ph), etab.astype(np.int64),
                     int(np.argmax(p)), cat, _kernel_tabs(templates, priors), grad)
    return float(val), grad


def rebalance_scipy(
    pt, eta, phi, offsets, n_bjets,
    templates: JetResponseTemplates,
    priors: RebalancePriors,
    *,
    pt_min: float = OBJECT_CUTS.jet_pt_rs,
    eta_max: float = RS_JET_ETA_MAX,
) -> dict[str, np.ndarray]:
    """Reference: the same posterior maximized per event by ``scipy.optimize.minimize``
    (L-BFGS-B, analytic gradient, same bounds and eq. 2.10 start). Slow (Python per event);
    for validation and the benchmark only.

    Returns a dict with per-jet ``scale`` and per-event ``neg_log_posterior``, ``success``.
    """
    from scipy.optimize import minimize

    p, e, f, off, cat, fit = _fit_inputs(pt, eta, phi, offsets, n_bjets, priors, pt_min, eta_max)
    lo, hi = _scale_bounds(templates)
    tabs = _kernel_tabs(templates, priors)
    scale = np.ones_like(p)
    nll = np.full(off.size - 1, np.nan)
    success = np.zeros(off.size - 1, dtype=bool)
    etab_all = np.clip(np.searchsorted(templates.eta_edges, np.abs(e), side="right") - 1, 0,
                       templates.eta_edges.size - 2).astype(np.int64)
    for ev in range(off.size - 1):
        idx = np.arange(off[ev], off[ev + 1])[fit[off[ev]:off[ev + 1]]]
        sl = slice(off[ev], off[ev + 1])
        if idx.size < 2 or not np.all(np.isfinite(np.r_[p[sl], e[sl], f[sl]])):
            continue
        pj = p[idx]
        px = pj * np.cos(f[idx])
        py = pj * np.sin(f[idx])
        lead = int(np.argmax(pj))
        eb = etab_all[idx]
        grad = np.empty(idx.size)

        def fun(x, pj=pj, px=px, py=py, lead=lead, eb=eb, c=int(cat[ev]), grad=grad):
            val = _objective(np.ascontiguousarray(x), pj, px, py, eb, lead, c, tabs, grad)
            return val, grad.copy()

        starts = _initial_log_scales(pj, px, py, lo, hi, RS_INIT_MHT_MIN, RS_INIT_MHT_MAX,
                                     RS_INIT_HT_FRACTION, RS_INIT_MAX_RESPONSE_SHIFT)
        best = None
        for x0 in starts:
            res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=[(lo, hi)] * idx.size)
            if best is None or (res.success and (not best.success or res.fun < best.fun)):
                best = res
        scale[idx] = np.exp(best.x)
        nll[ev] = best.fun
        success[ev] = bool(best.success)
    return {"scale": scale, "neg_log_posterior": nll, "success": success}


# =========================================================================================
# Smear (seed 004 sec. 2, 2.2)
# =========================================================================================
@dataclass(frozen=True, eq=False)
class SmearResult:
    """Output of :func:`smear`: the prediction sample, flat jets plus per-smeared-event arrays.

    Attributes
    ----------
    pt, eta, phi : ndarray
        Smeared jets (GeV, rad); eta and phi are the rebalanced (= seed) ones (eq. 2.1).
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
    sampled exactly as the mixture of the two neighbouring pT bins. Random numbers come from a
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
    out_pt, src = _smear_kernel(p, off, ae, sel.astype(np.int64), out_off, n_smear, keys,
                                np.ascontiguousarray(templates.cdf[rows]), nodes,
                                templates.eta_edges, templates.response_edges)
    eta_flat = _as_f8("eta", eta)
    return SmearResult(
        pt=out_pt, eta=eta_flat[src], phi=ph[src], offsets=out_off,
        event_index=np.repeat(sel, n_smear).astype(np.int64),
        replica=np.tile(np.arange(n_smear, dtype=np.int32), sel.size),
        weight=np.repeat(ew[sel] / n_smear, n_smear),
    )


# =========================================================================================
# Bootstrap (seed 004 sec. 2.2 and sec. 4 item 1)
# =========================================================================================
def bootstrap_weights(
    seed: int, file_id: str | bytes | int, entry, n_bootstrap: int = RS_N_BOOTSTRAP
) -> np.ndarray:
    """Poisson(1) weight of each seed event in each bootstrap replica, shape (n_events, n_boot).

    Reproducible from (seed, file key, entry), independent of chunking and of the smearing
    stream. A weight k means the seed event enters the replica k times; its expectation is 1,
    so each replica is already normalized to the full seed sample (the ratio of sample sizes of
    seed 004 sec. 2.2 averages to 1). Multiply the smeared events' weights by the column of
    their seed event (``weights[SmearResult.event_index, b]``).
    """
    if int(n_bootstrap) < 2:
        raise ConfigError(f"n_bootstrap must be >= 2 for a spread, got {n_bootstrap}")
    ent = np.ascontiguousarray(np.asarray(entry, dtype=np.int64))
    if ent.ndim != 1 or np.any(ent < 0):
        raise ConfigError(f"entry must be a 1-d array of non-negative entries, got {ent.shape}")
    keys = _event_keys(np.uint64(int(seed) & _MASK64), np.uint64(file_key(file_id)),
                       _STREAM_BOOTSTRAP, ent)
    return _bootstrap_kernel(keys, int(n_bootstrap))


def bootstrap_histograms(values, weight, boot_weights, edges) -> np.ndarray:
    """Histograms of ``values`` for every bootstrap replica, shape (n_boot, n_bins).

    ``boot_weights`` is (n_values, n_boot): the bootstrap weights of each value's seed event
    (``bootstrap_weights(...)[smeared.event_index]``); ``weight`` the nominal weights.
    Overflow is not included.
    """
    v = _as_f8("values", values)
    w = np.broadcast_to(_as_f8("weight", weight), v.shape)
    bw = np.asarray(boot_weights, dtype=np.float64)
    if bw.ndim != 2 or bw.shape[0] != v.size:
        raise ConfigError(f"boot_weights must be (n_values={v.size}, n_boot), got {bw.shape}")
    e = _check_edges("edges", edges)
    return np.stack([np.histogram(v, bins=e, weights=w * bw[:, b])[0] for b in range(bw.shape[1])])


def bootstrap_mean_std(replica_hists) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation (ddof=1) over bootstrap replicas (axis 0).

    The standard deviation is the statistical uncertainty of the prediction (seed 004 sec. 4).
    """
    h = np.asarray(replica_hists, dtype=np.float64)
    if h.ndim < 1 or h.shape[0] < 2:
        raise ConfigError(f"need >= 2 bootstrap replicas along axis 0, got shape {h.shape}")
    return h.mean(axis=0), h.std(axis=0, ddof=1)
