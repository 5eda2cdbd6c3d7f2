"""The smuon search's main job (``python run.py smuon``; docs/smuon.md sec. 7).

1. generate the default sample into data/generated/smuon/ unless an identical one is there:
   smuon pairs over the scan grid (analysis.toymc.smuon.grid_points) and the three
   backgrounds, enriched (analysis/toymc/smuon.py);
2. run the smuon processor on it: objects, features, the preselection's cutflow, the two
   shipped networks through ONNX Runtime (models/smuon/), the static and dynamic jet vetoes;
3. per strategy and point: expected signal and background, expected CLs limits (pyhf) at
   139, 300 and 3000 fb^-1 with the optimistic and pessimistic background uncertainties,
   the exclusion contours and their plot;
4. print the comparison table of the 18 benchmark points (signal and background yields and
   expected significance for the network vs the static vs the dynamic vetoes) and write it,
   with everything else, to outputs/smuon/ (comparison.json, sensitivity.json, cutflow.json,
   smuon.coffea, exclusion.png).

``--quick`` makes a smaller sample (data/generated/smuon_quick/, outputs/smuon_quick/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "generated" / "smuon"
DEFAULT_OUT = ROOT / "outputs" / "smuon"
#: kept events per background sample (enriched) and per signal point
DEFAULT_EVENTS = 100_000
DEFAULT_SIGNAL_EVENTS = 2000
QUICK_FACTOR = 0.25
DEFAULT_SEED = 1
PROCESSES = ("smuon", "ttbar_mumu", "ww_mumu", "diboson_mumu")

NAME = "smuon"
HELP = "the smuon search's main job: sample, processor with the networks, limits, contours, comparison table"


def default_args() -> argparse.Namespace:
    return argparse.Namespace(data=DEFAULT_DATA, out=DEFAULT_OUT, events=None, signal_events=None, seed=DEFAULT_SEED,
                              executor="futures", workers=2, chunksize=100_000, quiet=False, config=None, quick=False,
                              networks=None)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = default_args()
    p.add_argument("--config", type=Path, default=None, help="TOML/YAML overriding the smuon configuration")
    p.add_argument("--data", type=Path, default=d.data, help=f"sample directory (default {d.data})")
    p.add_argument("--out", type=Path, default=d.out, help=f"output directory (default {d.out})")
    p.add_argument("--events", type=int, default=None,
                   help=f"kept events per background sample (default {DEFAULT_EVENTS}; --quick a quarter)")
    p.add_argument("--signal-events", type=int, default=None,
                   help=f"events per signal point (default {DEFAULT_SIGNAL_EVENTS}; --quick a quarter)")
    p.add_argument("--quick", action="store_true", help="a smaller sample, for smoke tests")
    p.add_argument("--seed", type=int, default=d.seed, help=f"generator seed (default {d.seed})")
    p.add_argument("--networks", type=Path, default=None,
                   help="directory of smuon_nn_low/high.onnx (default: the shipped ones, models/smuon/)")
    p.add_argument("--executor", default=d.executor, choices=("futures", "iterative", "dask"))
    p.add_argument("--workers", type=int, default=d.workers, help=f"local workers (default {d.workers})")
    p.add_argument("--chunksize", type=int, default=d.chunksize, help=f"events per chunk (default {d.chunksize})")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _stages(quiet: bool):
    """The main job's stage printer; the comparison table is wide: outside a terminal rich
    would wrap it at 80 columns."""
    import sys

    from commands.main_job import Stages

    return Stages(quiet, width=None if sys.stderr.isatty() else 150)


def ensure_sample(data: Path, points, events: int, signal_events: int, seed: int, workers: int, console) -> Path:
    """The sample in ``data``, generated unless the one there is identical (request hash and
    every file as request.json records it)."""
    from analysis.smuon.config import ERA
    from analysis.toymc.writer import generate_samples, present_fileset, request_hash

    points = [list(p) for p in points]
    wanted = request_hash([ERA], list(PROCESSES), points, events, seed, signal_events)
    present = present_fileset(data, wanted)
    if present is not None:
        console.print(f"sample present in {data} (hash {wanted})")
        return present

    def progress(i, n, dataset, n_ev, dt):
        console.print(f"  [{i:>3}/{n}] {dataset:<28} {n_ev:>7} events {dt:5.1f} s")

    generate_samples(data, [ERA], list(PROCESSES), points, events, seed, progress, signal_events=signal_events,
                     workers=workers)
    return data / "fileset.json"


def load_networks(where: Path | None, console) -> dict:
    from models.smuon.inference import NETWORKS, SHIPPED, SmuonNetwork

    paths = SHIPPED if where is None else {n: Path(where) / SHIPPED[n].name for n in NETWORKS}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        console.print(f"[yellow]notice:[/] no network at {', '.join(missing)}: the NN regions are not filled "
                      "(train them with `python run.py smuon-train`)")
        return {}
    return {n: SmuonNetwork(p) for n, p in paths.items()}


def run_processor(fileset_path: Path, config, networks: dict, args, store_features: bool = False) -> dict:
    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.smuon.processor import SmuonProcessor

    fileset = load_fileset(fileset_path)
    proc = make_processor(SmuonProcessor, fileset, config, networks=networks, store_features=store_features)
    opts = RunOptions(executor=args.executor, workers=args.workers, chunksize=args.chunksize, status=not args.quiet)
    return run(proc, fileset, opts)


def main(args) -> int:
    from coffea.util import save

    from analysis.configuration import config_hash
    from analysis.errors import ConfigError
    from analysis.io import atomic_output, write_atomic
    from analysis.toymc.smuon import BENCHMARKS, grid_points
    from processors.registry import get
    from processors.smuon.sensitivity import comparison_rows, cutflow_table, sensitivity

    quick = getattr(args, "quick", False)
    factor = QUICK_FACTOR if quick else 1.0
    events = args.events or max(int(DEFAULT_EVENTS * factor), 1)
    signal_events = args.signal_events or max(int(DEFAULT_SIGNAL_EVENTS * factor), 1)
    if quick:
        args.data = DEFAULT_DATA.with_name("smuon_quick") if Path(args.data) == DEFAULT_DATA else args.data
        args.out = DEFAULT_OUT.with_name("smuon_quick") if Path(args.out) == DEFAULT_OUT else args.out
    if events <= 0 or signal_events <= 0 or args.workers <= 0 or args.chunksize <= 0:
        raise ConfigError("--events, --signal-events, --workers and --chunksize must be positive")
    config = get("smuon").load_config(args.config)
    stages = _stages(args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = grid_points()
    fileset_path = stages.run("generate the smuon sample", ensure_sample, Path(args.data), points, events, signal_events,
                              args.seed, args.workers, stages.console)
    networks = load_networks(args.networks, stages.console)
    output = stages.run("smuon processor (networks through ONNX Runtime)", run_processor, fileset_path, config,
                        networks, args)
    with atomic_output(out / "smuon.coffea") as tmp:
        save(output, str(tmp))
    result = stages.run("expected limits and contours (pyhf)", sensitivity, output, config, out, args.workers)
    rows = comparison_rows(result, BENCHMARKS)
    summary = {
        "output": str(out), "sample": str(fileset_path), "events_per_background": events,
        "signal_events": signal_events, "config_sha256": config_hash(config),
        "networks": {n: {"file": str(net.path), "sha256": net.sha256, "threshold": net.threshold,
                         "test_roc_auc_by_point": net.meta.get("metrics", {}).get("test_roc_auc_by_point")}
                     for n, net in networks.items()},
        "comparison": rows, "reach": result["reach"], "grid_max_mass": max(m for m, _ in points),
        "backgrounds": result["backgrounds"],
        "stage_seconds": stages.times, "total_seconds": time.perf_counter() - stages.t0,
    }
    write_atomic(out / "comparison.json", json.dumps(summary, indent=1, default=float))
    write_atomic(out / "cutflow.json", json.dumps(cutflow_table(output), indent=1))
    print_summary(summary, stages.console)
    return 0


def print_summary(summary: dict, console) -> None:
    from rich.table import Table

    console.rule("[bold]smuon search: NN vs static vs dynamic jet vetoes")
    t = Table(title="benchmark points, 139 fb^-1: expected signal s / background b, significance Z "
                    "(Asimov; with a 20% background uncertainty in brackets)", padding=(0, 1))
    for col in ("m_smuon", "m_chi", "NN s / b", "Z", "static s / b", "Z", "dynamic s / b", "Z", "best"):
        t.add_column(col, justify="right")
    for r in summary["comparison"]:
        cells = [f"{r['m_smuon']:g}", f"{r['m_neutralino']:g}"]
        for fam in ("nn", "static", "dynamic"):
            v = r[fam]
            cells += [f"{v['s']:.3g} / {v['b']:.3g}", f"{v['z']:.2f} ({v['z_pessimistic']:.2f})"]
        cells.append(r["best"])
        t.add_row(*cells)
    console.print(t)
    t = Table(title="expected exclusion reach in m_smuon at m_chi = 0 (GeV)", padding=(0, 1))
    t.add_column("lumi (fb^-1)")
    t.add_column("uncertainty")
    for fam in ("nn", "dynamic", "static"):
        t.add_column(fam, justify="right")
    edge = summary.get("grid_max_mass")

    def cell(value):
        if value is None:
            return "-"
        return f">= {value:.0f} (grid edge)" if edge is not None and value >= edge else f"{value:.0f}"

    for lumi, by_unc in summary["reach"].items():
        for unc, fams in by_unc.items():
            t.add_row(lumi, unc, *(cell(fams[f]) for f in ("nn", "dynamic", "static")))
    console.print(t)
    console.print("stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary["stage_seconds"].items()))
    console.print(f"[bold]total {summary['total_seconds']:.0f} s; everything is in {summary['output']}")
