"""The soft-track options of ``run.py process``: models, corrections and the R&S inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.errors import ConfigError


def add_arguments(group: argparse._ArgumentGroup) -> None:
    from analysis.rs.defaults import RS_N_BOOTSTRAP, RS_N_SMEAR
    from analysis.softtrack.config import RS_PREDICTION_SEED

    group.add_argument("--models", type=Path, default=None, help="directory of the ONNX models (default: shipped)")
    group.add_argument("--no-scores", action="store_true", help="do not evaluate the track models")
    group.add_argument("--corrections", type=Path, default=None,
                       help="correctionlib file to apply to simulation (run.py corrections); default none")
    group.add_argument("--rs-templates", type=Path, default=None, help="templates file of run.py rs-templates")
    group.add_argument("--rs-seed", type=int, default=RS_PREDICTION_SEED, help="seed of smearing and bootstrap")
    group.add_argument("--n-smear", type=int, default=RS_N_SMEAR,
                       help=f"R&S smearings per seed event (default {RS_N_SMEAR})")
    group.add_argument("--n-bootstrap", type=int, default=RS_N_BOOTSTRAP,
                       help=f"R&S bootstrap replicas (default {RS_N_BOOTSTRAP})")


def rs_kwargs(args) -> dict:
    """Keyword arguments of RSPredictionProcessor from the parsed R&S options."""
    if args.rs_templates is None:
        raise ConfigError("--processor rs needs --rs-templates FILE (made by run.py rs-templates)")
    return {"rs_templates": str(args.rs_templates), "rs_seed": args.rs_seed, "rs_n_smear": args.n_smear,
            "rs_n_bootstrap": args.n_bootstrap, "rs_direct": not getattr(args, "no_direct", False)}


def processor_kwargs(args, name: str) -> dict:
    """Keyword arguments of the soft-track processor ``name`` from the parsed options."""
    if name == "rs":
        return rs_kwargs(args)
    if name == "rs_templates":
        return {}
    kwargs = {}
    if args.corrections is not None:
        from corrections.softtrack.apply import SoftTrackCorrections

        kwargs["corrections"] = SoftTrackCorrections(args.corrections)
    if not args.no_scores:
        from .scoring import TrackScorer

        kwargs["scorer"] = TrackScorer.from_directory(args.models)
    return kwargs
