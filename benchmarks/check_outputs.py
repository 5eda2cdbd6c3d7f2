"""Outputs of the benchmarked processors, to check that a speed-up changes no result (issue 24).

Runs the signal, dy and rs processors (shipped models and corrections, all systematics) over
the sample of ``benchmarks/bench_processors.py`` and writes ``OUT/<processor>.coffea``. Run it
with the code before and after a change and compare bit for bit::

    python benchmarks/check_outputs.py /tmp/before      # on the old code
    python benchmarks/check_outputs.py /tmp/after       # on the new code
    python run.py compare /tmp/before /tmp/after         # rtol = atol = 0: identical
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_processors import DATASETS, main_job_sample, subset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="directory of the outputs")
    ap.add_argument("--events", type=int, default=8000)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "bench_processors_sample")
    ap.add_argument("--chunksize", type=int, default=20_000)
    ap.add_argument("--processors", default="signal,dy,rs")
    args = ap.parse_args()

    from corrections.softtrack.apply import SoftTrackCorrections
    from processors.output import save_output
    from processors.runner import RunOptions
    from processors.softtrack.run import build_rs_templates, run_region
    from processors.softtrack.scoring import TrackScorer

    fileset = main_job_sample(args.data, args.events)
    opts = RunOptions(executor="iterative", chunksize=args.chunksize, status=False, cache_dir="")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.processors.split(","):
        fs = subset(fileset, DATASETS[name])
        if name == "rs":
            templates = args.data / "rs_templates.json.gz"
            if not templates.is_file():
                build_rs_templates(fs, templates, opts)
            kwargs = {"rs_templates": str(templates)}
        else:
            kwargs = {"scorer": TrackScorer.from_directory(None), "corrections": SoftTrackCorrections()}
        save_output(run_region(name, fs, opts, **kwargs), args.out / f"{name}.coffea")
        print(f"wrote {args.out / f'{name}.coffea'}", flush=True)


if __name__ == "__main__":
    main()
