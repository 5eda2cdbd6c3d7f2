"""Impact parameters: straight-line dxy/dz and the helix IPs with their significances.

:func:`straight_line_impact` is the contract's linearised ``Track_dxy``/``Track_dz``;
:func:`impact_parameters` the helix IP, IP_xy, IP_z at the 3D closest approach
(:mod:`analysis.helix.closest_approach`) with their errors propagated from the track helix
covariance and the vertex covariance (docs/physics.md sec. 3; thesis Table 3.3).
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from analysis.constants import BFIELD_TESLA
from analysis.contract import N_HELIX, TRACK_COV_PAIRS, VERTEX_COV_BRANCHES

from ._arrays import _as_flat
from ._math import _PI, ETA_CLIP, PT_FLOOR_GEV, _sincos, _tan_lambda, radius_constant_cm
from .closest_approach import _closest_approach_one

#: below this |u| = |kappa s / 2| the curvature derivative uses its Taylor series
SERIES_THRESHOLD = 1.0e-3

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
    (docs/physics.md sec. 1). Vectorised numpy, no curvature.
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
    """Helix IP, IP_xy, IP_z and their significances (docs/physics.md sec. 3; thesis Table 3.3).

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
