"""Vectorized relativistic kinematics for the generator: four-vectors as (px, py, pz, E).

All functions act on flat numpy arrays; nothing loops in Python.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TWO_PI = 2.0 * np.pi


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (phi + np.pi) % TWO_PI - np.pi


def from_ptetaphim(pt, eta, phi, m):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)


def from_ptyphim(pt, y, phi, m):
    """Four-vector from pT, rapidity y, phi and mass."""
    mt = np.sqrt(pt**2 + m**2)
    return pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)


def to_ptetaphim(px, py, pz, e):
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    eta = np.arcsinh(np.divide(pz, pt, out=np.full_like(pz, 0.0), where=pt > 0))
    eta = np.where(pt > 0, eta, np.sign(pz) * 10.0)
    m = np.sqrt(np.maximum(e**2 - p**2, 0.0))
    return pt, eta, np.arctan2(py, px), m


def boost(px, py, pz, e, bx, by, bz):
    """Boost four-vectors by velocity (bx, by, bz)."""
    b2 = bx**2 + by**2 + bz**2
    gamma = 1.0 / np.sqrt(np.maximum(1.0 - b2, 1e-300))
    bp = bx * px + by * py + bz * pz
    g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    f = g2 * bp + gamma * e
    return px + f * bx, py + f * by, pz + f * bz, gamma * (e + bp)


def two_body_momentum(m, m1, m2):
    """Momentum of the daughters in the rest frame of a parent of mass m (cancellation-safe)."""
    a = (m - m1 - m2) * (m + m1 + m2)
    b = (m - m1 + m2) * (m + m1 - m2)
    return np.sqrt(np.maximum(a * b, 0.0)) / (2.0 * m)


def two_body_decay(parent, m, m1, m2, rng: np.random.Generator):
    """Isotropic two-body decay of parents (px, py, pz, E) of mass m into masses m1, m2.

    Returns the two daughters' four-vectors in the lab frame. The angles are drawn and their
    sine and cosine taken here; the rest frame and the boosts (:func:`boost`'s arithmetic) are one
    numba pass, :func:`_decay_in_lab`.
    """
    n = parent[0].size
    p = two_body_momentum(m, m1, m2) * np.ones(n)
    cos_t = rng.uniform(-1.0, 1.0, n)
    ph = rng.uniform(-np.pi, np.pi, n)
    # own writable copies: one compiled signature of the kernel for scalar and per-parent
    # masses (a broadcast view is a read-only array of another layout, compiled once more each)
    masses = tuple(np.array(np.broadcast_to(np.asarray(mass, np.float64), (n,))) for mass in (m1, m2))
    out = np.empty((8, n))
    _decay_in_lab(p, cos_t, np.cos(ph), np.sin(ph), *masses, *(np.asarray(c, np.float64) for c in parent), out)
    return tuple(out[:4]), tuple(out[4:])


@njit(cache=True)
def _boost(px, py, pz, e, bx, by, bz):
    """:func:`boost` of one four-vector."""
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / math.sqrt(max(1.0 - b2, 1e-300))
    bp = bx * px + by * py + bz * pz
    f = ((gamma - 1.0) / b2 if b2 > 0 else 0.0) * bp + gamma * e
    return px + f * bx, py + f * by, pz + f * bz, gamma * (e + bp)


@njit(cache=True)
def _decay_in_lab(p, cos_t, cos_ph, sin_ph, m1, m2, px, py, pz, e, out):
    """Daughters (out[:4], out[4:]) of momentum p in the parent's frame along (theta, phi),
    boosted to the lab: the operations of the array formulas in the same order (bit-identical)."""
    for i in range(p.size):
        sin_t = math.sqrt(1.0 - cos_t[i] * cos_t[i])
        dx, dy, dz = p[i] * sin_t * cos_ph[i], p[i] * sin_t * sin_ph[i], p[i] * cos_t[i]
        e1 = math.sqrt(p[i] * p[i] + m1[i] * m1[i])
        e2 = math.sqrt(p[i] * p[i] + m2[i] * m2[i])
        bx, by, bz = px[i] / e[i], py[i] / e[i], pz[i] / e[i]
        out[0, i], out[1, i], out[2, i], out[3, i] = _boost(dx, dy, dz, e1, bx, by, bz)
        out[4, i], out[5, i], out[6, i], out[7, i] = _boost(-dx, -dy, -dz, e2, bx, by, bz)


def delta_r(eta1, phi1, eta2, phi2):
    return np.hypot(eta1 - eta2, wrap_phi(phi1 - phi2))
