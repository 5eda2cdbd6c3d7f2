"""Run a region processor (signal, dy, single_lepton) over a fileset.

The output (coffea.util.save) is a dict with keys ``histograms`` (hist.Hist by name),
``cutflow`` (dataset -> ordered step -> {"events", "weighted"}), ``chunks`` (processed and
skipped, with reasons), ``provenance`` (versions, config hash, model hashes), ``notices``
and ``datasets`` (their metadata). The histograms are also written portably beside it as
OUT.histograms.json.gz (UHI JSON: ``hist.Hist(obj)`` reads each back).

Executors: ``futures`` (default, local processes), ``iterative`` (one process), ``dask``
(a distributed.LocalCluster with --workers workers, or an existing cluster with
``--scheduler tcp://host:8786`` as on an analysis facility).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from analysis.errors import ConfigError

NAME = "process"
HELP = "run a region processor (signal, dy, single_lepton) over a fileset"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from analysis.config import RS_PREDICTION_SEED
    from analysis.rs.defaults import RS_N_BOOTSTRAP, RS_N_SMEAR
    from commands.rs_templates import add_executor_arguments
    from processors.runner import PROCESSOR_NAMES

    p.add_argument("--processor", required=True, choices=PROCESSOR_NAMES, help="region to run (rs: R&S QCD prediction)")
    p.add_argument("--fileset", required=True, type=Path, help="fileset JSON (see run.py generate)")
    p.add_argument("--out", required=True, type=Path, help="output file (.coffea)")
    add_executor_arguments(p)
    p.add_argument("--no-systematics", action="store_true", help="nominal only")
    p.add_argument("--models", type=Path, default=None, help="directory of the ONNX models (default: shipped)")
    p.add_argument("--no-scores", action="store_true", help="do not evaluate the track models")
    p.add_argument("--corrections", type=Path, default=None,
                   help="correctionlib file to apply to simulation (run.py corrections); default none")
    rs = p.add_argument_group("Rebalance and Smear (--processor rs)")
    rs.add_argument("--rs-templates", type=Path, default=None, help="templates file of run.py rs-templates")
    rs.add_argument("--rs-seed", type=int, default=RS_PREDICTION_SEED, help="seed of smearing and bootstrap")
    rs.add_argument("--n-smear", type=int, default=RS_N_SMEAR, help=f"smearings per seed event (default {RS_N_SMEAR})")
    rs.add_argument("--n-bootstrap", type=int, default=RS_N_BOOTSTRAP, help=f"bootstrap replicas (default {RS_N_BOOTSTRAP})")


def save_output(output: dict, out: Path) -> None:
    import uhi.io.json as uhi_json
    from coffea.util import save

    out.parent.mkdir(parents=True, exist_ok=True)
    save(output, str(out))
    with gzip.open(out.with_suffix(".histograms.json.gz"), "wt") as f:
        json.dump(output["histograms"], f, default=uhi_json.default)


def load_scorer(args):
    if args.no_scores or args.processor == "rs":
        return None
    try:
        from processors.scoring import TrackScorer
    except ImportError:
        return None
    return TrackScorer.from_directory(args.models)


def main(args) -> int:
    from commands.rs_templates import run_options
    from processors.fileset import load_fileset
    from processors.runner import run_processor

    extra = {}
    if args.processor == "rs":
        from commands.rs_predict import rs_kwargs

        if args.rs_templates is None:
            raise ConfigError("--processor rs needs --rs-templates FILE (made by run.py rs-templates)")
        extra = rs_kwargs(args)
    fileset = load_fileset(args.fileset)
    opts = run_options(args, systematics=not args.no_systematics)
    opts.extra = extra
    corrections = None
    if args.corrections is not None:
        from corrections.apply import SoftTrackCorrections

        corrections = SoftTrackCorrections(args.corrections)
    output = run_processor(args.processor, fileset, opts, scorer=load_scorer(args), corrections=corrections)
    save_output(output, args.out)
    for notice in output["notices"]:
        print(f"notice: {notice}")
    for skip in output["chunks"]["skipped"]:
        print(f"skipped: {skip['file']}: {skip['reason']}")
    n = sum(c["events"] for c in output["chunks"]["processed"])
    print(f"processed {n} events in {len(output['chunks']['processed'])} chunks -> {args.out}")
    return 0
