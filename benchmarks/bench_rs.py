"""Throughput of the Rebalance and Smear kernels (analysis/rs/), single thread.

Prints a table: rebalanced seed events per second (numba, all events of a chunk), the same
posterior maximized per event with scipy.optimize.minimize (L-BFGS-B) on a subsample, their
ratio, and smeared events per second. Uses the toy of tests/test_rebalance_smear.py.

    python benchmarks/bench_rs.py [--events 50000] [--scipy-events 500] [--n-smear 100]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import analysis.rs as rs  # noqa: E402
from analysis.softtrack.config import OBJECT_CUTS  # noqa: E402


def _load_toy():
    spec = importlib.util.spec_from_file_location("rs_toy", ROOT / "tests" / "test_rebalance_smear.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000, help="seed events (numba)")
    ap.add_argument("--scipy-events", type=int, default=500, help="seed events (scipy)")
    ap.add_argument("--n-smear", type=int, default=100, help="smearing iterations")
    ap.add_argument("--pt-scale", type=float, default=None, help="toy pT scale (GeV)")
    args = ap.parse_args(argv)

    toy = _load_toy()
    kw = {} if args.pt_scale is None else {"pt_scale": args.pt_scale}
    _, templates, priors = toy.build_inputs(toy.make_toy(120_000, seed=1, **kw))
    seeds = toy.seed_jets(toy.make_toy(args.events, seed=2, **kw))
    off = seeds["offsets"]
    jets = (seeds["pt"], seeds["eta"], seeds["phi"])

    # warm-up (compilation or cache load) on a few events
    w = slice(0, off[10])
    rs.rebalance(*(a[w] for a in jets), off[:11], seeds["n_bjets"][:10], templates, priors,
                 pt_min=OBJECT_CUTS.jet_pt_rs)
    r0 = rs.rebalance(*(a[w] for a in jets), off[:11], seeds["n_bjets"][:10], templates, priors,
                      pt_min=OBJECT_CUTS.jet_pt_rs)
    rs.smear(r0.pt, seeds["eta"][w], seeds["phi"][w], off[:11], templates, seed=1, file_id="b",
             entry=np.arange(10), n_smear=2)

    t0 = time.perf_counter()
    res = rs.rebalance(*jets, off, seeds["n_bjets"], templates, priors, pt_min=OBJECT_CUTS.jet_pt_rs)
    t_reb = time.perf_counter() - t0

    n_sc = min(args.scipy_events, args.events)
    sl = slice(0, off[n_sc])
    t0 = time.perf_counter()
    ref = rs.rebalance_scipy(*(a[sl] for a in jets), off[: n_sc + 1], seeds["n_bjets"][:n_sc],
                             templates, priors, pt_min=OBJECT_CUTS.jet_pt_rs)
    t_sc = time.perf_counter() - t0

    t0 = time.perf_counter()
    sm = rs.smear(res.pt, seeds["eta"], seeds["phi"], off, templates, seed=1, file_id="bench",
                  entry=seeds["entry"], n_smear=args.n_smear, keep=res.keep)
    t_sm = time.perf_counter() - t0
    n_smeared = sm.offsets.size - 1

    t0 = time.perf_counter()
    rs.bootstrap_weights(1, "bench", seeds["entry"])
    t_bs = time.perf_counter() - t0

    d = res.neg_log_posterior[:n_sc] - ref["neg_log_posterior"]
    ok = np.isfinite(d)
    reb_rate = args.events / t_reb
    sc_rate = n_sc / t_sc
    print(f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}, seed events {args.events}, "
          f"jets fitted {res.summary['jets_fitted']}, kept {res.summary['kept']}")
    print(f"{'step':<36}{'events':>10}{'seconds':>10}{'events/s':>14}")
    print(f"{'rebalance (numba L-BFGS)':<36}{args.events:>10}{t_reb:>10.3f}{reb_rate:>14.0f}")
    print(f"{'rebalance (scipy L-BFGS-B per event)':<36}{n_sc:>10}{t_sc:>10.3f}{sc_rate:>14.0f}")
    print(f"{'smear (x' + str(args.n_smear) + ', smeared events)':<36}{n_smeared:>10}{t_sm:>10.3f}"
          f"{n_smeared / t_sm:>14.0f}")
    print(f"{'bootstrap weights (x10)':<36}{args.events:>10}{t_bs:>10.3f}{args.events / t_bs:>14.0f}")
    print(f"speed-up numba / scipy: {reb_rate / sc_rate:.0f}x")
    print(f"same optimum (|d nll| < 1e-3): {np.mean(np.abs(d[ok]) < 1e-3):.3f}; numba better by "
          f"> 0.5: {np.mean(d[ok] < -0.5):.3f}; scipy better by > 0.5: {np.mean(d[ok] > 0.5):.3f}")
    print(f"median iterations {np.median(res.n_iter):.0f}, status counts {res.summary}")


if __name__ == "__main__":
    main()
