"""Build the Rebalance and Smear inputs from simulated QCD (docs/physics.md sec. 8; seed 004 sec. 2.4).

Runs the rs_templates processor over the QCD datasets of a fileset: the jet response
P(pT_reco / pT_gen) per (pT_gen, |eta_gen|) bin from DeltaR < 0.4 matched, isolated jets
(seed 004 eqs. 2.3-2.4) and the priors on the true hard MHT and DeltaPhi(hard MHT, leading
jet) by b-jet count (sec. 2.4.2); then smooths them and writes one correctionlib file
(corrections jet_response_pdf, rs_prior_mht, rs_prior_dphi) that `correction validate`
accepts and `python run.py rs-predict --rs-templates FILE` reads.

Example:
  python run.py generate --out /tmp/qcd --processes qcd --eras 2018 --events-per-sample 40000
  python run.py rs-templates --fileset /tmp/qcd/fileset.json --out /tmp/qcd/rs_templates.json.gz

The template binning is the configuration's ``[rs] template_pt_edges``, ``template_abseta_edges``
(``--config FILE``); the file carries it, and rs-predict uses the file's binning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from processors.softtrack.run import build_rs_templates as build

NAME = "rs-templates"
HELP = "build R&S jet response templates and priors (correctionlib) from simulated QCD"


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """--executor, --workers, --chunksize, --scheduler, --max-chunks, --skip-bad-files, --quiet."""
    from processors.runner import EXECUTORS

    p.add_argument("--executor", default="futures", choices=EXECUTORS, help="default futures")
    p.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    p.add_argument("--chunksize", type=int, default=50_000, help="events per chunk (default 50000)")
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler (with --executor dask)")
    p.add_argument("--max-chunks", type=int, default=None, help="process at most N chunks per dataset (the normalization is scaled to the entries read)")
    p.add_argument("--skip-bad-files", action="store_true", help="skip unreadable files/chunks and record why")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fileset", required=True, type=Path, help="fileset JSON with simulated QCD")
    p.add_argument("--out", required=True, type=Path, help="output correctionlib file (.json or .json.gz)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML/YAML file overriding the soft-track configuration, e.g. the template binning "
                        "[rs] template_pt_edges, template_abseta_edges")
    add_executor_arguments(p)


def run_options(args, systematics: bool = True):
    from analysis.errors import ConfigError
    from processors.runner import RunOptions

    if args.scheduler and args.executor != "dask":
        raise ConfigError("--scheduler needs --executor dask")
    return RunOptions(executor=args.executor, workers=args.workers, chunksize=args.chunksize,
                      max_chunks=args.max_chunks, scheduler=args.scheduler, skip_bad_files=args.skip_bad_files,
                      status=not args.quiet, systematics=systematics)


def main(args) -> int:
    from processors.fileset import load_fileset
    from processors.registry import get

    config = get("softtrack").load_config(getattr(args, "config", None))
    summary = build(load_fileset(args.fileset), args.out, run_options(args), config=config)
    for skip in summary["skipped"]:
        print(f"skipped: {skip['file']}: {skip['reason']}")
    print(f"{summary['events']} QCD events, {summary['template_pairs']} matched isolated jet pairs, "
          f"{summary['empty_template_bins']} empty (pT, |eta|) template bins filled from neighbours "
          f"({summary['eta_borrowed_template_bins']} of them in |eta| bins without any jet); "
          f"prior events per b-jet category {summary['prior_entries']} -> {summary['file']}")
    return 0
