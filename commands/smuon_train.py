"""Train the smuon search's two networks and export them to ONNX (``python run.py smuon-train``;
docs/smuon.md sec. 5; needs the ``[train]`` extra).

1. generate a training sample (its own seed, independent of the main job's): the 18
   benchmark points of seed 002 Table 8 and the three backgrounds, into
   data/generated/smuon_train/ unless an identical one is there;
2. run the smuon processor on it without networks, keeping the preselected events' 37
   features and weights;
3. train the low-mass network on the benchmarks with m_smuon <= 250 GeV and the high-mass one
   on the others, each against all backgrounds (models.smuon.training), and export both with
   their JSON into models/smuon/ (or --out), printing the test ROC AUC of every point.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "generated" / "smuon_train"
#: kept events per background sample and per benchmark point of the training sample
TRAIN_EVENTS = 300_000
TRAIN_SIGNAL_EVENTS = 10_000
TRAIN_SEED = 1001

NAME = "smuon-train"
HELP = "train the smuon networks (low- and high-mass) and export them to ONNX (needs the [train] extra)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from models.smuon.inference import MODELS_DIR

    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"training sample directory (default {DEFAULT_DATA})")
    p.add_argument("--out", type=Path, default=MODELS_DIR, help=f"where the networks go (default {MODELS_DIR})")
    p.add_argument("--events", type=int, default=TRAIN_EVENTS, help=f"events per background sample (default {TRAIN_EVENTS})")
    p.add_argument("--signal-events", type=int, default=TRAIN_SIGNAL_EVENTS,
                   help=f"events per benchmark point (default {TRAIN_SIGNAL_EVENTS})")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the configuration's training.epochs)")
    p.add_argument("--seed", type=int, default=TRAIN_SEED, help=f"generator seed (default {TRAIN_SEED})")
    p.add_argument("--config", type=Path, default=None, help="TOML/YAML overriding the smuon configuration")
    p.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch output")


def components_from(output: dict, low_mass_max: float, network: str):
    """The training components of ``network`` ("low"/"high") from a store_features output."""
    import numpy as np

    from models.smuon.training import Component

    comps = []
    for ds, meta in sorted(output["datasets"].items()):
        parts = output.get("features", {}).get(ds, [])
        if not parts:
            continue
        x = np.concatenate([p["x"] for p in parts])
        w = np.concatenate([p["w"] for p in parts])
        if meta["process"] == "smuon":
            point = (float(meta["m_smuon"]), float(meta["m_neutralino"]))
            if (point[0] <= low_mass_max) != (network == "low"):
                continue
            comps.append(Component(ds, True, x, w, point))
        else:
            comps.append(Component(ds, False, x, w))
    return comps


def main(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from analysis.errors import ConfigError
    from analysis.toymc.smuon import BENCHMARKS
    from commands.smuon import ensure_sample, run_processor
    from processors.registry import get

    try:
        from models.smuon.training import export_network, train_network
    except ImportError as err:
        raise ConfigError(f"training needs the [train] extra (pip install -e '.[train]'): {err}") from None
    console = Console(stderr=True)
    config = get("smuon").load_config(args.config)
    cfg = config.training if args.epochs is None else config.training.model_copy(update={"epochs": args.epochs})
    fileset = ensure_sample(Path(args.data), BENCHMARKS, args.events, args.signal_events, args.seed, args.workers,
                            console)
    run_args = argparse.Namespace(executor="futures", workers=args.workers, chunksize=100_000, quiet=args.quiet)
    output = run_processor(fileset, config, {}, run_args, store_features=True)
    summary = {}
    for network in ("low", "high"):
        comps = components_from(output, cfg.low_mass_max, network)
        if not any(c.is_signal for c in comps):
            raise ConfigError(f"no benchmark point for the {network}-mass network in {fileset}")
        console.rule(f"[bold]{network}-mass network: {sum(c.is_signal for c in comps)} points, "
                     f"{sum(not c.is_signal for c in comps)} backgrounds")
        result = train_network(comps, cfg, log=None if args.quiet else console.print)
        points = [c.point for c in comps if c.is_signal]
        json_path = export_network(result, Path(args.out) / f"smuon_nn_{network}.onnx", network, cfg, points)
        metrics = json.loads(json_path.read_text())["metrics"]
        summary[network] = metrics
        t = Table(title=f"{network}-mass network: test ROC AUC per point (best epoch {metrics['best_epoch']}, "
                        f"ONNX vs torch max |diff| {metrics['onnx_torch_max_abs_diff']:.1e})")
        t.add_column("point")
        t.add_column("ROC AUC", justify="right")
        for name, auc in metrics["test_roc_auc_by_point"].items():
            t.add_row(name, f"{auc:.4f}")
        console.print(t)
        console.print(f"wrote {json_path.with_suffix('.onnx')} and {json_path}")
    return 0
