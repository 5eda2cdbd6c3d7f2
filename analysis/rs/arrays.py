"""Conversion and validation of the flat-array interface of the R&S functions.

Jets are flat float64 arrays plus per-event ``offsets`` (length ``n_events + 1``,
``offsets[0] == 0``), the layout of ``ak.flatten`` / ``ak.num``; bin edges are finite and
increasing (uniform where a kernel looks bins up by arithmetic).
"""

from __future__ import annotations

import numpy as np

from analysis.errors import ConfigError


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
