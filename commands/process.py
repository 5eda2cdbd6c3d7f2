"""Run a processor of an analysis over a fileset.

The output (coffea.util.save) is a dict with keys ``histograms`` (hist.Hist by name),
``cutflow`` (dataset -> ordered step -> {"events", "weighted"}), ``chunks`` (processed and
skipped, with reasons), ``provenance`` (versions, config hash, model hashes), ``notices``
and ``datasets`` (their metadata). The histograms are also written portably beside it as
OUT.histograms.json.gz (UHI JSON: ``hist.Hist(obj)`` reads each back).

Executors: ``futures`` (default, local processes), ``iterative`` (one process), ``dask``
(a distributed.LocalCluster with --workers workers, or an existing cluster with
``--scheduler tcp://host:8786`` as on an analysis facility).

Examples:
  python run.py process --processor signal --fileset F --out signal.coffea
  python run.py process --analysis zpeak --fileset F --out zpeak.coffea --executor dask
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "process"
HELP = "run a processor of an analysis over a fileset (--analysis, --processor)"
DEFAULT_ANALYSIS = "softtrack"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from commands.rs_templates import add_executor_arguments
    from processors.registry import analyses

    known = analyses()
    listing = "; ".join(f"{a.name}: {', '.join(a.processors)}" for a in known.values())
    p.add_argument("--analysis", default=DEFAULT_ANALYSIS, choices=list(known),
                   help=f"analysis (default {DEFAULT_ANALYSIS})")
    p.add_argument("--processor", default=None,
                   help=f"processor of the analysis (default: its default) [{listing}]")
    p.add_argument("--fileset", required=True, type=Path, help="fileset JSON (see run.py generate)")
    p.add_argument("--out", required=True, type=Path, help="output file (.coffea)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML/YAML file overriding the analysis configuration (keys as documented)")
    add_executor_arguments(p)
    p.add_argument("--no-systematics", action="store_true", help="nominal only")
    from processors.runner import XROOTD_TIMEOUT

    p.add_argument("--xrootd-timeout", type=_positive_int, default=XROOTD_TIMEOUT, metavar="SECONDS",
                   help="seconds uproot waits on a remote file (root://, https://) before giving up "
                        f"(default {XROOTD_TIMEOUT})")
    for a in known.values():
        options = a.options()
        if options is not None:
            options.add_arguments(p.add_argument_group(f"{a.name} options"))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of seconds, got {text!r}")
    return value


def report(output: dict, out: Path, what: str = "events") -> None:
    """Print the notices, the skipped inputs and the processed count of an output."""
    for notice in output["notices"]:
        print(f"notice: {notice}")
    for skip in output["chunks"]["skipped"]:
        print(f"skipped: {skip['file']}: {skip['reason']}")
    n = sum(c["events"] for c in output["chunks"]["processed"])
    print(f"processed {n} {what} in {len(output['chunks']['processed'])} chunks -> {out}")


def main(args) -> int:
    from commands.rs_templates import run_options
    from processors.fileset import load_fileset
    from processors.registry import get
    from processors.runner import make_processor, run

    analysis = get(args.analysis)
    name = args.processor or analysis.default_processor
    cls = analysis.processor_class(name)
    config = analysis.load_config(args.config)
    fileset = load_fileset(args.fileset)
    options = analysis.options()
    kwargs = options.processor_kwargs(args, name) if options is not None else {}
    proc = make_processor(cls, fileset, config, systematics=not args.no_systematics, **kwargs)
    from processors.output import save_output

    opts = run_options(args, systematics=not args.no_systematics)
    opts.xrootd_timeout = args.xrootd_timeout
    output = run(proc, fileset, opts)
    save_output(output, args.out)
    report(output, args.out)
    return 0
