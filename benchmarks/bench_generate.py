"""Throughput of the toy generator on one core (issue 2).

Measures, after a warm-up (numba JIT), events per second of
  - the hard process + detector response of hard objects (jets, leptons, MET, triggers),
  - full events (plus vertices, tracks with helix covariance, PF candidates, isolation),
  - writing to ROOT (ZSTD level 1, as `generate` writes),
for every background process, and prints a table; then the microseconds per event of each
step of a full event, and the vertex association of the generator's tracks by the z-window
search against a scan over all vertices (the obvious alternative), measured in the same run.
Run: ``python benchmarks/bench_generate.py``.
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

import math  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from analysis.toymc import soft, tracking  # noqa: E402
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


@njit(cache=True)
def _associate_tracks(windowed, t_off, rx, ry, rz, phi, tanl, dz_err, pv, v_off, vx, vy, vz, vsz):
    max_nv = 1 + np.max(v_off[1:] - v_off[:-1])
    zs, order = np.empty(max_nv), np.empty(max_nv, np.int64)
    out = np.empty(rx.size, np.int64)
    for e in range(t_off.size - 1):
        nv, r_max, sz_max = tracking.sort_vertices(e, pv, v_off, vx, vy, vz, vsz, zs, order)
        if not windowed:  # every vertex in the window: the full scan (it pays for the sort too)
            r_max, sz_max = 1e300, 1e300
        for i in range(t_off[e], t_off[e + 1]):
            out[i] = tracking.associate(rx[i], ry[i], rz[i], math.cos(phi[i]), math.sin(phi[i]), tanl[i], dz_err[i],
                                        e, pv, v_off, vx, vy, vz, vsz, zs, order, nv, r_max, sz_max)
    return out


def association(process: str = "zjets_nunu") -> None:
    """Vertex association of the tracks of N events: z window against all vertices."""
    b, _ = generate_mc(process, "2018", N, 3)
    t, o = b["Track"], b["OtherPV"]
    pv = np.stack([b["PV_x"], b["PV_y"], b["PV_z"], *(np.sqrt(b[f"PV_cov{c}"]) for c in ("XX", "YY", "ZZ"))])
    args = (t.offsets, t["refX"], t["refY"], t["refZ"], t["phi"], np.sinh(t["eta"]), t["dzErr"], pv, o.offsets,
            o["x"], o["y"], o["z"], np.sqrt(o["covZZ"]))
    us = {}
    for windowed in (True, False):
        out = _associate_tracks(windowed, *args)
        assert np.array_equal(out, t["vtxIdx"])
        us[windowed] = min(_timed(lambda w=windowed: _associate_tracks(w, *args)) for _ in range(5)) / N * 1e6
    print(f"\nvertex association, {t.counts.mean():.0f} tracks and {1 + o.counts.mean():.0f} vertices per event: "
          f"z window {us[True]:.2f} us/event, all vertices {us[False]:.2f} us/event ({us[False] / us[True]:.1f}x)")


if __name__ == "__main__":
    main()
    stage_breakdown()
    association()
