"""The posterior of seed 004 eq. 2.9 in x_i = log c_i, its projected L-BFGS maximization
and the starting points of eq. 2.10 (numba kernels, one event per call)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from analysis.rs.tables import _log_table

#: fit status codes, per event (:attr:`analysis.rs.fit.RebalanceResult.status`)
STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_LINE_SEARCH_FAILED = 2
STATUS_TOO_FEW_JETS = 3
STATUS_NAN_INPUT = 4
#: a fit that improves -log posterior by less than STALL_FTOL (relative) over STALL_WINDOW
#: iterations has converged to the resolution of the tables
STALL_WINDOW = 25
STALL_FTOL = 1.0e-8


@nb.njit(cache=True)
def _objective(x, pt, px, py, etab, lead, nbcat, tabs, grad, sphi):
    """-log posterior (eq. 2.9) of one event and its gradient, x_i = log c_i (i < n) and, when
    the jet directions are fitted (``sphi`` holds one resolution per jet), x_{n+i} = z_i, the
    shift of jet i's azimuth a_i = z_i sphi_i in units of its resolution (so that every
    parameter has a curvature of order one).

    Likelihood term per jet: the density of pT_reco given pT_true = c pT_reco,
    P(pT_reco | pT_true) = p_r(1/c; pT_true, |eta|) / pT_true, times, with directions, the
    Gaussian density of the measured azimuth, N(a_i; 0, sphi_i). Prior: P(hard MHT; H_T, nb)
    times P(DeltaPhi(hard MHT, leading jet) | hard MHT; nb); the ur-prior pi_0 is flat
    (eq. 2.5). H_T is the seed's scalar sum of the fitted jets (a fixed conditioning variable).
    """
    (resp, resp_rc, r_c0, r_w, resp_floor, mht_tab, mht_rc, m_c0, m_w, mht_floor,
     dphi_tab, dphi_rc, d_c0, d_w, dphi_floor) = tabs
    n = pt.shape[0]
    fit_dir = sphi.shape[0] > 0
    ux = np.empty(n)
    uy = np.empty(n)
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
        if fit_dir:
            z = x[n + i]
            a = z * sphi[i]
            ca = math.cos(a)
            sa = math.sin(a)
            ux[i] = px[i] * ca - py[i] * sa
            uy[i] = px[i] * sa + py[i] * ca
            f += 0.5 * z * z
            grad[n + i] = z
        else:
            ux[i] = px[i]
            uy[i] = py[i]
        mx -= c * ux[i]
        my -= c * uy[i]
    m = math.sqrt(mx * mx + my * my)
    # hard-MHT prior by H_T (rows), continued beyond its range: clamping there would make the
    # prior flat, without gradient, and events starting above the range would stay unbalanced
    lm, dlm, _ = _log_table(mht_tab, nbcat, mht_rc, m_c0, m_w, mht_floor, ht, m, True)
    f -= lm
    if m > 1e-9:
        cl = ux[lead] / pt[lead]
        sl = uy[lead] / pt[lead]
        d = math.atan2((my * cl - mx * sl) / m, (mx * cl + my * sl) / m)
        sgn = 1.0 if d >= 0.0 else -1.0
        ld, dld_u, dld_v = _log_table(dphi_tab, nbcat, dphi_rc, d_c0, d_w, dphi_floor, m, abs(d))
        f -= ld
        inv_m = 1.0 / m
        for i in range(n):
            c = math.exp(x[i])
            dmx = -c * ux[i]
            dmy = -c * uy[i]
            dm = (mx * dmx + my * dmy) * inv_m
            dphi = (mx * dmy - my * dmx) * inv_m * inv_m
            grad[i] -= dlm * dm + dld_u * sgn * dphi + dld_v * dm
            if fit_dir:
                # d/dz_i = sphi_i d/da_i: the jet vector turns, (ux, uy) -> (-uy, ux);
                # d = phi(MHT) - phi(lead)
                dmx = c * uy[i] * sphi[i]
                dmy = -c * ux[i] * sphi[i]
                dm = (mx * dmx + my * dmy) * inv_m
                dphi = (mx * dmy - my * dmx) * inv_m * inv_m
                if i == lead:
                    dphi -= sphi[i]
                grad[n + i] -= dlm * dm + dld_u * sgn * dphi + dld_v * dm
    else:
        ld, _, _ = _log_table(dphi_tab, nbcat, dphi_rc, d_c0, d_w, dphi_floor, 0.0, 0.5 * math.pi)
        f -= ld
    return f


@nb.njit(cache=True)
def _lbfgs(x, lo, hi, pt, px, py, etab, lead, nbcat, tabs, max_iter, gtol, ftol, m_mem, sphi):
    """Projected L-BFGS with Armijo backtracking on the box [lo_i, hi_i]; x updated in place.

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
    f = _objective(x, pt, px, py, etab, lead, nbcat, tabs, g, sphi)
    k = 0
    f_window = f
    for it in range(max_iter):
        # stalled: no relative progress above STALL_FTOL over STALL_WINDOW iterations (the
        # gradient of the interpolated tables jumps at their nodes, so near a node the
        # projected gradient need not fall below gtol; the posterior is stationary there)
        if it > 0 and it % STALL_WINDOW == 0:
            if f_window - f <= STALL_FTOL * max(1.0, abs(f)):
                return STATUS_CONVERGED, it, f
            f_window = f
        pgmax = 0.0
        for i in range(n):
            if (x[i] <= lo[i] and g[i] > 0.0) or (x[i] >= hi[i] and g[i] < 0.0):
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
                xn[i] = lo[i] if xi < lo[i] else (hi[i] if xi > hi[i] else xi)
                dec += g[i] * (xn[i] - x[i])
            fn = _objective(xn, pt, px, py, etab, lead, nbcat, tabs, gn, sphi)
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
    # a stable insertion sort of the few jets (np.argsort's compiled quicksort cost ~4 s of
    # compilation; numba's quicksort sorts fewer than 16 elements by insertion too)
    order = np.arange(n)
    for i in range(1, n):
        v = order[i]
        j = i
        while j > 0 and key[v] < key[order[j - 1]]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = v
    for s in range(n_ok):
        starts[s, order[s]] = cand[order[s]]
    return starts
