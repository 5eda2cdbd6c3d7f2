"""Binned ABCD background prediction with closure and signal contamination (docs/physics.md sec. 9;
seed 003).

Input JSON: {"observed": {"A": [...], "B": [...], "C": [...], "D": [...]},
             "signal": {"A": [...], ...} (optional)}
with per-bin counts (A: both cuts passed, B: X pass / Y fail, C: X fail / Y pass, D: both
failed). Output JSON: the prediction of A (n_B n_C / n_D per bin) with its statistical
uncertainty, the non-closure observed/predicted - 1 with uncertainty and pulls (if A is
given and --blind is not), the signal contamination of B, C, D, and the path of the
combined ABCD workspace (pyhf JSON) written beside the output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis.errors import InputFileError, YieldsError
from analysis.io import write_atomic

NAME = "abcd"
HELP = "binned ABCD prediction of region A, closure, signal contamination and ABCD workspace"
INPUT_KEYS = frozenset({"observed", "signal"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("counts", type=Path, metavar="COUNTS.json", help="per-bin counts (see above)")
    parser.add_argument("--out", type=Path, default=Path("abcd.json"), help="output JSON (default: %(default)s)")
    parser.add_argument("--blind", action="store_true", help="ignore region A (no closure, A left out of the workspace)")


def main(args: argparse.Namespace) -> int:
    from analysis.stats.abcd import (
        REGIONS,
        abcd_closure,
        abcd_predict,
        abcd_workspace,
        signal_contamination,
    )

    if not args.counts.is_file():
        raise InputFileError(f"counts file {args.counts} does not exist")
    try:
        raw = json.loads(args.counts.read_text())
    except json.JSONDecodeError as err:
        raise YieldsError(f"counts file {args.counts} is not valid JSON: {err}") from None
    if not isinstance(raw, dict) or "observed" not in raw or set(raw) - INPUT_KEYS:
        raise YieldsError(f"counts file must be an object with key 'observed' (and optional 'signal'); "
                          f"got keys {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}")
    for group in raw:
        if not isinstance(raw[group], dict) or set(raw[group]) != set(REGIONS):
            raise YieldsError(f"{group} must have exactly the keys {list(REGIONS)}")
    obs = raw["observed"]
    pred = abcd_predict(obs["B"], obs["C"], obs["D"])
    out = {"prediction": pred.value.tolist(), "prediction_unc": pred.uncertainty.tolist()}
    if not args.blind:
        cl = abcd_closure(obs["A"], pred)
        out.update(non_closure=cl.non_closure.tolist(), non_closure_unc=cl.non_closure_unc.tolist(),
                   pull=cl.pull.tolist(), chi2=cl.chi2, ndf=cl.ndf)
    if "signal" in raw:
        out["signal_contamination"] = {k: v.tolist() for k, v in signal_contamination(raw["signal"]).items()}
    ws_path = args.out.with_name(f"{args.out.stem}_workspace.json")
    spec = abcd_workspace(obs, raw.get("signal"), blind_a=args.blind)
    write_atomic(ws_path, json.dumps(spec, indent=1))
    out["workspace"] = str(ws_path)
    write_atomic(args.out, json.dumps(out, indent=1))
    for i, (v, u) in enumerate(zip(pred.value, pred.uncertainty, strict=True)):
        line = f"bin {i}: predicted A = {v:.4g} +- {u:.2g}"
        if not args.blind:
            line += f"  observed {obs['A'][i]:.4g}  non-closure {out['non_closure'][i]:+.3f} +- {out['non_closure_unc'][i]:.3f}"
        print(line)
    print(f"wrote {args.out} and {ws_path}")
    return 0
