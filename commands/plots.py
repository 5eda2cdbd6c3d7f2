"""Draw the standard plots and the cutflow table of a processor output (stacked simulation
vs pseudo-data with a ratio panel, the 12 signal regions, max-score distributions): the
soft-track choices are analysis.softtrack.plots', the drawing analysis.plotting's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "plots"
HELP = "draw the standard plots and the cutflow table of a processor output"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", type=Path, help="processor output (.coffea)")
    p.add_argument("--out", type=Path, required=True, help="directory for the PNG files")
    p.add_argument("--systematic", default="nominal", help="systematic variation to draw (default nominal)")
    p.add_argument("--workers", type=int, default=1, help="processes drawing the plots (default 1)")


def main(args) -> int:
    from coffea.util import load

    from analysis.errors import ConfigError, InputFileError
    from analysis.softtrack.plots import standard_plots

    if not args.output.is_file():
        raise InputFileError(f"processor output {args.output} not found")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    paths = standard_plots(load(str(args.output)), args.out, args.systematic, workers=args.workers)
    print(f"wrote {len(paths)} plots and cutflow.md to {args.out}")
    return 0
