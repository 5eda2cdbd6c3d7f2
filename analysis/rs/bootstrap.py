"""Bootstrap of the seed events (seed 004 sec. 2.2 and sec. 4 item 1): Poisson(1) weights per
seed event and replica from the counter-based streams, replica histograms, mean and spread."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from analysis.errors import ConfigError
from analysis.rs.arrays import _as_f8, _check_edges
from analysis.rs.defaults import RS_N_BOOTSTRAP
from analysis.rs.rng import _MASK64, _STREAM_BOOTSTRAP, _draw, _event_keys, file_key


@nb.njit(cache=True)
def _bootstrap_kernel(keys, n_boot):
    out = np.empty((keys.shape[0], n_boot))
    e1 = math.exp(-1.0)
    for i in range(keys.shape[0]):
        for b in range(n_boot):
            u = _draw(keys[i], b, 0, 0)
            kk = 0
            pk = e1
            c = pk
            while u > c and kk < 30:
                kk += 1
                pk /= kk
                c += pk
            out[i, b] = kk
    return out


def bootstrap_weights(
    seed: int, file_id: str | bytes | int, entry, n_bootstrap: int = RS_N_BOOTSTRAP
) -> np.ndarray:
    """Poisson(1) weight of each seed event in each bootstrap replica, shape (n_events, n_boot).

    Reproducible from (seed, file key, entry), independent of chunking and of the smearing
    stream. A weight k means the seed event enters the replica k times; its expectation is 1,
    so each replica is already normalized to the full seed sample (the ratio of sample sizes of
    seed 004 sec. 2.2 averages to 1). Multiply the smeared events' weights by the column of
    their seed event (``weights[SmearResult.event_index, b]``).
    """
    if int(n_bootstrap) < 2:
        raise ConfigError(f"n_bootstrap must be >= 2 for a spread, got {n_bootstrap}")
    ent = np.ascontiguousarray(np.asarray(entry, dtype=np.int64))
    if ent.ndim != 1 or np.any(ent < 0):
        raise ConfigError(f"entry must be a 1-d array of non-negative entries, got {ent.shape}")
    keys = _event_keys(np.uint64(int(seed) & _MASK64), np.uint64(file_key(file_id)),
                       _STREAM_BOOTSTRAP, ent)
    return _bootstrap_kernel(keys, int(n_bootstrap))


def bootstrap_histograms(values, weight, boot_weights, edges) -> np.ndarray:
    """Histograms of ``values`` for every bootstrap replica, shape (n_boot, n_bins).

    ``boot_weights`` is (n_values, n_boot): the bootstrap weights of each value's seed event
    (``bootstrap_weights(...)[smeared.event_index]``); ``weight`` the nominal weights.
    Overflow is not included.
    """
    v = _as_f8("values", values)
    w = np.broadcast_to(_as_f8("weight", weight), v.shape)
    bw = np.asarray(boot_weights, dtype=np.float64)
    if bw.ndim != 2 or bw.shape[0] != v.size:
        raise ConfigError(f"boot_weights must be (n_values={v.size}, n_boot), got {bw.shape}")
    e = _check_edges("edges", edges)
    return np.stack([np.histogram(v, bins=e, weights=w * bw[:, b])[0] for b in range(bw.shape[1])])


def bootstrap_mean_std(replica_hists) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation (ddof=1) over bootstrap replicas (axis 0).

    The standard deviation is the statistical uncertainty of the prediction (seed 004 sec. 4).
    """
    h = np.asarray(replica_hists, dtype=np.float64)
    if h.ndim < 1 or h.shape[0] < 2:
        raise ConfigError(f"need >= 2 bootstrap replicas along axis 0, got shape {h.shape}")
    return h.mean(axis=0), h.std(axis=0, ddof=1)
