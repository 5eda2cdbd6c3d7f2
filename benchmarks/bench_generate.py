"""Throughput of the toy generator on one core (issue 2).

Measures, after a warm-up (numba JIT), events per second of
  - the hard process + detector response of hard objects (jets, leptons, MET, triggers),
  - full events (plus vertices, tracks with helix covariance, PF candidates, isolation), first
    with the default allocator, then as ``run.py generate`` runs (``memory.keep_freed_memory``),
  - writing to ROOT (ZSTD level 1, as `generate` writes),
for every background process, and prints a table, with the fixed cost of writing a file; then
the microseconds per event of each step of a full event; the track kernel compiled without
numba's reference counting against the same kernel compiled with it; the vertex association of
the generator's tracks by the z-window search against a scan over all vertices (the obvious
alternative); and the nanoseconds per variate of the kernels' inlined streams
(``analysis.toymc.rand``) against numba's ``numpy.random.Generator``, measured in the same run.
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

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
import uproot  # noqa: E402
from numba import njit  # noqa: E402

from analysis.toymc import rand, soft, tracking  # noqa: E402
from analysis.toymc.memory import keep_freed_memory  # noqa: E402
from analysis.toymc.processes import BACKGROUNDS  # noqa: E402
from analysis.toymc.sample import _hard_stage, generate_mc, make_rng  # noqa: E402
from analysis.toymc.truth import SIM_DETECTOR  # noqa: E402
from analysis.toymc.writer import COMPRESSION, to_arrays, write_root  # noqa: E402

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
    hard = {p: rate(lambda p=p: _hard_stage(p, N, "2018", SIM_DETECTOR, make_rng(1, p)), N) for p in BACKGROUNDS}
    default = {p: rate(lambda p=p: generate_mc(p, "2018", N, 1), N, repeat=5) for p in BACKGROUNDS}
    tuned = keep_freed_memory()  # from here on, the allocator as run.py generate sets it (for good)
    print(f"{'process':<12} {'hard+det ev/s':>14} {'full ev/s':>10} {'full ev/s':>10} {'write ev/s':>11} {'tracks/ev':>10}")
    print(f"{'':<12} {'':>14} {'(default)':>10} {'(generate)':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for p in BACKGROUNDS:
            full = rate(lambda p=p: generate_mc(p, "2018", N, 1), N, repeat=5)
            branches, _ = generate_mc(p, "2018", N, 1)
            write = rate(lambda b=branches: write_root(Path(tmp) / "b.root", b), N, repeat=1)
            print(f"{p:<12} {hard[p]:>14,.0f} {default[p]:>10,.0f} {full:>10,.0f} {write:>11,.0f} "
                  f"{branches['Track'].counts.mean():>10.1f}")
    if not tuned:
        print("(this C library is not glibc: the allocator was not tuned, both full columns are the default)")
    write_fixed_cost()


def write_fixed_cost() -> None:
    """What a file costs to write whatever its size: a 10-event file, and of it uproot's
    mktree (the TTree metadata of every branch)."""
    branches, _ = generate_mc("zjets_nunu", "2018", 10, 1)
    arrays = to_arrays(branches)
    types = {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in arrays.items()}

    def mktree(path):
        with uproot.recreate(path, compression=COMPRESSION) as f:
            f.mktree("Events", types, counter_name=lambda c: "n" + c, field_name=lambda o, i: f"{o}_{i}")

    with tempfile.TemporaryDirectory() as tmp:
        whole = min(_timed(lambda: write_root(Path(tmp) / "s.root", branches)) for _ in range(5))
        tree = min(_timed(lambda: mktree(Path(tmp) / "t.root")) for _ in range(5))
        n_branches = len(uproot.open(Path(tmp) / "s.root")["Events"].keys())
    print(f"writing a file costs {whole * 1e3:.0f} ms whatever its size (10 events, {n_branches} branches), "
          f"of which uproot's mktree {tree * 1e3:.0f} ms")


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
    gp = timed("GenPart (hard + prompt, K0S)", soft.primary_particles, st.hard, st.true_pv, det, rng, True)
    timed("tracks, SV, PF candidates, isolation", soft.tracks_and_pf, gp, vtx, st.hard, det, False, rng)
    print(f"\n{process}: microseconds per event by step")
    for name, us in times.items():
        print(f"  {name:<40} {us:8.2f}")
    print(f"  {'sum':<40} {sum(times.values()):8.2f}  (= {1e6 / sum(times.values()):,.0f} ev/s)")


def refcounting(process: str = "zjets_nunu") -> None:
    """The track kernel that draws the tracks as shipped (compiled without NRT) against the same
    Python function compiled with numba's reference counting (an atomic increment and decrement of
    every array handed to an inlined helper, per track), on the same inputs and random stream."""
    det = SIM_DETECTOR
    st = _hard_stage(process, N, "2018", det, make_rng(4, process))
    vtx = soft.vertices(st.true_pv, st.n_pu, det, make_rng(5))
    gp = soft.primary_particles(st.hard, st.true_pv, det, make_rng(6), with_hard=True)
    pu = vtx.pu_true
    n_pu_trk, n_spur = tracking._candidate_counts(rand.stream(make_rng(7)), pu["x"].size, N, det.pileup.tracks_per_pu,
                                                  soft.SPURIOUS_MEAN * det.model.spurious_track_rate)
    cap = gp["pt"].size + int(n_pu_trk.sum()) + int(n_spur.sum())
    hits = tuple(tracking.poisson_table(mu) for mu in tracking.HITS_MEAN)
    eff, res, chol, _ = tracking.model_arrays(det)
    inputs = (gp.offsets, gp["pt"], gp["eta"], gp["phi"], gp["pdgId"].astype(np.int64), gp["status"].astype(np.int64),
              gp["vx"], gp["vy"], gp["vz"], pu.offsets, pu["x"], pu["y"], pu["z"], n_pu_trk, n_spur, vtx.true_pv[2],
              eff, res, chol, hits)

    def run(kernel):  # the drawing pass of the track reconstruction (tracking._finish_tracks is not timed)
        out = (np.zeros(N, np.int64), np.zeros((len(tracking.FLOAT_FIELDS), cap)),  # zeros: rows it leaves
               np.zeros((len(tracking.INT_FIELDS), cap), np.int32), np.zeros((8, cap)))
        m = kernel(rand.stream(make_rng(8)), *inputs, (np.empty(5), np.empty(5)), *out)
        return [out[0]] + [a[:, :m] for a in out[1:]]

    # the shipped kernel's options (its fastmath flags) but for the reference counting
    options = {k: v for k, v in tracking._reconstruct.targetoptions.items() if k in ("fastmath", "boundscheck")}
    with_nrt = njit(**options)(tracking._reconstruct.py_func)
    reference = run(with_nrt)
    assert all(np.array_equal(a, b) for a, b in zip(run(tracking._reconstruct), reference, strict=True))
    us = {name: min(_timed(lambda k=k: run(k)) for _ in range(5)) / N * 1e6
          for name, k in (("without", tracking._reconstruct), ("with", with_nrt))}
    print(f"\ntrack kernel, {reference[0].mean():.0f} tracks per event: without reference counting "
          f"{us['without']:.2f} us/event, with it {us['with']:.2f} us/event ({us['with'] / us['without']:.2f}x)")


@njit(cache=True)
def _associate_tracks(windowed, t_off, rx, ry, rz, phi, tanl, dz_err, pv, v_off, vx, vy, vz, vsz):
    max_nv = 1 + np.max(v_off[1:] - v_off[:-1])
    zs, order = np.empty((4, max_nv)), np.empty(max_nv, np.int64)
    out = np.empty(rx.size, np.int64)
    for e in range(t_off.size - 1):
        nv, r_max, sz_max = tracking.sort_vertices(e, pv, v_off, vx, vy, vz, vsz, zs, order)
        if not windowed:  # every vertex in the window: the full scan (it pays for the sort too)
            r_max, sz_max = 1e300, 1e300
        hint = 0
        for i in range(t_off[e], t_off[e + 1]):
            out[i], hint = tracking.associate(rx[i], ry[i], rz[i], math.cos(phi[i]), math.sin(phi[i]), tanl[i],
                                              dz_err[i], zs, order, nv, r_max, sz_max, hint)
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


@njit(cache=True)
def _sum_generator(rng, kind, n):
    s = 0.0
    for _ in range(n):
        if kind == 0:
            s += rng.random()
        elif kind == 1:
            s += rng.standard_normal()
        elif kind == 2:
            s += rng.gamma(1.6)
        else:
            s += rng.standard_exponential()
    return s


@njit(cache=True, _nrt=False)  # as the kernels: no reference count of st at every inlined draw
def _sum_inlined(st, kind, n):
    s = 0.0
    for _ in range(n):
        if kind == 0:
            s += rand.uniform(st)
        elif kind == 1:
            s += rand.normal(st)
        elif kind == 2:
            s += rand.gamma(st, 1.6)
        else:
            s += rand.exponential(st)
    return s


def draws(n: int = 5_000_000) -> None:
    """Nanoseconds per variate in a numba loop: the kernels' inlined stream (analysis.toymc.rand)
    against numba's numpy.random.Generator (the obvious alternative)."""
    print("\nnanoseconds per variate in a numba loop: Generator / inlined xoshiro256++ (analysis.toymc.rand)")
    rng, st = make_rng(9), rand.stream(make_rng(9))
    for kind, name in enumerate(("uniform", "normal", "gamma(1.6)", "exponential")):
        _sum_generator(rng, kind, 10), _sum_inlined(st, kind, 10)
        g = min(_timed(lambda k=kind: _sum_generator(rng, k, n)) for _ in range(3)) / n * 1e9
        i = min(_timed(lambda k=kind: _sum_inlined(st, k, n)) for _ in range(3)) / n * 1e9
        print(f"  {name:<12} {g:6.1f} / {i:5.1f} ns ({g / i:.1f}x)")


if __name__ == "__main__":
    main()
    stage_breakdown()
    refcounting()
    association()
    draws()
