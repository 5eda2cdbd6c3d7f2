"""Keep freed memory in the process while generating (glibc's allocator only).

The generator allocates and frees arrays of a few MB at every step of every sample. By
default glibc hands freed memory at the top of the heap back to the kernel (``M_TRIM_THRESHOLD``)
and serves large requests with fresh ``mmap`` regions, so the next array of the same size
page-faults again: the kernel zeroes every 4 KiB page on first touch, which was ~10-15% of
the generator's time on one core (``benchmarks/bench_generate.py`` prints both figures).
:func:`keep_freed_memory` raises the trim threshold and serves requests below 32 MiB (the
largest mmap threshold glibc's own dynamic adjustment reaches on 64-bit systems) from the
heap, so freed memory is reused without faults. Larger arrays still come from ``mmap`` and go
back to the kernel when freed (NumPy asks for transparent huge pages for them), which bounds
what the process keeps.

It changes the allocator of the whole process, so only entry points that own their process
call it (``run.py generate`` and its worker processes, the benchmark), never the library on
import. The resident memory stays at the peak of the generation instead of shrinking after it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
TOP_PAD = 64 * 1024 * 1024
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's allocator as described above; returns whether it applied (False where the C
    library is not glibc, e.g. macOS or musl). Idempotent."""
    global _done
    if _done is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            _done = False
            return _done
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        # the mmap threshold first: setting the trim threshold freezes glibc's dynamic one
        _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
                     and mallopt(M_TOP_PAD, TOP_PAD))
    return _done
