"""Hostile use of run.py (issue 20): each case asserts the exit code, a one-line message naming
the thing and the fix, and that no wrong output was written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


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
        shutil.copy(ROOT / "models" / f, d / f)
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
