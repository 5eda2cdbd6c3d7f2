"""Throughput of the processors (issue 5): events per second per core of the signal
processor (tracks, helix features, ONNX refiner + classifier) and of the dy processor on
generated events, the scaling from 1 to 2 workers, and a profile of the signal processor's
steps. Run: ``python benchmarks/bench_processors.py`` (generates its own sample in /tmp).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.toymc.writer import generate_samples  # noqa: E402
from processors.fileset import load_fileset  # noqa: E402
from processors.runner import RunOptions  # noqa: E402
from processors.softtrack.run import run_region as run_processor  # noqa: E402
from processors.softtrack.scoring import TrackScorer  # noqa: E402

N = int(os.environ.get("BENCH_EVENTS", "20000"))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_proc_"))
    generate_samples(tmp, ["2018"], ["zjets_nunu", "dy_mumu", "signal", "data_met", "data_singlemuon"],
                     [(140.0, 0.58)], N, 3)
    fileset = load_fileset(tmp / "fileset.json")
    scorer = TrackScorer.from_directory(None)
    print(f"{'processor':<10} {'workers':>7} {'events':>8} {'seconds':>8} {'events/s':>9} {'ev/s/core':>9}")
    for name in ("signal", "dy"):
        for workers in (1, 2):
            opts = RunOptions(executor="futures", workers=workers, chunksize=N // 2, status=False, systematics=True)
            run_processor(name, fileset, opts, scorer=scorer)  # warm-up (JIT caches, file cache)
            t = time.perf_counter()
            out = run_processor(name, fileset, opts, scorer=scorer)
            dt = time.perf_counter() - t
            n = sum(c["events"] for c in out["chunks"]["processed"])
            print(f"{name:<10} {workers:>7} {n:>8} {dt:>8.1f} {n / dt:>9.0f} {n / dt / workers:>9.0f}")
    opts = RunOptions(executor="iterative", chunksize=N, status=False)
    prof = cProfile.Profile()
    prof.enable()
    run_processor("signal", fileset, opts, scorer=scorer)
    prof.disable()
    print("\nsignal processor, iterative, cumulative time of the main steps:")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(r"(base|scoring|features|helix|selection|objects|inference|collections)\.py")


if __name__ == "__main__":
    main()
