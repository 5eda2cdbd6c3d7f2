"""Rebalance and Smear prediction of the QCD multijet background (docs/physics.md sec. 8; seed 004).

Runs the rs processor over the seed datasets of a fileset (simulated QCD or the jet-HT
pseudo-data): every seed event is rebalanced (posterior of seed 004 eq. 2.9, start eq. 2.10),
smeared --n-smear times with weight 1/n (sec. 2.2), reproducible from (seed, file, entry),
and sent through the ordinary selection. Histograms: the standard ones of the region
processors for the search baseline (dataset <name>_rs; systematics nominal, coreUp, tailUp of
seed 004 sec. 4) and rs_<obs> / rs_bootstrap_<obs> in the search and seed-004 baselines, with
--n-bootstrap Poisson replicas for the statistical uncertainty. With --direct (default) the
seed events themselves fill the same histograms under their own dataset name (the closure
reference) and the seed 004 Fig. 2 responses (rs_response).

The output (coffea.util.save) has the keys of `run.py process` (histograms, cutflow,
chunks, provenance, notices, datasets); histograms also go to OUT.histograms.json.gz.

Example:
  python run.py rs-predict --fileset F --rs-templates T.json.gz --out pred.coffea
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.rs.defaults import RS_N_BOOTSTRAP, RS_N_SMEAR
from analysis.softtrack.config import RS_PREDICTION_SEED
from processors.softtrack.options import rs_kwargs
from processors.softtrack.run import predict_rs as predict

from .rs_templates import add_executor_arguments, run_options

NAME = "rs-predict"
HELP = "R&S QCD prediction (rebalance, smear, ordinary selection, bootstrap, systematics)"


def add_rs_arguments(p: argparse.ArgumentParser) -> None:
    """The R&S options (also what `run.py process --processor rs` needs)."""
    p.add_argument("--rs-templates", required=True, type=Path, help="correctionlib file of run.py rs-templates")
    p.add_argument("--rs-seed", type=int, default=RS_PREDICTION_SEED,
                   help=f"seed of the smearing and bootstrap streams (default {RS_PREDICTION_SEED})")
    p.add_argument("--n-smear", type=int, default=RS_N_SMEAR, help=f"smearings per seed event (default {RS_N_SMEAR})")
    p.add_argument("--n-bootstrap", type=int, default=RS_N_BOOTSTRAP,
                   help=f"bootstrap replicas (default {RS_N_BOOTSTRAP})")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fileset", required=True, type=Path, help="fileset JSON with the seed datasets")
    p.add_argument("--out", required=True, type=Path, help="output file (.coffea)")
    add_rs_arguments(p)
    p.add_argument("--no-direct", action="store_true", help="do not fill the seed events directly")
    p.add_argument("--no-systematics", action="store_true", help="nominal response only")
    add_executor_arguments(p)


def main(args) -> int:
    from processors.fileset import load_fileset
    from processors.output import save_output

    output = predict(load_fileset(args.fileset), run_options(args, systematics=not args.no_systematics),
                     **rs_kwargs(args))
    save_output(output, args.out)
    for notice in output["notices"]:
        print(f"notice: {notice}")
    for skip in output["chunks"]["skipped"]:
        print(f"skipped: {skip['file']}: {skip['reason']}")
    counters = output["histograms"]["rs_counters"]
    for ds in counters.axes["dataset"]:
        c = counters[{"dataset": ds, "systematic": "nominal"}]
        vals = {k: int(c[{"counter": k}]) for k in counters.axes["counter"]}
        print(f"{ds}: " + ", ".join(f"{k} {v}" for k, v in vals.items()))
    n = sum(c["events"] for c in output["chunks"]["processed"])
    print(f"processed {n} seed events in {len(output['chunks']['processed'])} chunks -> {args.out}")
    return 0
