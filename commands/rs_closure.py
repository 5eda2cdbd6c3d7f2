"""Closure of Rebalance and Smear on simulated QCD (docs/physics.md sec. 8; seed 004 sec. 3.2, 4, Fig. 2, 4).

Generates two independent QCD samples with the toy generator (seed S: templates, seed S + 1:
prediction), builds the response templates and priors from the first, rebalances and smears
the second (--n-smear times, weight 1/n) and compares the prediction with the direct
simulation of the same events after the same selection code. Writes DIR/closure.json:

  {"baseline": {"ratio", "uncertainty", "predicted", "simulated"},
   "bins": {"mht" | "min_dphi" | "n_jets" | "ht": [{"edges", "predicted", "predicted_unc",
            "simulated", "simulated_unc", "ratio"}, ...]},
   "response": seed 004 Fig. 2 numbers, "systematics": coreUp/tailUp baseline predictions,
   "counters": rebalancing and smearing counters, "config": the run's settings}

for the seed-004 baseline (pre-selection of sec. 3.2.1 and hard MHT > 250 GeV, sec. 3.2.2);
the prediction's uncertainty is the bootstrap standard deviation over seed subsets (sec. 2.2,
4 item 1) added in quadrature to the templates' statistical uncertainty (the spread of the
prediction made with --template-replicas Poisson-bootstrap replicas of the template sample),
the simulation's sqrt(sum w^2); the baseline ratio's uncertainty combines both. Added keys:
"uncertainty_split" (bootstrap and template parts per bin and for the baseline), "verdict"
(issue 7 acceptance: |ratio - 1| < 20% and within 2 sigma; per-bin pulls), "baseline_details".
Plots like seed 004 Fig. 4 (closure_<obs>.png) and Fig. 2 (response_rebalanced.png) go to DIR.

Example (about 1.5 minutes on 2 cores):
  python run.py rs-closure --events 40000 --seed 1 --out outputs/rs_closure
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis.io import write_atomic
from analysis.rs.defaults import RS_N_BOOTSTRAP, RS_N_SMEAR, RS_N_TEMPLATE_REPLICAS
from analysis.softtrack.config import (
    RS_CLOSURE_ERA,
    RS_CLOSURE_EVENTS,
)

NAME = "rs-closure"
HELP = "R&S closure on simulated QCD: templates, prediction, comparison, plots (closure.json)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=RS_CLOSURE_EVENTS,
                   help=f"QCD events in each of the two parts (default {RS_CLOSURE_EVENTS})")
    p.add_argument("--seed", type=int, default=1, help="generator seed S (templates S, prediction S+1; default 1)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--era", default=RS_CLOSURE_ERA, help=f"era (default {RS_CLOSURE_ERA})")
    p.add_argument("--n-smear", type=int, default=RS_N_SMEAR, help=f"smearings per seed (default {RS_N_SMEAR})")
    p.add_argument("--n-bootstrap", type=int, default=RS_N_BOOTSTRAP, help=f"bootstrap replicas (default {RS_N_BOOTSTRAP})")
    p.add_argument("--template-replicas", type=int, default=RS_N_TEMPLATE_REPLICAS,
                   help=f"bootstrap replicas of the templates for their stat. uncertainty (0: none; "
                        f"default {RS_N_TEMPLATE_REPLICAS})")
    p.add_argument("--executor", default="futures", choices=("futures", "iterative", "dask"), help="default futures")
    p.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    p.add_argument("--chunksize", type=int, default=20_000, help="events per chunk (default 20000)")
    p.add_argument("--no-plots", action="store_true", help="write closure.json only")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run_closure(out: Path, events: int, seed: int, era: str = RS_CLOSURE_ERA, n_smear: int = RS_N_SMEAR,
                n_bootstrap: int = RS_N_BOOTSTRAP, opts=None, plots: bool = True, log=print,
                template_replicas: int = RS_N_TEMPLATE_REPLICAS) -> dict:
    """The whole closure; returns the closure.json content (also written to ``out``).

    With ``template_replicas`` > 0 the prediction is also made (nominal response only, in the
    same pass) with that many bootstrap replicas of the templates and priors, and their spread
    is added to the prediction's uncertainty (:func:`add_template_uncertainty`)."""
    from analysis.errors import ConfigError
    from analysis.toymc.writer import generate_samples
    from processors.output import save_output
    from processors.runner import RunOptions
    from processors.softtrack.rs import RSPredictionProcessor
    from processors.softtrack.rs_closure import (
        add_template_uncertainty,
        closure_verdict,
        plot,
        predicted_yields,
        summarize,
    )
    from processors.softtrack.run import build_rs_templates as build
    from processors.softtrack.run import predict_rs as predict

    if events <= 0:
        raise ConfigError(f"--events must be positive, got {events}")
    if template_replicas < 0 or template_replicas == 1:
        raise ConfigError(f"template replicas must be 0 or >= 2 (a spread), got {template_replicas}")
    opts = opts or RunOptions()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = {}
    for name, s in (("templates", seed), ("prediction", seed + 1)):
        parts[name] = generate_samples(out / f"sample_{name}", [era], ["qcd"], [], events, s)
        log(f"generated {events} QCD events ({name}, seed {s}) in {time.perf_counter() - t0:.0f} s")
    tfile = out / "rs_templates.json.gz"
    tsum = build(parts["templates"], tfile, opts, replicas=template_replicas)
    log(f"templates from {tsum['template_pairs']} jet pairs and {tsum['template_lost_jets']} lost jets "
        f"-> {tfile} ({time.perf_counter() - t0:.0f} s)")
    output = predict(parts["prediction"], opts, rs_templates=str(tfile), rs_seed=seed, rs_n_smear=n_smear,
                     rs_n_bootstrap=n_bootstrap, rs_direct=True, rs_template_replicas=tsum["replica_files"])
    save_output(output, out / "prediction.coffea")
    n_rep = len(tsum["replica_files"])
    log(f"prediction{f' with {n_rep} template replicas' if n_rep else ''} done ({time.perf_counter() - t0:.0f} s)")
    dataset = f"qcd_{era}"
    result = summarize(output, dataset)
    if n_rep:
        add_template_uncertainty(result, [predicted_yields(output, dataset,
                                                           systematic=RSPredictionProcessor.REPLICA.format(k))
                                          for k in range(1, n_rep + 1)])
    result["verdict"] = closure_verdict(result)
    result["config"] = {"events_per_part": events, "seed": seed, "era": era, "n_smear": n_smear,
                        "n_bootstrap": n_bootstrap, "template_replicas": len(tsum["replica_files"]),
                        "template_pairs": tsum["template_pairs"], "template_lost_jets": tsum["template_lost_jets"],
                        "seconds": round(time.perf_counter() - t0, 1)}
    write_atomic(out / "closure.json", json.dumps(result, indent=1))
    if plots:
        plot(result, output, dataset, out)
    return result


def main(args) -> int:
    from processors.execution import persistent_workers
    from processors.runner import RunOptions

    opts = RunOptions(executor=args.executor, workers=args.workers, chunksize=args.chunksize,
                      status=not args.quiet, systematics=True)
    log = (lambda *a: None) if args.quiet else print
    with persistent_workers():  # templates, prediction and replicas share workers and open files
        res = run_closure(args.out, args.events, args.seed, args.era, args.n_smear, args.n_bootstrap, opts,
                          plots=not args.no_plots, log=log, template_replicas=args.template_replicas)
    b = res["baseline"]
    d = res["baseline_details"]
    print(f"seed-004 baseline (hard MHT > 250 GeV): predicted {b['predicted']:.4g} +- {d['predicted_unc']:.2g}, "
          f"simulated {b['simulated']:.4g} +- {d['simulated_unc']:.2g} ({d['simulated_events']} events), "
          f"ratio {b['ratio']:.3f} +- {b['uncertainty']:.3f}" if b["ratio"] is not None and b["uncertainty"] is not None
          else f"seed-004 baseline: predicted {b['predicted']}, simulated {b['simulated']} (no ratio)")
    print(f"wrote {args.out / 'closure.json'}")
    return 0
