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


def count_per_event(mask: np.ndarray, counts) -> np.ndarray:
    """How many of each event's items (events of ``counts`` items, flat ``mask`` over them)
    are true: int64 per event (an empty event: 0)."""
    off = offsets_from_counts(counts)
    total = np.zeros(mask.size + 1, np.int64)
    np.cumsum(mask, out=total[1:])
    return total[off[1:]] - total[off[:-1]]


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


class FlatColumns:
    """A jagged collection of one chunk as flat numpy columns, each flattened once (when first
    asked for), with the event offsets; an item is named by its index among all items of the
    chunk. What a selection of events or items needs is then numpy indexing of these columns:
    the same values as flattening the selected collection (one awkward operation per column
    and chunk instead of one per column and selection)."""

    def __init__(self, collection: ak.Array):
        self.collection = collection
        self.counts = np.asarray(ak.to_numpy(ak.num(collection, axis=1)), dtype=np.int64)
        self.offsets = offsets_from_counts(self.counts)
        self._columns: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.collection.fields

    def __getitem__(self, name: str) -> np.ndarray:
        """The column ``name`` of all items, flat, in its own dtype."""
        col = self._columns.get(name)
        if col is None:
            col = self._columns[name] = ak.to_numpy(ak.flatten(self.collection[name], axis=1))
        return col

    def float64(self, name: str) -> np.ndarray:
        """The column ``name`` of all items as contiguous float64 (converted once)."""
        key = name + ":float64"
        col = self._columns.get(key)
        if col is None:
            col = self._columns[key] = np.ascontiguousarray(self[name], dtype=np.float64)
        return col

    def ids(self, events: np.ndarray, mask=None) -> np.ndarray:
        """The indices of the items of ``events`` (indices into the chunk, ascending), all of
        them or those where the jagged boolean ``mask`` over those events is true; ascending."""
        events = np.asarray(events, np.int64)
        counts = self.counts[events]
        start = np.repeat(self.offsets[events] - offsets_from_counts(counts)[:-1], counts)
        ids = start + np.arange(start.size)
        return ids if mask is None else ids[np.asarray(ak.to_numpy(ak.flatten(mask, axis=1)), dtype=bool)]

    def event_of(self, ids: np.ndarray) -> np.ndarray:
        """The event (index into the chunk) of each item ``ids``."""
        return np.searchsorted(self.offsets, ids, side="right") - 1
