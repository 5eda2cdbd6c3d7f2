"""The semi-visible-jet options of ``run.py process``: the directory of its ONNX networks."""

from __future__ import annotations

import argparse
from pathlib import Path

#: the shipped networks
MODELS_DIR = Path(__file__).resolve().parents[2] / "models" / "svj"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--svj-models", type=Path, default=MODELS_DIR,
                       help="directory with lundnet.onnx and abcdiscotec.onnx (default: the shipped ones)")
    group.add_argument("--svj-no-models", action="store_true",
                       help="evaluate no network (cutflow, Lund graphs and features only)")


def processor_kwargs(args, name: str) -> dict:
    """Keyword arguments of the svj processor from the parsed options."""
    if args.svj_no_models:
        return {}
    return {"lundnet": args.svj_models / "lundnet.onnx", "tagger": args.svj_models / "abcdiscotec.onnx"}
