"""Generate toy NanoAOD-like samples (every process and era) and a coffea fileset JSON.

The samples are written by :mod:`analysis.toymc.writer` (the files, fileset.json and
request.json are described there). Pseudo-data streams are data_met, data_singlemuon,
data_jetht.

``--samples main-job`` makes them as the main job does: stitched generator-level slices,
QCD and W+jets enriched in p_T^miss, pseudo-data streams at stated luminosities (scaled with
--events-per-sample / 8000) and skimmed (analysis.toymc.processes.MAIN_JOB_PLANS,
MAIN_JOB_STREAM_LUMI_FB, STREAM_SKIMS; docs/physics.md sec. 13). The default, ``inclusive``,
makes each process in its filter only, with unit weights.

Examples:
  python run.py generate --out data/generated/small --events-per-sample 5000
  python run.py generate --out data/generated/filtered --samples main-job --events-per-sample 3000
  python run.py generate --out /tmp/sig --processes signal --signal-points 115:0.27,200:1.0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from analysis.errors import ConfigError
from analysis.softtrack.config import ERAS
from analysis.toymc.processes import ALL_PROCESSES, DATA_STREAMS, signal_points
from analysis.toymc.writer import generate_samples

NAME = "generate"
HELP = "generate toy NanoAOD-like samples and their fileset JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output directory (created if needed)")
    p.add_argument("--events-per-sample", type=int, default=5000, metavar="N",
                   help="events per simulated sample; pseudo-data streams get about N each (default 5000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--eras", default=",".join(ERAS), help="comma-separated eras (default all)")
    p.add_argument("--processes", default=",".join((*ALL_PROCESSES, *DATA_STREAMS)),
                   help="comma-separated processes and data streams (default all): "
                   + ", ".join((*ALL_PROCESSES, *DATA_STREAMS)))
    p.add_argument("--signal-points", default="benchmarks",
                   help="'benchmarks', 'grid', or M:DM,... in GeV (default benchmarks)")
    p.add_argument("--samples", choices=("inclusive", "main-job"), default="inclusive",
                   help="inclusive (each process in its filter, unit weights; default) or main-job (slices, "
                        "enrichment, stated luminosities and skims)")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="generate W samples in parallel processes (default 1; the files do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def parse_request(args) -> tuple[list[str], list[str], list[tuple[float, float]]]:
    eras = [e.strip() for e in str(args.eras).split(",") if e.strip()]
    bad = [e for e in eras if e not in ERAS]
    if bad or not eras:
        raise ConfigError(f"unknown era(s) {bad or eras}: choose from {', '.join(ERAS)}")
    known = (*ALL_PROCESSES, *DATA_STREAMS)
    procs = [p.strip() for p in str(args.processes).split(",") if p.strip()]
    bad = [p for p in procs if p not in known]
    if bad or not procs:
        raise ConfigError(f"unknown process(es) {bad or procs}: choose from {', '.join(known)}")
    if args.events_per_sample <= 0:
        raise ConfigError(f"--events-per-sample must be positive, got {args.events_per_sample}")
    if getattr(args, "workers", 1) < 1:
        raise ConfigError(f"--workers must be positive, got {args.workers}")
    points = signal_points(args.signal_points) if "signal" in procs else []
    return eras, procs, points


def main(args) -> int:
    eras, procs, points = parse_request(args)
    from rich.console import Console

    console = Console(stderr=True, quiet=args.quiet)

    def progress(i, n, dataset, n_ev, dt):
        console.print(f"[{i:>3}/{n}] {dataset:<32} {n_ev:>8} events  {dt:6.1f} s")

    t0 = time.perf_counter()
    kwargs = {}
    if getattr(args, "samples", "inclusive") == "main-job":
        from analysis.toymc.processes import MAIN_JOB_PLANS, MAIN_JOB_STREAM_LUMI_FB
        from commands.main_job import DEFAULT_EVENTS

        scale = args.events_per_sample / DEFAULT_EVENTS
        kwargs = {"plans": {k: v for k, v in MAIN_JOB_PLANS.items() if k in procs},
                  "stream_lumi_fb": {k: v * scale for k, v in MAIN_JOB_STREAM_LUMI_FB.items() if k in procs},
                  "skim": True}
    fileset = generate_samples(args.out, eras, procs, points, args.events_per_sample, args.seed, progress,
                               workers=args.workers, **kwargs)
    console.print(f"wrote {len(fileset)} datasets and {args.out / 'fileset.json'} in {time.perf_counter() - t0:.1f} s")
    return 0
