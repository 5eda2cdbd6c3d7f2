"""Point of closest approach in 3D of track helices to points: the iterative solve.

Implements docs/physics.md sec. 3 (thesis sec. 3.1, "Helix Extrapolation", eq. 3.1) on flat
float64 arrays with numba; a thin awkward wrapper flattens and restores the jagged layout.

Helix convention
----------------
Exactly the one of :mod:`analysis.contract`: a track of charge q, transverse momentum pT,
azimuth phi0 and dip angle lambda (tan(lambda) = sinh(eta)) at its reference point
(x0, y0, z0) is

    x(t) = x0 + R (sin(phi0) - sin(phi0 - t))
    y(t) = y0 + R (cos(phi0 - t) - cos(phi0))
    z(t) = z0 + R tan(lambda) t,          R = pT R1 / q  (signed; R1 = 87.78 cm at 3.8 T)

and the momentum azimuth along it is phi(t) = phi0 - t. The particle moves forward for
t > 0 if q > 0 and for t < 0 if q < 0. The signed transverse arc length from the reference
point is s = R t. Closest approaches are searched over one turn, t in [-pi, pi]: the whole
circle in the transverse plane, on the turn that contains the reference point.

Conventions of this module
--------------------------
* Separation vector Delta = P(t_min) - V: helix point minus vertex (cm).
* ``ip3d = |Delta|``, ``ipxy = |Delta_xy|``, ``ipz = |Delta_z|`` (all >= 0).
* ``ipz_signed = z_track(t_min) - z_vertex``.
* ``ipxy_signed = n(t_min) . Delta`` with n = (-sin phi(t_min), cos phi(t_min), 0), the
  transverse normal of the track at the closest point. Positive when the vertex lies to
  the right of the track seen along its momentum. It is the sign of the contract's d0 and
  of CMS ``reco::Track::dxy(vertex)``: for a vertex at the origin and lambda = 0 it equals d0.
  At the 3D closest point Delta_xy has also a component along the track,
  -tan(lambda) Delta_z, so |ipxy_signed| <= ipxy, with equality when lambda = 0 or
  Delta_z = 0. ``ipxy_signed`` and ``ipz_signed`` are linear in the parameter errors and
  are the quantities whose pulls are Gaussian.

Degenerate inputs
-----------------
* NaN in any input, or an infinite pT, phi, charge, reference point or vertex: NaN out
  (all outputs of that pair are NaN; the matching then never matches that pair).
* |eta| is clipped at :data:`ETA_CLIP` (tan(lambda) ~ 2.6e21): the helix is then a line
  parallel to the beam at double precision; eta = +-inf is thus allowed.
* pT below :data:`PT_FLOOR_GEV` (including 0 and negative values) is raised to it: the
  helix shrinks to a circle of radius < 1e-7 cm around the reference point.
* charge 0: a straight line through the reference point along the momentum; the closest
  point is the exact line solution, ``t = 0`` and ``s`` is the signed transverse path.
* Exactly equal minima (e.g. a vertex on the axis of a circle with lambda = 0): t = 0 is
  preferred, then the candidate found first (ends of the turn, break points, roots).
"""

from __future__ import annotations

from typing import NamedTuple

import awkward as ak
import numba as nb
import numpy as np

from analysis.columnar import flat
from analysis.constants import BFIELD_TESLA

from ._arrays import _as_flat
from ._math import (
    _PI,
    PT_FLOOR_GEV,
    _atan2,
    _sincos,
    _tan_lambda,
    _wrap_angle,
    radius_constant_cm,
)

# --- Numerical settings -----------------------------------------------------------------
#: maximal safeguarded-Newton iterations per root (bisection alone needs ~55)
NEWTON_MAX_ITER = 100
#: a Newton step in t below this (rad) ends the iteration: the error left is ~ its square
NEWTON_STEP_CONVERGED = 1.0e-9
#: a bracket in t narrower than this (rad) ends the iteration
T_TOLERANCE = 1.0e-13


@nb.njit(cache=True)  # a call, which LLVM inlines: numba's own inlining of its 7 uses cost 1.6 s of compilation
def _separation(t, sp, cp, radius, k, ux, uy, ez):
    """Delta(t) = P(t) - V and the first two derivatives of g = |Delta|^2 / 2 w.r.t. t.

    (sp, cp) = sin, cos of psi = phi0 - t; (ux, uy) = circle centre - vertex; ez = z0 - vz.
    P_xy(t) = centre + R (-sin psi, cos psi); the absolute rounding is ~1e-16 (|R| + |u|).
    """
    dx = ux - radius * sp
    dy = uy + radius * cp
    dz = ez + k * t
    g1 = radius * (dx * cp + dy * sp) + k * dz
    g2 = radius * radius + k * k + radius * (dx * sp - dy * cp)
    return dx, dy, dz, g1, g2


@nb.njit(cache=True)
def _solve_root(lo, hi, glo, ghi, t, sp, cp, phi0, radius, k, ux, uy, ez):
    """Root of g'(t) in (lo, hi), where g' increases from glo < 0 to ghi > 0 (rtsafe).

    Starts at t (with sp, cp of phi0 - t) if inside the bracket, else at the regula-falsi
    point; Newton steps that leave the bracket are replaced by bisection.
    """
    if not (lo < t < hi):
        t = lo - glo * (hi - lo) / (ghi - glo)
        if not (lo < t < hi):
            t = 0.5 * (lo + hi)
        sp, cp = _sincos(phi0 - t)
    for _ in range(NEWTON_MAX_ITER):
        _, _, _, g1, g2 = _separation(t, sp, cp, radius, k, ux, uy, ez)
        if g1 == 0.0:
            break
        if g1 < 0.0:
            lo = t
        else:
            hi = t
        tn = t - g1 / g2 if g2 > 0.0 else lo
        newton = lo < tn < hi
        if not newton:
            tn = 0.5 * (lo + hi)
        step = tn - t
        t = tn
        sp, cp = _sincos(phi0 - t)
        # quadratic convergence: after a Newton step of size d the error is ~d^2
        if (newton and abs(step) <= NEWTON_STEP_CONVERGED) or hi - lo <= T_TOLERANCE:
            break
    return t, sp, cp


@nb.njit(cache=True)
def _closest_t(radius, k, phi0, s0, c0, ex, ey, ez):
    """Global minimum over t in [-pi, pi] of g(t) = |Delta(t)|^2 / 2, charged helix.

    g''(t) = k^2 + R rho sin(phi0 - t - beta), with (rho, beta) the polar coordinates of
    (circle centre - vertex), changes sign at most twice per turn, at analytically known
    break points. Between them g' is monotonic, so each piece holds at most one minimum:
    it is bracketed exactly and solved by safeguarded Newton, unless the tangents at the
    ends of the (convex) piece already bound g above the best candidate. The candidates
    (t = 0, the ends of the turn, the break points, the roots) are compared by g.

    Returns (t, sin(phi0 - t), cos(phi0 - t), stationary); stationary is False for a
    minimum at an end of the turn or at a break point.
    """
    ux = ex + radius * s0
    uy = ey - radius * c0
    rho = np.sqrt(ux * ux + uy * uy)
    a = radius * rho
    k2 = k * k
    if rho > 0.0:
        sb = uy / rho
        cb = ux / rho
        beta = _atan2(uy, ux)
    else:
        sb = 0.0
        cb = 1.0
        beta = 0.0
    sgn = 1.0 if radius > 0.0 else -1.0
    # transverse closest point: psi = beta + sgn pi/2, the centre of the convex arc
    t2d = _wrap_angle(phi0 - beta - sgn * 0.5 * _PI)
    s2d = sgn * cb
    c2d = -sgn * sb

    # candidate t = 0 first: exact ties prefer the reference point
    best_g = 0.5 * (ex * ex + ey * ey + ez * ez)
    best_t = 0.0
    best_s = s0
    best_c = c0
    best_stat = radius * (ex * c0 + ey * s0) + k * ez == 0.0

    # ends of the turn t = -pi, +pi: psi = phi0 +- pi, same transverse point
    dxa = ux + radius * s0
    dya = uy - radius * c0
    dza = ez - k * _PI
    dzb = ez + k * _PI
    g1a = -radius * (dxa * c0 + dya * s0) + k * dza
    g1b = g1a + 2.0 * _PI * k2
    ga = 0.5 * (dxa * dxa + dya * dya + dza * dza)
    gb = 0.5 * (dxa * dxa + dya * dya + dzb * dzb)
    if ga < best_g:
        best_g, best_t, best_s, best_c, best_stat = ga, -_PI, -s0, -c0, False
    if gb < best_g:
        best_g, best_t, best_s, best_c, best_stat = gb, _PI, -s0, -c0, False

    if not k2 < abs(a):
        # g convex over the whole turn
        if g1a < 0.0 < g1b:
            tr, sr, cr = _solve_root(-_PI, _PI, g1a, g1b, t2d, s2d, c2d, phi0, radius, k,
                                     ux, uy, ez)  # fmt: skip
            dx, dy, dz, _, _ = _separation(tr, sr, cr, radius, k, ux, uy, ez)
            gr = 0.5 * (dx * dx + dy * dy + dz * dz)
            if gr < best_g:
                best_g, best_t, best_s, best_c, best_stat = gr, tr, sr, cr, True
        return best_t, best_s, best_c, best_stat

    # break points: psi = beta + asin(m) and beta + pi - asin(m), m = -k^2 / (R rho)
    sm = -k2 / a
    cmm = np.sqrt(1.0 - sm * sm)
    asm = _atan2(sm, cmm)
    b1 = _wrap_angle(phi0 - beta - asm)
    s1 = sb * cmm + cb * sm
    c1 = cb * cmm - sb * sm
    b2 = _wrap_angle(phi0 - beta - _PI + asm)
    s2 = -(sb * cmm - cb * sm)
    c2 = -(cb * cmm + sb * sm)
    if b1 > b2:
        b1, b2 = b2, b1
        s1, s2 = s2, s1
        c1, c2 = c2, c1
    dx, dy, dz, g11, _ = _separation(b1, s1, c1, radius, k, ux, uy, ez)
    gg1 = 0.5 * (dx * dx + dy * dy + dz * dz)
    dx, dy, dz, g12, _ = _separation(b2, s2, c2, radius, k, ux, uy, ez)
    gg2 = 0.5 * (dx * dx + dy * dy + dz * dz)
    if gg1 < best_g:
        best_g, best_t, best_s, best_c, best_stat = gg1, b1, s1, c1, g11 == 0.0
    if gg2 < best_g:
        best_g, best_t, best_s, best_c, best_stat = gg2, b2, s2, c2, g12 == 0.0
    # pieces [-pi, b1], [b1, b2], [b2, pi]
    for piece in range(3):
        if piece == 0:
            lo, hi, glo, ghi, vlo, vhi = -_PI, b1, g1a, g11, ga, gg1
        elif piece == 1:
            lo, hi, glo, ghi, vlo, vhi = b1, b2, g11, g12, gg1, gg2
        else:
            lo, hi, glo, ghi, vlo, vhi = b2, _PI, g12, g1b, gg2, gb
        if not (glo < 0.0 < ghi):
            continue
        # g is convex on this piece: the tangents at its ends bound it from below
        tx = (vhi - vlo + glo * lo - ghi * hi) / (glo - ghi)
        if vlo + glo * (tx - lo) >= best_g:
            continue
        tr, sr, cr = _solve_root(lo, hi, glo, ghi, t2d, s2d, c2d, phi0, radius, k, ux, uy, ez)
        dx, dy, dz, _, _ = _separation(tr, sr, cr, radius, k, ux, uy, ez)
        gr = 0.5 * (dx * dx + dy * dy + dz * dz)
        if gr < best_g:
            best_g, best_t, best_s, best_c, best_stat = gr, tr, sr, cr, True
    return best_t, best_s, best_c, best_stat


@nb.njit(cache=True)
def _closest_approach_one(pt, eta, phi0, charge, rx, ry, rz, vx, vy, vz, r1):
    """Closest approach of one track to one point.

    Returns (t, s, dx, dy, dz, sin psi, cos psi, stationary): turning angle, signed
    transverse arc length (cm), Delta = P - V (cm), the momentum direction psi = phi0 - t
    at the closest point and whether the minimum is a stationary point.
    """
    nan = np.nan
    # x - x is 0 for finite x and NaN for NaN or inf: one test for all inputs
    finite = (pt - pt) + (phi0 - phi0) + (charge - charge) + (rx - rx) + (ry - ry) + (rz - rz)
    finite += (vx - vx) + (vy - vy) + (vz - vz)
    if not finite == 0.0 or eta != eta:  # eta may be infinite, not NaN
        return nan, nan, nan, nan, nan, nan, nan, False
    tanl = _tan_lambda(eta)
    s0, c0 = _sincos(phi0)
    ex = rx - vx
    ey = ry - vy
    ez = rz - vz
    if charge == 0.0:
        # straight line P(s) = ref + s (cos phi0, sin phi0, tan lambda)
        s = -(ex * c0 + ey * s0 + ez * tanl) / (1.0 + tanl * tanl)
        return 0.0, s, ex + s * c0, ey + s * s0, ez + s * tanl, s0, c0, True
    radius = max(pt, PT_FLOOR_GEV) * r1 / charge
    k = radius * tanl
    t, sp, cp, stat = _closest_t(radius, k, phi0, s0, c0, ex, ey, ez)
    dx, dy, dz, _, _ = _separation(t, sp, cp, radius, k, ex + radius * s0, ey - radius * c0, ez)
    return t, radius * t, dx, dy, dz, sp, cp, stat


@nb.njit(cache=True)
def _closest_approach_kernel(pt, eta, phi, charge, rx, ry, rz, vx, vy, vz, r1, out):
    """Fills out[0:11] with the fields of ClosestApproach, in their order."""
    for i in range(pt.shape[0]):
        t, s, dx, dy, dz, sp, cp, _ = _closest_approach_one(
            pt[i], eta[i], phi[i], charge[i], rx[i], ry[i], rz[i], vx[i], vy[i], vz[i], r1
        )
        dxy = np.sqrt(dx * dx + dy * dy)
        out[0, i] = np.sqrt(dxy * dxy + dz * dz)
        out[1, i] = dxy
        out[2, i] = abs(dz)
        out[3, i] = -sp * dx + cp * dy
        out[4, i] = dz
        out[5, i] = t
        out[6, i] = s
        out[7, i] = _wrap_angle(phi[i] - t)
        out[8, i] = vx[i] + dx
        out[9, i] = vy[i] + dy
        out[10, i] = vz[i] + dz


# =========================================================================================
# Closest approach: public API
# =========================================================================================
class ClosestApproach(NamedTuple):
    """Closest approach in 3D of track helices to points; flat float64 arrays (cm, rad).

    Fields: ``ip3d`` = |Delta|, ``ipxy`` = |Delta_xy|, ``ipz`` = |Delta_z|, ``ipxy_signed``,
    ``ipz_signed`` (module docstring for signs), ``t`` turning angle at the minimum
    (rad, in [-pi, pi]; 0 for neutral tracks), ``s`` signed transverse arc length from the
    reference point (cm), ``phi`` extrapolated azimuth phi(t) = phi0 - t (rad, in
    [-pi, pi)), and the closest point ``x, y, z`` (cm).
    """

    ip3d: np.ndarray
    ipxy: np.ndarray
    ipz: np.ndarray
    ipxy_signed: np.ndarray
    ipz_signed: np.ndarray
    t: np.ndarray
    s: np.ndarray
    phi: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

def closest_approach(
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    charge: np.ndarray,
    ref_x: np.ndarray,
    ref_y: np.ndarray,
    ref_z: np.ndarray,
    vtx_x: np.ndarray,
    vtx_y: np.ndarray,
    vtx_z: np.ndarray,
    bfield: float = BFIELD_TESLA,
) -> ClosestApproach:
    """Point of closest approach in 3D of each track helix to a vertex (docs/physics.md sec. 3).

    The global minimum of |P(t) - V| over one turn, t in [-pi, pi], found by an exact
    bracketing of the (at most two) local minima and safeguarded Newton iterations on
    d|Delta|^2/dt (module docstring for the convention and degenerate inputs).

    Parameters
    ----------
    pt, eta, phi, charge : array_like
        Track pT (GeV), pseudorapidity, azimuth phi0 at the reference point (rad), charge (e).
    ref_x, ref_y, ref_z : array_like
        Reference point of the helix (cm), contract ``Track_refX/refY/refZ``.
    vtx_x, vtx_y, vtx_z : array_like
        Vertex position (cm), one per track (broadcast).
    bfield : float
        Solenoid field (T); the radius is pT * R1 * (3.8 T / bfield) / q.

    Returns
    -------
    ClosestApproach
        Flat float64 arrays of the broadcast length.
    """
    args = _as_flat(pt, eta, phi, charge, ref_x, ref_y, ref_z, vtx_x, vtx_y, vtx_z)
    # allocated by numpy (huge pages for large arrays), filled by the kernel
    out = np.empty((len(ClosestApproach._fields), args[0].shape[0]))
    _closest_approach_kernel(*args, radius_constant_cm(bfield), out)
    return ClosestApproach(*out)


# =========================================================================================
# Awkward wrapper: flatten, call the kernel, restore the jagged layout
# =========================================================================================
def closest_approach_jagged(
    tracks: ak.Array,
    vtx_x: ak.Array | np.ndarray,
    vtx_y: ak.Array | np.ndarray,
    vtx_z: ak.Array | np.ndarray,
    bfield: float = BFIELD_TESLA,
) -> ak.Array:
    """:func:`closest_approach` for a jagged track collection (events x tracks).

    ``tracks`` has the contract fields pt, eta, phi, charge, refX, refY, refZ; the vertex
    coordinates are per event (broadcast to the tracks) or per track. Returns a jagged
    record array with the fields of :class:`ClosestApproach`.
    """
    counts = ak.num(tracks, axis=1)
    vx, vy, vz = (ak.broadcast_arrays(tracks.pt, ak.Array(v))[1] for v in (vtx_x, vtx_y, vtx_z))
    res = closest_approach(
        *(flat(tracks[f]) for f in ("pt", "eta", "phi", "charge", "refX", "refY", "refZ")),
        flat(vx), flat(vy), flat(vz), bfield=bfield,
    )  # fmt: skip
    return ak.unflatten(ak.zip(res._asdict(), depth_limit=1), counts)
