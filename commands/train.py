"""Train the refiner or the soft-track classifier and export it to ONNX (docs/physics.md sec. 4, 7).

refiner
  Generates simulated dy_mumu and pseudo-data data_singlemuon per era (toy generator,
  fixed seed; as the main job makes them: pT(Z) slices, the single-muon stream at a stated
  luminosity and skimmed) as ROOT files into --samples (unless there already), reads them
  back (models.softtrack.data.refiner_samples, at the NanoAOD precision stored), keeps the
  candidate tracks of cleaned Drell-Yan events (two isolated opposite-charge muons, pT > 30
  GeV, 75 < m <= 105 GeV, pT(mumu) > --ptz-min = 200 GeV), weights the simulated tracks as the
  analysis does (genWeight x pT(Z) weight x track-class scale factor, from --corrections,
  default the shipped file), splits tracks by event into training and held-out parts, trains
  an ensemble of Fixup residual nets (two hidden layers per block) on (pt, dxyErr, dzErr)
  with the weighted MMD (or MDMM / two-stage, --loss), exports OUT/refiner.onnx + .json and
  writes REPORT/refiner_metrics.json (MMD, 1D Wasserstein distances and mean ratios on
  held-out tracks, weighted, before and after, with the injected truth) and REPORT/refiner.png.

classifier
  Generates the five background processes per era (--events each, default 3000) and the
  signal points of the main job (--signal-points; a third as many events), computes the
  per-track feature table of analysis/features.py on the candidate tracks and the truth-
  matching classes of analysis/softtrack/labels.py (signal tracks from signal samples, background
  classes from the backgrounds), and trains. --synthetic trains on synthetic separable
  features instead (a pipeline check, NOT physics; refuses to write into models/softtrack/). Writes
  OUT/classifier.onnx + .json and REPORT/classifier_metrics.json
  (ROC AUC of signal vs each background class per Delta m, calibration curves) and
  REPORT/classifier_calibration.png.

Examples:
  python run.py train refiner
  python run.py train refiner --loss two-stage --steps 2000 --out /tmp/ref
  python run.py train classifier --synthetic --out /tmp/clf
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import ConfigError
from analysis.io import write_atomic
from analysis.softtrack.config import ERAS, REFINER_ENSEMBLE, REFINER_VARIABLES, TRACK_CLASSES

NAME = "train"
HELP = "train the refiner or the soft-track classifier and export them to ONNX"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models" / "softtrack"
DEFAULT_REPORT = Path("outputs") / "train"
#: default toy statistics of the refiner: simulated dy_mumu events per era (in the main
#: job's pT(Z) slices) and the single-muon stream's luminosity per era (fb^-1, skimmed)
REFINER_SIM_EVENTS = 64000
REFINER_DATA_LUMI_FB = 4.0
#: where the refiner's toy samples are generated (ROOT files and their fileset)
DEFAULT_REFINER_SAMPLES = Path("data") / "generated" / "refiner"
#: fraction of events held out for the before/after evaluation
HELD_OUT_FRACTION = 0.25
#: synthetic classifier check: tracks and features
SYNTHETIC_TRACKS = 40_000
SYNTHETIC_FEATURES = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=("refiner", "classifier"), help="which model to train")
    p.add_argument("--out", type=Path, default=MODELS_DIR,
                   help="directory of the exported <model>.onnx and .json (default: models/softtrack/, the shipped files)")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT,
                   help=f"directory of metrics JSON and plots (default {DEFAULT_REPORT})")
    p.add_argument("--seed", type=int, default=1, help="seed of generation, splits and training (default 1)")
    p.add_argument("--eras", default=",".join(ERAS), help="comma-separated eras (default all)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group("refiner")
    g.add_argument("--sim-events", type=int, default=REFINER_SIM_EVENTS,
                   help=f"simulated dy_mumu events per era (default {REFINER_SIM_EVENTS})")
    g.add_argument("--data-lumi", type=float, default=REFINER_DATA_LUMI_FB,
                   help=f"data_singlemuon luminosity per era in fb^-1 (default {REFINER_DATA_LUMI_FB:g})")
    g.add_argument("--ptz-min", type=float, default=200.0,
                   help="minimum pT(mumu) in GeV (default 200: the cleaned Drell-Yan region)")
    g.add_argument("--corrections", type=Path, default=None,
                   help="correctionlib file with ptz_weight and track_class_sf for the simulated tracks' weights "
                        "(default: the shipped corrections/softtrack file)")
    g.add_argument("--loss", choices=("mmd", "mdmm", "two-stage"), default="mmd",
                   help="training schedule (default mmd, thesis sec. 6.2.2)")
    g.add_argument("--primary", choices=("huber", "mse"), default="huber",
                   help="pairwise primary loss of mdmm/two-stage (default huber)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps per member (default 1000)")
    g.add_argument("--ensemble", type=int, default=REFINER_ENSEMBLE,
                   help=f"ensemble members (default {REFINER_ENSEMBLE})")
    g.add_argument("--samples", type=Path, default=DEFAULT_REFINER_SAMPLES,
                   help=f"directory of the refiner's toy samples, generated there unless present "
                   f"(default {DEFAULT_REFINER_SAMPLES})")
    g.add_argument("--conditions", default="", help="comma-separated conditioning Track fields, e.g. abseta")
    g = p.add_argument_group("classifier")
    g.add_argument("--synthetic", action="store_true",
                   help="train on synthetic features (pipeline check; needs --out outside models/softtrack/)")
    g.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 40)")
    g.add_argument("--events", type=int, default=CLASSIFIER_EVENTS,
                   help=f"events per background sample and era (default {CLASSIFIER_EVENTS}; signal: a third)")
    g.add_argument("--signal-points", default="default",
                   help="signal points of the training: 'default' (those of the main job), 'benchmarks', "
                   "'grid' or M:DM,...")


def _parse_eras(text: str) -> list[str]:
    eras = [e.strip() for e in text.split(",") if e.strip()]
    bad = [e for e in eras if e not in ERAS]
    if bad or not eras:
        raise ConfigError(f"unknown era(s) {bad or eras}: choose from {', '.join(ERAS)}")
    return eras


def _require_torch() -> None:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None:
        raise ConfigError("training needs torch and onnx: pip install -e '.[train]'")


def _write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, default=float) + "\n")


# --- refiner --------------------------------------------------------------------------
def refiner_fileset(samples: Path, eras: list[str], n_sim: int, data_lumi_fb: float, seed: int, say) -> dict:
    """The fileset of the refiner's toy samples: simulated dy_mumu (``n_sim`` events per era
    in the main job's pT(Z) slices) in SAMPLES/simulation and the pseudo-data stream
    data_singlemuon (``data_lumi_fb`` per era, skimmed) in SAMPLES/data, generated unless the
    same request is there already (analysis.toymc.writer)."""
    from analysis.toymc.processes import MAIN_JOB_PLANS
    from analysis.toymc.writer import generate_samples, present_fileset, request_hash
    from models.softtrack.data import REFINER_DATA, REFINER_SIMULATION

    fileset = {}
    # the main job's slices, with exactly n_sim events per era
    plan = replace(MAIN_JOB_PLANS[REFINER_SIMULATION], events_factor=1.0)
    requests = (("simulation", REFINER_SIMULATION, {"plans": {REFINER_SIMULATION: plan}}),
                ("data", REFINER_DATA, {"stream_lumi_fb": {REFINER_DATA: data_lumi_fb}, "skim": True}))
    for sub, process, kw in requests:
        out = samples / sub
        present = present_fileset(out, request_hash(eras, [process], [], n_sim, seed, None, **kw))
        if present is None:
            say(f"generating {process} into {out}")
            generate_samples(out, eras, [process], [], n_sim, seed,
                             lambda i, k, dataset, n_ev, dt: say(f"  [{i}/{k}] {dataset}: {n_ev} events, {dt:.1f} s"),
                             **kw)
            present = out / "fileset.json"
        fileset |= json.loads(present.read_text())
    return fileset


def train_refiner_command(args, say) -> int:
    from analysis.toymc.truth import PSEUDO_DATA
    from models.softtrack.data import refiner_samples
    from models.softtrack.fit import fit_refiner
    from models.softtrack.report import plot_refinement
    from models.softtrack.training import RefinerConfig

    eras = _parse_eras(args.eras)
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    if args.sim_events <= 0 or not args.data_lumi > 0 or args.ensemble <= 0:
        raise ConfigError("--sim-events, --data-lumi and --ensemble must be positive")
    cfg_kw = {"loss": args.loss, "primary": args.primary, "ensemble": args.ensemble,
              "conditions": conditions, "seed": args.seed}
    if args.steps is not None:
        if args.steps <= 0:
            raise ConfigError(f"--steps must be positive, got {args.steps}")
        cfg_kw["steps"] = args.steps
    from corrections.softtrack.apply import DEFAULT_PATH, SoftTrackCorrections
    from models.softtrack.data import RefinerWeights

    corr_path = args.corrections or DEFAULT_PATH
    weights = RefinerWeights(SoftTrackCorrections(corr_path))
    sample = {"eras": eras, "sim_events_per_era": args.sim_events, "data_lumi_fb_per_era": args.data_lumi,
              "ptz_min": args.ptz_min, "held_out_fraction": HELD_OUT_FRACTION,
              "simulation": "dy_mumu", "data": "data_singlemuon",
              "simulation_weights": f"genWeight x ptz_weight x track_class_sf from {Path(corr_path).name}"}
    cfg = RefinerConfig(**cfg_kw, extra={"sample": sample})
    t0 = time.perf_counter()
    fileset = refiner_fileset(args.samples, eras, args.sim_events, args.data_lumi, args.seed, say)
    sim, data = refiner_samples(fileset, eras, ptz_min=args.ptz_min, conditions=conditions, weights=weights,
                                progress=say)
    truth = {"pt": PSEUDO_DATA.track_pt_scale, "dxyErr": PSEUDO_DATA.dxy_err_scale,
             "dzErr": PSEUDO_DATA.dz_err_scale}
    fit = fit_refiner(sim, data, cfg, args.out / "refiner.onnx", conditions=conditions,
                      held_out_fraction=HELD_OUT_FRACTION, threads=args.threads,
                      extra_metrics={"injected_truth_scale": truth}, say=say)
    ev = fit.metrics
    ev["train_seconds"] = time.perf_counter() - t0
    out = args.out / "refiner.onnx"
    _write_json(args.report / "refiner_metrics.json", ev)
    plot_refinement(args.report / "refiner.png", fit.held_out_simulation, fit.held_out_refined,
                    fit.held_out_data, REFINER_VARIABLES, fit.held_out_weight)
    say(f"MMD_b held out: {ev['mmd_b_simulation']:.3g} -> {ev['mmd_b_refined']:.3g} "
        f"(x{ev['mmd_b_reduction_factor']:.1f} lower)")
    for v in REFINER_VARIABLES:
        w = ev["wasserstein_log10"][v]
        r = ev["mean_ratio"][v]
        say(f"  {v:<7} W1(log10) {w['simulation']:.4f} -> {w['refined']:.4f}   mean refined/sim "
            f"{r['refined_over_simulation']:.4f}  data/sim {r['data_over_simulation']:.4f}  truth {truth[v]}")
    say(f"wrote {out}, {out.with_suffix('.json')}, {args.report / 'refiner_metrics.json'}, "
        f"{args.report / 'refiner.png'} in {time.perf_counter() - t0:.0f} s")
    return 0


# --- classifier -----------------------------------------------------------------------
#: toy statistics of the classifier: events per background sample and era (signal points: a third)
CLASSIFIER_BACKGROUNDS = ("zjets_nunu", "wjets_lnu", "ttjets", "dy_mumu", "qcd")
CLASSIFIER_EVENTS = 3000
CLASSIFIER_SIGNAL_FRACTION = 3


def classifier_signal_points(spec: str) -> list[tuple[float, float]]:
    if spec == "default":
        from commands.main_job import default_signal_points

        return default_signal_points()
    from analysis.toymc.processes import signal_points

    return signal_points(spec)


def classifier_inputs_from_features(seed: int, eras: list[str], n_events: int = CLASSIFIER_EVENTS, say=None,
                                    points: list[tuple[float, float]] | None = None):
    """Per-track features, labels and event ids of generated samples (real features).

    The single point where the classifier meets ``analysis.softtrack.features`` (the 37 features of
    docs/physics.md sec. 3) and the truth-matching labels of ``analysis.helix``: background tracks
    from CLASSIFIER_BACKGROUNDS, signal-pion tracks from ``points`` (default: the benchmarks).
    """
    if importlib.util.find_spec("analysis.softtrack.features") is None:
        raise ConfigError(
            "analysis/features.py (the per-track feature table of docs/physics.md sec. 3) does not exist yet: "
            "the classifier cannot be trained on real features; use --synthetic --out DIR for a pipeline check"
        )
    from analysis.softtrack.config import SIGNAL_BENCHMARKS
    from analysis.toymc.processes import PROCESSES
    from analysis.toymc.sample import generate_mc
    from models.softtrack.data import build_classifier_data, classifier_track_table

    parts = []
    jobs = [(p, None) for p in CLASSIFIER_BACKGROUNDS] + [("signal", pt) for pt in (points or SIGNAL_BENCHMARKS)]
    for era in eras:
        for process, point in jobs:
            n_gen = max(n_events // CLASSIFIER_SIGNAL_FRACTION, 1) if point else n_events
            if say:
                say(f"generating {process} {point or ''} {era} ({n_gen} events)")
            kw = {"m_chargino": point[0], "dm": point[1]} if point else {}
            branches, _ = generate_mc(process, era, n_gen, seed, **kw)
            feats, labels, event = classifier_track_table(branches)
            is_sig_sample = point is not None
            keep = labels == TRACK_CLASSES.index("signal") if is_sig_sample else labels != TRACK_CLASSES.index("signal")
            n = int(keep.sum())
            parts.append({"features": {k: v[keep] for k, v in feats.items()}, "label": labels[keep],
                          "event": event[keep] + len(parts) * (1 << 32), "era": np.full(n, era),
                          "dm": np.full(n, point[1] if point else np.nan),
                          "m": np.full(n, point[0] if point else np.nan),
                          "bkg_w": np.full(n, 1.0 if point else PROCESSES[process].xsec_pb / n_gen)})
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("label", "event", "era", "dm", "m", "bkg_w")}
    features = {k: np.concatenate([p["features"][k] for p in parts]) for k in parts[0]["features"]}
    return build_classifier_data(features, cat["label"], cat["event"], cat["dm"], cat["era"], seed=seed,
                                 m_chargino=cat["m"], background_weight=cat["bkg_w"])


def train_classifier_command(args, say) -> int:
    from models.softtrack.data import build_classifier_data, synthetic_track_table
    from models.softtrack.fit import fit_classifier
    from models.softtrack.report import plot_calibration
    from models.softtrack.training import ClassifierConfig

    eras = _parse_eras(args.eras)
    cfg_kw: dict[str, Any] = {"seed": args.seed}
    if args.epochs is not None:
        cfg_kw["epochs"] = args.epochs
    cfg = ClassifierConfig(**cfg_kw)
    t0 = time.perf_counter()
    if args.synthetic:
        if args.out.resolve() == MODELS_DIR.resolve():
            raise ConfigError("--synthetic trains on fake features: give --out DIR outside models/softtrack/ "
                              "(the shipped classifier must come from real features)")
        table = synthetic_track_table(SYNTHETIC_TRACKS, SYNTHETIC_FEATURES, args.seed)
        names = tuple(f"f{i}" for i in range(SYNTHETIC_FEATURES))
        data = build_classifier_data({n: table[n] for n in names}, table["label"], table["event"],
                                     table["dm"], table["era"], m_chargino=table["m_chargino"], seed=args.seed)
        source = "synthetic (NOT physics)"
    else:
        if args.events <= 0:
            raise ConfigError(f"--events must be positive, got {args.events}")
        data = classifier_inputs_from_features(args.seed, eras, args.events, say=say,
                                               points=classifier_signal_points(args.signal_points))
        source = "toy generator + analysis.softtrack.features"
    out = args.out / "classifier.onnx"
    ev = fit_classifier(data, cfg, out, source=source, threads=args.threads, say=say)
    ev["train_seconds"] = time.perf_counter() - t0
    _write_json(args.report / "classifier_metrics.json", ev)
    plot_calibration(args.report / "classifier_calibration.png", ev["calibration"])
    for dm, entry in ev["auc"].items():
        aucs = "  ".join(f"{c} {entry[c]:.3f}" for c in TRACK_CLASSES if c in entry)
        say(f"dm {dm}: AUC signal vs {aucs}")
    say(f"wrote {out}, {out.with_suffix('.json')}, {args.report / 'classifier_metrics.json'} "
        f"in {time.perf_counter() - t0:.0f} s")
    return 0


def main(args) -> int:
    _require_torch()
    if args.threads <= 0:
        raise ConfigError(f"--threads must be positive, got {args.threads}")
    from rich.console import Console

    console = Console(stderr=True, quiet=args.quiet)
    say = console.print
    if args.model == "refiner":
        return train_refiner_command(args, say)
    return train_classifier_command(args, say)
