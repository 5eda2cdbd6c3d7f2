"""Throughput of the soft-track processors against the irreducible cost of their work (issue 24).

For the signal, dy and rs processors, on one core, in one run on the same files (the main
job's samples: ``analysis.toymc.processes.MAIN_JOB_PLANS``, so that most events reach the
expensive part), it prints

* the processor's events/s (in-process, the iterative executor, the same chunking);
* the irreducible cost as events/s: uproot alone reading exactly the branches the processor
  reads (recorded from NanoEvents' column loads) for the same chunks, plus ONNX Runtime alone
  evaluating exactly the rows the processor sends to its models (recorded), in the same
  batches, one thread;
* the ratio processor / irreducible and the scaling from 1 to 2 workers (futures executor);
* the machine's own 2-process scaling of pure CPU work, in the same run (the ceiling of the
  processors' 2w/1w on a shared machine);
* a breakdown by stage (read, objects, selection, features, helix, inference, fill, and for
  rs rebalance and smear; exclusive times of the functions named in :data:`STAGES`);
* the read rate of the generated files per compression codec (``--codecs``);
* a cProfile of the signal processor (``--profile``).

Timings interleave processor and irreducible, repeat (``--repeat``) and quote medians: the
machine may be shared (the load average is printed). Run::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_processors.py [--events 8000]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIGNAL_POINT = (140.0, 0.58)
PROCESSES = ("zjets_nunu", "dy_mumu", "qcd", "signal", "data_met", "data_singlemuon")
#: the datasets each benchmarked processor reads (a subset of what it accepts: the expensive ones)
DATASETS = {"signal": ("zjets_nunu_2018", "signal_m140_dm0p58_2018", "data_met_2018"),
            "dy": ("dy_mumu_2018", "data_singlemuon_2018"),
            "rs": ("qcd_2018",)}
STAGE_ORDER = ("read", "objects", "selection", "features", "helix", "inference", "fill", "rebalance", "smear")


# -- the sample --------------------------------------------------------------------------------
def main_job_sample(data: Path, events: int, seed: int = 3) -> dict:
    """The main job's kind of sample (plans, skimmed streams at its luminosities scaled with
    ``events``) for 2018 and one signal point; generated once into ``data``."""
    from analysis.toymc.processes import MAIN_JOB_PLANS, MAIN_JOB_STREAM_LUMI_FB
    from analysis.toymc.writer import generate_samples, present_fileset, request_hash
    from processors.fileset import load_fileset

    eras, procs, points = ["2018"], list(PROCESSES), [SIGNAL_POINT]
    plans = {k: v for k, v in MAIN_JOB_PLANS.items() if k in procs}
    lumi = {k: v * events / 8000 for k, v in MAIN_JOB_STREAM_LUMI_FB.items() if k in procs}
    wanted = request_hash(eras, procs, points, events, seed, None, plans, lumi, True)
    if present_fileset(data, wanted) is None:
        print(f"generating the sample in {data} ...", flush=True)
        generate_samples(data, eras, procs, points, events, seed, plans=plans, stream_lumi_fb=lumi, skim=True)
    return load_fileset(data / "fileset.json")


# -- instrumentation: stage times, branches read, model rows ----------------------------------
class Recorder:
    """Exclusive wall time per stage of the wrapped functions, the branches NanoEvents loads
    per file and the matrices each model evaluates."""

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[float] = []
        self.branches: dict[str, set] = defaultdict(set)
        self.loads = 0
        self.rows: list[tuple[str, int, np.ndarray]] = []
        self._undo: list = []

    def wrap(self, owner, attr: str, stage: str, hook=None) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:  # not in this version of the code
            return
        rec = self

        @functools.wraps(fn)
        def timed(*args, **kw):
            if hook is not None:
                hook(*args, **kw)
            rec._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                dt = time.perf_counter() - t0
                child = rec._stack.pop()
                rec.times[stage] += dt - child
                rec.calls[stage] += 1
                if rec._stack:
                    rec._stack[-1] += dt

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, fn))

    def restore(self) -> None:
        for owner, attr, fn in reversed(self._undo):
            setattr(owner, attr, fn)
        self._undo.clear()


def instrument(rec: Recorder) -> None:
    """Wrap the functions of each stage (module attributes where they are looked up)."""
    from coffea.nanoevents.mapping.uproot import UprootSourceMapping

    import analysis.softtrack.features as features
    import processors.softtrack.rs as rsproc
    import processors.softtrack.scoring as scoring
    from models.inference import OnnxModel
    from processors import base
    from processors.softtrack import region

    def on_load(self, handle, *a, **k):
        if handle is not None:
            rec.branches[str(handle.file.file_path)].add(handle.name)
            rec.loads += 1

    def on_model(self, x):
        rec.rows.append((str(self.path), self.batch_rows, self.as_matrix(x)))

    rec.wrap(UprootSourceMapping, "extract_column", "read", on_load)
    rec.wrap(base.AnalysisProcessor, "process", "other")
    rec.wrap(base.AnalysisProcessor, "finite_events", "objects")
    rec.wrap(region.RegionProcessor, "objects", "objects")
    rec.wrap(region.RegionProcessor, "weights", "objects")
    rec.wrap(region.RegionProcessor, "vary", "objects")
    rec.wrap(region.RegionProcessor, "observables", "selection")
    rec.wrap(region.RegionProcessor, "selection", "selection")
    rec.wrap(region.RegionProcessor, "categories", "selection")
    rec.wrap(region.RegionProcessor, "fill", "fill")
    rec.wrap(scoring.TrackScorer, "max_logits_and_best", "inference")
    rec.wrap(scoring, "track_feature_table", "features")
    rec.wrap(scoring, "track_vertex_features", "features")
    rec.wrap(scoring, "track_vertex_features_flat", "features")
    rec.wrap(scoring, "add_event_features", "features")
    rec.wrap(features, "impact_parameters", "helix")
    rec.wrap(OnnxModel, "__call__", "inference", on_model)
    rec.wrap(rsproc.RSPredictionProcessor, "process", "other")
    rec.wrap(rsproc.rs, "rebalance", "rebalance")
    rec.wrap(rsproc.rs, "smear", "smear")
    rec.wrap(rsproc.RSPredictionProcessor, "_fill", "fill")
    rec.wrap(rsproc, "event_observables", "selection")
    rec.wrap(rsproc, "_finite_events", "objects")


# -- the runs ---------------------------------------------------------------------------------
def subset(fileset: dict, names) -> dict:
    return {k: fileset[k] for k in names if k in fileset}


def make_runner(name: str, fileset: dict, chunksize: int, scorer, templates: Path | None):
    from processors.runner import RunOptions
    from processors.softtrack.run import run_region

    kwargs = {"scorer": scorer} if name != "rs" else {"rs_templates": str(templates)}

    def run(executor: str = "iterative", workers: int = 1) -> dict:
        opts = RunOptions(executor=executor, workers=workers, chunksize=chunksize, status=False, systematics=True,
                          cache_dir="")
        return run_region(name, fileset, opts, **kwargs)

    return run


def n_events(out: dict) -> int:
    return sum(c["events"] for c in out["chunks"]["processed"])


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def irreducible(chunks: list[dict], branches: dict[str, set], rows, sessions: dict) -> tuple[float, float]:
    """Seconds of uproot alone reading ``branches`` of each chunk and of ONNX Runtime alone
    evaluating ``rows`` in their batches (one thread)."""
    import uproot

    t0 = time.perf_counter()
    for c in chunks:
        names = sorted(branches.get(str(Path(c["file"]).resolve()), ()) or branches.get(c["file"], ()))
        with uproot.open(c["file"]) as f:
            f["Events"].arrays(names, entry_start=c["entrystart"], entry_stop=c["entrystop"], library="ak")
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path, batch, mat in rows:
        sess, inp, out = sessions[path]
        for start in range(0, mat.shape[0], batch):
            sess.run([out], {inp: mat[start:start + batch]})
    return t_read, time.perf_counter() - t0


def onnx_sessions(rows) -> dict:
    """Plain onnxruntime sessions (one intra-op thread, default graph optimizations) of the
    recorded models."""
    import onnxruntime as ort

    out = {}
    for path, _, _ in rows:
        if path in out:
            continue
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        out[path] = (sess, sess.get_inputs()[0].name, sess.get_outputs()[0].name)
    return out


def _spin(n: int) -> float:
    x = 0.0
    for i in range(n):
        x += (i % 7) * 1e-9
    return x


def machine_scaling(tasks: int = 8, seconds: float = 0.5, repeat: int = 3) -> float:
    """t(1 process) / t(2 processes) of pure CPU work in warmed-up process pools: what the
    machine itself gives to two workers now (the ceiling of the processors' 2w/1w)."""
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    _spin(1_000_000)
    n = int(1_000_000 * seconds / max(time.perf_counter() - t0, 1e-6))
    ratios = []
    for _ in range(repeat):
        t = []
        for workers in (1, 2):
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_spin, [1] * workers))  # start the workers
                t0 = time.perf_counter()
                list(pool.map(_spin, [n] * tasks))
                t.append(time.perf_counter() - t0)
        ratios.append(t[0] / t[1])
    return float(np.median(ratios))


def codec_rates(fileset: dict, tmp: Path, repeat: int) -> list[tuple[str, float, float, float]]:
    """(codec, MB on disk, events/s, MB/s of uncompressed arrays) reading every branch of the
    signal-region background file rewritten with each codec."""
    import awkward as ak
    import uproot

    src = fileset["zjets_nunu_2018"]["files"]
    path = next(iter(src)) if isinstance(src, dict) else src[0]
    with uproot.open(path) as f:
        tree = f["Events"]
        arrays = tree.arrays(library="ak")
        n = tree.num_entries
        counters = {b for b in tree.keys() if b.startswith("n") and any(k.startswith(b[1:] + "_") for k in tree.keys())}
    groups: dict = {}
    for name in arrays.fields:
        if name in counters:
            continue
        coll, _, fld = name.partition("_")
        if fld and "n" + coll in counters:
            groups.setdefault(coll, {})[fld] = arrays[name]
        else:
            groups[name] = arrays[name]
    data = {k: ak.zip(v) if isinstance(v, dict) else v for k, v in groups.items()}
    nbytes = sum(ak.to_layout(arrays[f]).nbytes for f in arrays.fields) / 1e6
    out = []
    for label, codec in (("zstd(1) [generator]", uproot.ZSTD(1)), ("zstd(3)", uproot.ZSTD(3)),
                         ("zlib(1)", uproot.ZLIB(1)), ("lz4(1)", uproot.LZ4(1)), ("none", None)):
        target = tmp / f"codec_{label.split()[0].replace('(', '').replace(')', '')}.root"
        with uproot.recreate(target, compression=codec) as f:
            f.mktree("Events", {k: v.type for k, v in data.items()}, counter_name=lambda c: "n" + c,
                     field_name=lambda outer, inner: outer + "_" + inner)
            f["Events"].extend(data)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            with uproot.open(target) as f:
                f["Events"].arrays(library="ak")
            times.append(time.perf_counter() - t0)
        dt = float(np.median(times))
        out.append((label, target.stat().st_size / 1e6, n / dt, nbytes / dt))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=8000, help="events per background sample (main job default 8000)")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "bench_processors_sample",
                    help="sample directory (generated once)")
    ap.add_argument("--chunksize", type=int, default=20_000, help="events per chunk (main job default)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timings per figure (median)")
    ap.add_argument("--processors", default="signal,dy,rs")
    ap.add_argument("--no-scaling", action="store_true", help="skip the 1 -> 2 workers runs")
    ap.add_argument("--codecs", action="store_true", help="read rate per compression codec")
    ap.add_argument("--profile", action="store_true", help="cProfile of the signal processor")
    args = ap.parse_args()

    from processors.runner import RunOptions
    from processors.softtrack.run import build_rs_templates
    from processors.softtrack.scoring import TrackScorer

    fileset = main_job_sample(args.data, args.events)
    scorer = TrackScorer.from_directory(None)
    names = [p for p in args.processors.split(",") if p]
    templates = None
    if "rs" in names:
        templates = args.data / "rs_templates.json.gz"
        if not templates.is_file():
            build_rs_templates(subset(fileset, DATASETS["rs"]), templates,
                               RunOptions(executor="iterative", chunksize=args.chunksize, status=False, cache_dir=""))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores; "
          f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']} OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; "
          f"chunksize {args.chunksize}; medians of {args.repeat}")

    results = {}
    for name in names:
        fs = subset(fileset, DATASETS[name])
        run = make_runner(name, fs, args.chunksize, scorer, templates)
        run()  # warm-up: JIT caches, sessions, file cache
        rec = Recorder()
        instrument(rec)
        t0 = time.perf_counter()
        try:
            out = run()
        finally:
            rec.restore()
        t_instr = time.perf_counter() - t0
        chunks = out["chunks"]["processed"]
        n = n_events(out)
        sessions = onnx_sessions(rec.rows)
        irreducible(chunks, rec.branches, rec.rows, sessions)  # warm-up
        t_proc, t_read, t_onnx = [], [], []
        for _ in range(args.repeat):
            t_proc.append(timed(run))
            r, o = irreducible(chunks, rec.branches, rec.rows, sessions)
            t_read.append(r)
            t_onnx.append(o)
        scaling = None
        if not args.no_scaling:
            t1, t2 = [], []
            for _ in range(args.repeat):
                t1.append(timed(lambda r=run: r("futures", 1)))
                t2.append(timed(lambda r=run: r("futures", 2)))
            scaling = (float(np.median(t1)), float(np.median(t2)))
        tp, tr, to = (float(np.median(x)) for x in (t_proc, t_read, t_onnx))
        results[name] = dict(n=n, tp=tp, tr=tr, to=to, scaling=scaling, rec=rec, t_instr=t_instr,
                             rows=sum(m.shape[0] for _, _, m in rec.rows),
                             branches=len(set().union(*rec.branches.values())) if rec.branches else 0)

    print(f"\n{'processor':<9} {'events':>7} {'branches':>8} {'rows':>8} {'proc ev/s':>10} {'read ev/s':>10} "
          f"{'onnx s':>7} {'irred ev/s':>10} {'proc/irred':>10} {'1w ev/s':>8} {'2w ev/s':>8} {'2w/1w':>6}")
    for name, r in results.items():
        irr = r["n"] / (r["tr"] + r["to"])
        s1, s2 = r["scaling"] or (float("nan"), float("nan"))
        print(f"{name:<9} {r['n']:>7} {r['branches']:>8} {r['rows']:>8} {r['n'] / r['tp']:>10.0f} "
              f"{r['n'] / r['tr']:>10.0f} {r['to']:>7.2f} {irr:>10.0f} {r['n'] / r['tp'] / irr:>10.2f} "
              f"{r['n'] / s1:>8.0f} {r['n'] / s2:>8.0f} {s1 / s2:>6.2f}")
    if not args.no_scaling:
        print(f"machine: pure CPU work in 2 processes runs {machine_scaling(repeat=args.repeat):.2f}x faster "
              "than in 1 (the ceiling of 2w/1w)")
    print("\nproc: in-process (iterative executor, one core); irred: uproot alone reading the branches the "
          "processor reads, same chunks, plus ONNX Runtime alone on the rows it evaluates, same batches, one "
          "thread; 1w/2w: futures executor with 1 and 2 worker processes.")

    print("\nstage breakdown (exclusive seconds of the instrumented run; other: the rest of process())")
    cols = [s for s in STAGE_ORDER if any(s in r["rec"].times for r in results.values())] + ["other"]
    print(f"{'processor':<9} " + " ".join(f"{c:>9}" for c in cols) + f" {'total':>8} {'loads':>6}")
    for name, r in results.items():
        t = r["rec"].times
        print(f"{name:<9} " + " ".join(f"{t.get(c, 0.0):>9.3f}" for c in cols)
              + f" {sum(t.values()):>8.3f} {r['rec'].loads:>6}")

    if args.codecs:
        print("\nread rate per codec (zjets_nunu file, every branch, uproot alone):")
        print(f"{'codec':<20} {'MB':>7} {'events/s':>10} {'MB/s':>8}")
        with tempfile.TemporaryDirectory() as tmp:
            for label, mb, evs, mbs in codec_rates(fileset, Path(tmp), args.repeat):
                print(f"{label:<20} {mb:>7.1f} {evs:>10.0f} {mbs:>8.0f}")

    if args.profile and "signal" in names:
        run = make_runner("signal", subset(fileset, DATASETS["signal"]), args.chunksize, scorer, templates)
        prof = cProfile.Profile()
        prof.enable()
        run()
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        print("\nsignal processor, iterative, top 25 by own time:\n" + s.getvalue())


if __name__ == "__main__":
    main()
