"""Track helix kernels: closest approach, impact-parameter significances, helical matching.

Implements SPEC.md sec. 3 (thesis sec. 3.1, "Helix Extrapolation", "Track Matching",
"Track Observables", eq. 3.1) on flat float64 arrays with numba; thin awkward wrappers
flatten and restore the jagged layout.

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

from analysis.config import BFIELD_TESLA, R1_CM, TRACK_CLASSES
from analysis.contract import (
    N_HELIX,
    PDG_CHARGINO,
    PDG_PION,
    PDG_TAU,
    TRACK_COV_PAIRS,
    VERTEX_COV_BRANCHES,
)

# --- Numerical settings -----------------------------------------------------------------
#: |eta| beyond this is clipped (sinh(50) = 2.6e21: a line parallel to the beam)
ETA_CLIP = 50.0
#: smallest pT (GeV) used in the helix radius; 0 or negative pT is raised to it
PT_FLOOR_GEV = 1.0e-9
#: maximal safeguarded-Newton iterations per root (bisection alone needs ~55)
NEWTON_MAX_ITER = 100
#: a Newton step in t below this (rad) ends the iteration: the error left is ~ its square
NEWTON_STEP_CONVERGED = 1.0e-9
#: a bracket in t narrower than this (rad) ends the iteration
T_TOLERANCE = 1.0e-13
#: below this |u| = |kappa s / 2| the curvature derivative uses its Taylor series
SERIES_THRESHOLD = 1.0e-3

# --- Helical truth matching (SPEC.md sec. 3; thesis sec. 3.1 "Track Matching") ---------
#: Delta_xyz: 3D closest approach of the track helix to the generator vertex (cm)
HELICAL_MATCH_MAX_DXYZ_CM = 0.2
#: DeltaR between the generator momentum and the track extrapolated to the closest point
HELICAL_MATCH_MAX_DR_EXTRAPOLATED = 0.05
#: preselection of helical-match candidates: |pT - pT_gen| / pT_gen
HELICAL_PRESEL_MAX_REL_DPT = 0.2
#: preselection: |eta_gen - eta_track|
HELICAL_PRESEL_MAX_DETA = 0.1
#: preselection: |phi_gen - phi0_track| (rad)
HELICAL_PRESEL_MAX_DPHI0 = 1.57
#: plain DeltaR matching (fallback and stand-alone)
DELTA_R_MATCH_MAX = 0.02

#: method codes returned by the matching
MATCH_NONE = 0
MATCH_HELICAL = 1
MATCH_DELTA_R = 2

# --- Track classes (SPEC.md sec. 4; names and order from analysis.config) ----------------
CLASS_SIGNAL = TRACK_CLASSES.index("signal")
CLASS_PV_PROMPT = TRACK_CLASSES.index("pv_prompt")
CLASS_PV_SECONDARY = TRACK_CLASSES.index("pv_secondary")
CLASS_SPURIOUS = TRACK_CLASSES.index("spurious")
CLASS_TAU = TRACK_CLASSES.index("tau")
#: a particle is prompt if produced within this 3D distance of the true PV (cm)
PROMPT_VERTEX_TOLERANCE_CM = 1.0e-3
#: longest mother chain followed when looking for a tau ancestor (guards against cycles)
MAX_ANCESTRY_DEPTH = 1000

_PI = np.pi
_TWO_PI = 2.0 * np.pi
_AXIS = {"X": 0, "Y": 1, "Z": 2}
#: (i, j) of the vertex covariance branches covXX covXY ... (analysis.contract)
_VTX_COV_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (_AXIS[b[3]], _AXIS[b[4]]) for b in VERTEX_COV_BRANCHES
)
_TRK_COV_I = np.array([i for i, _ in TRACK_COV_PAIRS], dtype=np.int64)
_TRK_COV_J = np.array([j for _, j in TRACK_COV_PAIRS], dtype=np.int64)
_VTX_COV_I = np.array([i for i, _ in _VTX_COV_PAIRS], dtype=np.int64)
_VTX_COV_J = np.array([j for _, j in _VTX_COV_PAIRS], dtype=np.int64)
#: positions of the helix parameters (analysis.contract.HELIX_PARAMETERS)
_I_QOVERPT, _I_LAMBDA, _I_PHI, _I_D0, _I_Z0 = range(N_HELIX)


def radius_constant_cm(bfield: float = BFIELD_TESLA) -> float:
    """Radius (cm) of a pT = 1 GeV, |q| = 1 track in a field ``bfield`` (T): R1 * 3.8 T / B."""
    if not bfield > 0.0:
        raise ValueError(f"bfield must be positive (tesla), got {bfield!r}")
    return R1_CM * BFIELD_TESLA / bfield


# =========================================================================================
# Scalar numba cores
# =========================================================================================
@nb.njit(cache=True, inline="always")
def _wrap_angle(a: float) -> float:
    """Angle wrapped into [-pi, pi)."""
    return a - _TWO_PI * np.floor((a + _PI) / _TWO_PI)


# Cody-Waite reduction by pi/2 and the minimax kernels of fdlibm (k_sin.c, k_cos.c):
# sin and cos to ~1 ulp, several times faster than the libm calls numba makes.
_TWO_OVER_PI = 6.36619772367581382433e-01
_PIO2_1 = 1.57079632673412561417e00
_PIO2_1T = 6.07710050650619224932e-11
_SINCOS_REDUCTION_MAX = 1.0e5
_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11


@nb.njit(cache=True, inline="always")
def _sincos(x):
    """(sin x, cos x); libm beyond |x| = 1e5 rad, where the two-term reduction ends."""
    if not abs(x) < _SINCOS_REDUCTION_MAX:
        return np.sin(x), np.cos(x)
    n = np.floor(x * _TWO_OVER_PI + 0.5)
    r = (x - n * _PIO2_1) - n * _PIO2_1T
    z = r * r
    sr = r + r * z * (_S1 + z * (_S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))))
    hz = 0.5 * z
    w = 1.0 - hz
    cr = w + (((1.0 - w) - hz) + z * z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6))))))
    quadrant = int(n) & 3
    if quadrant == 0:
        return sr, cr
    if quadrant == 1:
        return cr, -sr
    if quadrant == 2:
        return -sr, -cr
    return -cr, sr


# fdlibm s_atan.c: atan to ~1 ulp from a reduction into three intervals of |x| <= 1
_ATAN_HI = (4.63647609000806093515e-01, 7.85398163397448278999e-01)
_ATAN_LO = (2.26987774529616870924e-17, 3.06161699786838301793e-17)
_AT0 = 3.33333333333329318027e-01
_AT1 = -1.99999999998764832476e-01
_AT2 = 1.42857142725034663711e-01
_AT3 = -1.11111104054623557880e-01
_AT4 = 9.09088713343650656196e-02
_AT5 = -7.69187620504482999495e-02
_AT6 = 6.66107313738753120669e-02
_AT7 = -5.83357013379057348645e-02
_AT8 = 4.97687799461593236017e-02
_AT9 = -3.65315727442169155270e-02
_AT10 = 1.62858201153657823623e-02
_ATAN_SMALL = 0.4375
_ATAN_MID = 0.6875
_PIO2 = 0.5 * np.pi


@nb.njit(cache=True, inline="always")
def _atan_unit(x):
    """atan(x) for |x| <= 1."""
    ax = abs(x)
    if ax < _ATAN_SMALL:
        z = x * x
        w = z * z
        s1 = z * (_AT0 + w * (_AT2 + w * (_AT4 + w * (_AT6 + w * (_AT8 + w * _AT10)))))
        s2 = w * (_AT1 + w * (_AT3 + w * (_AT5 + w * (_AT7 + w * _AT9))))
        return x - x * (s1 + s2)
    if ax < _ATAN_MID:
        r = (2.0 * ax - 1.0) / (2.0 + ax)
        hi = _ATAN_HI[0]
        lo = _ATAN_LO[0]
    else:
        r = (ax - 1.0) / (ax + 1.0)
        hi = _ATAN_HI[1]
        lo = _ATAN_LO[1]
    z = r * r
    w = z * z
    s1 = z * (_AT0 + w * (_AT2 + w * (_AT4 + w * (_AT6 + w * (_AT8 + w * _AT10)))))
    s2 = w * (_AT1 + w * (_AT3 + w * (_AT5 + w * (_AT7 + w * _AT9))))
    res = hi - ((r * (s1 + s2) - lo) - r)
    return res if x >= 0.0 else -res


@nb.njit(cache=True, inline="always")
def _atan2(y, x):
    """atan2(y, x) in (-pi, pi] for finite, not both zero, arguments."""
    if abs(y) <= abs(x):
        a = _atan_unit(y / x)
        if x > 0.0:
            return a
        return a + _PI if y >= 0.0 else a - _PI
    a = _atan_unit(x / y)
    return _PIO2 - a if y > 0.0 else -_PIO2 - a


@nb.njit(cache=True, inline="always")
def _tan_lambda(eta):
    """tan(lambda) = sinh(eta) with |eta| clipped at ETA_CLIP; via one exp (absolute error
    ~1e-16 near eta = 0, which is all the helix needs)."""
    e = np.exp(min(max(eta, -ETA_CLIP), ETA_CLIP))
    return 0.5 * (e - 1.0 / e)


@nb.njit(cache=True, inline="always")
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


def _as_flat(*arrays: object) -> list[np.ndarray]:
    """Broadcast array-likes to common 1D float64 contiguous arrays."""
    arrs = [np.asarray(a, dtype=np.float64) for a in arrays]
    out = np.broadcast_arrays(*arrs)
    if out[0].ndim > 1:
        raise ValueError(f"expected flat (1D) arrays, got shape {out[0].shape}")
    return [np.ascontiguousarray(np.atleast_1d(a)) for a in out]


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
    """Point of closest approach in 3D of each track helix to a vertex (SPEC.md sec. 3).

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


class StraightLineImpact(NamedTuple):
    """Straight-line impact parameters at the reference point (cm); CMS dxy/dz convention."""

    dxy: np.ndarray
    dz: np.ndarray


def straight_line_impact(
    eta: np.ndarray,
    phi: np.ndarray,
    ref_x: np.ndarray,
    ref_y: np.ndarray,
    ref_z: np.ndarray,
    vtx_x: np.ndarray,
    vtx_y: np.ndarray,
    vtx_z: np.ndarray,
) -> StraightLineImpact:
    """Straight-line (linearised at the reference point) dxy and dz w.r.t. a vertex.

    dxy = -(x0 - vx) sin(phi0) + (y0 - vy) cos(phi0) (the contract's d0 sign, CMS
    ``Track::dxy(v)``); dz = (z0 - vz) - [(x0 - vx) cos(phi0) + (y0 - vy) sin(phi0)] tan(lambda)
    (CMS ``Track::dz(v)``). The definition of the contract's ``Track_dxy``/``Track_dz``
    (SPEC.md sec. 1). Vectorised numpy, no curvature.
    """
    eta, phi, ref_x, ref_y, ref_z, vtx_x, vtx_y, vtx_z = _as_flat(
        eta, phi, ref_x, ref_y, ref_z, vtx_x, vtx_y, vtx_z
    )
    ex = ref_x - vtx_x
    ey = ref_y - vtx_y
    s0 = np.sin(phi)
    c0 = np.cos(phi)
    tanl = np.sinh(np.clip(eta, -ETA_CLIP, ETA_CLIP))
    dxy = -ex * s0 + ey * c0
    dz = (ref_z - vtx_z) - (ex * c0 + ey * s0) * tanl
    return StraightLineImpact(dxy=dxy, dz=dz)


# =========================================================================================
# Significances: propagation of the track and vertex covariances
# =========================================================================================
@nb.njit(cache=True)
def _quad(g, cov):
    n = g.shape[0]
    acc = 0.0
    for i in range(n):
        for j in range(n):
            acc += g[i] * cov[i, j] * g[j]
    return acc


@nb.njit(cache=True)
def _ip_error_kernel(
    pt, eta, phi, charge, rx, ry, rz, vx, vy, vz, tcov, vcov, ti, tj, vi, vj, r1, out
):
    """Fills out[0:5] with the errors and out[5:10] with the values of
    (ip3d, ipxy, ipz, ipxy_signed, ipz_signed); see impact_parameters."""
    n = pt.shape[0]
    ctrk = np.zeros((N_HELIX, N_HELIX))
    cvtx = np.zeros((3, 3))
    jt = np.zeros((3, N_HELIX))  # d Delta / d theta
    jv = np.zeros((3, 3))  # d Delta / d V
    dpt = np.zeros((3, N_HELIX))  # partial d P / d theta at fixed s
    dps = np.zeros((3, N_HELIX))  # partial d P_s / d theta at fixed s
    g5 = np.zeros(N_HELIX)  # d ipxy_signed / d theta
    a5 = np.zeros(N_HELIX)
    g3 = np.zeros(3)
    dsv = np.zeros(3)  # d s_min / d V
    for i in range(n):
        t, s, dx, dy, dz, sp, cp, stat = _closest_approach_one(
            pt[i], eta[i], phi[i], charge[i], rx[i], ry[i], rz[i], vx[i], vy[i], vz[i], r1
        )
        for c in range(ti.shape[0]):
            ctrk[ti[c], tj[c]] = tcov[i, c]
            ctrk[tj[c], ti[c]] = tcov[i, c]
        for c in range(vi.shape[0]):
            cvtx[vi[c], vj[c]] = vcov[i, c]
            cvtx[vj[c], vi[c]] = vcov[i, c]
        phi0 = phi[i]
        tanl = _tan_lambda(eta[i])
        sec2 = 1.0 + tanl * tanl
        s0, c0 = _sincos(phi0)
        q = charge[i]
        kappa = 0.0 if q == 0.0 else q / (max(pt[i], PT_FLOOR_GEV) * r1)  # 1/R (1/cm)
        # helix arc relative to the reference point: X = 2 cos(mid) hs, Y = 2 sin(mid) hs
        u = 0.5 * kappa * s
        mid = phi0 - u
        smid = np.sin(mid)
        cmid = np.cos(mid)
        if abs(u) < SERIES_THRESHOLD:
            hs = 0.5 * s * (1.0 - u * u / 6.0)
            dhs = -kappa * s * s * s / 24.0 * (1.0 - u * u / 10.0)
        else:
            hs = np.sin(u) / kappa
            dhs = (u * np.cos(u) - np.sin(u)) / (kappa * kappa)
        d0 = -rx[i] * s0 + ry[i] * c0
        ell = rx[i] * c0 + ry[i] * s0
        dpt[:, :] = 0.0
        dps[:, :] = 0.0
        # q/pT (through kappa = (q/pT) / R1)
        dpt[0, _I_QOVERPT] = (s * smid * hs + 2.0 * cmid * dhs) / r1
        dpt[1, _I_QOVERPT] = (-s * cmid * hs + 2.0 * smid * dhs) / r1
        dps[0, _I_QOVERPT] = s * sp / r1
        dps[1, _I_QOVERPT] = -s * cp / r1
        # lambda
        dpt[2, _I_LAMBDA] = s * sec2
        dps[2, _I_LAMBDA] = sec2
        # phi0: rotation of the arc plus motion of the reference point (d0, ell fixed)
        dpt[0, _I_PHI] = -2.0 * smid * hs - d0 * c0 - ell * s0
        dpt[1, _I_PHI] = 2.0 * cmid * hs - d0 * s0 + ell * c0
        dps[0, _I_PHI] = -sp
        dps[1, _I_PHI] = cp
        # d0, z0
        dpt[0, _I_D0] = -s0
        dpt[1, _I_D0] = c0
        dpt[2, _I_Z0] = 1.0
        # implicit differentiation of Delta . P_s = 0 for the arc length s_min
        hess = sec2 + kappa * (dx * sp - dy * cp)
        use_ds = stat and hess > 0.0
        # a minimum at an end of the turn stays at t = +-pi: s = t / kappa moves with q/pT
        at_end = (not stat) and abs(t) == _PI and kappa != 0.0
        for j in range(N_HELIX):
            ds = 0.0
            if at_end and j == _I_QOVERPT:
                ds = -s / (kappa * r1)
            if use_ds:
                num = dpt[0, j] * cp + dpt[1, j] * sp + dpt[2, j] * tanl
                num += dx * dps[0, j] + dy * dps[1, j] + dz * dps[2, j]
                ds = -num / hess
            jt[0, j] = dpt[0, j] + cp * ds
            jt[1, j] = dpt[1, j] + sp * ds
            jt[2, j] = dpt[2, j] + tanl * ds
            # ipxy_signed = n(psi) . Delta, psi = phi0 - kappa s
            dpsi = -kappa * ds
            if j == _I_PHI:
                dpsi += 1.0
            if j == _I_QOVERPT:
                dpsi -= s / r1
            g5[j] = -sp * jt[0, j] + cp * jt[1, j] - (cp * dx + sp * dy) * dpsi
        if use_ds:
            dsv[0] = cp / hess
            dsv[1] = sp / hess
            dsv[2] = tanl / hess
        else:
            dsv[:] = 0.0
        for c in range(3):
            jv[0, c] = cp * dsv[c]
            jv[1, c] = sp * dsv[c]
            jv[2, c] = tanl * dsv[c]
            jv[c, c] -= 1.0
        # errors
        dxy = np.hypot(dx, dy)
        d3 = np.sqrt(dxy * dxy + dz * dz)
        nx = -sp
        ny = cp
        # 3D: along Delta (the transverse normal if Delta = 0)
        if d3 > 0.0:
            ex_ = dx / d3
            ey_ = dy / d3
            ez_ = dz / d3
        else:
            ex_, ey_, ez_ = nx, ny, 0.0
        for j in range(N_HELIX):
            a5[j] = ex_ * jt[0, j] + ey_ * jt[1, j] + ez_ * jt[2, j]
        for c in range(3):
            g3[c] = ex_ * jv[0, c] + ey_ * jv[1, c] + ez_ * jv[2, c]
        out[0, i] = np.sqrt(_quad(a5, ctrk) + _quad(g3, cvtx))
        # transverse magnitude
        if dxy > 0.0:
            fx = dx / dxy
            fy = dy / dxy
        else:
            fx, fy = nx, ny
        for j in range(N_HELIX):
            a5[j] = fx * jt[0, j] + fy * jt[1, j]
        for c in range(3):
            g3[c] = fx * jv[0, c] + fy * jv[1, c]
        out[1, i] = np.sqrt(_quad(a5, ctrk) + _quad(g3, cvtx))
        # longitudinal
        for j in range(N_HELIX):
            a5[j] = jt[2, j]
        for c in range(3):
            g3[c] = jv[2, c]
        ez_err = np.sqrt(_quad(a5, ctrk) + _quad(g3, cvtx))
        out[2, i] = ez_err
        out[4, i] = ez_err
        # signed transverse
        along = cp * dx + sp * dy
        for c in range(3):
            g3[c] = nx * jv[0, c] + ny * jv[1, c] + along * kappa * dsv[c]
        out[3, i] = np.sqrt(_quad(g5, ctrk) + _quad(g3, cvtx))
        out[5, i] = d3
        out[6, i] = dxy
        out[7, i] = abs(dz)
        out[8, i] = nx * dx + ny * dy
        out[9, i] = dz


class ImpactParameters(NamedTuple):
    """Helix impact parameters w.r.t. vertices with their propagated errors (cm).

    ``ip3d, ipxy, ipz, ipxy_signed, ipz_signed`` as in :class:`ClosestApproach`; ``*_err``
    their uncertainties from the track helix covariance and the vertex covariance
    (uncorrelated); ``*_sig`` = value / error (signed for the signed quantities).
    """

    ip3d: np.ndarray
    ipxy: np.ndarray
    ipz: np.ndarray
    ipxy_signed: np.ndarray
    ipz_signed: np.ndarray
    ip3d_err: np.ndarray
    ipxy_err: np.ndarray
    ipz_err: np.ndarray
    ipxy_signed_err: np.ndarray
    ipz_signed_err: np.ndarray
    ip3d_sig: np.ndarray
    ipxy_sig: np.ndarray
    ipz_sig: np.ndarray
    ipxy_signed_sig: np.ndarray
    ipz_signed_sig: np.ndarray


def _stack_cov(cov: object, n_branches: int, what: str, n: int) -> np.ndarray:
    """(n, n_branches) float64 from an (n, n_branches) array or a sequence of branches."""
    if isinstance(cov, list | tuple):
        if len(cov) != n_branches:
            raise ValueError(f"{what}: expected {n_branches} covariance branches, got {len(cov)}")
        arr = np.stack([np.broadcast_to(np.asarray(c, dtype=np.float64), (n,)) for c in cov], 1)
    else:
        arr = np.asarray(cov, dtype=np.float64)
        if arr.ndim == 1 and arr.shape[0] == n_branches:
            arr = np.broadcast_to(arr, (n, n_branches))
        if arr.shape != (n, n_branches):
            raise ValueError(
                f"{what}: expected shape ({n}, {n_branches}) in the branch order of "
                f"analysis.contract, got {arr.shape}"
            )
    return np.ascontiguousarray(arr)


def impact_parameters(
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
    track_cov: np.ndarray | tuple[np.ndarray, ...],
    vertex_cov: np.ndarray | tuple[np.ndarray, ...],
    bfield: float = BFIELD_TESLA,
) -> ImpactParameters:
    """Helix IP, IP_xy, IP_z and their significances (SPEC.md sec. 3; thesis Table 3.3).

    The separation Delta = P(s_min) - V is differentiated w.r.t. the five helix parameters
    (q/pT, lambda, phi0, d0, z0; analysis.contract) and the vertex position, including the
    motion of the closest point: s_min solves Delta . dP/ds = 0, so by implicit
    differentiation ds/dtheta = -(dP/dtheta . P_s + Delta . dP_s/dtheta) / H with
    H = |P_s|^2 + Delta . P_ss. This term cancels in the 3D distance (Delta is orthogonal to
    P_s) but not in the components. A change of phi0 moves the reference point with d0 and
    its along-track offset held fixed. A minimum at an end of the turn (t = +-pi) stays there.
    Track and vertex are taken as uncorrelated. The error of a magnitude is that of its
    projection on the direction of Delta (of Delta_xy); for Delta = 0 the transverse normal
    of the track is used, so the error stays finite and the significance is 0.

    Parameters
    ----------
    pt, eta, phi, charge, ref_x, ref_y, ref_z, vtx_x, vtx_y, vtx_z, bfield
        As in :func:`closest_approach`.
    track_cov : (n, 15) array or sequence of 15 arrays
        Helix-parameter covariance, branches ``Track_cov00 .. cov44`` in the order of
        :data:`analysis.contract.TRACK_COV_BRANCHES` (units of q/pT in 1/GeV, angles in rad,
        d0, z0 in cm).
    vertex_cov : (n, 6) array or sequence of 6 arrays
        Vertex covariance ``covXX covXY covXZ covYY covYZ covZZ`` (cm^2).

    Returns
    -------
    ImpactParameters
    """
    args = _as_flat(pt, eta, phi, charge, ref_x, ref_y, ref_z, vtx_x, vtx_y, vtx_z)
    n = args[0].shape[0]
    tcov = _stack_cov(track_cov, len(TRACK_COV_PAIRS), "track_cov", n)
    vcov = _stack_cov(vertex_cov, len(VERTEX_COV_BRANCHES), "vertex_cov", n)
    out = np.empty((10, n))
    _ip_error_kernel(
        *args, tcov, vcov, _TRK_COV_I, _TRK_COV_J, _VTX_COV_I, _VTX_COV_J,
        radius_constant_cm(bfield), out,
    )  # fmt: skip
    errs = out[:5]
    vals = out[5:]
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.where(vals == 0.0, 0.0, vals / errs)
    return ImpactParameters(*vals, *errs, *sig)


# =========================================================================================
# Generator helpers
# =========================================================================================
class Perigee(NamedTuple):
    """Helix parameters at the reference point (PCA to the beam line); cm and rad."""

    ref_x: np.ndarray
    ref_y: np.ndarray
    ref_z: np.ndarray
    phi0: np.ndarray
    d0: np.ndarray
    #: turning angle from the reference point to the input point (rad), in [-pi, pi)
    t: np.ndarray


def perigee_from_point(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    charge: np.ndarray,
    bfield: float = BFIELD_TESLA,
) -> Perigee:
    """Reference point and phi0 of the helix through (x, y, z) with momentum azimuth phi there.

    The reference point is the point of the circle closest to the beam line on the turn
    of the given point (|t| <= pi), as analysis.contract requires; d0 follows the contract.
    Charge 0: the transverse PCA of the straight line. A circle centred on the beam line
    (every point is a PCA) keeps the given point as reference. Vectorised numpy.
    """
    x, y, z, pt, eta, phi, charge = _as_flat(x, y, z, pt, eta, phi, charge)
    tanl = np.sinh(np.clip(eta, -ETA_CLIP, ETA_CLIP))
    sp, cp = np.sin(phi), np.cos(phi)
    neutral = charge == 0.0
    radius = np.where(neutral, 1.0, np.maximum(pt, PT_FLOOR_GEV) * radius_constant_cm(bfield))
    radius = radius / np.where(neutral, 1.0, charge)
    cx = x + radius * sp
    cy = y - radius * cp
    sgn = np.sign(radius)
    centred = np.hypot(cx, cy) == 0.0
    phi0 = np.where(centred, phi, np.arctan2(sgn * cx, -sgn * cy))
    t = np.where(centred, 0.0, _wrap_angle_np(phi0 - phi))
    # the reference point is the helix at -t from the given point
    h = -0.5 * t  # from the point (azimuth phi) back to the reference point
    rx = x + 2.0 * radius * np.cos(phi - h) * np.sin(h)
    ry = y + 2.0 * radius * np.sin(phi - h) * np.sin(h)
    rz = z - radius * tanl * t
    # neutral: straight line, transverse PCA to the beam line
    sl = -(x * cp + y * sp)
    rx = np.where(neutral, x + sl * cp, rx)
    ry = np.where(neutral, y + sl * sp, ry)
    rz = np.where(neutral, z + sl * tanl, rz)
    phi0 = np.where(neutral, phi, phi0)
    t = np.where(neutral, 0.0, t)
    d0 = -rx * np.sin(phi0) + ry * np.cos(phi0)
    return Perigee(ref_x=rx, ref_y=ry, ref_z=rz, phi0=_wrap_angle_np(phi0), d0=d0, t=t)


def _wrap_angle_np(a: np.ndarray) -> np.ndarray:
    return a - _TWO_PI * np.floor((a + _PI) / _TWO_PI)


#: three times the charge of the quarks d u s c b t (PDG codes 1-6)
_QUARK_THREE_CHARGE = np.array([0, -1, 2, -1, 2, -1, 2], dtype=np.int64)
#: three times the charge of the fundamental particles |pdgId| < 100 (others 0)
_FUNDAMENTAL_THREE_CHARGE = np.zeros(100, dtype=np.int64)
_FUNDAMENTAL_THREE_CHARGE[1:7] = _QUARK_THREE_CHARGE[1:]
_FUNDAMENTAL_THREE_CHARGE[[11, 13, 15, 17]] = -3
_FUNDAMENTAL_THREE_CHARGE[[24, 34, 37]] = 3
#: SUSY codes 10000xx / 20000xx whose charge is not that of the SM partner xx
_SUSY_CHARGED_GAUGINOS = (PDG_CHARGINO, 1000037)


def gen_charge(pdg_id: np.ndarray) -> np.ndarray:
    """Electric charge (e) of generator particles from their PDG id (flat arrays).

    Quarks, leptons, W, H+-; SUSY partners carry the charge of their SM partner, charginos
    (1000024, 1000037) +1; mesons and baryons from the quark digits of the PDG numbering
    scheme (as HepPDT). Returned as float64 (fractional for quarks).
    """
    pid = np.asarray(pdg_id, dtype=np.int64)
    apid = np.abs(pid)
    sign = np.sign(pid)
    three = np.zeros(apid.shape, dtype=np.int64)
    fund = apid < 100
    three[fund] = _FUNDAMENTAL_THREE_CHARGE[apid[fund]]
    susy = (apid >= 1000000) & (apid < 3000000)
    base = apid % 1000000
    susy_fund = susy & (base < 100)
    three[susy_fund] = _FUNDAMENTAL_THREE_CHARGE[base[susy_fund]]
    three[np.isin(apid, _SUSY_CHARGED_GAUGINOS)] = 3
    hadron = (apid >= 100) & ~susy & (apid < 1000000)
    nq1 = (apid // 1000) % 10
    nq2 = (apid // 100) % 10
    nq3 = (apid // 10) % 10
    q1 = _QUARK_THREE_CHARGE[np.minimum(nq1, 6)]
    q2 = _QUARK_THREE_CHARGE[np.minimum(nq2, 6)]
    q3 = _QUARK_THREE_CHARGE[np.minimum(nq3, 6)]
    meson = hadron & (nq1 == 0)
    down_type_first = (nq2 == 3) | (nq2 == 5)
    three_meson = np.where(down_type_first, q3 - q2, q2 - q3)
    three[meson] = three_meson[meson]
    baryon = hadron & (nq1 != 0)
    three[baryon] = (q1 + q2 + q3)[baryon]
    return sign * three / 3.0


# =========================================================================================
# Truth matching (SPEC.md sec. 3; thesis sec. 3.1 "Track Matching")
# =========================================================================================
@nb.njit(cache=True, inline="always")
def _delta_r(eta1, phi1, eta2, phi2):
    dphi = _wrap_angle(phi1 - phi2)
    deta = eta1 - eta2
    return np.sqrt(dphi * dphi + deta * deta)


@nb.njit(cache=True, inline="always")
def _preselected(tpt, teta, tphi, gpt, geta, gphi):
    """Kinematic preselection of helical-match candidates (charge not included)."""
    return (
        abs(tpt - gpt) < HELICAL_PRESEL_MAX_REL_DPT * gpt
        and abs(teta - geta) < HELICAL_PRESEL_MAX_DETA
        and abs(_wrap_angle(gphi - tphi)) < HELICAL_PRESEL_MAX_DPHI0
    )


@nb.njit(cache=True)
def _helical_distances(tpt, teta, tphi, tq, rx, ry, rz, gpt, geta, gphi, gvx, gvy, gvz, r1):
    """(Delta_xyz, DeltaR_extrapolated) of one track-gen pair."""
    t, _, dx, dy, dz, _, _, _ = _closest_approach_one(tpt, teta, tphi, tq, rx, ry, rz, gvx, gvy, gvz, r1)
    dxyz = np.sqrt(dx * dx + dy * dy + dz * dz)
    return dxyz, _delta_r(geta, gphi, teta, tphi - t)


@nb.njit(cache=True)
def _greedy_assign(quality, pair_t, pair_g, trk_gen, gen_trk, trk_method, method, t_off, g_off):
    """Assign pairs in increasing quality, each track and gen particle at most once."""
    order = np.argsort(quality, kind="mergesort")
    for p in order:
        it = pair_t[p]
        ig = pair_g[p]
        if trk_gen[t_off + it] < 0 and gen_trk[g_off + ig] < 0:
            trk_gen[t_off + it] = ig
            gen_trk[g_off + ig] = it
            trk_method[t_off + it] = method


@nb.njit(cache=True)
def _helical_match_kernel(
    tpt, teta, tphi, tq, rx, ry, rz, t_offsets,
    gpt, geta, gphi, gq, gvx, gvy, gvz, g_ok, g_offsets,
    r1, use_helical, fallback_same_charge,
):  # fmt: skip
    n_ev = t_offsets.shape[0] - 1
    trk_gen = np.full(tpt.shape[0], -1, dtype=np.int64)
    trk_method = np.zeros(tpt.shape[0], dtype=np.int8)
    gen_trk = np.full(gpt.shape[0], -1, dtype=np.int64)
    for ev in range(n_ev):
        t0 = t_offsets[ev]
        nt = t_offsets[ev + 1] - t0
        g0 = g_offsets[ev]
        ng = g_offsets[ev + 1] - g0
        if nt == 0 or ng == 0:
            continue
        cap = nt * ng
        pair_t = np.empty(cap, dtype=np.int64)
        pair_g = np.empty(cap, dtype=np.int64)
        qual = np.empty(cap)
        # helical matching: same charge, preselection, Delta_xyz and DeltaR_extrapolated
        npair = 0
        if use_helical:
            for ig in range(ng):
                g = g0 + ig
                if not g_ok[g] or gq[g] == 0.0:
                    continue
                for it in range(nt):
                    k = t0 + it
                    if tq[k] != gq[g]:
                        continue
                    if not _preselected(tpt[k], teta[k], tphi[k], gpt[g], geta[g], gphi[g]):
                        continue
                    dxyz, drx = _helical_distances(
                        tpt[k], teta[k], tphi[k], tq[k], rx[k], ry[k], rz[k],
                        gpt[g], geta[g], gphi[g], gvx[g], gvy[g], gvz[g], r1,
                    )  # fmt: skip
                    if dxyz < HELICAL_MATCH_MAX_DXYZ_CM and drx < HELICAL_MATCH_MAX_DR_EXTRAPOLATED:
                        pair_t[npair] = it
                        pair_g[npair] = ig
                        qual[npair] = drx
                        npair += 1
            _greedy_assign(
                qual[:npair], pair_t[:npair], pair_g[:npair],
                trk_gen, gen_trk, trk_method, MATCH_HELICAL, t0, g0,
            )  # fmt: skip
        # DeltaR fallback for the gen particles left, over the tracks left
        npair = 0
        for ig in range(ng):
            g = g0 + ig
            if not g_ok[g] or gq[g] == 0.0 or gen_trk[g] >= 0:
                continue
            for it in range(nt):
                k = t0 + it
                if trk_gen[k] >= 0:
                    continue
                if fallback_same_charge and tq[k] != gq[g]:
                    continue
                dr = _delta_r(geta[g], gphi[g], teta[k], tphi[k])
                if dr < DELTA_R_MATCH_MAX:
                    pair_t[npair] = it
                    pair_g[npair] = ig
                    qual[npair] = dr
                    npair += 1
        _greedy_assign(
            qual[:npair], pair_t[:npair], pair_g[:npair],
            trk_gen, gen_trk, trk_method, MATCH_DELTA_R, t0, g0,
        )  # fmt: skip
    return trk_gen, trk_method, gen_trk


class TrackMatch(NamedTuple):
    """Result of a truth matching; indices are local to the event (NanoAOD convention).

    ``track_gen_idx`` (per track): matched generator particle, -1 if none;
    ``track_method`` (per track): MATCH_NONE, MATCH_HELICAL or MATCH_DELTA_R;
    ``gen_track_idx`` (per generator particle): matched track, -1 if none.
    """

    track_gen_idx: np.ndarray
    track_method: np.ndarray
    gen_track_idx: np.ndarray


def _offsets(counts_or_offsets: np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.asarray(counts_or_offsets, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected 1D counts or offsets")
    if arr.shape[0] > 0 and arr[0] == 0 and arr[-1] == n and np.all(np.diff(arr) >= 0):
        offs = arr
    else:
        offs = np.concatenate([[0], np.cumsum(arr)])
    if offs[-1] != n:
        raise ValueError(f"{what}: counts/offsets sum to {offs[-1]}, but there are {n} entries")
    return offs


def _match_inputs(tracks, track_offsets, gens, gen_offsets, gen_mask):
    """Flat float arrays, offsets and the gen mask of the helical matching, validated."""
    tr = _as_flat(*tracks)
    ge = _as_flat(*gens)
    t_off = _offsets(track_offsets, tr[0].shape[0], "track_offsets")
    g_off = _offsets(gen_offsets, ge[0].shape[0], "gen_offsets")
    if t_off.shape != g_off.shape:
        raise ValueError("track and gen offsets describe different numbers of events")
    mask = np.ones(ge[0].shape[0], dtype=np.bool_) if gen_mask is None else np.asarray(gen_mask, dtype=np.bool_)
    if mask.shape != ge[0].shape:
        raise ValueError(f"gen_mask has {mask.shape[0]} entries for {ge[0].shape[0]} generator particles")
    return tr, t_off, ge, mask, g_off


def helical_match(
    track_pt: np.ndarray,
    track_eta: np.ndarray,
    track_phi: np.ndarray,
    track_charge: np.ndarray,
    track_ref_x: np.ndarray,
    track_ref_y: np.ndarray,
    track_ref_z: np.ndarray,
    track_offsets: np.ndarray,
    gen_pt: np.ndarray,
    gen_eta: np.ndarray,
    gen_phi: np.ndarray,
    gen_charge: np.ndarray,
    gen_vx: np.ndarray,
    gen_vy: np.ndarray,
    gen_vz: np.ndarray,
    gen_offsets: np.ndarray,
    gen_mask: np.ndarray | None = None,
    bfield: float = BFIELD_TESLA,
    fallback_same_charge: bool = False,
) -> TrackMatch:
    """Helical truth matching of tracks to generator particles, with DeltaR fallback.

    Per event (SPEC.md sec. 3; thesis sec. 3.1): a track is a candidate for a generator
    particle if it has the same charge, |pT - pT_gen|/pT_gen < 0.2, |Delta eta| < 0.1 and
    |phi_gen - phi0_track| < 1.57; it matches if the 3D closest approach of its helix to the
    production vertex, Delta_xyz < 0.2 cm, and DeltaR_extrapolated < 0.05, computed with the
    track azimuth extrapolated to that closest point, phi(t_min) = phi0 - t_min.
    One-to-one assignment: all passing pairs of the event are taken greedily in increasing
    DeltaR_extrapolated (stable order: gen index, then track index, on ties); a pair is
    kept if neither member is taken. So each particle gets its best track and each track
    its best particle, unless a better pair took it first.
    Fallback: generator particles left unmatched get the plain DeltaR(eta, phi_gen;
    eta, phi0_track) < 0.02 matching over the tracks left, greedy in DeltaR; following the
    thesis ("attempted on all tracks") any charge is accepted unless
    ``fallback_same_charge``. Neutral or masked generator particles are never matched.

    Parameters
    ----------
    track_* : flat arrays
        Track fields (GeV, cm, rad, e) of all events, concatenated.
    track_offsets, gen_offsets : 1D int arrays
        Per-event counts (length n_events) or offsets (length n_events + 1, starting at 0).
    gen_* : flat arrays
        Generator particles: pT, eta, phi (at production), charge (see :func:`gen_charge`),
        production vertex (cm).
    gen_mask : bool array, optional
        Generator particles eligible for matching (e.g. status == 1); default all.
    bfield : float
        Field (T).
    fallback_same_charge : bool
        Require the same charge also in the DeltaR fallback.

    Returns
    -------
    TrackMatch
    """
    tr, t_off, ge, mask, g_off = _match_inputs(
        (track_pt, track_eta, track_phi, track_charge, track_ref_x, track_ref_y, track_ref_z), track_offsets,
        (gen_pt, gen_eta, gen_phi, gen_charge, gen_vx, gen_vy, gen_vz), gen_offsets, gen_mask)
    out = _helical_match_kernel(*tr, t_off, *ge, mask, g_off, radius_constant_cm(bfield), True,
                                fallback_same_charge)  # fmt: skip
    return TrackMatch(*out)


def delta_r_match(
    track_eta: np.ndarray,
    track_phi: np.ndarray,
    track_charge: np.ndarray,
    track_offsets: np.ndarray,
    gen_eta: np.ndarray,
    gen_phi: np.ndarray,
    gen_charge: np.ndarray,
    gen_offsets: np.ndarray,
    gen_mask: np.ndarray | None = None,
    same_charge: bool = False,
) -> TrackMatch:
    """Plain DeltaR(eta, phi_gen; eta, phi0_track) < 0.02 matching alone (SPEC.md sec. 3).

    The reference for efficiency comparisons: greedy one-to-one in increasing DeltaR, any
    charge unless ``same_charge``; neutral or masked generator particles are not matched.
    Arguments as in :func:`helical_match`; the method code is MATCH_DELTA_R.
    """
    te, tp, tq = _as_flat(track_eta, track_phi, track_charge)
    ge, gp, gq = _as_flat(gen_eta, gen_phi, gen_charge)
    nt = te.shape[0]
    ng = ge.shape[0]
    t_off = _offsets(track_offsets, nt, "track_offsets")
    g_off = _offsets(gen_offsets, ng, "gen_offsets")
    if t_off.shape != g_off.shape:
        raise ValueError("track and gen offsets describe different numbers of events")
    mask = np.ones(ng, dtype=np.bool_) if gen_mask is None else np.asarray(gen_mask, dtype=np.bool_)
    one_t = np.ones(nt)
    one_g = np.ones(ng)
    out = _helical_match_kernel(one_t, te, tp, tq, one_t, one_t, one_t, t_off,
                                one_g, ge, gp, gq, one_g, one_g, one_g, mask, g_off,
                                1.0, False, same_charge)  # fmt: skip
    return TrackMatch(*out)


@nb.njit(cache=True)
def _pair_kernel(
    tpt, teta, tphi, tq, rx, ry, rz, t_offsets,
    gpt, geta, gphi, gq, gvx, gvy, gvz, g_ok, g_offsets, r1, fill,
):  # fmt: skip
    n_ev = t_offsets.shape[0] - 1
    npair = 0
    for ev in range(n_ev):
        for g in range(g_offsets[ev], g_offsets[ev + 1]):
            if not g_ok[g] or gq[g] == 0.0:
                continue
            for k in range(t_offsets[ev], t_offsets[ev + 1]):
                if _preselected(tpt[k], teta[k], tphi[k], gpt[g], geta[g], gphi[g]):
                    if fill.shape[1] > 0:
                        dxyz, drx = _helical_distances(
                            tpt[k], teta[k], tphi[k], tq[k], rx[k], ry[k], rz[k],
                            gpt[g], geta[g], gphi[g], gvx[g], gvy[g], gvz[g], r1,
                        )  # fmt: skip
                        fill[0, npair] = ev
                        fill[1, npair] = k - t_offsets[ev]
                        fill[2, npair] = g - g_offsets[ev]
                        fill[3, npair] = 1.0 if tq[k] == gq[g] else 0.0
                        fill[4, npair] = dxyz
                        fill[5, npair] = drx
                    npair += 1
    return npair


class MatchPairs(NamedTuple):
    """Preselected track-gen pairs for the validation of the helical matching (Fig. 3.2).

    ``event``, ``track_idx``, ``gen_idx`` (local), ``same_charge`` (bool), ``delta_xyz`` (cm),
    ``delta_r_extrapolated``.
    """

    event: np.ndarray
    track_idx: np.ndarray
    gen_idx: np.ndarray
    same_charge: np.ndarray
    delta_xyz: np.ndarray
    delta_r_extrapolated: np.ndarray


def helical_match_pairs(
    track_pt: np.ndarray,
    track_eta: np.ndarray,
    track_phi: np.ndarray,
    track_charge: np.ndarray,
    track_ref_x: np.ndarray,
    track_ref_y: np.ndarray,
    track_ref_z: np.ndarray,
    track_offsets: np.ndarray,
    gen_pt: np.ndarray,
    gen_eta: np.ndarray,
    gen_phi: np.ndarray,
    gen_charge: np.ndarray,
    gen_vx: np.ndarray,
    gen_vy: np.ndarray,
    gen_vz: np.ndarray,
    gen_offsets: np.ndarray,
    gen_mask: np.ndarray | None = None,
    bfield: float = BFIELD_TESLA,
) -> MatchPairs:
    """Delta_xyz and DeltaR_extrapolated of every preselected pair, either charge.

    The pairs pass the kinematic preselection of :func:`helical_match` except the charge
    requirement; ``same_charge`` separates the two panels of thesis Fig. 3.2. Arguments as
    in :func:`helical_match`.
    """
    tr, t_off, ge, mask, g_off = _match_inputs(
        (track_pt, track_eta, track_phi, track_charge, track_ref_x, track_ref_y, track_ref_z), track_offsets,
        (gen_pt, gen_eta, gen_phi, gen_charge, gen_vx, gen_vy, gen_vz), gen_offsets, gen_mask)
    r1 = radius_constant_cm(bfield)
    n = _pair_kernel(*tr, t_off, *ge, mask, g_off, r1, np.empty((6, 0)))
    fill = np.empty((6, n))
    _pair_kernel(*tr, t_off, *ge, mask, g_off, r1, fill)
    return MatchPairs(
        event=fill[0].astype(np.int64),
        track_idx=fill[1].astype(np.int64),
        gen_idx=fill[2].astype(np.int64),
        same_charge=fill[3].astype(bool),
        delta_xyz=fill[4],
        delta_r_extrapolated=fill[5],
    )


# =========================================================================================
# Track classes for the classifier (SPEC.md sec. 4)
# =========================================================================================
@nb.njit(cache=True)
def _class_kernel(trk_gen, t_offsets, pdg, mother, gvx, gvy, gvz, g_offsets, tol):
    n_ev = t_offsets.shape[0] - 1
    out = np.full(trk_gen.shape[0], CLASS_SPURIOUS, dtype=np.int64)
    for ev in range(n_ev):
        g0 = g_offsets[ev]
        ng = g_offsets[ev + 1] - g0
        for k in range(t_offsets[ev], t_offsets[ev + 1]):
            ig = trk_gen[k]
            if ig < 0 or ig >= ng:
                continue
            g = g0 + ig
            im = mother[g]
            if (
                abs(pdg[g]) == PDG_PION
                and 0 <= im < ng
                and abs(pdg[g0 + im]) == PDG_CHARGINO
            ):
                out[k] = CLASS_SIGNAL
                continue
            from_tau = False
            depth = 0
            while 0 <= im < ng and depth < MAX_ANCESTRY_DEPTH:
                if abs(pdg[g0 + im]) == PDG_TAU:
                    from_tau = True
                    break
                im = mother[g0 + im]
                depth += 1
            if from_tau:
                out[k] = CLASS_TAU
                continue
            ddx = gvx[g] - gvx[g0]
            ddy = gvy[g] - gvy[g0]
            ddz = gvz[g] - gvz[g0]
            if np.sqrt(ddx * ddx + ddy * ddy + ddz * ddz) < tol:
                out[k] = CLASS_PV_PROMPT
            else:
                out[k] = CLASS_PV_SECONDARY
    return out


def track_class_labels(
    track_gen_idx: np.ndarray,
    track_offsets: np.ndarray,
    gen_pdg_id: np.ndarray,
    gen_mother_idx: np.ndarray,
    gen_vx: np.ndarray,
    gen_vy: np.ndarray,
    gen_vz: np.ndarray,
    gen_offsets: np.ndarray,
) -> np.ndarray:
    """Classifier training class of each track (index into config.TRACK_CLASSES).

    From the matched generator particle (local index, -1: none): ``signal`` if it is a
    charged pion whose mother is a chargino; ``tau`` if any ancestor is a tau; otherwise
    ``pv_prompt`` if it was produced within 1e-3 cm (3D) of the true primary vertex, the
    production vertex of the event's GenPart[0], else ``pv_secondary``; unmatched tracks are
    ``spurious``. The checks are made in this order. Mother indices are local
    (``GenPart_genPartIdxMother``, -1: none).

    Returns
    -------
    numpy.ndarray of int64, one per track
    """
    tg = np.ascontiguousarray(np.asarray(track_gen_idx, dtype=np.int64))
    pdg = np.ascontiguousarray(np.asarray(gen_pdg_id, dtype=np.int64))
    mother = np.ascontiguousarray(np.asarray(gen_mother_idx, dtype=np.int64))
    vx, vy, vz = _as_flat(gen_vx, gen_vy, gen_vz)
    t_off = _offsets(track_offsets, tg.shape[0], "track_offsets")
    g_off = _offsets(gen_offsets, pdg.shape[0], "gen_offsets")
    if t_off.shape != g_off.shape:
        raise ValueError("track and gen offsets describe different numbers of events")
    return _class_kernel(tg, t_off, pdg, mother, vx, vy, vz, g_off, PROMPT_VERTEX_TOLERANCE_CM)


# =========================================================================================
# Awkward wrappers: flatten, call the kernel, restore the jagged layout
# =========================================================================================
def _flat_np(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array, axis=None)).astype(np.float64)


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
        *(_flat_np(tracks[f]) for f in ("pt", "eta", "phi", "charge", "refX", "refY", "refZ")),
        _flat_np(vx), _flat_np(vy), _flat_np(vz), bfield=bfield,
    )  # fmt: skip
    return ak.unflatten(ak.zip(res._asdict(), depth_limit=1), counts)


def helical_match_jagged(
    tracks: ak.Array,
    genparts: ak.Array,
    gen_mask: ak.Array | None = None,
    bfield: float = BFIELD_TESLA,
    fallback_same_charge: bool = False,
) -> ak.Array:
    """:func:`helical_match` for jagged Track and GenPart collections.

    ``genparts`` needs pt, eta, phi, pdgId, vx, vy, vz (charge from :func:`gen_charge`).
    Returns a jagged record array aligned with the tracks: ``genPartIdx`` (local, -1: none)
    and ``method`` (MATCH_NONE, MATCH_HELICAL, MATCH_DELTA_R).
    """
    t_counts = ak.to_numpy(ak.num(tracks, axis=1))
    g_counts = ak.to_numpy(ak.num(genparts, axis=1))
    mask = None if gen_mask is None else ak.to_numpy(ak.flatten(gen_mask))
    res = helical_match(
        *(_flat_np(tracks[f]) for f in ("pt", "eta", "phi", "charge", "refX", "refY", "refZ")),
        t_counts,
        *(_flat_np(genparts[f]) for f in ("pt", "eta", "phi")),
        gen_charge(ak.to_numpy(ak.flatten(genparts.pdgId))),
        *(_flat_np(genparts[f]) for f in ("vx", "vy", "vz")),
        g_counts, gen_mask=mask, bfield=bfield, fallback_same_charge=fallback_same_charge,
    )  # fmt: skip
    out = ak.zip({"genPartIdx": res.track_gen_idx, "method": res.track_method})
    return ak.unflatten(out, t_counts)


def track_class_labels_jagged(track_gen_idx: ak.Array, genparts: ak.Array) -> ak.Array:
    """:func:`track_class_labels` for jagged arrays; ``genparts`` needs pdgId,
    genPartIdxMother, vx, vy, vz. Returns jagged int64 class indices."""
    t_counts = ak.to_numpy(ak.num(track_gen_idx, axis=1))
    labels = track_class_labels(
        ak.to_numpy(ak.flatten(track_gen_idx)), t_counts,
        ak.to_numpy(ak.flatten(genparts.pdgId)),
        ak.to_numpy(ak.flatten(genparts.genPartIdxMother)),
        *(_flat_np(genparts[f]) for f in ("vx", "vy", "vz")),
        ak.to_numpy(ak.num(genparts, axis=1)),
    )  # fmt: skip
    return ak.unflatten(labels, t_counts)
