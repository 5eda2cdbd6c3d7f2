"""Benchmark: CLs upper limits over the full signal grid (docs/physics.md sec. 9), serial vs parallel.

Synthetic but plausible yields for all 81 points of ``SIGNAL_GRID``: backgrounds and data
of summary Table 2; signal shapes interpolated in log(Delta m) between the three Table 2
benchmarks (m = 115 GeV; Delta m = 0.268, 0.568, 0.968 GeV), with an efficiency fall-off
outside them (long-lived charginos at small Delta m, prompt-like pions at large Delta m)
and scaled by the cross section ratio sigma(m) / sigma(115 GeV) times a mild acceptance
gain with mass (harder ISR recoil).

    python benchmarks/bench_limits.py [--workers 2] [--plot DIR] [--skip-serial] [--pyhf-reference]

Prints seconds; writes nothing unless --plot is given (the exclusion contour).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.softtrack.config import SIGNAL_GRID, signal_xsec_pb  # noqa: E402
from analysis.stats.contour import plot_exclusion  # noqa: E402
from analysis.stats.limits import upper_limits_grid  # noqa: E402
from analysis.stats.workspace import signal_point_name, workspaces_from_yields  # noqa: E402

TABLE2 = ROOT / "tests" / "data" / "summary_table2_yields.json"
BENCH_MASS = 115.0
BENCH_DMS = (0.268, 0.568, 0.968)
#: efficiency fall-off outside the benchmarks: (dm / dm_min)^LOW_POWER below,
#: exp(-(dm - dm_max) / HIGH_SCALE) above
LOW_POWER = 3.0
HIGH_SCALE = 0.35
#: acceptance gain with mass: (m / 115 GeV)^MASS_POWER
MASS_POWER = 1.0


def synthetic_grid_yields() -> dict:
    """A yields structure with one signal per SIGNAL_GRID point (module docstring)."""
    table = json.loads(TABLE2.read_text())
    bench = [table["signals"][signal_point_name(BENCH_MASS, dm)] for dm in BENCH_DMS]
    y = np.array([b["yields"] for b in bench])
    rel = np.array([np.asarray(b["stat"]) / np.maximum(b["yields"], 1e-9) for b in bench])
    logdm = np.log(BENCH_DMS)
    signals = {}
    for m, (dms, _) in SIGNAL_GRID.items():
        scale = signal_xsec_pb(m) / signal_xsec_pb(BENCH_MASS) * (m / BENCH_MASS) ** MASS_POWER
        for dm in dms:
            x = np.clip(np.log(dm), logdm[0], logdm[-1])
            shape = np.array([np.interp(x, logdm, y[:, i]) for i in range(y.shape[1])])
            stat = np.array([np.interp(x, logdm, rel[:, i]) for i in range(y.shape[1])])
            eff = 1.0
            if dm < BENCH_DMS[0]:
                eff = (dm / BENCH_DMS[0]) ** LOW_POWER
            elif dm > BENCH_DMS[-1]:
                eff = np.exp(-(dm - BENCH_DMS[-1]) / HIGH_SCALE)
            yields = shape * scale * eff
            signals[signal_point_name(m, dm)] = {"yields": yields.tolist(), "stat": (stat * yields).tolist()}
    table["signals"] = signals
    table["source"] = "synthetic grid for benchmarks/bench_limits.py from " + table["source"][:60]
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--skip-serial", action="store_true")
    parser.add_argument("--pyhf-reference", action="store_true",
                        help="also time pyhf's own upper_limit (toms748) on one point")
    args = parser.parse_args()
    specs = workspaces_from_yields(synthetic_grid_yields())
    print(f"{len(specs)} signal points")
    # compile the numba kernel (cached on disk) outside the timing
    upper_limits_grid(dict(list(specs.items())[:1]), workers=1)
    timings = {}
    if not args.skip_serial:
        t = time.perf_counter()
        results = upper_limits_grid(specs, workers=1)
        timings["serial"] = time.perf_counter() - t
    t = time.perf_counter()
    results = upper_limits_grid(specs, workers=args.workers)
    timings[f"parallel ({args.workers} workers)"] = time.perf_counter() - t
    for name, sec in timings.items():
        print(f"{name:24s} {sec:7.2f} s  ({sec / len(specs) * 1e3:.0f} ms per point)")
    if "serial" in timings and len(timings) == 2:
        print(f"speed-up {timings['serial'] / timings[f'parallel ({args.workers} workers)']:.2f}x")
    fits = np.mean([r.n_fits for r in results.values()])
    print(f"mean fits per point: {fits:.0f}")
    excluded = sum(r.observed < 1 for r in results.values())
    print(f"excluded (observed mu_up < 1): {excluded} / {len(results)}")
    if args.pyhf_reference:
        import pyhf

        from analysis.stats.limits import model_and_data

        name = signal_point_name(BENCH_MASS, 0.57)
        model, data = model_and_data(specs[name])
        t = time.perf_counter()
        obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(data, model, level=0.05)
        sec = time.perf_counter() - t
        ours = results[name]
        print(f"pyhf upper_limit on {name}: {sec:.1f} s (ours {ours.seconds:.2f} s); observed "
              f"{float(obs):.5f} vs {ours.observed:.5f}, median expected {float(exp[2]):.5f} vs "
              f"{ours.expected[2]:.5f}")
    if args.plot is not None:
        pts = [tuple(float(v) for v in n[len("signal_m"):].replace("p", ".").split("_dm")) for n in results]
        paths = plot_exclusion(pts, [r.observed for r in results.values()],
                               [r.expected for r in results.values()], args.plot / "exclusion")
        print("wrote", *map(str, paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
