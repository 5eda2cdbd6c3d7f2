"""What the futures executor's forkserver does once before it forks any worker
(:func:`processors.execution._forkserver_context`), so that no worker pays it again.

A fresh worker process paid about 2 s before its first chunk ran at full speed (issue 24,
measured on the signal processor): the imports the first chunk makes (uproot and coffea's
readers, onnxruntime, numba's compiler with the extensions its entry points register, e.g.
vector's) and numba's one-time initialization on the first call of any kernel. Done here,
in the forkserver, the forked workers inherit them: with 2 workers and 4 chunks that time
was a quarter of the run. Importing this module has no other effect; numba compiles one
trivial function (not cached) and onnxruntime opens no session.
"""

from __future__ import annotations

import cloudpickle  # noqa: F401 - the processor arrives as its cloudpickle bytes
import numba
import onnxruntime  # noqa: F401
import uproot  # noqa: F401
from coffea.nanoevents import NanoEventsFactory  # noqa: F401


@numba.njit(cache=False)
def _first_kernel(x):
    return x + 1


_first_kernel(1)  # numba's initialization (entry points, registries): once, here
