"""Signal-region bin edges from classifier scores (docs/physics.md sec. 4): Asimov significance with
20% background uncertainty, flat-S binning, tightest bin split in two.

Input: an NPZ (numpy.savez) or JSON file with six equal-length-per-sample arrays

    signal_score, signal_weight, signal_category,
    background_score, background_weight, background_category

score: the event's max logit of its category; weight: event weight; category: index
0, 1, 2 of the Delta m category (0.3, 0.6, 1.0 GeV, ``CLASSIFIER_DMS``). JSON files hold
the same keys as lists.

Output JSON: {"categories": [0.3, 0.6, 1.0], "edges": {"0.3": [e1, e2, e3, e4], ...},
"z_asimov": {"0.3": Z, ...}, "background_rel_unc": 0.2, "min_edge": 7.0}; each category's
4 lower edges, the last bin open above (summary Table 2 layout), none below ``--min-edge``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from analysis.io import write_atomic
from analysis.softtrack.config import CLASSIFIER_DMS, SIDEBAND_LOGIT_RANGE
from analysis.stats.defaults import SR_BACKGROUND_REL_UNC

NAME = "sr-edges"
HELP = "signal-region edges per category: flat-S bins maximising the Asimov significance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scores", type=Path, metavar="SCORES.npz|.json",
                        help="signal/background scores, weights and categories (see above)")
    parser.add_argument("--out", type=Path, default=Path("sr_edges.json"),
                        help="output JSON (default: %(default)s)")
    parser.add_argument("--background-rel-unc", type=float, default=SR_BACKGROUND_REL_UNC,
                        help="relative background uncertainty in Z_A (default: %(default)s)")
    parser.add_argument("--min-edge", type=float, default=SIDEBAND_LOGIT_RANGE[1],
                        help="lowest allowed SR edge (default: %(default)s, the upper edge of the sideband of "
                             "the sideband scale factors, so that the two are disjoint; --min-edge=-inf: no limit)")


def main(args: argparse.Namespace) -> int:
    from analysis.stats.sr_edges import load_scores, sr_edges_from_scores

    scores = load_scores(args.scores, len(CLASSIFIER_DMS))
    out = sr_edges_from_scores(scores, CLASSIFIER_DMS, rel_unc=args.background_rel_unc, min_edge=args.min_edge)
    write_atomic(args.out, json.dumps(out, indent=1))
    for dm in CLASSIFIER_DMS:
        edges, z = out["edges"][f"{dm:g}"], out["z_asimov"][f"{dm:g}"]
        print(f"dm = {dm:g} GeV: lower edges {np.round(edges, 3).tolist()}  Z_A = {z:.2f}")
    print(f"wrote {args.out}")
    return 0
