"""Hostile inputs (issue 20): each case asserts the exit code of ``run.py`` (or the
exception), that the message is one line naming the thing and the fix, and that no wrong result
was written. The sections belong to the areas of the framework they test; each keeps its
helpers to itself (prefixed by its tag)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyhf
import pytest

import run

# --- execution ---
# Errors that cannot hide, retries, skips and normalization, preflight cache, atomic outputs,
# a lost worker, kill and resume, an external dask cluster. Cases run ``run.main`` (what
# ``python run.py`` calls) in this process on a private 600-event sample; the kill-and-resume
# and dask cases start real processes.

_EX_ROOT = Path(__file__).resolve().parents[1]
#: options of every case: one process, small chunks, no track scores (unless the case needs them)
_EX_FAST = ("--executor", "iterative", "--quiet", "--chunksize", "300", "--no-scores")


@pytest.fixture(scope="module")
def _ex_sample(tmp_path_factory):
    """Simulation (zjets_nunu, 600 events) and pseudo-data (data_met) of 2018, seed 11; and
    a copy of the simulation written in three baskets per branch (entries 0-200, 200-400,
    400-600), so that one chunk can be corrupted alone."""
    from analysis.toymc.writer import generate_samples

    out = tmp_path_factory.mktemp("ex_sample")
    generate_samples(out, ["2018"], ["zjets_nunu", "data_met"], [], 600, 11)
    fileset = json.loads((out / "fileset.json").read_text())
    _ex_rebasket(out / "zjets_nunu_2018.root", out / "zjets_3baskets.root", 3)
    return out, fileset


def _ex_collections(tree, entry_stop=None, drop=()):
    """The tree as uproot writes it back: flat branches and one record per collection."""
    import awkward as ak

    arrays = tree.arrays([k for k in tree.keys() if k not in drop], entry_stop=entry_stop)
    counters = {k[1:] for k in arrays.fields if k.startswith("n") and f"{k[1:]}_" in " ".join(arrays.fields)}
    out, groups = {}, {}
    for name in arrays.fields:
        prefix = name.split("_", 1)[0]
        if prefix in counters and "_" in name:
            groups.setdefault(prefix, {})[name.split("_", 1)[1]] = arrays[name]
        elif not (name.startswith("n") and name[1:] in counters):
            out[name] = arrays[name]
    for prefix, fields in groups.items():
        out[prefix] = ak.zip(fields)
    return out


def _ex_write(path: Path, branches: dict, pieces: int = 1) -> None:
    import uproot

    n = len(next(iter(branches.values())))
    with uproot.recreate(path) as f:
        f.mktree("Events", {k: v.type for k, v in branches.items()}, counter_name=lambda c: "n" + c,
                 field_name=lambda outer, inner: f"{outer}_{inner}")
        edges = [round(i * n / pieces) for i in range(pieces + 1)]
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            f["Events"].extend({k: v[a:b] for k, v in branches.items()})


def _ex_rebasket(src: Path, dst: Path, pieces: int) -> None:
    import uproot

    with uproot.open(src) as f:
        _ex_write(dst, _ex_collections(f["Events"]), pieces)


def _ex_corrupt_basket(path: Path, branch: str, basket: int) -> None:
    """Overwrite the compressed data of one basket of ``branch`` with zeros."""
    import uproot

    with uproot.open(path) as f:
        b = f["Events"][branch]
        seek, size = int(b.member("fBasketSeek")[basket]), int(b.member("fBasketBytes")[basket])
    with open(path, "r+b") as f:
        f.seek(seek + size // 2)
        f.write(b"\0" * (size // 2))


def _ex_fileset(tmp_path: Path, fileset: dict, files: dict | None = None, name: str = "fs.json") -> Path:
    """``fileset`` with the files of some datasets replaced (dataset -> [paths]), as a JSON file."""
    fs = json.loads(json.dumps(fileset))
    for ds, paths in (files or {}).items():
        fs[ds]["files"] = {str(p): "Events" for p in paths}
    path = tmp_path / name
    path.write_text(json.dumps(fs))
    return path


def _ex_main(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = run.main(["process", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _ex_refused(rc: int, err: str, out: Path, words) -> str:
    """Exit 2, the last stderr line is the only error line and names every word; no output."""
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error:") for line in lines) == 1, err
    for w in words:
        assert w in lines[-1], (w, lines[-1])
    assert "Traceback" not in err
    assert not Path(out).exists() and not Path(out).with_suffix(".histograms.json.gz").exists()
    return lines[-1]


@pytest.fixture
def _ex_env(tmp_path, monkeypatch):
    """A private file-metadata cache."""
    monkeypatch.setenv("SOFTTRACK_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _ex_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ex_shipped_models(dest: Path) -> Path:
    """A copy of the shipped ONNX models (and their JSON) in ``dest``."""
    try:
        from models.softtrack.inference import DEFAULT_CLASSIFIER, DEFAULT_REFINER
    except ImportError:
        pytest.skip("the shipped models moved")
    dest.mkdir(parents=True, exist_ok=True)
    for model in (DEFAULT_CLASSIFIER, DEFAULT_REFINER):
        for f in (Path(model), Path(model).with_suffix(".json")):
            shutil.copy(f, dest / f.name)
    return dest


def _ex_corrupt_model(dest: Path) -> Path:
    """Shipped models whose classifier.onnx is garbage with a matching sha256 in its JSON: it
    passes every check on the client and fails when the session opens on a worker."""
    import hashlib

    d = _ex_shipped_models(dest)
    onnx = d / "classifier.onnx"
    onnx.write_bytes(b"not an onnx graph" * 10)
    meta = json.loads(onnx.with_suffix(".json").read_text())
    for key in ("onnx_sha256", "sha256"):
        if key in meta:
            meta[key] = hashlib.sha256(onnx.read_bytes()).hexdigest()
    onnx.with_suffix(".json").write_text(json.dumps(meta))
    return d


# Each case: (id, build(tmp_path, sample) -> (fileset path, extra arguments), words of the message).
def _ex_case_plain(tmp, sample, *extra):
    return _ex_fileset(tmp, sample[1]), list(extra)


def _ex_case_file(content: bytes | None):
    def build(tmp, sample):
        bad = tmp / "bad.root"
        if content is not None:
            bad.write_bytes(content)
        return _ex_fileset(tmp, sample[1], {"data_met_2018": [bad]}), []
    return build


def _ex_case_missing_branch(tmp, sample):
    import uproot

    src = sample[1]["data_met_2018"]["files"]
    with uproot.open(next(iter(src))) as f:
        branches = _ex_collections(f["Events"], drop=("MET_pt",))
    _ex_write(tmp / "no_met.root", branches)
    return _ex_fileset(tmp, sample[1], {"data_met_2018": [tmp / "no_met.root"]}), []


def _ex_case_corrupt_chunk(tmp, sample, *extra):
    bad = tmp / "zjets_bad.root"
    shutil.copy(sample[0] / "zjets_3baskets.root", bad)
    _ex_corrupt_basket(bad, "MET_pt", 1)
    return _ex_fileset(tmp, sample[1], {"zjets_nunu_2018": [bad]}), ["--chunksize", "200", *extra]


def _ex_case_sim_file_missing(tmp, sample):
    good = next(iter(sample[1]["zjets_nunu_2018"]["files"]))
    return _ex_fileset(tmp, sample[1], {"zjets_nunu_2018": [good, tmp / "gone.root"]}), ["--skip-bad-files"]


def _ex_case_nothing_readable(tmp, sample):
    fs = _ex_fileset(tmp, sample[1], {"zjets_nunu_2018": [tmp / "a.root"], "data_met_2018": [tmp / "b.root"]})
    data = json.loads(fs.read_text())
    data = {"data_met_2018": data["data_met_2018"]}
    fs.write_text(json.dumps(data))
    return fs, ["--skip-bad-files"]


def _ex_case_out(kind):
    def build(tmp, sample):
        if kind == "dir":
            target = tmp / "outdir"
            target.mkdir()
        else:
            (tmp / "afile").write_text("x")
            target = tmp / "afile" / "o.coffea"
        return _ex_fileset(tmp, sample[1]), ["--out", target]
    return build


def _ex_case_scheduler(address):
    def build(tmp, sample):
        return _ex_fileset(tmp, sample[1]), ["--executor", "dask", "--scheduler",
                                             address.format(port=_ex_free_port())]
    return build


def _ex_case_cluster(tmp, sample):
    import importlib.util

    if importlib.util.find_spec("dask_jobqueue") is not None:
        pytest.skip("dask-jobqueue is installed")
    return _ex_fileset(tmp, sample[1]), ["--executor", "dask", "--cluster", "slurm"]


def _ex_case_model(tmp, sample):
    models = _ex_corrupt_model(tmp / "models")
    return _ex_fileset(tmp, sample[1]), ["--models", models, "--skip-bad-files", "--scores"]


def _ex_case_rerun_not_output(tmp, sample):
    (tmp / "notes.coffea").write_text("not an output")
    return _ex_fileset(tmp, sample[1]), ["--rerun-skipped", tmp / "notes.coffea", "--out", tmp / "merged.coffea"]


_EX_CASES = [
    ("max-chunks 0", lambda t, s: _ex_case_plain(t, s, "--max-chunks", "0"), ["--max-chunks", "positive"]),
    ("retries -1", lambda t, s: _ex_case_plain(t, s, "--retries", "-1"), ["--retries", ">= 0"]),
    ("empty file", _ex_case_file(b""), ["bad.root", "is empty", "--skip-bad-files"]),
    ("not a ROOT file", _ex_case_file(b"hello, world\n"), ["bad.root", "is not a ROOT file", "--skip-bad-files"]),
    ("missing file", _ex_case_file(None), ["bad.root", "not found", "--skip-bad-files"]),
    ("missing branch", _ex_case_missing_branch, ["MET_pt", "no_met.root", "--skip-bad-files"]),
    ("corrupt chunk, no --skip-bad-files", _ex_case_corrupt_chunk,
     ["zjets_bad.root entries 200-400", "could not be read", "--skip-bad-files"]),
    ("simulated file missing, --skip-bad-files", _ex_case_sim_file_missing,
     ["gone.root", "sum_genweight", "restore the file"]),
    ("nothing readable, --skip-bad-files", _ex_case_nothing_readable, ["nothing could be read", "b.root"]),
    ("--out a directory", _ex_case_out("dir"), ["outdir", "is a directory"]),
    ("--out under a file", _ex_case_out("file"), ["afile", "cannot be written", "writable directory"]),
    ("unreachable --scheduler", _ex_case_scheduler("tcp://127.0.0.1:{port}"),
     ["tcp://127.0.0.1:", "cannot reach the dask scheduler", "dask scheduler", "--scheduler"]),
    ("--scheduler not an address", _ex_case_scheduler("nonsense"), ["'nonsense'", "tcp://HOST:PORT"]),
    ("--cluster without dask-jobqueue", _ex_case_cluster, ["dask-jobqueue", "softtrack[cluster]"]),
    ("corrupt model, --skip-bad-files", _ex_case_model, ["classifier.onnx", "onnxruntime cannot load"]),
    ("--rerun-skipped of a non-output", _ex_case_rerun_not_output, ["notes.coffea", "cannot read processor output"]),
]


@pytest.mark.parametrize("case, build, words", _EX_CASES, ids=[c[0] for c in _EX_CASES])
def test_ex_hostile(_ex_env, _ex_sample, capsys, case, build, words):
    tmp = _ex_env
    fileset, extra = build(tmp, _ex_sample)
    out = tmp / "out.coffea"
    args = ["--fileset", fileset, "--out", out, *_EX_FAST]
    if "--scores" in extra:  # the case needs the track models
        extra.remove("--scores")
        args.remove("--no-scores")
    if "--out" in extra:
        out = Path(extra[extra.index("--out") + 1])
    t0 = time.monotonic()
    rc, stdout, err = _ex_main(capsys, *args, *extra)
    if out.is_dir():  # --out a directory: nothing written into it
        assert not any(out.iterdir())
        out = out / "output.coffea"
    _ex_refused(rc, err, out, words)
    assert "processed" not in stdout
    if case.startswith("unreachable"):
        assert time.monotonic() - t0 < 15


def test_ex_skipped_without_flag_lists_them(_ex_env, _ex_sample, capsys):
    """Two bad files: both listed (one line each) before the one error line, nothing written."""
    tmp = _ex_env
    (tmp / "empty.root").write_bytes(b"")
    fs = _ex_fileset(tmp, _ex_sample[1], {"data_met_2018": [tmp / "empty.root", tmp / "gone.root"]})
    rc, _, err = _ex_main(capsys, "--fileset", fs, "--out", tmp / "o.coffea", *_EX_FAST)
    _ex_refused(rc, err, tmp / "o.coffea", ["and 1 more file", "--skip-bad-files"])
    listed = [line for line in err.splitlines() if line.startswith("skipped: ")]
    assert len(listed) == 2 and any("empty.root" in x and "is empty" in x for x in listed)


# -- errors that cannot hide: the Python API with a processor that fails on purpose -------------
class _ExFailing:
    """A minimal processor failing its first ``times`` calls with ``make()``."""

    name = "failing"

    def __init__(self, make, times=10**6):
        self.make, self.times, self.calls = make, times, 0

    def accepts(self, metadata):
        return True

    def process(self, events):
        self.calls += 1
        if self.calls <= self.times:
            raise self.make()
        m = events.metadata
        return {"histograms": {}, "cutflow": {m["dataset"]: {"all": {"events": len(events), "weighted": 1.0}}},
                "chunks": [{"dataset": m["dataset"], "file": m["filename"], "entrystart": m["entrystart"],
                            "entrystop": m["entrystop"], "events": len(events)}]}

    def postprocess(self, accumulator):
        return accumulator


def _ex_fatal_cases():
    from analysis.errors import (
        ConfigError,
        CorrectionError,
        InputFileError,
        ModelError,
        ProcessingError,
    )

    return [
        ("ModelError", lambda: ModelError("classifier.onnx: input of width 11, the model needs 12: re-export"),
         ModelError, "classifier.onnx"),
        ("CorrectionError", lambda: CorrectionError("correction 'met_weight' has no era '2016': derive it"),
         CorrectionError, "met_weight"),
        ("ConfigError", lambda: ConfigError("cut met_min must be positive"), ConfigError, "met_min"),
        ("InputFileError (templates)", lambda: InputFileError("R&S template file 't.json' does not exist"),
         InputFileError, "t.json"),
        ("KeyError in code", lambda: KeyError("Jet_foo"), ProcessingError, "KeyError"),
        ("ValueError in code", lambda: ValueError("operands could not be broadcast"), ProcessingError, "ValueError"),
        ("ZeroDivisionError", lambda: ZeroDivisionError("division by zero"), ProcessingError, "not of the data file"),
    ]


@pytest.mark.parametrize("case", _ex_fatal_cases(), ids=[c[0] for c in _ex_fatal_cases()])
def test_ex_fatal_errors_not_skipped_nor_retried(_ex_env, _ex_sample, case):
    """With skip_bad_files, a model/corrections/configuration/code error still fails the run at
    once (one call: no retry), as its own class, naming the thing."""
    from analysis.errors import DataFileError
    from processors.runner import RunOptions
    from processors.runner import run as run_processor

    _, make, cls, word = case
    proc = _ExFailing(make)
    opts = RunOptions(executor="iterative", skip_bad_files=True, retries=3, retry_backoff=0.0, status=False)
    with pytest.raises(cls) as info:
        run_processor(proc, _ex_sample[1], opts)
    assert not isinstance(info.value, DataFileError)
    assert word in str(info.value) and "\n" not in str(info.value)
    assert proc.calls == 1


def test_ex_data_errors_retried_then_skipped(_ex_env, _ex_sample):
    """A read error of a data file: a transient one is retried ``retries`` times with backoff,
    a permanent one is not; a chunk that still fails is skipped with --skip-bad-files (recorded
    with its attempts) and fails the run without; a run that read nothing fails either way."""
    from analysis.errors import DataFileError, SkippedInputError
    from processors.runner import RunOptions
    from processors.runner import run as run_processor

    fs = _ex_sample[1]  # two datasets of one chunk each
    opts = RunOptions(executor="iterative", chunksize=1000, retries=2, retry_backoff=0.01, status=False)
    proc = _ExFailing(lambda: TimeoutError("read timed out"), times=2)  # the first chunk, twice
    out = run_processor(proc, fs, opts)
    assert proc.calls == 4 and not out["chunks"]["skipped"]
    permanent = _ExFailing(lambda: DataFileError("branch Jet_pt missing from f.root", "f.root"), times=1)
    with pytest.raises(SkippedInputError, match="Jet_pt.*--skip-bad-files"):
        run_processor(permanent, fs, opts)
    assert permanent.calls == 2  # not retried
    permanent = _ExFailing(lambda: DataFileError("branch Jet_pt missing from f.root", "f.root"), times=1)
    opts.skip_bad_files = True
    out = run_processor(permanent, fs, opts)
    (skip,) = out["chunks"]["skipped"]
    assert skip["attempts"] == 1 and "Jet_pt" in skip["reason"] and len(out["chunks"]["processed"]) == 1
    always = _ExFailing(lambda: TimeoutError("read timed out"))
    t0 = time.monotonic()
    with pytest.raises(DataFileError, match="nothing could be read"):
        run_processor(always, fs, opts)
    assert always.calls == 2 * 3 and time.monotonic() - t0 >= 2 * (0.01 + 0.02)


def test_ex_skip_renormalizes_then_rerun_skipped(_ex_env, _ex_sample, capsys):
    """A chunk of a simulated file that cannot be read: with --skip-bad-files the output
    records it (file, entries, reason) and normalizes the dataset to the 2/3 of it that was
    read; --rerun-skipped after the file is repaired reads only that chunk and gives the
    output of a clean run (up to the order of additions)."""
    from coffea.util import load

    tmp = _ex_env
    fs, extra = _ex_case_corrupt_chunk(tmp, _ex_sample)
    out = tmp / "skip.coffea"
    rc, stdout, err = _ex_main(capsys, "--fileset", fs, "--out", out, *_EX_FAST, *extra, "--skip-bad-files",
                               "--retries", "0")
    assert rc == 0, err
    assert "skipped: " in stdout and "partly read: zjets_nunu_2018: 400 of 600" in stdout
    o = load(out)
    (skip,) = o["chunks"]["skipped"]
    assert (skip["entrystart"], skip["entrystop"]) == (200, 400) and skip["file"].endswith("zjets_bad.root")
    norm = o["normalization"]["zjets_nunu_2018"]
    meta = o["datasets"]["zjets_nunu_2018"]
    assert norm["entries_read"] == 400 and norm["fraction"] == pytest.approx(2 / 3)
    assert norm["sum_genweight_used"] == pytest.approx(meta["sum_genweight"] * 2 / 3)
    lumi = o["provenance"]["lumi_fb"]["2018"]
    expected = meta["xsec_pb"] * 1000 * lumi * norm["genweight_read"] / norm["sum_genweight_used"]
    assert o["cutflow"]["zjets_nunu_2018"]["all"]["weighted"] == pytest.approx(expected, rel=1e-12)
    # repair the file (same bytes as before the damage: same UUID) and rerun only the skipped chunk
    shutil.copy(_ex_sample[0] / "zjets_3baskets.root", tmp / "zjets_bad.root")
    rc, stdout, err = _ex_main(capsys, "--fileset", fs, "--rerun-skipped", out, *_EX_FAST, *extra)
    assert rc == 0, err
    merged = load(out)
    assert not merged["chunks"]["skipped"] and len(merged["chunks"]["processed"]) == len(o["chunks"]["processed"]) + 1
    rc, _, err = _ex_main(capsys, "--fileset", fs, "--out", tmp / "clean.coffea", *_EX_FAST, *extra)
    assert rc == 0, err
    from processors.compare import compare_outputs

    report = compare_outputs(out, tmp / "clean.coffea", rtol=1e-12, atol=1e-12)
    assert report.ok, report.format()
    assert merged["normalization"] == load(tmp / "clean.coffea")["normalization"] or all(
        merged["normalization"][k]["fraction"] == 1.0 for k in merged["normalization"])


def test_ex_max_chunks_normalization(_ex_env, _ex_sample):
    """--max-chunks 1 reads 200 of 600 simulated entries: sum_genweight is scaled by 1/3 (the
    output says so), so the yields estimate the whole dataset."""
    from processors.runner import RunOptions
    from processors.softtrack.run import run_region

    fs = {"zjets_nunu_2018": _ex_sample[1]["zjets_nunu_2018"]}
    opts = RunOptions(executor="iterative", chunksize=200, max_chunks=1, status=False, systematics=False)
    o = run_region("signal", fs, opts)
    norm, meta = o["normalization"]["zjets_nunu_2018"], o["datasets"]["zjets_nunu_2018"]
    assert (norm["entries_read"], norm["entries_in_files"]) == (200, 600)
    assert norm["sum_genweight_used"] == pytest.approx(meta["sum_genweight"] / 3)
    expected = meta["xsec_pb"] * 1000 * o["provenance"]["lumi_fb"]["2018"] * norm["genweight_read"] / (
        meta["sum_genweight"] / 3)
    assert o["cutflow"]["zjets_nunu_2018"]["all"]["weighted"] == pytest.approx(expected, rel=1e-12)


def test_ex_preflight_cached_on_disk(_ex_env, _ex_sample, monkeypatch):
    """A second process (here: the in-process memory cleared) opens no file to check it."""
    import uproot

    from processors import runner

    fs = _ex_sample[1]
    runner._CHECKED.clear()
    good, _ = runner.preflight(fs, False, runner.RunOptions())
    opened = []
    real_open = uproot.open
    monkeypatch.setattr(runner.uproot, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    runner._CHECKED.clear()
    again, _ = runner.preflight(fs, False, runner.RunOptions())
    assert not opened and again == good
    files = list((_ex_env / "cache" / "files").rglob("*.json"))
    assert len(files) == 2
    runner._CHECKED.clear()
    runner.preflight(fs, False, runner.RunOptions(cache_dir=""))  # no cache: opens them again
    assert len(opened) == 2


def test_ex_atomic_save(tmp_path, monkeypatch):
    """A save that dies midway leaves the previous pair whole; a pair mismatched by a kill
    between the two renames is detected."""
    import coffea.util
    import hist

    from processors.output import histograms_path, save_output, verify_output

    h = hist.Hist(hist.axis.StrCategory([], name="dataset", growth=True), hist.axis.Regular(2, 0, 2, name="x"))
    h.fill(dataset="a", x=[0.5])
    first = {"histograms": {"h": h}, "chunks": {"processed": [], "skipped": []}, "provenance": {}}
    out = tmp_path / "o.coffea"
    save_output(first, out)
    before = out.read_bytes(), histograms_path(out).read_bytes()
    real_save = coffea.util.save

    def dying(obj, filename, *a, **k):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(coffea.util, "save", dying)
    h2 = h.copy()
    h2.fill(dataset="b", x=[1.5])
    with pytest.raises(KeyboardInterrupt):
        save_output({**first, "histograms": {"h": h2}}, out)
    assert (out.read_bytes(), histograms_path(out).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.coffea", "o.histograms.json.gz"]
    assert verify_output(out)
    monkeypatch.setattr(coffea.util, "save", real_save)
    other = tmp_path / "other.coffea"
    save_output({**first, "histograms": {"h": h2}}, other)
    shutil.copy(histograms_path(other), histograms_path(out))  # new JSON beside the old .coffea
    assert not verify_output(out)


class _ExKillsItsWorker(_ExFailing):
    """Kills its own process on the chunk starting at ``entry`` the first time (a marker file
    remembers), as the kernel's OOM killer would."""

    def __init__(self, marker: str, entry: int):
        super().__init__(None, times=0)
        self.marker, self.entry = marker, entry

    def process(self, events):
        if events.metadata["entrystart"] == self.entry and not os.path.exists(self.marker):
            Path(self.marker).write_text("died once")
            os.kill(os.getpid(), 9)
        return super().process(events)


def test_ex_lost_futures_worker(_ex_env, _ex_sample, capsys):
    """A futures worker killed midway: its chunk runs again, the run ends with the output of
    an undisturbed iterative run."""
    import cloudpickle

    from processors.runner import RunOptions
    from processors.runner import run as run_processor

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        proc = _ExKillsItsWorker(str(_ex_env / "marker"), 200)
        fs = _ex_sample[1]
        got = run_processor(proc, fs, RunOptions(executor="futures", workers=2, chunksize=200, status=False))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (_ex_env / "marker").exists() and "a worker process died" in capsys.readouterr().err
    ref = run_processor(_ExFailing(None, times=0), fs, RunOptions(executor="iterative", chunksize=200, status=False))
    assert got["cutflow"] == ref["cutflow"] and got["chunks"] == ref["chunks"]


def _ex_subprocess_env(tmp: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(_EX_ROOT), SOFTTRACK_CACHE=str(tmp / "cache"))
    env.pop("PYTHONSTARTUP", None)
    return env


def test_ex_kill_and_resume(_ex_env, _ex_sample, capsys):
    """run.py process --checkpoint killed with SIGKILL after a few chunks, rerun with the same
    command: histograms and cutflows bit for bit those of an uninterrupted run."""
    from coffea.util import load

    from processors.compare import IDENTICAL, compare_outputs

    tmp = _ex_env
    fs = _ex_fileset(tmp, _ex_sample[1])
    out, ckpt = tmp / "resumed.coffea", tmp / "ckpt"
    argv = ["--fileset", fs, "--out", out, "--executor", "iterative", "--quiet", "--chunksize", "60", "--no-scores",
            "--checkpoint", ckpt]
    with open(tmp / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(_EX_ROOT / "run.py"), "process", *map(str, argv)],
                                env=_ex_subprocess_env(tmp), stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while len(list(ckpt.rglob("*.pkl"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            os.killpg(proc.pid, 9)  # the process group this test started
        finally:
            proc.wait()
    done = len(list(ckpt.rglob("*.pkl")))
    assert proc.returncode == -9 and not out.exists(), (tmp / "killed.log").read_text()[-2000:]
    assert 3 <= done < 20  # 600 + 627 entries in 10 + 10 chunks
    rc, stdout, err = _ex_main(capsys, *argv)
    assert rc == 0, err
    assert f"({done} from the checkpoint)" in stdout
    rc, _, err = _ex_main(capsys, *argv[:2], "--out", tmp / "whole.coffea", *argv[4:-2])
    assert rc == 0, err
    report = compare_outputs(out, tmp / "whole.coffea")
    assert report.ok and [f.status for f in report.files] == [IDENTICAL], report.format()
    assert load(out)["provenance"]["chunks_from_checkpoint"] == done


def test_ex_external_dask_cluster(_ex_env, _ex_sample, capsys, monkeypatch):
    """`dask scheduler` and `dask worker` started as separate processes, the worker in another
    directory with only the package importable; the signal processor (track models by a path
    relative to the client's directory) gives the futures output bit for bit."""
    from processors.compare import IDENTICAL, compare_outputs

    tmp = _ex_env
    dask = shutil.which("dask")
    if dask is None:
        pytest.skip("the dask command is not installed")
    port = _ex_free_port()
    address = f"tcp://127.0.0.1:{port}"
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = _ex_subprocess_env(tmp)
    logs = open(tmp / "dask.log", "w")  # noqa: SIM115 - closed below
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              cwd=elsewhere, env=env, stdout=logs, stderr=logs)]
    procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                   "--local-directory", str(elsewhere / "work")],
                                  cwd=elsewhere, env=env, stdout=logs, stderr=logs))
    try:
        _ex_shipped_models(tmp / "mymodels")
        monkeypatch.chdir(tmp)  # --models mymodels is relative to the client's directory
        fs = _ex_fileset(tmp, _ex_sample[1])
        common = ["--fileset", fs, "--quiet", "--chunksize", "300", "--models", "mymodels"]
        rc, _, err = _ex_main(capsys, *common, "--out", tmp / "futures.coffea", "--executor", "futures",
                              "--workers", "1")
        assert rc == 0, err
        rc, _, err = _ex_main(capsys, *common, "--out", tmp / "dask.coffea", "--executor", "dask",
                              "--scheduler", address)
        assert rc == 0, err + (tmp / "dask.log").read_text()[-3000:]
        assert f"dask: scheduler {address}" in err
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        logs.close()
    report = compare_outputs(tmp / "dask.coffea", tmp / "futures.coffea")
    assert report.ok and [f.status for f in report.files] == [IDENTICAL], report.format()

# --- execution ---

# --- fileset and remote inputs ---
# Cases run ``run.main`` (what ``python run.py`` calls: the same exit code and stderr) in this
# process; test_fs_cli_subprocess checks that the real command line behaves alike.

_FS_ROOT = Path(__file__).resolve().parents[1]
_FS_REAL = _FS_ROOT.parent / "shared" / "data" / "real" / "nano_dimuon.root"
_FS_SIM = {"process": "dy_mumu", "era": "2018", "is_data": False, "xsec_pb": 6000.0, "sum_genweight": 40.0}
_FS_PSEUDO = {"process": "data_singlemuon", "era": "2018", "is_data": True, "lumi_fb": 0.1, "n_events": 40,
              "seed": 3, "generator_version": "7", "processes": ["dy_mumu"]}


def _fs_real(tmp_path: Path) -> Path:
    """A private copy of a real NanoAOD file (40 events)."""
    if not _FS_REAL.is_file():
        pytest.skip(f"real NanoAOD files not found at {_FS_REAL.parent}")
    copy = tmp_path / "data" / "dimuon.root"
    copy.parent.mkdir(exist_ok=True)
    if not copy.exists():
        shutil.copy(_FS_REAL, copy)
    return copy


def _fs_one(tmp_path, meta, path=None) -> dict:
    return {"ds": {"files": {str(path or _fs_real(tmp_path)): "Events"}, "metadata": meta}}


def _fs_two(tmp_path, second: str) -> dict:
    """The real file in dataset ``ds`` and, reached another way, ``second`` in ``again``."""
    first = _fs_real(tmp_path)
    return {"ds": {"files": {str(first): "Events"}, "metadata": _FS_SIM},
            "again": {"files": {second: "Events"}, "metadata": _FS_SIM}}


def _fs_symlink(tmp_path) -> dict:
    link = tmp_path / "link.root"
    link.symlink_to(_fs_real(tmp_path))
    return _fs_two(tmp_path, str(link))


def _fs_dotdot(tmp_path) -> dict:
    (tmp_path / "other").mkdir()
    return _fs_two(tmp_path, "other/../data/dimuon.root")


def _fs_copy(tmp_path) -> dict:
    copy = tmp_path / "copy.root"
    shutil.copy(_fs_real(tmp_path), copy)
    return _fs_two(tmp_path, str(copy))


def _fs_meta(**changes):
    def build(tmp_path):
        base = _FS_PSEUDO if changes.get("is_data", _FS_SIM["is_data"]) or "lumi_fb" in changes else _FS_SIM
        meta = {k: v for k, v in (base | changes).items() if v is not None}
        return _fs_one(tmp_path, meta)
    return build


def _fs_url(url):
    return lambda tmp_path: _fs_one(tmp_path, _FS_SIM, url)


#: (case, fileset builder, words the one error line must hold)
_FS_CASES = [
    ("xsec-negative", _fs_meta(xsec_pb=-1.0), ["'ds'", "xsec_pb = -1.0", "positive finite", "fix the fileset"]),
    ("xsec-nan", _fs_meta(xsec_pb=float("nan")), ["'ds'", "xsec_pb = nan", "positive finite"]),
    ("xsec-missing", _fs_meta(xsec_pb=None), ["'ds'", "metadata.xsec_pb", "add it", "is_data"]),
    ("sum-genweight-zero", _fs_meta(sum_genweight=0.0), ["'ds'", "sum_genweight = 0.0", "positive finite"]),
    ("sum-genweight-inf", _fs_meta(sum_genweight=float("inf")), ["'ds'", "sum_genweight = inf", "positive finite"]),
    ("lumi-negative", _fs_meta(lumi_fb=-2.0), ["'ds'", "lumi_fb = -2.0", "positive finite"]),
    ("pseudo-data-without-lumi", _fs_meta(is_data=True, lumi_fb=None),
     ["'ds'", "pseudo-data", "without metadata.lumi_fb", "configuration's luminosity", "add lumi_fb"]),
    ("unknown-process", _fs_meta(process="dy_mumuu"), ["'ds'", "'dy_mumuu'", "did you mean 'dy_mumu'", "processes="]),
    ("same-file-symlink", _fs_symlink, ["'ds'", "'again'", "link.root", "same file", "real path", "list it once"]),
    ("same-file-dotdot", _fs_dotdot, ["'ds'", "'again'", "other/../data/dimuon.root", "same file", "list it once"]),
    ("same-file-copy-uuid", _fs_copy, ["'ds'", "'again'", "copy.root", "ROOT file UUID", "list it once"]),
    ("unknown-scheme", _fs_url("rooot://127.0.0.1//store/f.root"), ["'ds'", "'rooot'", "root://", "https://"]),
    ("https-unreachable", _fs_url("https://127.0.0.1:9/f.root"),
     ["https://127.0.0.1:9/f.root", "dataset ds", "cannot read", "--skip-bad-files"]),
    ("http-unreachable", _fs_url("http://127.0.0.1:9/f.root"),
     ["http://127.0.0.1:9/f.root", "dataset ds", "timeout", "--skip-bad-files"]),
]


def _fs_run(tmp_path, datasets, *extra) -> tuple[int, Path]:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps(datasets))
    out = tmp_path / "out" / "zpeak.coffea"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old real files lack NanoAOD branches the schema knows
        rc = run.main(["process", "--analysis", "zpeak", "--fileset", str(fileset), "--out", str(out),
                       "--executor", "iterative", "--quiet", *extra])
    return rc, out


def _fs_assert_refused(rc, err: str, out: Path, words) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not out.exists() and not out.with_name(out.stem + ".histograms.json.gz").exists()


@pytest.mark.parametrize("case, build, words", _FS_CASES, ids=[c[0] for c in _FS_CASES])
def test_fs_hostile(tmp_path, capsys, case, build, words):
    datasets = build(tmp_path)
    rc, out = _fs_run(tmp_path, datasets)
    _fs_assert_refused(rc, capsys.readouterr().err, out, words)


def test_fs_xrootd_extra_missing(tmp_path, capsys, monkeypatch):
    """root:// without the [xrootd] extra: refused before anything runs, naming the extra."""
    from processors import fileset

    monkeypatch.setattr(fileset, "_xrootd_available", lambda: False)
    rc, out = _fs_run(tmp_path, _fs_url("root://127.0.0.1//store/f.root")(tmp_path))
    _fs_assert_refused(rc, capsys.readouterr().err, out, ["root://127.0.0.1//store/f.root", "[xrootd]", "pip install"])


def test_fs_bad_timeout(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _fs_run(tmp_path, _fs_one(tmp_path, _FS_SIM), "--xrootd-timeout", "0")
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--xrootd-timeout" in last and "positive" in last and "'0'" in last


def _fs_subprocess(args, env_extra=None, cwd=None):
    env = dict(os.environ) | (env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join([str(_FS_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, str(_FS_ROOT / "run.py"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_fs_cli_subprocess(tmp_path):
    """``python run.py process`` itself: a NaN cross section, exit 2, one line, no output."""
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps(_fs_meta(xsec_pb=float("nan"))(tmp_path)))
    out = tmp_path / "o.coffea"
    r = _fs_subprocess(["process", "--analysis", "zpeak", "--fileset", str(fileset), "--out", str(out)], cwd=tmp_path)
    _fs_assert_refused(r.returncode, r.stderr, out, ["'ds'", "xsec_pb = nan", "positive finite"])


def test_fs_xrootd_unreachable_timeout(tmp_path):
    """A root:// server that does not answer: the run gives up after --xrootd-timeout (the
    XRootD client checks its timeouts every XRD_TIMEOUTRESOLUTION s, 15 by default) with one
    line naming the URL, the timeout and the fix."""
    import importlib.util

    if importlib.util.find_spec("fsspec_xrootd") is None or importlib.util.find_spec("XRootD") is None:
        pytest.skip("the [xrootd] extra is not installed (pip install -e \".[xrootd]\")")
    url = "root://127.0.0.1:9//store/f.root"  # the discard port: nothing listens
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps(_fs_url(url)(tmp_path)))
    out = tmp_path / "o.coffea"
    t0 = time.monotonic()
    r = _fs_subprocess(["process", "--analysis", "zpeak", "--fileset", str(fileset), "--out", str(out),
                        "--xrootd-timeout", "2"], env_extra={"XRD_TIMEOUTRESOLUTION": "1"}, cwd=tmp_path)
    assert time.monotonic() - t0 < 60
    _fs_assert_refused(r.returncode, r.stderr, out, [url, "dataset ds", "timeout 2 s", "--skip-bad-files"])

# --- fileset and remote inputs ---

ROOT = Path(__file__).resolve().parents[1]


# --- limits and generate ---
# Limits: the POI upper bound is widened when the best fit or a limit reaches it
# (docs/physics.md sec. 9, "POI range"), checked against pyhf's own hypotest with wide bounds;
# generate: a sample replaces the previous one atomically (analysis/toymc/writer.py), checked
# by killing `run.py generate` midway; outputs of commands go through analysis/io.py.
_LG_SIGNAL = np.array([1.0, 2.0, 3.0, 4.0])
_LG_BACKGROUND = {"pv": [30.0, 15.0, 4.0, 1.0], "spurious": [20.0, 12.0, 3.0, 0.8]}
#: CLs of our limits against pyhf's default-tolerance fits (tests/test_stats.py)
_LG_CLS_TOL = 5e-5
#: a POI range wide enough for every excess below: pyhf's reference
_LG_WIDE_BOUND = 1000.0


def _lg_yields(excess: float, **changes) -> dict:
    """4 regions, two backgrounds, one signal; observed = background + ``excess`` x signal."""
    total = np.sum(list(_LG_BACKGROUND.values()), axis=0)
    y = {
        "regions": ["SR1", "SR2", "SR3", "SR4"],
        "observed": np.round(total + excess * _LG_SIGNAL).tolist(),
        "backgrounds": {k: {"yields": v, "stat": (0.05 * np.asarray(v)).tolist(), "norm_unc": 0.1}
                        for k, v in _LG_BACKGROUND.items()},
        "signals": {"signal_m115_dm0p27": {"yields": _LG_SIGNAL.tolist(), "stat": (0.1 * _LG_SIGNAL).tolist()}},
        "lumi_unc": 0.016,
        "signal_unc": 0.1,
    }
    y.update(changes)
    return y


def _lg_spec(yields: dict) -> dict:
    from analysis.stats import workspaces_from_yields

    (spec,) = workspaces_from_yields(yields).values()
    return spec


def _lg_bound(spec: dict) -> float:
    return spec["measurements"][0]["config"]["parameters"][0]["bounds"][0][1]


def _lg_pyhf_wide(spec: dict):
    from analysis.stats.limits import model_and_data
    from analysis.stats.workspace import with_poi_upper_bound

    return model_and_data(with_poi_upper_bound(spec, _LG_WIDE_BOUND))


@pytest.mark.parametrize(("excess", "beyond_bound"), [(12.0, False), (20.0, True), (50.0, True)])
def test_lg_large_excess_observed_limit_is_pyhf_with_wide_bounds(excess, beyond_bound):
    """A large excess (mu-hat near or beyond the workspace's POI bound): the bound is widened and
    the observed limit is where pyhf's CLs with wide bounds is 0.05; before, the clipped fit
    gave a too high limit (20x: 28.0 instead of 25.1)."""
    from analysis.stats import AsymptoticCLs, upper_limit
    from analysis.stats.limits import model_and_data

    spec = _lg_spec(_lg_yields(excess))
    res = upper_limit(spec)
    assert res.poi_bound_widened and res.poi_upper_bound_initial == _lg_bound(spec)
    assert res.mu_hat < 0.5 * res.poi_upper_bound and res.observed < res.poi_upper_bound
    model, data = _lg_pyhf_wide(spec)
    obs = pyhf.infer.hypotest(res.observed, data, model, test_stat="qtilde")
    assert float(obs) == pytest.approx(0.05, abs=_LG_CLS_TOL)
    mu_hat = pyhf.infer.mle.fit(data, model)[model.config.poi_index]
    assert res.mu_hat == pytest.approx(float(mu_hat), rel=1e-3)
    clipped = AsymptoticCLs(*model_and_data(spec)).upper_limits()[0]  # the previous computation
    assert (abs(clipped - res.observed) > 0.01 * res.observed) == beyond_bound


@pytest.mark.parametrize("excess", [0.0, 1.0, 3.0])
def test_lg_small_excess_limits_bit_identical(excess):
    """Where nothing reaches the bound, the limits are those of the unwidened computation, bit
    for bit."""
    from analysis.stats import AsymptoticCLs, upper_limit
    from analysis.stats.limits import model_and_data

    spec = _lg_spec(_lg_yields(excess))
    res = upper_limit(spec)
    calc = AsymptoticCLs(*model_and_data(spec))
    observed, expected = calc.upper_limits()
    assert not res.poi_bound_widened and res.poi_upper_bound == _lg_bound(spec)
    assert (res.observed, res.expected) == (observed, expected)
    assert (res.cls_obs_mu1, res.cls_exp_mu1) == calc.cls(1.0)


@pytest.mark.parametrize("norm_unc", [0.3, 0.5])
def test_lg_expected_limits_above_the_bound(norm_unc):
    """A signal shaped like a background with a large normalization uncertainty: the expected
    limits lie far above the statistical POI bound. The scan is not stopped there (pyhf's
    expected CLs at them is 0.05; the limits are those of the spec's bound, bit for bit: only
    the free fits see the bound) and the bound is widened to hold them, so that `pyhf cls`
    takes them (before: 'lies outside of its bounds')."""
    from analysis.stats import AsymptoticCLs, upper_limit
    from analysis.stats.limits import model_and_data
    from analysis.stats.workspace import with_poi_upper_bound

    y = {"regions": ["A", "B"], "observed": [1e4, 1e4],
         "backgrounds": {"bk": {"yields": [1e4, 1e4], "stat": [0.0, 0.0], "norm_unc": norm_unc}},
         "signals": {"sig": {"yields": [1.0, 1.0], "stat": [0.0, 0.0]}}, "lumi_unc": 0.0, "signal_unc": 0.0}
    spec = _lg_spec(y)
    res = upper_limit(spec)
    assert res.expected[4] > _lg_bound(spec)
    assert res.poi_bound_widened and max(res.expected[4], res.observed) < res.poi_upper_bound
    assert (res.observed, res.expected) == AsymptoticCLs(*model_and_data(spec)).upper_limits()
    model, data = model_and_data(with_poi_upper_bound(spec, res.poi_upper_bound))
    for i in (2, 4):
        _, expected = pyhf.infer.hypotest(res.expected[i], data, model, test_stat="qtilde",
                                          return_expected_set=True)
        assert float(expected[i]) == pytest.approx(0.05, abs=_LG_CLS_TOL)


def _lg_empty_signal_variation() -> dict:
    """Table 2 with jes and pu shapes, the signal's pu variation empty (a histosys to zero)."""
    table2 = json.loads((ROOT / "tests" / "data" / "summary_table2_yields.json").read_text())
    name = "signal_m115_dm0p568"
    y = {k: table2[k] for k in ("regions", "observed", "lumi_unc")}
    y["backgrounds"] = {
        b: {**v, "shapes": {s: {"up": (hi * np.asarray(v["yields"])).tolist(), "down": (lo * np.asarray(v["yields"])).tolist()}
                            for s, hi, lo in (("jes", 1.05, 0.96), ("pu", 1.02, 0.98))}}
        for b, v in table2["backgrounds"].items()}
    sig = table2["signals"][name]
    y["signals"] = {name: {**sig, "shapes": {"jes": {"up": sig["yields"], "down": sig["yields"]},
                                             "pu": {"up": [0.0] * 12, "down": [0.0] * 12}}}}
    return y


@pytest.mark.parametrize("mu", [0.5, 1.0])
def test_lg_fit_stuck_in_a_failed_line_search_continues(mu):
    """A signal variation that empties it: TNC stops with 'linear search failed' far from the
    minimum of the fixed-mu fit; the fit continues with L-BFGS-B and CLs equals pyhf's
    (before: 1.8e-8 at mu = 1, an exclusion, where pyhf gives 0.38)."""
    from analysis.stats import AsymptoticCLs, cls_pyhf
    from analysis.stats.limits import model_and_data

    spec = _lg_spec(_lg_empty_signal_variation())
    assert AsymptoticCLs(*model_and_data(spec)).cls(mu)[0] == pytest.approx(cls_pyhf(spec, mu)[0], abs=_LG_CLS_TOL)


def test_lg_limits_cli_warns_of_a_variation_that_empties_the_signal(tmp_path, capsys):
    """Its likelihood has a second minimum (pu = +-1 removes the signal) that the fits started
    from the neighbouring mu can miss: the limits come with a one-line warning naming it."""
    src = tmp_path / "yields.json"
    src.write_text(json.dumps(_lg_empty_signal_variation()))
    assert run.main(["limits", "--yields", str(src), "--out", str(tmp_path / "limits.json"), "--workers", "1"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and all(w in lines[0] for w in ("signal_m115_dm0p568", "pu up, pu down", "empties")), lines


def test_lg_limits_cli_says_the_bound_was_widened_and_writes_it(tmp_path, capsys):
    src = tmp_path / "yields.json"
    src.write_text(json.dumps(_lg_yields(20.0)))
    out = tmp_path / "limits.json"
    assert run.main(["limits", "--yields", str(src), "--out", str(out), "--workers", "1"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "POI upper bound" in ln]
    entry = json.loads(out.read_text())["signals"]["signal_m115_dm0p27"]
    assert len(lines) == 1 and "widened to" in lines[0] and "signal_m115_dm0p27" in lines[0]
    from analysis.stats import upper_limit

    res = upper_limit(_lg_spec(_lg_yields(20.0)))
    assert entry["poi_bound_widened"] is True and (entry["observed"], entry["expected"]) == (res.observed, res.expected)
    assert _lg_bound(json.loads(Path(entry["workspace"]).read_text())) == entry["poi_upper_bound"]


@pytest.mark.parametrize(("case", "words"), [
    ("out is a directory", ["--out", "is a directory"]),
    ("out below a file", ["cannot write --out", "choose another path"]),
])
def test_lg_limits_cli_refuses_with_one_line_and_writes_nothing(tmp_path, capsys, case, words):
    """A bad --out is found before any fit (before: a traceback after all of them)."""
    src = tmp_path / "yields.json"
    src.write_text(json.dumps(_lg_yields(0.0)))
    if case == "out is a directory":
        out = tmp_path / "limits.json"
        out.mkdir()
    else:
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "limits.json"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run.main(["limits", "--yields", str(src), "--out", str(out), "--workers", "1"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and all(w in err[0] for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no limits, no workspaces


def test_lg_no_upper_limit_is_a_one_line_error():
    """CLs that never reaches the level (a signal a nuisance parameter can remove): a
    YieldsError saying so (before: RuntimeError, a traceback)."""
    from analysis.errors import YieldsError
    from analysis.stats import AsymptoticCLs

    with pytest.raises(YieldsError, match="no upper limit"):
        AsymptoticCLs._solve(lambda mu: -1.0, 1.0, 1e-6)


@pytest.mark.parametrize("how", ["exception", "sigkill"])
@pytest.mark.parametrize("api", ["write_atomic", "atomic_output"])
def test_lg_atomic_write_interrupted_keeps_the_old_file(tmp_path, how, api):
    """A writer interrupted midway (an exception, or SIGKILL of its process) leaves the previous
    file as it was."""
    target = tmp_path / "summary.json"
    target.write_text('{"old": true}')
    body = {  # stopped after the new content is written, before it is renamed into place
        "write_atomic": "os.fsync = lambda fd: stop()\nwrite_atomic(t, '{\"new\": true}')",
        "atomic_output": "with atomic_output(t) as tmp:\n    tmp.write_text('{\"new\": tr')\n    stop()",
    }[api]
    stop = "os.kill(os.getpid(), signal.SIGKILL)" if how == "sigkill" else "raise RuntimeError('disk full')"
    code = (
        "import os, signal, sys\nfrom pathlib import Path\nfrom analysis.io import atomic_output, write_atomic\n"
        f"def stop(*args):\n    {stop}\n"
        f"t = Path(sys.argv[1])\n{body}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True, text=True)
    assert r.returncode == (-signal.SIGKILL if how == "sigkill" else 1), r.stderr
    assert target.read_text() == '{"old": true}'
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert leftovers == [] if how == "exception" else all(n.startswith(".summary.tmp-") for n in leftovers)


_LG_GEN = {"eras": ["2016"], "procs": ["qcd", "data_jetht", "signal"], "points": [(140.0, 0.58), (200.0, 1.0)],
           "n": 300}
_LG_OLD_SEED, _LG_NEW_SEED = 3, 4


def _lg_generate(out: Path, seed: int, procs=None) -> str:
    """Generate the small request in-process; returns its request hash."""
    from analysis.toymc.writer import generate_samples, request_hash

    procs = procs or _LG_GEN["procs"]
    generate_samples(out, _LG_GEN["eras"], procs, _LG_GEN["points"], _LG_GEN["n"], seed)
    return request_hash(_LG_GEN["eras"], procs, _LG_GEN["points"], _LG_GEN["n"], seed)


def _lg_digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def _lg_samples(tmp_path_factory):
    """An old sample (seed 3, with one dataset more) and the hash of the new request (seed 4)."""
    from analysis.toymc.writer import request_hash

    old = tmp_path_factory.mktemp("lg_old") / "sample"
    old_hash = _lg_generate(old, _LG_OLD_SEED, [*_LG_GEN["procs"], "data_met"])
    new_hash = request_hash(_LG_GEN["eras"], _LG_GEN["procs"], _LG_GEN["points"], _LG_GEN["n"], _LG_NEW_SEED)
    return old, old_hash, new_hash


def _lg_copy_old(samples, tmp_path: Path) -> Path:
    """A copy of the old sample (its fileset's paths rewritten to the copy) and a user's file."""
    from analysis.toymc.writer import FILESET, REQUEST

    old, _, _ = samples
    out = tmp_path / "sample"
    shutil.copytree(old, out)
    text = (old / FILESET).read_text().replace(str(old.resolve()), str(out.resolve()))
    (out / FILESET).write_text(text)
    request = json.loads((out / REQUEST).read_text())
    request["fileset_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (out / REQUEST).write_text(json.dumps(request))
    (out / "notes.txt").write_text("mine")
    return out


def _lg_state(out: Path, samples, old_digests: dict) -> str:
    """'old' or 'new' if ``out`` holds that sample complete (and nothing of the other), else
    what is wrong."""
    from analysis.toymc.writer import check_sample

    _, old_hash, new_hash = samples
    if check_sample(out, old_hash) is None and _lg_digests(out) == old_digests:
        return "old"
    if check_sample(out, new_hash) is None and not (out / "data_met_2016.root").exists():
        return "new"
    return f"mixed: old {check_sample(out, old_hash)}; new {check_sample(out, new_hash)}"


@pytest.mark.parametrize("files_before_kill", [0, 1, 3])
def test_lg_generate_killed_midway_leaves_old_or_new(_lg_samples, tmp_path, files_before_kill):
    """SIGKILL of `run.py generate` into a directory holding a previous sample, after N of its
    files are written: the directory holds the complete old sample (before: a regenerated file
    beside the old fileset.json); the next generate leaves the complete new one."""
    from analysis.toymc.writer import STAGING_PREFIX, present_fileset

    out = _lg_copy_old(_lg_samples, tmp_path)
    old_digests = _lg_digests(out)
    cmd = [sys.executable, str(ROOT / "run.py"), "generate", "--out", str(out), "--eras", "2016",
           "--processes", ",".join(_LG_GEN["procs"]), "--signal-points", "140:0.58,200:1.0",
           "--events-per-sample", str(_LG_GEN["n"]), "--seed", str(_LG_NEW_SEED), "--quiet"]
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=stderr)
        staging = out / f"{STAGING_PREFIX}{proc.pid}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if staging.is_dir() and len(list(staging.glob("*.root"))) >= files_before_kill:
                break
            time.sleep(0.005)
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert _lg_state(out, _lg_samples, old_digests) == "old"
    assert present_fileset(out, _lg_samples[2]) is None  # not the new request: generate it
    assert not staging.exists()  # the dead generate's staging directory went with that check
    _lg_generate(out, _LG_NEW_SEED)
    assert _lg_state(out, _lg_samples, old_digests) == "new"
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


class _LgKilled(BaseException):
    """Stands for SIGKILL inside the commit (no handler of the writer runs for it)."""


@pytest.mark.parametrize("moves_before_kill", [0, 2, 4, 5])
def test_lg_generate_killed_during_the_commit_is_finished(_lg_samples, tmp_path, monkeypatch, moves_before_kill):
    """A generate killed while moving its committed sample into place (after N of the 4 files,
    fileset.json and request.json): readers never see the old fileset.json beside a new file,
    and the next look at the directory (present_fileset, as the main job does) finishes it."""
    from analysis.toymc import writer

    out = _lg_copy_old(_lg_samples, tmp_path)
    old_digests = _lg_digests(out)
    moves = []
    real_move = writer._move

    def move(src, dst):
        if len(moves) == moves_before_kill:
            raise _LgKilled
        moves.append(src.name)
        real_move(src, dst)

    monkeypatch.setattr(writer, "_move", move)
    with pytest.raises(_LgKilled):
        _lg_generate(out, _LG_NEW_SEED)
    monkeypatch.setattr(writer, "_move", real_move)
    fileset = out / writer.FILESET
    if fileset.exists():  # only the new one may be there, never the old one beside new files
        assert moves_before_kill == 5 and writer.check_sample(out, _lg_samples[1]) is not None
    assert writer.present_fileset(out, _lg_samples[2]) == fileset
    assert _lg_state(out, _lg_samples, old_digests) == "new"
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("damage", "words"), [
    ("truncated file", ["qcd_2016.root", "bytes"]),
    ("file of another sample", ["qcd_2016.root"]),
    ("missing file", ["qcd_2016.root", "missing"]),
    ("stale fileset.json", ["fileset.json", "not the one"]),
    ("older generator", ["records no files"]),
])
def test_lg_incomplete_sample_is_not_reused(_lg_samples, tmp_path, damage, words):
    """present_fileset (the main job's reuse check) refuses a sample that is not exactly as
    written, and check_sample says why in one line."""
    from analysis.toymc.writer import FILESET, REQUEST, check_sample, present_fileset

    out = _lg_copy_old(_lg_samples, tmp_path)
    _, old_hash, _ = _lg_samples
    assert present_fileset(out, old_hash) == out / FILESET
    qcd = out / "qcd_2016.root"
    if damage == "truncated file":
        qcd.write_bytes(qcd.read_bytes()[:1000])
    elif damage == "file of another sample":
        other = tmp_path / "other"
        _lg_generate(other, _LG_NEW_SEED, ["qcd"])
        shutil.copyfile(other / "qcd_2016.root", qcd)
    elif damage == "missing file":
        qcd.unlink()
    elif damage == "stale fileset.json":
        fileset = json.loads((out / FILESET).read_text())
        fileset.pop("data_met_2016")
        (out / FILESET).write_text(json.dumps(fileset, indent=1))
    else:
        request = json.loads((out / REQUEST).read_text())
        del request["files"], request["fileset_sha256"]
        (out / REQUEST).write_text(json.dumps(request))
    assert present_fileset(out, old_hash) is None
    why = check_sample(out, old_hash)
    assert "\n" not in why and all(w in why for w in words), why


def test_lg_main_job_regenerates_an_incomplete_sample(tmp_path, monkeypatch, capsys):
    """ensure_sample (the main job's first stage) reuses a complete sample, and generates it
    again when a file is not as recorded (a smaller request stands for the default one)."""
    from analysis.toymc import processes
    from commands import main_job

    monkeypatch.setattr(main_job.cfg, "ERAS", ("2016",))
    monkeypatch.setattr(processes, "ALL_PROCESSES", ("qcd",))
    monkeypatch.setattr(processes, "DATA_STREAMS", {"data_jetht": processes.DATA_STREAMS["data_jetht"]})
    monkeypatch.setattr(main_job, "default_signal_points", lambda: [(140.0, 0.58)])
    stages = main_job.Stages(quiet=False)
    data = tmp_path / "default"
    fileset = main_job.ensure_sample(data, 300, 1, stages)
    digests = _lg_digests(data)
    assert main_job.ensure_sample(data, 300, 1, stages) == fileset and _lg_digests(data) == digests
    assert "default sample present" in capsys.readouterr().err
    qcd = data / "qcd_2016.root"
    qcd.write_bytes(qcd.read_bytes()[:-10])
    assert main_job.ensure_sample(data, 300, 1, stages) == fileset
    assert "generating the default sample again" in capsys.readouterr().err
    from analysis.toymc.writer import check_sample

    assert check_sample(data, json.loads((data / "request.json").read_text())["hash"]) is None
    assert qcd.stat().st_size > 0 and _lg_digests(data).keys() == digests.keys()
# --- limits and generate ---


# --- validation ---------------------------------------------------------------------------
# Models, corrections and non-finite inputs: models and corrections are checked before any
# chunk runs (AnalysisProcessor.validate), events with a NaN or an infinity in a branch the
# processor reads are excluded and counted (cutflow step "finite_inputs").

_VA_DATASET = "signal_m115_dm0p27_2018"


def _va_main(argv: list[str], capsys) -> tuple[int, list[str], list[str]]:
    """run.py in this process (the same exit code and messages as ``python run.py``):
    (exit code, stdout lines, stderr lines), progress bars left out."""
    import run

    code = run.main(argv)
    captured = capsys.readouterr()

    def lines(text):
        return [ln for ln in text.splitlines() if ln.strip() and "Processing" not in ln and "Warning" not in ln]

    return code, lines(captured.out), lines(captured.err)


def _va_fileset(small_sample, tmp_path: Path, path: Path | None = None, name: str = _VA_DATASET) -> Path:
    """A fileset of one dataset of the small sample, its file replaced by ``path``."""
    _, fs = small_sample
    entry = json.loads(json.dumps(fs[name]))
    if path is not None:
        entry["files"] = {str(path): "Events"}
    out = tmp_path / f"fileset_{name}.json"
    out.write_text(json.dumps({name: entry}))
    return out


def _va_source(small_sample, name: str = _VA_DATASET) -> Path:
    _, fs = small_sample
    (path,) = fs[name]["files"]
    return Path(path)


def _va_rewrite(src: Path, dst: Path, edit: dict | None = None, keep: np.ndarray | None = None) -> None:
    """Copy the Events tree of ``src`` to ``dst`` with uproot: ``edit`` maps a branch name to a
    function of its (awkward) values returning the new ones; ``keep`` selects events."""
    import awkward as ak
    import uproot

    edit = edit or {}
    with uproot.open(src) as f:
        names = f["Events"].keys()
        arrays = f["Events"].arrays(library="ak")
    counters = {n for n in names if n.startswith("n") and any(k.startswith(n[1:] + "_") for k in names)}
    collections = {n[1:] for n in counters}
    out = {}
    for c in sorted(collections):
        fields = {k[len(c) + 1:]: arrays[k] for k in names if k.startswith(c + "_") and k not in counters}
        out[c] = ak.zip({f: edit[f"{c}_{f}"](v) if f"{c}_{f}" in edit else v for f, v in fields.items()})
    for k in names:
        if k not in counters and not any(k.startswith(c + "_") for c in collections):
            out[k] = edit[k](arrays[k]) if k in edit else arrays[k]
    if keep is not None:
        out = {k: v[keep] for k, v in out.items()}
    out = {k: v if v.ndim > 1 else ak.to_numpy(v) for k, v in out.items()}
    with uproot.recreate(dst) as f:
        f.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in out.items()},
                 counter_name=lambda c: "n" + c, field_name=lambda outer, inner: f"{outer}_{inner}")
        f["Events"].extend(out)


def _va_bad_events(src: Path) -> np.ndarray:
    """The events made bad: every third one that has a jet and a track."""
    import uproot

    t = uproot.open(src)["Events"]
    n = t.arrays(["nJet", "nTrack"], library="np")
    return (np.arange(t.num_entries) % 3 == 0) & (n["nJet"] > 0) & (n["nTrack"] > 0)


def _va_poison(bad: np.ndarray, value: float):
    """An edit setting ``value`` in the bad events (the first object of a collection)."""
    import awkward as ak

    def edit(values):
        if values.ndim == 1:
            return ak.where(ak.Array(bad), np.asarray(value, ak.to_numpy(values).dtype), values)
        counts = ak.to_numpy(ak.num(values))
        flat = ak.to_numpy(ak.flatten(values)).copy()
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])[bad]
        flat[first] = value
        return ak.unflatten(flat, counts)

    return edit


@pytest.fixture(scope="module")
def _va_removed(small_sample, tmp_path_factory):
    """The processed output of the signal dataset without the events the cases make bad."""
    from coffea.util import load

    import run

    tmp = tmp_path_factory.mktemp("va_removed")
    src = _va_source(small_sample)
    bad = _va_bad_events(src)
    _va_rewrite(src, tmp / "removed.root", keep=~bad)
    out = tmp / "removed.coffea"
    code = run.main(["process", "--processor", "signal", "--fileset", str(_va_fileset(small_sample, tmp, tmp / "removed.root")),
                     "--out", str(out), "--executor", "iterative"])
    assert code == 0
    return load(str(out)), int(bad.sum())


@pytest.mark.parametrize("branch, value", [("MET_pt", np.inf), ("MET_pt", np.nan), ("Jet_pt", np.nan),
                                           ("Track_pt", np.inf), ("Track_dxyErr", np.nan)])
def test_va_non_finite_inputs_are_excluded_and_counted(small_sample, tmp_path, capsys, _va_removed, branch, value):
    """NaN/inf in MET, a jet or a track: those events are in no histogram (the outputs equal
    those of the sample without them, the signal regions above all) and the cutflow counts
    them in "all" and not in "finite_inputs"; one notice names the branch."""
    from coffea.util import load

    removed, n_bad = _va_removed
    src = _va_source(small_sample)
    bad = _va_bad_events(src)
    _va_rewrite(src, tmp_path / "bad.root", edit={branch: _va_poison(bad, value)})
    out = tmp_path / "bad.coffea"
    code, stdout, stderr = _va_main(["process", "--processor", "signal", "--executor", "iterative", "--out", str(out),
                                     "--fileset", str(_va_fileset(small_sample, tmp_path, tmp_path / "bad.root"))],
                                    capsys)
    assert code == 0, stderr
    notices = [ln for ln in stdout if ln.startswith("notice:") and "non-finite" in ln]
    assert notices == [f"notice: {_VA_DATASET}: non-finite {branch} values: their events are excluded "
                       "(cutflow step 'finite_inputs')"]
    got = load(str(out))
    assert set(got["histograms"]) == set(removed["histograms"])
    assert got["histograms"]["sr"].sum().value > 0
    for name, h in got["histograms"].items():
        assert h == removed["histograms"][name], name
    flow, ref = got["cutflow"][_VA_DATASET], removed["cutflow"][_VA_DATASET]
    assert list(flow) == list(ref) and list(flow)[:2] == ["all", "finite_inputs"]
    assert flow["all"]["events"] == ref["all"]["events"] + n_bad == len(bad)
    assert flow["finite_inputs"] == ref["all"]
    assert all(flow[k] == ref[k] for k in list(flow)[1:])


def _va_models(tmp_path: Path, case: str) -> Path:
    """A copy of the shipped models with the classifier made bad."""
    import hashlib
    import shutil

    d = tmp_path / f"models_{case}"
    d.mkdir()
    for f in ("classifier.onnx", "classifier.json", "refiner.onnx", "refiner.json"):
        shutil.copy(ROOT / "models" / "softtrack" / f, d / f)
    onnx_path = d / "classifier.onnx"
    if case in ("corrupt", "corrupt_same_sha256"):
        data = bytearray(onnx_path.read_bytes())
        data[100:400] = bytes(300)
        onnx_path.write_bytes(bytes(data))
    elif case == "input_width":  # a valid graph that takes 40 columns where its JSON names 41
        onnx = pytest.importorskip("onnx")
        from onnx import TensorProto, helper, numpy_helper

        w = numpy_helper.from_array(np.zeros((40, 5), np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["features", "w"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probabilities"], axis=1)], "classifier",
            [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 40])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 5])], [w])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), onnx_path)
    if case != "corrupt":  # the description updated to the bad file: only opening it tells
        meta = json.loads((d / "classifier.json").read_text())
        meta["onnx_sha256"] = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        (d / "classifier.json").write_text(json.dumps(meta))
    return d


def _va_corrections(tmp_path: Path, case: str) -> Path:
    """The shipped corrections file made bad: ``syst`` labels renamed in pileup_weight, or the
    2018 entry of met_weight removed."""
    import gzip

    from corrections.softtrack.apply import DEFAULT_PATH

    cset = json.loads(gzip.open(DEFAULT_PATH, "rt").read())

    def rename(node):
        if isinstance(node, dict):
            if node.get("nodetype") == "category" and node.get("input") == "syst":
                for item in node["content"]:
                    item["key"] = {"up": "Up", "down": "Down"}.get(item["key"], item["key"])
            for v in node.values():
                rename(v)
        elif isinstance(node, list):
            for v in node:
                rename(v)

    for corr in cset["corrections"]:
        if case == "syst" and corr["name"] == "pileup_weight":
            rename(corr["data"])
        if case == "era" and corr["name"] == "met_weight":
            corr["data"]["content"] = [item for item in corr["data"]["content"] if item["key"] != "2018"]
    path = tmp_path / f"corrections_{case}.json.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(cset))
    return path


@pytest.mark.parametrize("skip", [False, True], ids=["stop", "skip-bad-files"])
@pytest.mark.parametrize("case, words", [
    pytest.param("model:corrupt", ["classifier.onnx", "sha256", "python run.py train classifier"], id="corrupt-model"),
    pytest.param("model:corrupt_same_sha256", ["onnxruntime cannot load", "classifier.onnx",
                                               "python run.py train classifier"], id="corrupt-model-sha256-updated"),
    pytest.param("model:input_width", ["classifier.onnx", "input width 40", "41 features", "re-export the model"],
                 id="model-input-width"),
    pytest.param("corrections:syst", ["pileup_weight", "no syst 'up', 'down'", "Down, Up, nominal",
                                      "python run.py corrections"], id="corrections-syst-values"),
    pytest.param("corrections:era", ["met_weight", "no era '2018'", f"dataset {_VA_DATASET}",
                                     "python run.py corrections", 'optional_corrections = {met_weight = ["2018"]}'],
                 id="corrections-lack-era"),
])
def test_va_bad_models_and_corrections_stop_before_processing(small_sample, tmp_path, capsys, case, words, skip):
    """A corrupt model, a model of the wrong input width, corrections with other syst labels
    or without the era of a dataset: exit 2 before any chunk runs (with --skip-bad-files too),
    one line naming the file and the fix, no output."""
    kind, what = case.split(":")
    option = ["--models", str(_va_models(tmp_path, what))] if kind == "model" else \
        ["--corrections", str(_va_corrections(tmp_path, what))]
    out = tmp_path / "out" / "signal.coffea"
    code, stdout, stderr = _va_main(["process", "--processor", "signal", "--executor", "iterative", "--out", str(out),
                                     "--fileset", str(_va_fileset(small_sample, tmp_path)), *option,
                                     *(["--skip-bad-files"] if skip else [])], capsys)
    assert code == 2
    assert len(stderr) == 1 and stderr[0].startswith("error:"), stderr
    for w in words:
        assert w in stderr[0], (w, stderr[0])
    assert "processed" not in " ".join(stdout)
    assert not out.exists() and not out.with_suffix(".histograms.json.gz").exists()


def test_va_correction_declared_optional_for_an_era_is_not_applied_and_said(small_sample, tmp_path, capsys):
    """The same corrections file without met_weight for 2018 runs when the configuration
    declares it optional for 2018: met_weight is not applied there, and a notice says so."""
    config = tmp_path / "optional.toml"
    config.write_text('optional_corrections = {met_weight = ["2018"]}\n')
    out = tmp_path / "signal.coffea"
    code, stdout, stderr = _va_main(["process", "--processor", "signal", "--executor", "iterative", "--no-scores",
                                     "--out", str(out), "--fileset", str(_va_fileset(small_sample, tmp_path)),
                                     "--corrections", str(_va_corrections(tmp_path, "era")), "--config", str(config)],
                                    capsys)
    assert code == 0, stderr
    assert [ln for ln in stdout if "met_weight" in ln] == [
        f"notice: met_weight not applied to 2018 simulation: corrections file {tmp_path / 'corrections_era.json.gz'} "
        "has no 2018 entry (declared optional for 2018 in the configuration)"]
    assert out.exists()


@pytest.fixture(scope="module")
def _va_rs_templates(small_sample, tmp_path_factory):
    from commands.rs_templates import build
    from processors.fileset import load_fileset
    from processors.runner import RunOptions

    fileset = load_fileset(small_sample[0] / "fileset.json")
    path = tmp_path_factory.mktemp("va_rs") / "rs_templates.json.gz"
    build({"qcd_2018": fileset["qcd_2018"]}, path, RunOptions(executor="iterative", status=False))
    return path


def test_va_non_finite_jets_in_rs_are_excluded_and_counted(small_sample, tmp_path, _va_rs_templates):
    """The R&S processors count events with a non-finite jet in "all" and not in the step after it."""
    import uproot

    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.softtrack.rs import RSPredictionProcessor, RSTemplatesProcessor

    opts = RunOptions(executor="iterative", chunksize=100_000, status=False)
    fileset = load_fileset(small_sample[0] / "fileset.json")
    (src,) = fileset["qcd_2018"]["files"]
    n = uproot.open(src)["Events"]["nJet"].array(library="np")
    bad = (np.arange(n.size) % 4 == 0) & (n > 0)
    _va_rewrite(src, tmp_path / "bad.root", edit={"Jet_pt": _va_poison(bad, np.nan)})
    fs = {"qcd_2018": {**fileset["qcd_2018"], "files": {str(tmp_path / "bad.root"): "Events"}}}
    templates = run(make_processor(RSTemplatesProcessor, fs), fs, opts)["cutflow"]["qcd_2018"]
    assert list(templates)[:2] == ["events", "finite_inputs"]
    assert templates["events"]["events"] - templates["finite_inputs"]["events"] == bad.sum()
    pred = run(make_processor(RSPredictionProcessor, fs, systematics=False, rs_templates=str(_va_rs_templates),
                              rs_n_smear=2, rs_n_bootstrap=2), fs, opts)
    for key, flow in pred["cutflow"].items():
        first, second = list(flow)[:2]
        assert second == first.replace("all", "finite_inputs"), key
        assert flow[first]["events"] - flow[second]["events"] == bad.sum(), key
    assert any("non-finite Jet_pt" in notice for notice in pred["notices"])


def test_va_corrupt_rs_templates_stop_before_processing(small_sample, tmp_path, capsys):
    """R&S templates that are not a templates file: exit 2 before any chunk, one line naming
    the file and the fix, no output."""
    import gzip

    bad = tmp_path / "bad.json.gz"
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"schema_version": 2, "corrections": []}))
    out = tmp_path / "rs.coffea"
    code, _, err = _va_main(["process", "--processor", "rs", "--fileset", str(_va_fileset(small_sample, tmp_path, name="qcd_2018")),
                             "--out", str(out), "--rs-templates", str(bad), "--executor", "iterative", "--skip-bad-files"],
                            capsys)
    assert code == 2 and len(err) == 1 and str(bad) in err[0] and "python run.py rs-templates" in err[0], err
    assert not out.exists()
# --- validation ---------------------------------------------------------------------------
