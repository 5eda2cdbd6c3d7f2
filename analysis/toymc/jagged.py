"""A minimal jagged-array container for the generator: per-event counts plus flat fields.

The generator builds collections piece by piece (hard process, decays, soft particles) and
needs only a few operations, all vectorized: build from fixed-width rows with a mask,
concatenate per event, select events, and index within events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass
class Jagged:
    counts: np.ndarray  # int64, one per event
    fields: dict[str, np.ndarray]  # flat arrays of length counts.sum()

    @property
    def offsets(self) -> np.ndarray:
        out = np.zeros(self.counts.size + 1, dtype=np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out

    @property
    def n_events(self) -> int:
        return self.counts.size

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fields[name]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        if values.shape[0] != self.counts.sum():
            raise ValueError(f"field {name}: {values.shape[0]} values for {self.counts.sum()} items")
        self.fields[name] = values

    def event_index(self) -> np.ndarray:
        """Event index of each flat item (computed once for the counts array; read-only)."""
        counts, cached = self.__dict__.get("_event_index", (None, None))
        if counts is not self.counts:
            cached = np.repeat(np.arange(self.counts.size), self.counts)
            cached.flags.writeable = False
            self.__dict__["_event_index"] = (self.counts, cached)
        return cached

    def local_index(self) -> np.ndarray:
        """Index of each flat item within its event."""
        return np.arange(self.counts.sum()) - np.repeat(self.offsets[:-1], self.counts)

    @classmethod
    def empty(cls, n_events: int, names: dict[str, np.dtype]) -> Jagged:
        return cls(np.zeros(n_events, np.int64), {k: np.zeros(0, v) for k, v in names.items()})

    @classmethod
    def from_counts(cls, counts: np.ndarray, **fields: np.ndarray) -> Jagged:
        return cls(np.asarray(counts, dtype=np.int64), dict(fields))

    @classmethod
    def from_rows(cls, mask: np.ndarray, **fields: np.ndarray) -> Jagged:
        """From fixed-width 2D arrays (n_events, width) keeping entries where ``mask``."""
        counts = mask.sum(axis=1).astype(np.int64)
        return cls(counts, {k: np.asarray(v)[mask] for k, v in fields.items()})

    def select(self, event_mask: np.ndarray) -> Jagged:
        """Keep the events where ``event_mask`` is true."""
        item_mask = np.repeat(event_mask, self.counts)
        return Jagged(self.counts[event_mask], {k: v[item_mask] for k, v in self.fields.items()})

    def filter(self, item_mask: np.ndarray) -> Jagged:
        """Keep the items where ``item_mask`` is true (events are kept)."""
        counts = np.bincount(self.event_index()[item_mask], minlength=self.n_events)
        return Jagged(counts.astype(np.int64), {k: v[item_mask] for k, v in self.fields.items()})

    def reorder(self, order: np.ndarray) -> Jagged:
        """Apply a flat permutation that keeps items within their events."""
        return Jagged(self.counts, {k: v[order] for k, v in self.fields.items()})

    def sort_within(self, key: np.ndarray, descending: bool = True) -> tuple[Jagged, np.ndarray]:
        """Sort items within each event by ``key`` (stable: ties keep their order); returns the
        sorted copy and the permutation."""
        k = -np.asarray(key, np.float64) if descending else np.asarray(key, np.float64)
        if np.isnan(k).any():  # NaN last, as numpy sorts; the kernel's comparisons would not move it
            order = np.lexsort((k, self.event_index()))
        else:  # the same permutation as that lexsort, without sorting all items at once
            order = _argsort_within(self.offsets, k)
        return self.reorder(order), order


@njit(cache=True)
def _argsort_within(offsets, key):
    """Stable ascending argsort of ``key`` within each event (insertion sort: a few items each)."""
    order = np.arange(key.size)
    for e in range(offsets.size - 1):
        lo = offsets[e]
        for i in range(lo + 1, offsets[e + 1]):
            j, t = order[i], i
            while t > lo and key[order[t - 1]] > key[j]:
                order[t] = order[t - 1]
                t -= 1
            order[t] = j
    return order


def concatenate(parts: list[Jagged]) -> Jagged:
    """Concatenate collections event by event: the items of each event are those of the first
    part, then those of the second, and so on (all parts must have the same fields; values take
    the first part's dtype). Each field is copied block by block (:func:`copy_blocks`), not
    scattered item by item."""
    n = parts[0].n_events
    if any(p.n_events != n for p in parts):
        raise ValueError(f"parts of {[p.n_events for p in parts]} events")
    counts = np.sum([p.counts for p in parts], axis=0).astype(np.int64)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    starts, shift = [], offsets[:-1].copy()  # where each part's items of an event begin
    for p in parts:
        starts.append(shift)
        shift = shift + p.counts
    fields = {}
    for name, first in parts[0].fields.items():
        out = np.empty(int(offsets[-1]), dtype=first.dtype)
        for p, start in zip(parts, starts, strict=True):
            src = p.fields[name]
            if src.shape != (p.counts.sum(),):
                raise ValueError(f"field {name}: {src.shape} values for {p.counts.sum()} items")
            copy_blocks(out, start, src.astype(first.dtype, copy=False), p.counts)
        fields[name] = out
    return Jagged(counts, fields)


@njit(cache=True)
def copy_blocks(out, start, src, counts):
    """out[start[e]:start[e] + counts[e]] = the e-th block of src (blocks of counts, in order)."""
    j = 0
    for e in range(counts.size):
        o = start[e]
        for i in range(counts[e]):
            out[o + i] = src[j + i]
        j += counts[e]
