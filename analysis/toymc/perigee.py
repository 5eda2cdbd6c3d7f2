"""Perigee of generator particles: the contract's helix through a production point.

A numpy reference, written apart from the generator's numba kernel
(:func:`analysis.toymc.tracking.perigee`), of the reference point, phi0 and d0 of the
helix through a point with a given momentum there (analysis.contract).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from analysis.constants import BFIELD_TESLA
from analysis.helix import ETA_CLIP, PT_FLOOR_GEV, radius_constant_cm
from analysis.helix._arrays import _as_flat

_PI = np.pi
_TWO_PI = 2.0 * np.pi


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
