"""Run a processor of an analysis over a fileset.

The output (coffea.util.save) is a dict with keys ``histograms`` (hist.Hist by name),
``cutflow`` (dataset -> ordered step -> {"events", "weighted"}), ``chunks`` (processed and
skipped, with reasons), ``provenance`` (versions, config hash, model hashes), ``notices``
and ``datasets`` (their metadata). The histograms are also written portably beside it as
OUT.histograms.json.gz (UHI JSON: ``hist.Hist(obj)`` reads each back).

Executors: ``futures`` (default, local processes), ``iterative`` (one process), ``dask``
(a distributed.LocalCluster with --workers workers, or an existing cluster with
``--scheduler tcp://host:8786`` as on an analysis facility).

Errors: only a data file that cannot be read is retried (--retries, with backoff) and then
skipped; a run that skipped anything lists it and fails unless --skip-bad-files, which
records the skipped entries in the output's ``chunks`` and scales the normalization of a
partly read simulated dataset (the output's ``normalization``). A bad model, corrections
file or configuration fails the run at once. ``--checkpoint DIR`` keeps every processed
chunk: a killed run, rerun with the same command, processes only the rest and writes the
same output bit for bit. ``--rerun-skipped OUT`` processes only the entries OUT skipped and
merges them into OUT. Outputs are written atomically; --out is checked first.

Examples:
  python run.py process --processor signal --fileset F --out signal.coffea
  python run.py process --analysis zpeak --fileset F --out zpeak.coffea --executor dask
  python run.py process --fileset F --out signal.coffea --checkpoint ckpt/   # resumable
  python run.py process --fileset F --rerun-skipped signal.coffea --skip-bad-files
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
    p.add_argument("--out", type=Path, default=None,
                   help="output file (.coffea); required unless --rerun-skipped (default: that file)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML/YAML file overriding the analysis configuration (keys as documented)")
    add_executor_arguments(p)
    p.add_argument("--retries", type=int, default=2,
                   help="attempts after the first for a transient read error of a data file (default 2)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="keep each processed chunk in DIR; the same command resumes a killed run")
    p.add_argument("--rerun-skipped", type=Path, default=None, metavar="OUT",
                   help="process only the entries OUT skipped and merge them into OUT (or --out)")
    from processors.runner import CLUSTERS

    p.add_argument("--cluster", choices=CLUSTERS, default=None,
                   help="with --executor dask: an adaptive dask-gateway or dask-jobqueue cluster of up to "
                        "--workers workers (pip install 'softtrack[cluster]')")
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
        where = skip["file"] if skip.get("entrystart") is None else \
            f"{skip['file']} entries {skip['entrystart']}-{skip['entrystop']}"
        print(f"skipped: {where}: {skip['reason']}")
    for name, row in output.get("normalization", {}).items():
        if row.get("fraction") not in (None, 1.0):
            scaled = f", sum_genweight {row['sum_genweight']:g} -> {row['sum_genweight_used']:g}" \
                if row.get("sum_genweight_used") is not None else ""
            print(f"partly read: {name}: {row['entries_read']} of {row['entries_in_files']} entries{scaled}")
    n = sum(c["events"] for c in output["chunks"]["processed"])
    resumed = output.get("provenance", {}).get("chunks_from_checkpoint", 0)
    note = f" ({resumed} from the checkpoint)" if resumed else ""
    print(f"processed {n} {what} in {len(output['chunks']['processed'])} chunks{note} -> {out}")


def _absolute_paths(args) -> None:
    """Relative path options resolved here, on the client: a worker elsewhere (a dask worker
    started in another directory) gets absolute paths."""
    for key, value in vars(args).items():
        if isinstance(value, Path) and not value.is_absolute():
            setattr(args, key, value.absolute())


def main(args) -> int:
    from dataclasses import replace

    from analysis.errors import ConfigError
    from commands.rs_templates import run_options
    from processors.fileset import load_fileset
    from processors.output import check_writable, load_output, save_output
    from processors.registry import get
    from processors.runner import check_options, make_processor, rerun_skipped, run

    if args.out is None and args.rerun_skipped is None:
        raise ConfigError("--out is required: the output file to write (e.g. --out signal.coffea)")
    _absolute_paths(args)
    out = args.out or args.rerun_skipped
    opts = replace(run_options(args, systematics=not args.no_systematics), retries=args.retries,
                   checkpoint=str(args.checkpoint) if args.checkpoint else None, cluster=args.cluster,
                   xrootd_timeout=args.xrootd_timeout)
    check_options(opts)
    check_writable(out)
    previous = load_output(args.rerun_skipped) if args.rerun_skipped is not None else None
    analysis = get(args.analysis)
    name = args.processor or analysis.default_processor
    cls = analysis.processor_class(name)
    config = analysis.load_config(args.config)
    fileset = load_fileset(args.fileset)
    options = analysis.options()
    kwargs = options.processor_kwargs(args, name) if options is not None else {}
    proc = make_processor(cls, fileset, config, systematics=not args.no_systematics, **kwargs)
    output = rerun_skipped(proc, fileset, previous, opts) if previous is not None else run(proc, fileset, opts)
    save_output(output, out)
    report(output, out)
    return 0
