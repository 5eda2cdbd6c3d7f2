"""The semi-visible-jet search end to end on the embedded default sample (docs/svj.md, "The job").

1. generate the default toy sample (analysis.toymc.svj: QCD, ttbar, W+jets, Z+jets and a 3 x 3
   grid of (m_Z', r_inv)) into --data unless the identical one is there;
2. run the svj processor with the shipped networks (models/svj/lundnet.onnx and
   abcdiscotec.onnx through ONNX Runtime): cutflow, Lund declusterings, LundNet scores, the
   event tagger's X and Y, per-event columns;
3. on the test split: the 33 x 33 working-point scan with its five metrics, the closure in the
   signal and validation planes (MC and Poisson pseudo-data), boundary stability, signal
   contamination, the per-bin non-closure systematics and the expected CLs limits of the
   combined ABCD fit for every signal point;
4. print the cutflow, LundNet's AUC table, the WP metrics, the closure and the limits, draw the
   score planes, the M_T templates per region, the scan maps and the limit plot, and write
   everything (summary.json, the processor output) under --out.

Examples:
  python run.py svj
  python run.py svj --quick --out outputs/svj_quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis.io import write_atomic

NAME = "svj"
HELP = "the semi-visible-jet search on the default sample (shipped ONNX models): WP scan, closure, limits, plots"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "generated" / "svj"
DEFAULT_OUT = Path("outputs") / "svj"
MODELS_DIR = ROOT / "models" / "svj"
#: the default sample: events per background and per signal point (docs/svj.md); --quick: a quarter
DEFAULT_BACKGROUND = {"qcd": 160000, "ttbar": 12000, "wjets": 8000, "zjets": 8000}
SIGNAL_POINTS = [(m, r) for m in (1000.0, 2000.0, 3000.0) for r in (0.3, 0.5, 0.7)]
SIGNAL_EVENTS = 3000
QUICK_SCALE = 0.25
DEFAULT_SEED = 1


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help=f"sample directory (default {DEFAULT_DATA}; "
                   "with --quick its _quick sibling)")
    p.add_argument("--quick", action="store_true", help=f"a quarter of the default sample ({QUICK_SCALE:g})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (default %(default)s)")
    p.add_argument("--config", type=Path, default=None, help="TOML/YAML/JSON overriding the svj configuration")
    p.add_argument("--executor", default="futures", choices=("futures", "iterative", "dask"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunksize", type=int, default=20_000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_sample_arguments(p)
    p.add_argument("--models", type=Path, default=MODELS_DIR,
                   help="directory with lundnet.onnx and abcdiscotec.onnx (default: the shipped ones)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default %(default)s)")
    p.add_argument("--no-limits", action="store_true", help="skip the CLs limits")


def sample(args: argparse.Namespace, progress=None) -> dict:
    """Generate the default sample (or reuse it): the fileset dict."""
    from analysis.toymc.svj import generate_sample

    scale = QUICK_SCALE if args.quick else 1.0
    data = args.data or (DEFAULT_DATA.with_name(DEFAULT_DATA.name + "_quick") if args.quick else DEFAULT_DATA)
    background = {k: max(int(v * scale), 100) for k, v in DEFAULT_BACKGROUND.items()}
    generate_sample(data, background, SIGNAL_POINTS, max(int(SIGNAL_EVENTS * scale), 100), args.seed,
                    progress=progress)
    return data / "fileset.json"


def run_processor(fileset_path: Path, args: argparse.Namespace, config, **kwargs) -> dict:
    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.svj.processor import SVJProcessor

    fileset = load_fileset(fileset_path)
    proc = make_processor(SVJProcessor, fileset, config=config, **kwargs)
    opts = RunOptions(executor=args.executor, workers=args.workers, chunksize=args.chunksize, status=False)
    return run(proc, fileset, opts)


def print_cutflow(output: dict, echo=print) -> None:
    steps = None
    for d, flow in sorted(output["cutflow"].items()):
        if steps is None:
            steps = [s for s in flow if s != "finite_inputs"]
            echo(f"  {'dataset':28s} " + " ".join(f"{s:>12s}" for s in steps))
        echo(f"  {d:28s} " + " ".join(f"{flow[s]['events']:12d}" for s in steps))


def main(args: argparse.Namespace) -> int:
    from processors.registry import get
    from processors.svj.stages import analyze, lundnet_auc, plot_all, print_summary, public

    t0 = time.perf_counter()
    cfg = get("svj").load_config(args.config)
    echo = print
    fileset_path = sample(args, progress=lambda i, n, name, k: echo(f"  generated {name} ({k} events) [{i}/{n}]"))
    echo(f"sample {fileset_path.parent} ready ({time.perf_counter() - t0:.0f} s)")
    output = run_processor(fileset_path, args, cfg, lundnet=args.models / "lundnet.onnx",
                           tagger=args.models / "abcdiscotec.onnx")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from processors.output import save_output

    save_output(output, out / "svj.coffea")
    echo(f"processed ({time.perf_counter() - t0:.0f} s); cutflow (events):")
    print_cutflow(output, echo)
    auc = lundnet_auc(output, cfg)
    echo("LundNet ROC AUC per signal point (test split, jets vs QCD jets):")
    for d, v in auc.items():
        meta = output["datasets"][d]
        echo(f"  m_Z' {meta['m_zprime']:6.0f} GeV  r_inv {meta['r_inv']:.1f}:  {v:.3f}")
    summary = analyze(output, cfg, limits=not args.no_limits, log=echo)
    summary["lundnet_auc"] = auc
    print_summary(summary, echo)
    paths = plot_all(summary, out)
    write_atomic(out / "summary.json", json.dumps(public(summary), indent=1, default=float))
    echo(f"wrote {out / 'summary.json'}, {out / 'svj.coffea'} and plots {', '.join(p.name for p in paths)} "
         f"({time.perf_counter() - t0:.0f} s)")
    return 0
