"""Event kinematics of the smuon search: M_T2, M_CT, anti-kt reclustering into wide jets
(docs/smuon.md sec. 3; seed 002 sec. II).

All kernels are numba-compiled and take flat numpy arrays (one value per event, or a
collection's flat values with its offsets); nothing loops over events in Python.

* :func:`mt2` -- the stransverse mass (Lester and Summers, hep-ph/9906349; Barr, Lester,
  Stephens, hep-ph/0304226): ``M_T2 = min over q1 + q2 = p_T^miss of max(M_T(v1, q1),
  M_T(v2, q2))``. Each ``M_T^2(v, q) = m_v^2 + m_chi^2 + 2 (E_T(v) E_T(q) - p_T(v) . q)`` is
  convex in ``q`` (``E_T(q) = sqrt(m_chi^2 + q^2)`` is), so their maximum is convex and its
  minimum over the plane is found by nested golden-section searches: the minimum over
  ``q_y`` at fixed ``q_x`` is a convex function of ``q_x``. Each coordinate is searched
  over the whole line through ``q = c + s tan(pi xi / 2)``, xi in (-1, 1) (a monotone map
  keeps a convex function unimodal), since with near-massless visibles the minimum can lie
  far out; the unbalanced solutions ``m_v + m_chi`` are tested first, in closed form. Checked against the
  bisection algorithm of Lester and Nachman (1411.4312, the ``mt2`` package) and the known
  analytic cases in tests/test_smuon_kinematics.py.
* :func:`mct` -- the contransverse mass (Tovey, 0802.2879):
  ``M_CT^2 = (E_T(v1) + E_T(v2))^2 - |p_T(v1) - p_T(v2)|^2``.
* :func:`antikt_recluster` -- anti-kt clustering (Cacciari, Salam, Soyez, 0802.1189) of the
  jets of each event into jets of radius R, E-scheme recombination, distances in rapidity and
  azimuth as FastJet (checked against it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: golden-section iterations per dimension: the bracket shrinks by 0.618^N (N = 40: 4e-9; M_T2 to ~1e-5 GeV)
GOLDEN_ITERATIONS = 40
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@njit(cache=True)
def _mt_squared(m, px, py, qx, qy, m_chi):
    et = math.sqrt(m * m + px * px + py * py)
    eq = math.sqrt(m_chi * m_chi + qx * qx + qy * qy)
    return m * m + m_chi * m_chi + 2.0 * (et * eq - px * qx - py * qy)


@njit(cache=True)
def _objective(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, qx, qy):
    a = _mt_squared(m1, p1x, p1y, qx, qy, m_chi)
    b = _mt_squared(m2, p2x, p2y, mx - qx, my - qy, m_chi)
    return a if a > b else b


@njit(cache=True)
def _coordinate(centre, scale, xi):
    """The plane's coordinate of the compact one xi in (-1, 1): centre + scale tan(pi xi / 2)."""
    return centre + scale * math.tan(0.5 * math.pi * xi)


@njit(cache=True)
def _inner(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, qx, cy, scale, iterations):
    """min over qy of the objective at fixed qx: golden section over eta in (-1, 1),
    qy = cy + scale tan(pi eta / 2) (a monotone map keeps the convex function unimodal)."""
    a, b = -1.0, 1.0
    c = b - _INV_PHI * (b - a)
    d = a + _INV_PHI * (b - a)
    fc = _objective(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, qx, _coordinate(cy, scale, c))
    fd = _objective(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, qx, _coordinate(cy, scale, d))
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _INV_PHI * (b - a)
            fc = _objective(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, qx, _coordinate(cy, scale, c))
        else:
            a, c, fc = c, d, fd
            d = a + _INV_PHI * (b - a)
            fd = _objective(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, qx, _coordinate(cy, scale, d))
    return fc if fc < fd else fd


@njit(cache=True)
def _unbalanced(ma, pax, pay, mb, pbx, pby, mx, my, m_chi):
    """M_T2^2 if the minimum is side a's own minimum (m_a + m_chi)^2, at q_a = m_chi p_a / m_a
    (q_a = 0 for m_chi = 0), where side b's M_T^2 is not larger; else -1."""
    if ma <= 0.0:
        return -1.0
    qx, qy = m_chi * pax / ma, m_chi * pay / ma
    if _mt_squared(mb, pbx, pby, mx - qx, my - qy, m_chi) <= (ma + m_chi) ** 2:
        return (ma + m_chi) ** 2
    return -1.0


@njit(cache=True)
def _mt2_one(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, iterations):
    # the unbalanced solutions first (their minimum may lie far out, at m_chi p / m)
    for best in (_unbalanced(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi),
                 _unbalanced(m2, p2x, p2y, m1, p1x, p1y, mx, my, m_chi)):
        if best >= 0.0:
            return math.sqrt(best)
    # the balanced minimum: golden section over xi in (-1, 1), qx = cx + scale tan(pi xi / 2),
    # the whole plane (with massless visibles the minimum may lie far out along p_T(v))
    scale = math.hypot(mx, my) + math.hypot(p1x, p1y) + math.hypot(p2x, p2y) + m_chi + 1.0
    cx, cy = 0.5 * mx, 0.5 * my
    a, b = -1.0, 1.0
    c = b - _INV_PHI * (b - a)
    d = a + _INV_PHI * (b - a)
    fc = _inner(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, _coordinate(cx, scale, c), cy, scale, iterations)
    fd = _inner(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, _coordinate(cx, scale, d), cy, scale, iterations)
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _INV_PHI * (b - a)
            fc = _inner(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, _coordinate(cx, scale, c), cy, scale, iterations)
        else:
            a, c, fc = c, d, fd
            d = a + _INV_PHI * (b - a)
            fd = _inner(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, _coordinate(cx, scale, d), cy, scale, iterations)
    best = fc if fc < fd else fd
    return math.sqrt(best) if best > 0.0 else 0.0


@njit(cache=True)
def _mt2_kernel(m1, p1x, p1y, m2, p2x, p2y, mx, my, m_chi, iterations, out):
    for i in range(out.size):
        out[i] = _mt2_one(m1[i], p1x[i], p1y[i], m2[i], p2x[i], p2y[i], mx[i], my[i], m_chi, iterations)


def mt2(m1, px1, py1, m2, px2, py2, met_x, met_y, m_invisible: float = 0.0,
        iterations: int = GOLDEN_ITERATIONS) -> np.ndarray:
    """M_T2 (GeV) of two visible systems (masses and transverse momenta) and p_T^miss, for
    invisible particles of mass ``m_invisible`` on both sides; arrays of one value per event
    (module docstring; seed 002 sec. II, its refs. [19, 20])."""
    arrays = [np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float64), np.shape(px1)))
              for a in (m1, px1, py1, m2, px2, py2, met_x, met_y)]
    out = np.empty(arrays[1].shape, np.float64)
    _mt2_kernel(*(a.reshape(-1) for a in arrays), float(m_invisible), int(iterations), out.reshape(-1))
    return out


def mct(m1, px1, py1, m2, px2, py2) -> np.ndarray:
    """Contransverse mass M_CT (GeV): sqrt((E_T1 + E_T2)^2 - |p_T1 - p_T2|^2) (Tovey, 0802.2879)."""
    m1, px1, py1, m2, px2, py2 = (np.asarray(a, np.float64) for a in (m1, px1, py1, m2, px2, py2))
    et1, et2 = np.sqrt(m1**2 + px1**2 + py1**2), np.sqrt(m2**2 + px2**2 + py2**2)
    sq = (et1 + et2) ** 2 - (px1 - px2) ** 2 - (py1 - py2) ** 2
    return np.sqrt(np.maximum(sq, 0.0))


# --- anti-kt reclustering ----------------------------------------------------------------------
@njit(cache=True)
def _rapidity_phi(px, py, pz, e):
    pt2 = px * px + py * py
    phi = math.atan2(py, px) if pt2 > 0.0 else 0.0
    if e <= abs(pz):
        y = 1e5 if pz > 0 else -1e5
    else:
        y = 0.5 * math.log((e + pz) / (e - pz))
    return y, phi


@njit(cache=True)
def _antikt_event(px, py, pz, e, r2, out_px, out_py, out_pz, out_e):
    """Cluster n pseudojets (arrays modified in place); the final jets go to out_*; returns
    their number."""
    n = px.size
    alive = np.ones(n, np.bool_)
    y = np.empty(n)
    ph = np.empty(n)
    kt2 = np.empty(n)
    for i in range(n):
        y[i], ph[i] = _rapidity_phi(px[i], py[i], pz[i], e[i])
        kt2[i] = px[i] * px[i] + py[i] * py[i]
    n_out = 0
    remaining = n
    while remaining > 0:
        best = np.inf
        bi, bj = -1, -1
        for i in range(n):
            if not alive[i]:
                continue
            inv_i = 1.0 / kt2[i] if kt2[i] > 0 else np.inf
            if inv_i < best:
                best, bi, bj = inv_i, i, -1
            for j in range(i + 1, n):
                if not alive[j]:
                    continue
                inv_j = 1.0 / kt2[j] if kt2[j] > 0 else np.inf
                dphi = abs(ph[i] - ph[j])
                if dphi > math.pi:
                    dphi = 2.0 * math.pi - dphi
                dr2 = (y[i] - y[j]) ** 2 + dphi * dphi
                dij = min(inv_i, inv_j) * dr2 / r2
                if dij < best:
                    best, bi, bj = dij, i, j
        if bj < 0:  # i becomes a jet
            out_px[n_out], out_py[n_out], out_pz[n_out], out_e[n_out] = px[bi], py[bi], pz[bi], e[bi]
            n_out += 1
            alive[bi] = False
        else:  # merge j into i (E scheme)
            px[bi] += px[bj]
            py[bi] += py[bj]
            pz[bi] += pz[bj]
            e[bi] += e[bj]
            alive[bj] = False
            y[bi], ph[bi] = _rapidity_phi(px[bi], py[bi], pz[bi], e[bi])
            kt2[bi] = px[bi] * px[bi] + py[bi] * py[bi]
        remaining -= 1
    return n_out


@njit(cache=True)
def _antikt_kernel(offsets, px, py, pz, e, r2, out_px, out_py, out_pz, out_e, counts):
    k = 0
    for ev in range(offsets.size - 1):
        a, b = offsets[ev], offsets[ev + 1]
        n = _antikt_event(px[a:b].copy(), py[a:b].copy(), pz[a:b].copy(), e[a:b].copy(), r2,
                          out_px[k:], out_py[k:], out_pz[k:], out_e[k:])
        counts[ev] = n
        k += n
    return k


def antikt_recluster(offsets: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray,
                     radius: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Anti-kt jets of radius ``radius`` built from the objects of each event (flat pt, eta, phi,
    mass with the collection's ``offsets``). Returns (counts per event, flat fields pt, eta, phi,
    mass of the jets), pT-ordered within each event."""
    pt, eta, phi, mass = (np.asarray(a, np.float64) for a in (pt, eta, phi, mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    n = pt.size
    out = [np.empty(n) for _ in range(4)]
    counts = np.zeros(offsets.size - 1, np.int64)
    k = _antikt_kernel(np.asarray(offsets, np.int64), px, py, pz, e, float(radius) ** 2, *out, counts)
    opx, opy, opz, oe = (a[:k] for a in out)
    opt = np.hypot(opx, opy)
    with np.errstate(divide="ignore", invalid="ignore"):
        oeta = np.where(opt > 0, np.arcsinh(opz / np.where(opt > 0, opt, 1.0)), 0.0)
    omass = np.sqrt(np.maximum(oe**2 - opx**2 - opy**2 - opz**2, 0.0))
    fields = {"pt": opt, "eta": oeta, "phi": np.arctan2(opy, opx), "mass": omass}
    # pT order within events
    ev = np.repeat(np.arange(counts.size), counts)
    order = np.lexsort((-opt, ev))
    return counts, {k2: v[order] for k2, v in fields.items()}
