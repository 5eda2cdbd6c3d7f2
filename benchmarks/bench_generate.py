"""Throughput of the toy generator on one core (issue 2).

Measures, after a warm-up (numba JIT), events per second of
  - the hard process + detector response of hard objects (jets, leptons, MET, triggers),
  - full events (plus vertices, tracks with helix covariance, PF candidates, isolation),
  - writing to ROOT (LZ4),
for every background process, and prints a table. Run: ``python benchmarks/bench_generate.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

for var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one core: no helper threads (an idle BLAS thread spins)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.toymc import soft  # noqa: E402
from analysis.toymc.jagged import concatenate  # noqa: E402
from analysis.toymc.processes import BACKGROUNDS  # noqa: E402
from analysis.toymc.sample import _hard_stage, generate_mc, make_rng  # noqa: E402
from analysis.toymc.truth import SIM_DETECTOR  # noqa: E402
from commands.generate import write_root  # noqa: E402

N = int(os.environ.get("BENCH_EVENTS", "20000"))


def rate(fn, n, repeat=3):
    best = min(_timed(fn) for _ in range(repeat))
    return n / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    generate_mc("zjets_nunu", "2018", 200, 0)  # JIT warm-up
    print(f"{'process':<12} {'hard+det ev/s':>14} {'full ev/s':>10} {'write ev/s':>11} {'tracks/ev':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for p in BACKGROUNDS:
            hard = rate(lambda p=p: _hard_stage(p, N, "2018", SIM_DETECTOR, make_rng(1, p)), N)
            full = rate(lambda p=p: generate_mc(p, "2018", N, 1), N)
            branches, _ = generate_mc(p, "2018", N, 1)
            write = rate(lambda b=branches: write_root(Path(tmp) / "b.root", b), N, repeat=1)
            print(f"{p:<12} {hard:>14,.0f} {full:>10,.0f} {write:>11,.0f} {branches['Track'].counts.mean():>10.1f}")


def stage_breakdown(process: str = "zjets_nunu") -> None:
    """Microseconds per event of each step of a full event (best of 3)."""
    det = SIM_DETECTOR
    rng = make_rng(2, process)
    times: dict[str, float] = {}

    def timed(name, fn, *args):
        best, out = float("inf"), None
        for _ in range(3):
            t = time.perf_counter()
            out = fn(*args)
            best = min(best, time.perf_counter() - t)
        times[name] = best / N * 1e6
        return out

    st = timed("hard process + detector", _hard_stage, process, N, "2018", det, rng)
    vtx = timed("vertices (PV, pileup)", soft.vertices, st.true_pv, st.n_pu, det, rng)
    prim = timed("primary particles (prompt, K0S)", soft.primary_particles, st.hard, st.true_pv, det, rng)
    gp, _ = concatenate([st.hard.genpart, prim])
    timed("tracks, SV, PF candidates, isolation", soft.tracks_and_pf, gp, vtx, st.hard, det, False, rng)
    print(f"\n{process}: microseconds per event by step")
    for name, us in times.items():
        print(f"  {name:<40} {us:8.2f}")
    print(f"  {'sum':<40} {sum(times.values()):8.2f}  (= {1e6 / sum(times.values()):,.0f} ev/s)")


if __name__ == "__main__":
    main()
    stage_breakdown()
