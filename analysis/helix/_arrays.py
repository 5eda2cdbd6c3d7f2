"""Input handling shared by the helix kernels' wrappers: flat float64 arrays and offsets."""

from __future__ import annotations

import numpy as np

from analysis.columnar import offsets_from_counts


def _as_flat(*arrays: object) -> list[np.ndarray]:
    """Broadcast array-likes to common 1D float64 contiguous arrays."""
    arrs = [np.asarray(a, dtype=np.float64) for a in arrays]
    out = np.broadcast_arrays(*arrs)
    if out[0].ndim > 1:
        raise ValueError(f"expected flat (1D) arrays, got shape {out[0].shape}")
    return [np.ascontiguousarray(np.atleast_1d(a)) for a in out]


def _offsets(counts_or_offsets: np.ndarray, n: int, what: str) -> np.ndarray:
    """Event offsets (int64, n_events + 1) from per-event counts or offsets, checked to end at n."""
    arr = np.asarray(counts_or_offsets, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected 1D counts or offsets")
    if arr.shape[0] > 0 and arr[0] == 0 and arr[-1] == n and np.all(np.diff(arr) >= 0):
        offs = arr
    else:
        offs = offsets_from_counts(arr)
    if offs[-1] != n:
        raise ValueError(f"{what}: counts/offsets sum to {offs[-1]}, but there are {n} entries")
    return offs
