"""Are two runs' outputs the same? Compare two output directories (or two files).

    python run.py compare outputs/default outputs/rerun [--rtol 1e-9] [--atol 0]

Every file present in either side is compared as the main job writes it: ``.coffea``
outputs by their histograms (axes, categories in any order, values and variances) and
cutflows, JSON by value (times and durations ignored), plots and other files by sha256
(information only). See ``processors/compare.py`` for the rules. Exit code 0 when
everything is identical or equal within the tolerance, 1 when anything differs or is
missing on one side, 2 for a missing path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "compare"
HELP = "compare two runs' outputs (directories or files): identical, within tolerance, or different"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", type=Path, help="first output directory or file")
    p.add_argument("b", type=Path, help="second output directory or file")
    p.add_argument("--rtol", type=float, default=0.0,
                   help="relative tolerance of numbers (default 0: exactly equal)")
    p.add_argument("--atol", type=float, default=0.0,
                   help="absolute tolerance of numbers (default 0)")


def main(args) -> int:
    from processors.compare import compare_outputs

    report = compare_outputs(args.a, args.b, rtol=args.rtol, atol=args.atol)
    print(report.format())
    return 0 if report.ok else 1
