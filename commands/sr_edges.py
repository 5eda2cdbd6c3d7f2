"""Signal-region bin edges from classifier scores (SPEC.md sec. 4): Asimov significance with
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

from analysis.config import CLASSIFIER_DMS, SIDEBAND_LOGIT_RANGE, SR_BACKGROUND_REL_UNC
from analysis.errors import InputFileError, YieldsError

NAME = "sr-edges"
HELP = "signal-region edges per category: flat-S bins maximising the Asimov significance"
KEYS = ("score", "weight", "category")
SAMPLES = ("signal", "background")


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


def load_scores(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{"signal": {"score", "weight", "category"}, "background": {...}} from NPZ or JSON."""
    if not path.is_file():
        raise InputFileError(f"score file {path} does not exist")
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            with np.load(path) as f:
                raw = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise InputFileError(f"cannot read score file {path}: {err}") from None
    expected = {f"{s}_{k}" for s in SAMPLES for k in KEYS}
    unknown, missing = sorted(set(raw) - expected), sorted(expected - set(raw))
    if unknown or missing:
        raise YieldsError(f"score file {path}: unknown keys {unknown}, missing keys {missing}; "
                          f"expected exactly {sorted(expected)}")
    out = {}
    for s in SAMPLES:
        arrays = {k: np.asarray(raw[f"{s}_{k}"]) for k in KEYS}
        sizes = {f"{s}_{k}": a.size for k, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise YieldsError(f"score file {path}: arrays of different lengths {sizes}")
        bad = sorted(set(np.unique(arrays["category"]).tolist()) - set(range(len(CLASSIFIER_DMS))))
        if bad:
            raise YieldsError(f"{s}_category holds {bad}; expected indices 0..{len(CLASSIFIER_DMS) - 1}")
        out[s] = arrays
    return out


def main(args: argparse.Namespace) -> int:
    from analysis.stats.significance import sr_edges_by_category

    scores = load_scores(args.scores)
    result = sr_edges_by_category(scores["signal"], scores["background"], CLASSIFIER_DMS,
                                  rel_unc=args.background_rel_unc, min_edge=args.min_edge)
    out = {
        "categories": list(CLASSIFIER_DMS),
        "edges": {f"{dm:g}": edges.tolist() for dm, (edges, _) in result.items()},
        "z_asimov": {f"{dm:g}": z for dm, (_, z) in result.items()},
        "background_rel_unc": args.background_rel_unc,
        "min_edge": args.min_edge if np.isfinite(args.min_edge) else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    for dm, (edges, z) in result.items():
        print(f"dm = {dm:g} GeV: lower edges {np.round(edges, 3).tolist()}  Z_A = {z:.2f}")
    print(f"wrote {args.out}")
    return 0
