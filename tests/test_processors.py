"""Processors (issue 5): executor and chunking invariance, no event lost, real NanoAOD files,
bad input gives a clear message or a recorded skip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import FilesetError, InputFileError
from processors.fileset import load_fileset
from processors.runner import RunOptions
from processors.softtrack.run import run_region as run_processor


@pytest.fixture(scope="module")
def fileset(small_sample):
    out, _ = small_sample
    return load_fileset(out / "fileset.json")


def _subset(fileset, names):
    return {k: v for k, v in fileset.items() if k in names}


def _assert_same(a, b):
    """Identical up to the order of floating-point additions (relative 1e-10)."""
    assert a["cutflow"].keys() == b["cutflow"].keys()
    for ds, steps in a["cutflow"].items():
        assert list(steps) == list(b["cutflow"][ds])
        for step, v in steps.items():
            assert v["events"] == b["cutflow"][ds][step]["events"]
            assert v["weighted"] == pytest.approx(b["cutflow"][ds][step]["weighted"], rel=1e-10, abs=1e-12)
    assert set(a["histograms"]) == set(b["histograms"])
    for name, h in a["histograms"].items():
        other = b["histograms"][name]
        # category order may differ with the order chunks arrive: compare per category
        for ax in h.axes:
            if ax.traits.discrete and not ax.traits.ordered and hasattr(ax, "__iter__") and ax.name in ("dataset", "systematic", "origin"):
                assert sorted(ax) == sorted(other.axes[ax.name]), name
        cats = [ax.name for ax in h.axes if ax.name in ("dataset", "systematic", "origin")]
        import itertools

        for combo in itertools.product(*(list(h.axes[c]) for c in cats)):
            sel = dict(zip(cats, combo, strict=True))
            va, vb = h[sel].view(flow=True), other[sel].view(flow=True)
            np.testing.assert_allclose(va["value"], vb["value"], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(va["variance"], vb["variance"], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_executor_and_chunking_invariance(fileset):
    fs = _subset(fileset, {"dy_mumu_2018", "data_singlemuon_2018", "zjets_nunu_2018"})
    ref = run_processor("dy", fs, RunOptions(executor="iterative", chunksize=700, status=False))
    for opts in (
        RunOptions(executor="iterative", chunksize=1100, status=False),
        RunOptions(executor="futures", workers=2, chunksize=700, status=False),
        RunOptions(executor="dask", workers=2, chunksize=1100, status=False),
    ):
        _assert_same(ref, run_processor("dy", fs, opts))


def test_chunking_invariance_fast(fileset):
    fs = _subset(fileset, {"signal_m115_dm0p27_2018", "data_met_2018"})
    a = run_processor("signal", fs, RunOptions(executor="iterative", chunksize=400, status=False))
    b = run_processor("signal", fs, RunOptions(executor="futures", workers=2, chunksize=900, status=False))
    _assert_same(a, b)


@pytest.mark.parametrize("region", ["signal", "dy"])
def test_nominal_does_not_depend_on_the_variations(fileset, region):
    """Without the variations (the main job's uncorrected passes, whose derivations read the
    nominal histograms only) every nominal histogram and the cutflow are bit for bit those of
    a run with them, with the classifier's scores filled."""
    from processors.softtrack.scoring import TrackScorer

    names = {"signal": {"signal_m115_dm0p27_2018", "zjets_nunu_2018", "data_met_2018"},
             "dy": {"dy_mumu_2018", "ttjets_2018", "data_singlemuon_2018"}}[region]
    fs = _subset(fileset, names)
    kw = {"scorer": TrackScorer.from_directory(None)}
    full = run_processor(region, fs, RunOptions(executor="iterative", chunksize=900, status=False), **kw)
    bare = run_processor(region, fs, RunOptions(executor="iterative", chunksize=900, status=False,
                                                systematics=False), **kw)
    assert full["cutflow"] == bare["cutflow"]
    assert set(full["histograms"]) == set(bare["histograms"])
    if region == "signal":
        assert bare["histograms"]["max_logit"].sum().value > 0
    varied = [n for n, h in full["histograms"].items() if "systematic" in h.axes.name and len(h.axes["systematic"]) > 1]
    assert "met" in varied and (region != "signal" or "sr" in varied)
    for name, h in bare["histograms"].items():
        ref = full["histograms"][name]
        if "systematic" in h.axes.name and len(h.axes["systematic"]):  # (empty: nothing filled)
            assert list(h.axes["systematic"]) == ["nominal"], name
            ref = ref[{"systematic": "nominal"}]
            h = h[{"systematic": "nominal"}]
        assert list(h.axes["dataset"]) == list(ref.axes["dataset"]), name
        view, ref_view = h.view(flow=True), ref.view(flow=True)
        for field in (("value", "variance") if view.dtype.names else (None,)):
            np.testing.assert_array_equal(view[field] if field else view, ref_view[field] if field else ref_view,
                                          err_msg=name)


def test_no_event_lost(fileset):
    import uproot

    fs = _subset(fileset, {"wjets_lnu_2018", "data_met_2018", "qcd_2018"})
    out = run_processor("single_lepton", fs, RunOptions(executor="iterative", chunksize=600, status=False))
    for name, entry in fs.items():
        (path,) = entry["files"]
        n = uproot.open(path)["Events"].num_entries
        assert out["cutflow"][name]["all"]["events"] == n
        assert sum(c["events"] for c in out["chunks"]["processed"] if c["dataset"] == name) == n
        steps = list(out["cutflow"][name])
        counts = [out["cutflow"][name][s]["events"] for s in steps]
        assert counts == sorted(counts, reverse=True)
        assert steps[0] == "all" and steps[-1] == "hem_veto"


def test_weights_normalization(fileset):
    fs = _subset(fileset, {"zjets_nunu_2018", "data_met_2018"})
    out = run_processor("signal", fs, RunOptions(executor="iterative", chunksize=5000, status=False, systematics=False))
    meta = fs["zjets_nunu_2018"]["metadata"]
    expected = meta["xsec_pb"] * 1000 * fs["data_met_2018"]["metadata"]["lumi_fb"]
    assert out["cutflow"]["zjets_nunu_2018"]["all"]["weighted"] == pytest.approx(expected, rel=1e-9)


def test_same_file_with_other_dataset_metadata(fileset):
    """A second run over the same dataset and file with other metadata uses the new metadata
    (coffea's process-wide cache of file metadata would hand back the first run's)."""
    fs = _subset(fileset, {"zjets_nunu_2018", "data_met_2018"})
    opts = RunOptions(executor="iterative", chunksize=5000, status=False, systematics=False)
    first = run_processor("signal", fs, opts)["cutflow"]["zjets_nunu_2018"]["all"]["weighted"]
    doubled = {**fs["zjets_nunu_2018"], "metadata": {**fs["zjets_nunu_2018"]["metadata"]}}
    doubled["metadata"]["xsec_pb"] *= 2
    second = run_processor("signal", {**fs, "zjets_nunu_2018": doubled}, opts)
    assert second["cutflow"]["zjets_nunu_2018"]["all"]["weighted"] == pytest.approx(2 * first, rel=1e-12)
    assert second["datasets"]["zjets_nunu_2018"]["xsec_pb"] == doubled["metadata"]["xsec_pb"]


def test_file_check_kept_until_the_file_changes(fileset, tmp_path, monkeypatch):
    """The input check reads a file's tree once per process, and again once the file changes."""
    import shutil

    import uproot

    from processors import runner

    (path,) = fileset["data_met_2018"]["files"]
    copy = tmp_path / "copy.root"
    shutil.copy(path, copy)
    opened = []
    real_open = uproot.open
    monkeypatch.setattr(runner.uproot, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    first = runner.inspect_file(str(copy), "Events")
    assert first == runner.inspect_file(str(copy), "Events")
    assert first[0] is None and first[1]["numentries"] == real_open(path)["Events"].num_entries
    assert len(opened) == 1
    copy.write_text("not a ROOT file any more")
    reason, info = runner.inspect_file(str(copy), "Events")
    assert info is None and "is not a ROOT file" in reason
    copy.unlink()
    assert runner.inspect_file(str(copy), "Events") == (f"file {copy} not found", None)


def test_kept_workers_and_files(fileset, tmp_path):
    """Within persistent_workers the futures pool and the open files outlive a run: the same
    worker processes serve the next run, whose outputs are those of fresh processes; a file
    replaced on disk is read anew; leaving the block shuts the pool and closes the files."""
    import os
    import shutil

    from processors import execution

    fs = _subset(fileset, {"signal_m115_dm0p27_2018", "data_met_2018"})
    opts = RunOptions(executor="futures", workers=2, chunksize=900, status=False)
    ref = run_processor("signal", fs, opts)
    assert execution._KEPT["pool"] is None and execution._OPEN_FILES is None  # nothing kept outside
    with execution.persistent_workers():
        a = run_processor("signal", fs, opts)
        pool = execution._KEPT["pool"]
        pids = set(pool._processes)
        b = run_processor("signal", fs, opts)
        assert execution._KEPT["pool"] is pool and set(pool._processes) == pids
        _assert_same(ref, a)
        _assert_same(ref, b)
        # the iterative backend keeps the client's files: a replaced file is opened again
        (path,) = fs["data_met_2018"]["files"]
        copy = tmp_path / "data.root"
        shutil.copy(path, copy)
        one = {"data_met_2018": {**fs["data_met_2018"], "files": {str(copy): "Events"}}}
        it = RunOptions(executor="iterative", chunksize=900, status=False, cache_dir="")
        first = run_processor("signal", one, it)
        assert str(copy) in execution._OPEN_FILES._files
        other = fs["signal_m115_dm0p27_2018"]
        (sig,) = other["files"]
        shutil.copy(sig, tmp_path / "tmp.root")
        os.replace(tmp_path / "tmp.root", copy)  # another file, another tree, at the same path
        meta = {**other["metadata"]}
        replaced = run_processor("signal", {"data_met_2018": {"files": {str(copy): "Events"}, "metadata": meta}}, it)
        assert replaced["cutflow"] == run_processor("signal", {"data_met_2018": other}, it)["cutflow"]
        assert replaced["cutflow"] != first["cutflow"]
    assert execution._KEPT["pool"] is None and execution._OPEN_FILES is None
    import time

    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)  # the kept workers are gone


class _RaisesInChunk:
    """A processor whose chunks fail with an error of the code (fatal)."""

    name = "raises"

    def accepts(self, metadata):
        return True

    def process(self, events):
        raise RuntimeError("a bug")

    def postprocess(self, accumulator):
        return accumulator


def test_kept_pool_dropped_after_an_error_or_another_size(fileset):
    """A run that stops with an error does not leave its pool for the next one; a run with
    another number of workers gets a pool of that size; a pool whose worker died while it
    waited is replaced."""
    import sys

    import cloudpickle

    from analysis.errors import ProcessingError
    from processors import execution
    from processors.runner import run

    fs = _subset(fileset, {"data_met_2018"})
    opts = RunOptions(executor="futures", workers=2, chunksize=900, status=False)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with execution.persistent_workers():
            run_processor("signal", fs, opts)
            kept = execution._KEPT["pool"]
            assert kept is not None
            with pytest.raises(ProcessingError, match="a bug"):
                run(_RaisesInChunk(), fs, opts)
            assert execution._KEPT["pool"] is None
            run_processor("signal", fs, opts)
            assert execution._KEPT["pool"] not in (None, kept)
            run_processor("signal", fs, RunOptions(executor="futures", workers=1, chunksize=900, status=False))
            assert execution._KEPT["workers"] == 1 and len(execution._KEPT["pool"]._processes) == 1
            # a kept worker killed while the pool waits: the next run starts a new pool
            import os
            import signal

            kept = execution._KEPT["pool"]
            (pid,) = kept._processes
            os.kill(pid, signal.SIGKILL)
            next(iter(kept._processes.values())).join(10)
            again = run_processor("signal", fs, RunOptions(executor="futures", workers=1, chunksize=900,
                                                           status=False))
            assert execution._KEPT["pool"] is not kept
            assert again["cutflow"] == run_processor("signal", fs, opts)["cutflow"]
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_missing_file_and_skip(fileset, tmp_path):
    fs = _subset(fileset, {"data_met_2018"})
    bad = {"files": {str(tmp_path / "missing.root"): "Events"}, "metadata": fs["data_met_2018"]["metadata"]}
    fs2 = {**fs, "data_met_2018": {"files": {**fs["data_met_2018"]["files"], **bad["files"]},
                                   "metadata": bad["metadata"]}}
    with pytest.raises(InputFileError, match="not found"):
        run_processor("signal", fs2, RunOptions(executor="iterative", status=False))
    out = run_processor("signal", fs2, RunOptions(executor="iterative", status=False, skip_bad_files=True))
    assert out["chunks"]["skipped"][0]["file"].endswith("missing.root")
    assert out["cutflow"]["data_met_2018"]["all"]["events"] > 0


def test_truncated_and_treeless_files(fileset, tmp_path):
    (path,) = fileset["data_met_2018"]["files"]
    truncated = tmp_path / "truncated.root"
    data = Path(path).read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    notroot = tmp_path / "text.root"
    notroot.write_text("hello")
    meta = fileset["data_met_2018"]["metadata"]
    for f in (truncated, notroot):
        fs = {"d": {"files": {str(f): "Events"}, "metadata": meta}}
        with pytest.raises(InputFileError):
            run_processor("signal", fs, RunOptions(executor="iterative", status=False))
    wrong_tree = {"d": {"files": {path: "Runs"}, "metadata": meta}}
    with pytest.raises(InputFileError, match="no 'Runs' tree"):
        run_processor("signal", wrong_tree, RunOptions(executor="iterative", status=False))


def test_missing_branch(fileset, tmp_path):
    import uproot

    (path,) = fileset["data_met_2018"]["files"]
    arrays = uproot.open(path)["Events"].arrays(["run", "luminosityBlock", "event", "MET_pt"], library="np")
    out = tmp_path / "nojets.root"
    with uproot.recreate(out) as f:
        f["Events"] = arrays
    fs = {"d": {"files": {str(out): "Events"}, "metadata": fileset["data_met_2018"]["metadata"]}}
    with pytest.raises(InputFileError, match="collection .* missing from .*nojets.root"):
        run_processor("signal", fs, RunOptions(executor="iterative", status=False))


def test_fileset_typo(small_sample, tmp_path):
    out, fs = small_sample
    name = next(iter(fs))
    bad = {name: {"files": fs[name]["files"], "metadata": {**fs[name]["metadata"], "xsecpb": 1.0}}}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(FilesetError, match="xsecpb"):
        load_fileset(p)
    p.write_text("{not json")
    with pytest.raises(FilesetError, match="not valid JSON"):
        load_fileset(p)


def test_process_cli_bad_fileset(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "run.py"), "process", "--processor", "signal", "--fileset",
                        str(tmp_path / "nope.json"), "--out", str(tmp_path / "o.coffea")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "not found" in r.stderr


def _real_fileset(real_data, names):
    import uproot

    files = {}
    for name in names:
        src = real_data / name
        is_data = "genWeight" not in uproot.open(src)["Events"].keys()
        meta = {"process": "data_met" if is_data else "dy_mumu", "era": "2018", "is_data": is_data}
        if not is_data:
            meta |= {"xsec_pb": 1.0, "sum_genweight": 1.0}
        files[name.replace(".root", "")] = {"files": {str(src): "Events"}, "metadata": meta}
    return files


@pytest.mark.parametrize("proc", ["dy", "signal"])
def test_real_files(real_data, proc):
    import warnings

    # pfnano (PFCands, slow to open) for the signal region only
    names = ["nano_dy.root", "nano_dimuon.root"] if proc == "dy" else ["nano_dy.root", "pfnano.root"]
    fs = _real_fileset(real_data, names)
    for entry in fs.values():  # the stream a region reads
        if entry["metadata"]["is_data"]:
            entry["metadata"]["process"] = "data_singlemuon" if proc == "dy" else "data_met"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old real files lack NanoAOD branches the schema knows
        out = run_processor(proc, fs, RunOptions(executor="iterative", status=False))
    for name in fs:
        assert out["cutflow"][name]["all"]["events"] > 0
    assert any("IsoTrack" in n or "PFCands" in n for n in out["notices"])
