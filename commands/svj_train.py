"""Train LundNet and the ABCDisCoTEC event tagger of the semi-visible-jet search and export them
to ONNX with their JSON (docs/svj.md, "Networks"; needs the ``[train]`` extra).

Generates (or reuses) the default sample of ``run.py svj``, runs the svj processor without
networks keeping the padded Lund graphs of the two leading AK8 jets, trains LundNet on the
training split, scores every jet through the exported ONNX graph, trains the two event
networks with the DisCo and closure constraints by MDMM from each of --tagger-seeds, keeping the
one whose ABCD closes best on the validation split (and, for the comparison, once without
the constraints), and writes OUT/lundnet.onnx, OUT/abcdiscotec.onnx (+ .json) and OUT/train_metrics.json.
Without --out it replaces the shipped models in models/svj/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis.io import write_atomic

from .svj import MODELS_DIR, add_sample_arguments, run_processor, sample

NAME = "svj-train"
HELP = "train and export LundNet and the ABCDisCoTEC tagger of the svj search (torch, [train] extra)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_sample_arguments(p)
    p.add_argument("--out", type=Path, default=MODELS_DIR, help="model directory (default: the shipped models)")
    p.add_argument("--lundnet-epochs", type=int, default=8)
    p.add_argument("--tagger-epochs", type=int, default=200)
    p.add_argument("--tagger-seeds", type=int, nargs="+", default=None,
                   help="training seeds of the tagger; the one closing best on the validation split is kept "
                        "(default: models.svj.training.TAGGER_SEEDS)")
    p.add_argument("--reuse-output", action="store_true",
                   help="reuse the processor output of a previous svj-train on the same sample (DATA/train_output.coffea)")


def main(args: argparse.Namespace) -> int:
    from models.svj.abcdiscotec import ABCDisCoTECTraining
    from models.svj.lundnet import LundNetTraining
    from models.svj.training import train_all
    from processors.registry import get

    t0 = time.perf_counter()
    cfg = get("svj").load_config(args.config)
    from coffea.util import load, save

    fileset_path = sample(args)
    cached = fileset_path.parent / "train_output.coffea"
    if args.reuse_output and cached.is_file():
        output = load(str(cached))
    else:
        output = run_processor(fileset_path, args, cfg, lund_columns=True)
        save(output, str(cached))
    print(f"processed ({time.perf_counter() - t0:.0f} s)")
    metrics = train_all(output, args.out, cfg, LundNetTraining(epochs=args.lundnet_epochs),
                        ABCDisCoTECTraining(epochs=args.tagger_epochs, mt_edges=tuple(cfg.statistics.mt_edges)),
                        log=lambda s: print(f"[{time.perf_counter() - t0:.0f} s] {s}", flush=True),
                        **({"tagger_seeds": tuple(args.tagger_seeds)} if args.tagger_seeds else {}))
    write_atomic(Path(args.out) / "train_metrics.json", json.dumps(metrics, indent=1, default=float))
    print(f"wrote {args.out}/lundnet.onnx, abcdiscotec.onnx and train_metrics.json")
    return 0
