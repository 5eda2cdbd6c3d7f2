"""Train the refiner or the soft-track classifier and export it to ONNX (docs/physics.md sec. 4, 7).

refiner
  Generates simulated dy_mumu and pseudo-data data_singlemuon per era (toy generator,
  fixed seed) as ROOT files into --samples (unless there already), reads them back
  (models.data.refiner_samples, at the NanoAOD precision stored), keeps the candidate
  tracks of events with a Z -> mu mu candidate (two isolated opposite-charge muons,
  pT > 30 GeV, 75 < m <= 105 GeV; --ptz-min adds the cleaned-DY pT(mumu) cut, off by default for statistics), splits tracks by event into
  training and held-out parts, trains an ensemble of Fixup residual nets on (pt, dxyErr,
  dzErr) with the MMD (or MDMM / two-stage, --loss), exports OUT/refiner.onnx + .json and
  writes REPORT/refiner_metrics.json (MMD, 1D Wasserstein distances and mean ratios on
  held-out tracks, before and after, with the injected truth) and REPORT/refiner.png.

classifier
  Generates the five background processes per era (--events each, default 3000) and the
  signal points of the main job (--signal-points; a third as many events), computes the
  per-track feature table of analysis/features.py on the candidate tracks and the truth-
  matching classes of analysis/softtrack/labels.py (signal tracks from signal samples, background
  classes from the backgrounds), and trains. --synthetic trains on synthetic separable
  features instead (a pipeline check, NOT physics; refuses to write into models/). Writes
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
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import ConfigError
from analysis.io import atomic_output, write_atomic
from analysis.softtrack.config import ERAS, REFINER_ENSEMBLE, REFINER_VARIABLES, TRACK_CLASSES

NAME = "train"
HELP = "train the refiner or the soft-track classifier and export them to ONNX"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_REPORT = Path("outputs") / "train"
#: default toy statistics of the refiner: simulated events and pseudo-data events per era
#: (the single-muon stream has ~2.5x fewer Z -> mu mu candidates per event than dy_mumu)
REFINER_SIM_EVENTS = 8000
REFINER_DATA_EVENTS = 24000
#: where the refiner's toy samples are generated (ROOT files and their fileset)
DEFAULT_REFINER_SAMPLES = Path("data") / "generated" / "refiner"
#: fraction of events held out for the before/after evaluation
HELD_OUT_FRACTION = 0.25
#: synthetic classifier check: tracks and features
SYNTHETIC_TRACKS = 40_000
SYNTHETIC_FEATURES = 8
#: plot binning (log10 units) of the before/after figure
PLOT_BINS = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=("refiner", "classifier"), help="which model to train")
    p.add_argument("--out", type=Path, default=MODELS_DIR,
                   help="directory of the exported <model>.onnx and .json (default: models/, the shipped files)")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT,
                   help=f"directory of metrics JSON and plots (default {DEFAULT_REPORT})")
    p.add_argument("--seed", type=int, default=1, help="seed of generation, splits and training (default 1)")
    p.add_argument("--eras", default=",".join(ERAS), help="comma-separated eras (default all)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group("refiner")
    g.add_argument("--sim-events", type=int, default=REFINER_SIM_EVENTS,
                   help=f"simulated dy_mumu events per era (default {REFINER_SIM_EVENTS})")
    g.add_argument("--data-events", type=int, default=REFINER_DATA_EVENTS,
                   help=f"data_singlemuon events per era (default {REFINER_DATA_EVENTS})")
    g.add_argument("--ptz-min", type=float, default=0.0, help="minimum pT(mumu) in GeV (default 0)")
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
                   help="train on synthetic features (pipeline check; needs --out outside models/)")
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
def _plot_refiner(path: Path, sim: np.ndarray, refined: np.ndarray, data: np.ndarray,
                  variables: tuple[str, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(variables), figsize=(5 * len(variables), 6),
                             gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    for i, v in enumerate(variables):
        ls, lr, ld = (np.log10(a[:, i]) for a in (sim, refined, data))
        lo, hi = np.percentile(np.concatenate([ls, ld]), [0.1, 99.9])
        edges = np.linspace(lo, hi, PLOT_BINS + 1)
        hs, _ = np.histogram(ls, edges, density=True)
        hr, _ = np.histogram(lr, edges, density=True)
        hd, _ = np.histogram(ld, edges, density=True)
        nd, _ = np.histogram(ld, edges)
        centres = 0.5 * (edges[1:] + edges[:-1])
        top, bottom = axes[0, i], axes[1, i]
        top.stairs(hs, edges, label="simulation", color="tab:blue")
        top.stairs(hr, edges, label="refined simulation", color="tab:red")
        err = np.where(nd > 0, hd / np.sqrt(np.maximum(nd, 1)), 0.0)
        top.errorbar(centres, hd, yerr=err, fmt="k.", ms=3, label="pseudo-data")
        top.set_ylabel("density")
        top.legend(fontsize=8)
        with np.errstate(divide="ignore", invalid="ignore"):
            bottom.plot(centres, hd / hs, "-", color="tab:blue", label="data / sim")
            bottom.plot(centres, hd / hr, "-", color="tab:red", label="data / refined")
        bottom.axhline(1.0, color="grey", lw=0.8)
        bottom.set_ylim(0.5, 1.5)
        bottom.set_xlabel(f"log10 Track_{v}")
        bottom.set_ylabel("ratio")
    fig.suptitle("Refinement on held-out tracks (Z -> mu mu events)")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def refiner_fileset(samples: Path, eras: list[str], n_sim: int, n_data: int, seed: int, say) -> dict:
    """The fileset of the refiner's toy samples: simulated dy_mumu (``n_sim`` events per era)
    in SAMPLES/simulation and pseudo-data data_singlemuon (about ``n_data``) in SAMPLES/data,
    generated unless the same request is there already (analysis.toymc.writer)."""
    from analysis.toymc.writer import generate_samples, present_fileset, request_hash
    from models.data import REFINER_DATA, REFINER_SIMULATION

    fileset = {}
    for sub, process, n in (("simulation", REFINER_SIMULATION, n_sim), ("data", REFINER_DATA, n_data)):
        out = samples / sub
        present = present_fileset(out, request_hash(eras, [process], [], n, seed))
        if present is None:
            say(f"generating {process} ({n} events per era) into {out}")
            generate_samples(out, eras, [process], [], n, seed,
                             lambda i, k, dataset, n_ev, dt: say(f"  [{i}/{k}] {dataset}: {n_ev} events, {dt:.1f} s"))
            present = out / "fileset.json"
        fileset |= json.loads(present.read_text())
    return fileset


def train_refiner_command(args, say) -> int:
    import torch

    from analysis.toymc.truth import PSEUDO_DATA
    from models.data import refiner_samples, split_by_event
    from models.export import export_refiner
    from models.inference import RefinerModel
    from models.training import RefinerConfig, evaluate_refiner, refine_numpy, train_refiner

    eras = _parse_eras(args.eras)
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    if args.sim_events <= 0 or args.data_events <= 0 or args.ensemble <= 0:
        raise ConfigError("--sim-events, --data-events and --ensemble must be positive")
    cfg_kw = {"loss": args.loss, "primary": args.primary, "ensemble": args.ensemble,
              "conditions": conditions, "seed": args.seed}
    if args.steps is not None:
        if args.steps <= 0:
            raise ConfigError(f"--steps must be positive, got {args.steps}")
        cfg_kw["steps"] = args.steps
    sample = {"eras": eras, "sim_events_per_era": args.sim_events, "data_events_per_era": args.data_events,
              "ptz_min": args.ptz_min, "held_out_fraction": HELD_OUT_FRACTION,
              "simulation": "dy_mumu", "data": "data_singlemuon"}
    cfg = RefinerConfig(**cfg_kw, extra={"sample": sample})
    t0 = time.perf_counter()
    fileset = refiner_fileset(args.samples, eras, args.sim_events, args.data_events, args.seed, say)
    sim, data = refiner_samples(fileset, eras, ptz_min=args.ptz_min, conditions=conditions, progress=say)
    columns = (*REFINER_VARIABLES, *conditions)
    x_sim = np.stack([sim[c] for c in columns], axis=1)
    x_dat = np.stack([data[c] for c in columns], axis=1)
    held_fracs = (1.0 - HELD_OUT_FRACTION, 0.0, HELD_OUT_FRACTION)
    split_sim = split_by_event(sim["event"], args.seed, held_fracs)
    split_dat = split_by_event(data["event"], args.seed + 1, held_fracs)
    train_sim, test_sim = x_sim[split_sim == 0], x_sim[split_sim == 2]
    train_dat, test_dat = x_dat[split_dat == 0], x_dat[split_dat == 2]
    say(f"tracks: simulation {len(train_sim)} train / {len(test_sim)} held out, "
        f"data {len(train_dat)} / {len(test_dat)}  ({time.perf_counter() - t0:.0f} s)")
    torch.set_num_threads(args.threads)
    model, history = train_refiner(train_sim, train_dat, cfg, progress=say)
    refined = refine_numpy(model, test_sim)
    ev = evaluate_refiner(test_sim, refined, test_dat, REFINER_VARIABLES, seed=args.seed)
    truth = {"pt": PSEUDO_DATA.track_pt_scale, "dxyErr": PSEUDO_DATA.dxy_err_scale,
             "dzErr": PSEUDO_DATA.dz_err_scale}
    ev["injected_truth_scale"] = truth
    ev["n_train"] = {"simulation": len(train_sim), "data": len(train_dat)}
    out = args.out / "refiner.onnx"
    export_refiner(model, out, REFINER_VARIABLES, conditions, config=cfg.as_dict(), metrics=ev)
    onnx_refined = RefinerModel(out)(test_sim)
    ev["onnx_vs_torch_max_abs_diff"] = float(np.max(np.abs(onnx_refined - refined))) if len(refined) else 0.0
    ev["history"] = history
    ev["train_seconds"] = time.perf_counter() - t0
    _write_json(args.report / "refiner_metrics.json", ev)
    _plot_refiner(args.report / "refiner.png", test_sim, refined, test_dat, REFINER_VARIABLES)
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
def _plot_calibration(path: Path, calibration: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for cls, curve in calibration.items():
        ax.plot(curve["mean_predicted"], curve["fraction_positive"], "o-", ms=3, label=cls)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraction (weighted)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


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


def _toy_tracks(branches: dict):
    """Generator branches -> (feature table, labels, event index) of the candidate tracks."""
    import awkward as ak

    from analysis.softtrack.features import FEATURE_NAMES, TRACK_INPUTS, track_feature_table
    from analysis.softtrack.labels import track_class_labels
    from analysis.softtrack.objects import candidate_tracks_mask
    from models.data import _collection

    trk = branches["Track"]
    tracks = _collection(branches, "Track", sorted({*TRACK_INPUTS, "highPurity", "isPFcand"}))
    jets = _collection(branches, "Jet", ("pt", "eta", "phi"))
    other = _collection(branches, "OtherPV", tuple(branches["OtherPV"].fields))
    sv = _collection(branches, "SV", tuple(branches["SV"].fields))
    pv = ak.zip({k[3:]: np.asarray(v) for k, v in branches.items() if k.startswith("PV_")})
    cand = candidate_tracks_mask(tracks, jets)
    table, _ = track_feature_table(tracks, cand, pv, other, sv, jets,
                                   np.asarray(branches["MET_pt"]), np.asarray(branches["MET_phi"]))
    gp = branches["GenPart"]
    labels = track_class_labels(trk["genPartIdx"], trk.counts, gp["pdgId"], gp["genPartIdxMother"],
                                gp["vx"], gp["vy"], gp["vz"], gp.counts)
    flat = ak.to_numpy(ak.flatten(cand))
    event = np.repeat(np.arange(trk.counts.size), trk.counts)[flat]
    return {n: table[n] for n in FEATURE_NAMES}, labels[flat], event


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
    from models.data import build_classifier_data

    parts = []
    jobs = [(p, None) for p in CLASSIFIER_BACKGROUNDS] + [("signal", pt) for pt in (points or SIGNAL_BENCHMARKS)]
    for era in eras:
        for process, point in jobs:
            n_gen = max(n_events // CLASSIFIER_SIGNAL_FRACTION, 1) if point else n_events
            if say:
                say(f"generating {process} {point or ''} {era} ({n_gen} events)")
            kw = {"m_chargino": point[0], "dm": point[1]} if point else {}
            branches, _ = generate_mc(process, era, n_gen, seed, **kw)
            feats, labels, event = _toy_tracks(branches)
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
    import torch

    from models.data import build_classifier_data, synthetic_track_table
    from models.export import export_classifier
    from models.inference import ClassifierModel
    from models.training import (
        ClassifierConfig,
        evaluate_classifier,
        predict_probabilities,
        train_classifier,
    )

    eras = _parse_eras(args.eras)
    cfg_kw: dict[str, Any] = {"seed": args.seed}
    if args.epochs is not None:
        cfg_kw["epochs"] = args.epochs
    cfg = ClassifierConfig(**cfg_kw)
    t0 = time.perf_counter()
    if args.synthetic:
        if args.out.resolve() == MODELS_DIR.resolve():
            raise ConfigError("--synthetic trains on fake features: give --out DIR outside models/ "
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
    torch.set_num_threads(args.threads)
    model, history = train_classifier(data, cfg, progress=say)
    ev = evaluate_classifier(lambda x: predict_probabilities(model, x), data)
    ev["source"] = source
    ev["history"] = history
    out = args.out / "classifier.onnx"
    config = cfg.as_dict() | {"source": source, "input_names": list(data.input_names)}
    export_classifier(model, out, data.input_names, config=config,
                      metrics={k: v for k, v in ev.items() if k != "history"})
    test_x = data.x[data.split == 2]
    diff = np.abs(ClassifierModel(out)(test_x) - predict_probabilities(model, test_x))
    ev["onnx_vs_torch_max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    ev["train_seconds"] = time.perf_counter() - t0
    _write_json(args.report / "classifier_metrics.json", ev)
    _plot_calibration(args.report / "classifier_calibration.png", ev["calibration"])
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
