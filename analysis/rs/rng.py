"""Counter-based random numbers (splitmix64), reproducible per (seed, file, entry).

Every random number of the smearing and the bootstrap is a hash of (global seed, file key,
stream, entry, replica, jet, draw), so an event's output does not depend on how a file is
split into chunks (seed 004 sec. 2.2 reproducibility).
"""

from __future__ import annotations

import hashlib

import numba as nb
import numpy as np

_MASK64 = (1 << 64) - 1
#: domain-separation constants of the counter-based random streams
_STREAM_SMEAR = np.uint64(0x5EED5EED00000001)
_STREAM_BOOTSTRAP = np.uint64(0xB0075EED00000002)


def file_key(file_id: str | bytes | int) -> int:
    """Stable 64-bit key of a file identifier (e.g. its path or UUID) for the random streams.

    Uses BLAKE2b (8 bytes), independent of Python's salted ``hash``; an ``int`` is used as is.
    """
    if isinstance(file_id, (int, np.integer)):
        return int(file_id) & _MASK64
    data = file_id.encode() if isinstance(file_id, str) else bytes(file_id)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


@nb.njit(cache=True)
def _splitmix64(x):
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def _unit_uniform(h):
    # 53 random bits, shifted by half a step: strictly inside (0, 1)
    return (np.float64(h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True)
def _event_keys(seed, fkey, stream, entry):
    out = np.empty(entry.shape[0], dtype=np.uint64)
    base = _splitmix64(_splitmix64(seed ^ stream) ^ fkey)
    for i in range(entry.shape[0]):
        out[i] = _splitmix64(base ^ np.uint64(entry[i]))
    return out


@nb.njit(cache=True)
def _draw(key, replica, jet, k):
    # counter: replica (32 bits) | jet (29 bits) | draw (3 bits)
    ctr = (np.uint64(replica) << np.uint64(32)) | (np.uint64(jet) << np.uint64(3)) | np.uint64(k)
    return _unit_uniform(_splitmix64(key ^ _splitmix64(ctr)))
