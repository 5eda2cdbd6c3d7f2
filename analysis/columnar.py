"""Jagged-array helpers shared by every layer: offsets, flat views, azimuthal differences.

numba kernels take flat arrays and event offsets; these helpers make them from awkward
collections (``ak.flatten``/``ak.num``) and back. The azimuthal difference is wrapped to
[-pi, pi); DeltaR = sqrt(Delta eta^2 + Delta phi^2).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

TWO_PI = 2.0 * np.pi


def offsets_from_counts(counts) -> np.ndarray:
    """Event offsets (int64, length n + 1, starting at 0) from per-event counts."""
    c = np.asarray(counts, dtype=np.int64)
    off = np.zeros(c.size + 1, dtype=np.int64)
    np.cumsum(c, out=off[1:])
    return off


def offsets(collection: ak.Array) -> np.ndarray:
    """Event offsets of a jagged awkward collection (its ``ak.num`` along axis 1)."""
    return offsets_from_counts(ak.to_numpy(ak.num(collection, axis=1)))


def flat(values: ak.Array, dtype=np.float64) -> np.ndarray:
    """The items of a jagged array as one contiguous numpy array of ``dtype``."""
    return np.asarray(ak.to_numpy(ak.flatten(values, axis=1)), dtype=dtype)


def wrap_phi(phi):
    """Angles wrapped to [-pi, pi); numpy and awkward arrays alike."""
    return (phi + np.pi) % TWO_PI - np.pi


def delta_phi(a, b):
    """Azimuthal difference a - b wrapped to [-pi, pi)."""
    return (a - b + np.pi) % TWO_PI - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """DeltaR between two directions (broadcasting; numpy or awkward)."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))
