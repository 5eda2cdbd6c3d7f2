"""The smuon analysis' options of ``run.py process``: which networks the processor evaluates."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--smuon-networks", default=None, metavar="DIR",
                       help="smuon: directory holding smuon_nn_low.onnx and smuon_nn_high.onnx with their JSON "
                            "(default: the shipped ones in models/smuon/ where present); 'none' for no network regions")


def processor_kwargs(args, name: str) -> dict:
    from models.smuon.inference import NETWORKS, SHIPPED, SmuonNetwork

    where = getattr(args, "smuon_networks", None)
    if where == "none" or (where is None and not all(p.is_file() for p in SHIPPED.values())):
        return {"networks": {}}
    paths = SHIPPED if where is None else {n: Path(where).absolute() / SHIPPED[n].name for n in NETWORKS}
    return {"networks": {n: SmuonNetwork(p) for n, p in paths.items()}}
