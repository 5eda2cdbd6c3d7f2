"""The main job (``python run.py`` with no arguments, or ``python run.py main-job``).

1. generate the default toy sample into data/generated/default/ unless an identical one is
   there (same request hash, every file as request.json records it; analysis.toymc.writer):
   simulation in stitched generator-level slices with QCD enriched in p_T^miss
   (analysis.toymc.processes.MAIN_JOB_PLANS), pseudo-data streams at stated luminosities and
   skimmed (MAIN_JOB_STREAM_LUMI_FB, STREAM_SKIMS); ``--quick`` makes a smaller one into
   data/generated/quick/ and writes outputs/quick/;
2. run the cleaned Drell-Yan and the signal-region processors (refiner and classifier
   through ONNX when the shipped models are present), derive the corrections and write
   them as correctionlib JSON, then run both regions again with the corrections applied;
3. build R&S templates from simulated QCD and predict QCD in the baseline (closure numbers);
4. derive the sideband scale factors and the residual shape again from the corrected
   outputs, for the signal regions in use, and apply them to the background of the 12 signal
   regions (corrections.softtrack.signal_regions); build pyhf workspaces from them and compute expected
   CLs limits for every generated signal point at the full Run-2 luminosity, with the
   exclusion contour;
5. draw the plots, print a summary and write everything under outputs/default/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis.io import atomic_output, write_atomic
from analysis.softtrack import config as cfg

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "generated" / "default"
DEFAULT_OUT = ROOT / "outputs" / "default"
#: events per background sample and era: stitched slices where the selections are, QCD
#: enriched in p_T^miss (analysis.toymc.processes.MAIN_JOB_PLANS)
DEFAULT_EVENTS = 8000
#: --quick: fewer events (the pseudo-data luminosities scaled alike)
QUICK_EVENTS = 3000
DEFAULT_SEED = 1
#: signal points of the default sample: the benchmarks and a coarse grid for the contour
DEFAULT_SIGNAL_MASSES = (100.0, 140.0, 200.0, 300.0)
DEFAULT_SIGNAL_DM_INDICES = (0, 3, 6, 8)
#: events per signal point and era, at the default number of background events (scaled with it)
SIGNAL_EVENTS = 1000
#: bootstrap replicas of the R&S templates for the closure's uncertainty: their statistical
#: part is about as large as the seed bootstrap's (docs/physics.md sec. 14); each is one more
#: fit and smearing per seed event, 4 cost ~65 s of the 91 s R&S stage (the main job from an
#: empty data/ directory: 334 s)
RS_TEMPLATE_REPLICAS = 4


def default_signal_points() -> list[tuple[float, float]]:
    points = {(m, dm) for m, dm in cfg.SIGNAL_BENCHMARKS}
    for m in DEFAULT_SIGNAL_MASSES:
        dms = cfg.SIGNAL_GRID[m][0]
        points |= {(m, dms[i]) for i in DEFAULT_SIGNAL_DM_INDICES}
    return sorted(points)


NAME = "main-job"
HELP = "the main job (what `python run.py` runs), with its options: --config, --out, --events, ..."


def default_args() -> argparse.Namespace:
    return argparse.Namespace(data=DEFAULT_DATA, out=DEFAULT_OUT, events=None, seed=DEFAULT_SEED,
                              executor="futures", workers=2, chunksize=20_000, quiet=False, config=None, quick=False,
                              rs_template_replicas=RS_TEMPLATE_REPLICAS)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = default_args()
    p.add_argument("--config", type=Path, default=None,
                   help="TOML/YAML file overriding the soft-track configuration of every processor of the job "
                        "(its hash is in each output's provenance and in summary.json)")
    p.add_argument("--data", type=Path, default=d.data, help=f"directory of the sample (default {d.data})")
    p.add_argument("--out", type=Path, default=d.out, help=f"output directory (default {d.out})")
    p.add_argument("--events", type=int, default=None, help=f"events per background sample and era "
                   f"(default {DEFAULT_EVENTS}, with --quick {QUICK_EVENTS}; signal points and the pseudo-data "
                   f"luminosities scale with it: {SIGNAL_EVENTS} events per point at {DEFAULT_EVENTS})")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke test of about 2 minutes: {QUICK_EVENTS} events per background sample")
    p.add_argument("--seed", type=int, default=d.seed, help=f"generator seed (default {d.seed})")
    p.add_argument("--executor", default=d.executor, choices=("futures", "iterative", "dask"),
                   help=f"default {d.executor}")
    p.add_argument("--workers", type=int, default=d.workers, help=f"local workers (default {d.workers})")
    p.add_argument("--chunksize", type=int, default=d.chunksize, help=f"events per chunk (default {d.chunksize})")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--rs-template-replicas", type=int, default=d.rs_template_replicas,
                   help="Poisson-bootstrap replicas of the R&S templates whose spread enters the closure's "
                        f"uncertainty (default {d.rs_template_replicas}; 0: the seed bootstrap and the QCD "
                        "simulation's statistics only)")


class Stages:
    """Rich console output with the time of each stage."""

    def __init__(self, quiet: bool, width: int | None = None):
        from rich.console import Console

        self.console = Console(stderr=True, quiet=quiet, width=width)
        self.times: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def run(self, name: str, fn, *args, **kwargs):
        self.console.rule(f"[bold]{name}")
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        self.times[name] = time.perf_counter() - t
        self.console.print(f"[green]done[/] {name} in {self.times[name]:.1f} s")
        return result


def sample_request(events: int) -> dict:
    """What the main job's sample is made of at ``events`` per background sample and era: the
    plans (slices, enrichment), the pseudo-data streams at stated luminosities (scaled with
    ``events``) and skimmed, the signal points and their events."""
    from analysis.toymc.processes import (
        ALL_PROCESSES,
        DATA_STREAMS,
        MAIN_JOB_PLANS,
        MAIN_JOB_STREAM_LUMI_FB,
    )

    scale = events / DEFAULT_EVENTS
    procs = [*ALL_PROCESSES, *DATA_STREAMS]
    return {"eras": list(cfg.ERAS), "procs": procs, "points": default_signal_points(),
            "n": events, "signal_events": max(int(round(SIGNAL_EVENTS * scale)), 1),
            "plans": {k: v for k, v in MAIN_JOB_PLANS.items() if k in procs},
            "stream_lumi_fb": {k: v * scale for k, v in MAIN_JOB_STREAM_LUMI_FB.items() if k in procs}, "skim": True}


def ensure_sample(data: Path, events: int, seed: int, stages: Stages, workers: int = 1) -> Path:
    from analysis.toymc.writer import (
        REQUEST,
        check_sample,
        generate_samples,
        present_fileset,
        request_hash,
    )

    r = sample_request(events)
    wanted = request_hash(r["eras"], r["procs"], r["points"], events, seed, r["signal_events"], r["plans"],
                          r["stream_lumi_fb"], r["skim"])
    present = present_fileset(data, wanted)
    if present is not None:
        stages.console.print(f"default sample present in {data} (hash {wanted})")
        return present
    if (data / REQUEST).is_file():  # a sample is there, but not this one or not complete
        stages.console.print(f"generating the default sample again: {check_sample(data, wanted)}")

    def progress(i, n, dataset, n_ev, dt):
        stages.console.print(f"  [{i:>3}/{n}] {dataset:<34} {n_ev:>7} events {dt:5.1f} s")

    generate_samples(data, r["eras"], r["procs"], r["points"], events, seed, progress,
                     signal_events=r["signal_events"], workers=workers, plans=r["plans"],
                     stream_lumi_fb=r["stream_lumi_fb"], skim=r["skim"])
    return data / "fileset.json"


def load_scorer(stages: Stages):
    from models.softtrack.inference import DEFAULT_CLASSIFIER
    from processors.softtrack.scoring import TrackScorer

    if not DEFAULT_CLASSIFIER.is_file():
        stages.console.print(f"[yellow]notice:[/] no shipped classifier at {DEFAULT_CLASSIFIER}: "
                             "signal regions and max scores are not filled")
        return None
    return TrackScorer.from_directory(None)


def main(args) -> int:
    from processors.execution import persistent_workers

    with persistent_workers():  # the passes share worker processes and open files
        return _main(args)


def _main(args) -> int:
    from dataclasses import replace

    from coffea.util import save

    from analysis.configuration import config_hash
    from analysis.errors import ConfigError
    from analysis.plotting import draw_plots
    from analysis.softtrack.plots import agreement, plot_jobs, write_cutflow
    from commands.corrections import truth_pileup
    from corrections.softtrack.apply import SoftTrackCorrections
    from corrections.softtrack.build import build_corrections, write_correction_set
    from processors.fileset import load_fileset
    from processors.registry import get
    from processors.runner import RunOptions
    from processors.softtrack.run import run_region
    from processors.softtrack.stages import (
        corrections_notes,
        derive_sr_edges,
        limits_stage,
        rs_stage,
        sr_corrections_stage,
    )

    quick = getattr(args, "quick", False)
    if getattr(args, "events", None) is None:
        args.events = QUICK_EVENTS if quick else DEFAULT_EVENTS
    if quick:  # its own sample and outputs unless given: the default ones stay
        args.data = DEFAULT_DATA.with_name("quick") if Path(args.data) == DEFAULT_DATA else args.data
        args.out = DEFAULT_OUT.with_name("quick") if Path(args.out) == DEFAULT_OUT else args.out
    if args.events <= 0 or args.workers <= 0 or args.chunksize <= 0:
        raise ConfigError("--events, --workers and --chunksize must be positive")
    config = get("softtrack").load_config(getattr(args, "config", None))
    stages = Stages(args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fileset_path = stages.run("generate the default sample", ensure_sample, Path(args.data), args.events, args.seed, stages,
                             args.workers)
    fileset = load_fileset(fileset_path)
    opts = RunOptions(executor=args.executor, workers=args.workers, chunksize=args.chunksize, status=not args.quiet)
    scorer = load_scorer(stages)

    def process(region: str, corrections=None, tag: str = "", sr_edges=None):
        # the uncorrected passes feed the derivations, which read nominal histograms only:
        # without the variations (their nominal histograms and cutflows are the same)
        run_opts = opts if corrections is not None else replace(opts, systematics=False)
        result = run_region(region, fileset, run_opts, config, scorer=scorer, corrections=corrections,
                            sr_edges=sr_edges)
        with atomic_output(out / f"{region}{tag}.coffea") as tmp:
            save(result, str(tmp))
        return result

    dy_raw = stages.run("cleaned Drell-Yan (uncorrected)", process, "dy", None, "_uncorrected")
    sig_raw = stages.run("signal region (uncorrected)", process, "signal", None, "_uncorrected")
    built = stages.run("derive corrections", build_corrections, dy_raw, sig_raw, pileup_profiles=truth_pileup())
    corr_path = write_correction_set(built.cset, out / "corrections")
    corrections = SoftTrackCorrections(corr_path)
    # the eras a correction could not be derived for (the build's notes say why) are declared
    # optional for the corrected passes: not applied there, and the outputs' notices say so
    not_applied = {k: v for k, v in built.not_derived.items() if k in cfg.EVENT_WEIGHT_CORRECTIONS}
    if not_applied:
        merged = dict(config.optional_corrections)
        for name, eras in not_applied.items():
            merged[name] = sorted({*merged.get(name, ()), *eras})
        config = type(config).model_validate(config.model_dump() | {"optional_corrections": merged})
    dy = stages.run("cleaned Drell-Yan (corrected)", process, "dy", corrections)
    edges = None
    if scorer is not None:
        edges = stages.run("signal-region boundaries", derive_sr_edges, sig_raw, out)
        for note in edges["notes"]:
            stages.console.print(f"  {note}")
    sig = stages.run("signal region (corrected)", process, "signal", corrections, "", edges["edges"] if edges else None)
    sr_notes: list[str] = []
    if scorer is not None:
        corrections, sr_notes = stages.run("signal-region corrections", sr_corrections_stage, built.cset, sig, dy,
                                           corr_path)
    # the closure reads the nominal prediction and the template replicas: the response
    # variations coreUp and tailUp (two more fits and smearings per event) are for rs-closure
    # and rs-predict, the main job reports none of them
    rs = stages.run("Rebalance and Smear (QCD)", rs_stage, fileset, out, replace(opts, systematics=False), config,
                    getattr(args, "rs_template_replicas", RS_TEMPLATE_REPLICAS))
    limits = None
    if "sr" in sig["histograms"]:
        limits = stages.run("limits", limits_stage, sig, out, args.workers, corrections if scorer is not None else None)
    plots = stages.run("plots", lambda: draw_plots(plot_jobs(dy, out / "plots", prefix="dy_")
                                                   + plot_jobs(sig, out / "plots", prefix="signal_"), args.workers))
    for prefix, output in (("dy_", dy), ("signal_", sig)):
        write_cutflow(output, out / "plots", prefix)
    summary = {
        "output": str(out), "sample": str(fileset_path), "events_per_sample": args.events,
        "config": {"file": str(args.config) if getattr(args, "config", None) else None,
                   "sha256": config_hash(config)},
        "stage_seconds": stages.times, "total_seconds": time.perf_counter() - stages.t0,
        "corrections": {"file": str(corr_path), "notes": corrections_notes(built.notes, sr_notes, scorer is not None),
                        "shipped": shipped_corrections_status(corr_path),
                        "not_applied": not_applied,
                        "track_class_sf": {era: {c: [f.sf[c], f.unc[c]] for c in ("pv", "spurious")}
                                           for era, f in built.track_fits.items()}},
        "agreement_signal_met": {"uncorrected": agreement(sig_raw), "corrected": agreement(sig)},
        "agreement_dy_met": {"uncorrected": agreement(dy_raw), "corrected": agreement(dy)},
        "rs": rs, "limits": limits, "n_plots": len(plots), "sr_edges": edges,
        "notices": sorted(set(dy["notices"]) | set(sig["notices"])),
    }
    summary["truth"] = stages.run("report against truth", truth_rows, summary, built, sig, dy)
    write_atomic(out / "summary.json", json.dumps(summary, indent=1, default=str))
    print_summary(summary, sig, stages)
    return 0


def shipped_corrections_status(derived: Path) -> dict:
    """Whether the shipped corrections file (corrections/softtrack/) holds what this job
    derived (the same JSON; the gzip headers name different paths)."""
    import gzip

    from corrections.softtrack.apply import DEFAULT_PATH

    try:
        same = gzip.decompress(DEFAULT_PATH.read_bytes()) == gzip.decompress(Path(derived).read_bytes())
    except OSError:
        same = False
    return {"file": str(DEFAULT_PATH), "identical": same}


def truth_rows(summary: dict, built, sig: dict, dy: dict | None = None) -> list[dict]:
    """Every derived quantity next to what the toy generator injected (truth_report)."""
    from analysis.errors import ModelError
    from analysis.toymc.truth import PSEUDO_DATA
    from models.inference import read_metadata
    from models.softtrack.inference import DEFAULT_REFINER
    from processors.softtrack.truth_report import Injected, truth_table

    injected = Injected(pv_track_sf=PSEUDO_DATA.pv_track_rate, spurious_track_sf=PSEUDO_DATA.spurious_track_rate,
                        met_slope_per_gev=PSEUDO_DATA.met_slope_per_gev, met_slope_pivot=PSEUDO_DATA.met_slope_pivot)
    try:
        refiner = read_metadata(DEFAULT_REFINER).get("metrics")
    except ModelError:
        refiner = None
    rs = summary["rs"]
    return truth_table(track_class_sf=summary["corrections"]["track_class_sf"], met_fits=built.met_fits,
                       rs_closure={"seed-004": rs["baseline_closure"], "search": rs["search_closure"]},
                       signal_output=sig, limits=summary["limits"], refiner_metrics=refiner, injected=injected,
                       ptz_fits=built.ptz_fits, pileup_output=dy)


def print_truth(rows: list[dict], console) -> None:
    from rich.table import Table

    t = Table(title="derived vs injected (pull = (derived - injected) / unc.)", padding=(0, 1))
    for col in ("quantity", "era", "derived", "injected", "pull", "note"):
        t.add_column(col)

    def num(x, fmt=".4g"):
        return "" if x is None else format(x, fmt)

    for r in rows:
        derived = num(r["derived"]) + (f" +- {num(r['uncertainty'], '.2g')}" if r["uncertainty"] is not None else "")
        t.add_row(r["quantity"], r["era"] or "", derived, num(r["injected"]), num(r["pull"], "+.1f"), r["note"])
    console.print(t)


def print_summary(summary: dict, sig: dict, stages: Stages) -> None:
    from rich.table import Table

    c = stages.console
    c.rule("[bold]summary")
    t = Table(title="signal region: data vs simulation (p_T^miss)")
    for col in ("", "data", "MC", "data/MC", "chi2/ndf"):
        t.add_column(col)
    for k, v in summary["agreement_signal_met"].items():
        if v:
            t.add_row(k, f"{v['data']:.0f}", f"{v['mc']:.1f}", f"{v['ratio']:.3f}", f"{v['chi2']:.1f}/{v['ndf']}")
    c.print(t)
    if summary["limits"]:
        t = Table(title=f"expected 95% CL upper limits on mu ({summary['limits']['luminosity_fb']:.0f} fb^-1, blinded)")
        for col in ("signal", "median", "-1 sigma", "+1 sigma"):
            t.add_column(col)
        for name, v in sorted(summary["limits"]["signals"].items()):
            e = v["expected"]
            t.add_row(name, f"{e[2]:.3g}", f"{e[1]:.3g}", f"{e[3]:.3g}")
        c.print(t)
    notes = (summary["limits"] or {}).get("background_corrections", [])
    if notes:
        applied = {k: sum(f"{k} " in n and n.endswith(" applied") for n in notes) for k in ("sideband_sf", "residual_shape")}
        c.print(f"signal-region background: sideband_sf applied in {applied['sideband_sf']}, residual_shape in "
                f"{applied['residual_shape']} of {len(cfg.ERAS) * len(cfg.CLASSIFIER_DMS)} era x Delta m categories "
                "(outputs/default/limits.json: background_corrections)")
        for note in notes:
            if "not applied" in note:
                c.print(f"  {note}")
    print_truth(summary["truth"], c)
    for ds, v in summary["rs"]["baseline_closure"].items():
        if "ratio" in v and v["ratio"] is not None:
            c.print(f"R&S {ds}: predicted/simulated QCD in the seed-004 baseline = {v['ratio']:.2f} +- "
                    f"{v['uncertainty']:.2f}" + (" (templates' statistics included)" if "uncertainty_split" in v else ""))
    shipped = summary["corrections"]["shipped"]
    c.print(f"shipped corrections {shipped['file']}: "
            + ("the ones this job derived" if shipped["identical"] else "[yellow]differ from the ones this job derived[/]"))
    c.print("stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary["stage_seconds"].items()))
    c.print(f"[bold]total {summary['total_seconds']:.0f} s; everything is in {summary['output']}")
