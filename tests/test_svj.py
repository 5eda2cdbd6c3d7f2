"""The semi-visible-jet analysis: preselection cutflow against an independent count, the Lund
declusterings against fastjet's own, the processor's columns (docs/svj.md)."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.svj.config import SVJConfig
from analysis.svj.lund import jet_constituents, padded_graph, primary_declusterings


@pytest.fixture(scope="session")
def svj_sample(tmp_path_factory):
    from analysis.toymc.svj import generate_sample

    out = tmp_path_factory.mktemp("svj_sample")
    generate_sample(out, {"qcd": 1500, "ttbar": 300}, [(2000.0, 0.3)], 400, seed=7)
    return out


@pytest.fixture(scope="session")
def svj_output(svj_sample):
    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.svj.processor import SVJProcessor

    fileset = load_fileset(svj_sample / "fileset.json")
    proc = make_processor(SVJProcessor, fileset, lund_columns=True)
    return run(proc, fileset, RunOptions(executor="iterative", chunksize=700, status=False, cache_dir=""))


def _independent_cutflow(path, cfg: SVJConfig) -> dict[str, int]:
    """The preselection with uproot and awkward only (M_T as m^2 + 2 (E_T MET - p_T . MET))."""
    ev = uproot.open(path)["Events"].arrays(["FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_mass", "Jet_pt",
                                              "Jet_eta", "MET_pt", "MET_phi"])
    t, p = cfg.trigger, cfg.preselection
    ht = ak.sum(ev.Jet_pt[(ev.Jet_pt > t.jet_pt) & (abs(ev.Jet_eta) < t.jet_eta)], axis=1)
    good = (ev.FatJet_pt >= p.fatjet_pt) & (abs(ev.FatJet_eta) <= p.fatjet_eta)
    pt, eta, phi, m = (ak.pad_none(ev[f"FatJet_{f}"][good], 2)[:, :2] for f in ("pt", "eta", "phi", "mass"))
    two = ak.num(ev.FatJet_pt[good]) >= 2
    pt, eta, phi, m = (ak.to_numpy(ak.fill_none(x, 0.0)).astype(float) for x in (pt, eta, phi, m))
    px, py = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1)
    pz = (pt * np.sinh(eta)).sum(1)
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + m**2).sum(1)
    mjj2 = np.maximum(e**2 - px**2 - py**2 - pz**2, 0)
    met, mphi = ak.to_numpy(ev.MET_pt).astype(float), ak.to_numpy(ev.MET_phi).astype(float)
    et = np.sqrt(mjj2 + px**2 + py**2)
    mt = np.sqrt(np.maximum(mjj2 + 2 * (et * met - px * met * np.cos(mphi) - py * met * np.sin(mphi)), 0))
    dphi = np.abs(np.angle(np.exp(1j * (phi - mphi[:, None]))))
    steps = {"all": np.ones(len(met), bool)}
    steps["scouting_ht"] = steps["all"] & ak.to_numpy(ht > t.ht)
    steps["two_fatjets"] = steps["scouting_ht"] & ak.to_numpy(two)
    steps["mt"] = steps["two_fatjets"] & (mt > p.mt)
    steps["rt"] = steps["mt"] & (met / np.where(mt > 0, mt, 1) > p.rt)
    steps["dphi_min"] = steps["rt"] & (dphi.min(1) < p.dphi_min)
    return {k: int(v.sum()) for k, v in steps.items()}


def test_cutflow_matches_independent_count(svj_sample, svj_output):
    import json

    fileset = json.loads((svj_sample / "fileset.json").read_text())
    cfg = SVJConfig()
    for dataset, entry in fileset.items():
        path = next(iter(entry["files"]))
        expected = _independent_cutflow(path, cfg)
        got = {k: v["events"] for k, v in svj_output["cutflow"][dataset].items() if k != "finite_inputs"}
        assert got == expected, dataset
        assert expected["dphi_min"] > 0


def test_lund_declusterings_match_fastjet(svj_sample):
    import fastjet

    ev = uproot.open(svj_sample / "svj_mZprime2000_rinv30.root")["Events"].arrays()
    pf = ak.zip({f: ev[f"PFCands_{f}"] for f in ("pt", "eta", "phi", "mass")})
    ref = ak.zip({f: ev[f"FatJetPFCands_{f}"] for f in ("jetIdx", "pFCandsIdx")})
    has = np.flatnonzero(ak.to_numpy(ak.num(ev.FatJet_pt) >= 1))[:150]
    cons = jet_constituents(pf, ref, has, np.zeros(has.size, np.int64))
    assert np.array_equal(ak.to_numpy(ak.num(cons)), ak.to_numpy(ev.FatJet_nConstituents[has][:, 0]))
    decl = primary_declusterings(cons, SVJConfig().lund.ca_radius, 100)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        cs = fastjet.ClusterSequence(cons, fastjet.JetDefinition(fastjet.cambridge_algorithm, 2.0))
        ref_lund = cs.exclusive_jets_lund_declusterings(1)[:, 0]
    assert ak.all(ak.num(decl) == ak.num(ref_lund))
    flat = ak.flatten(decl)
    assert np.allclose(ak.to_numpy(flat.delta), ak.to_numpy(ak.flatten(ref_lund.Delta)), rtol=1e-9)
    assert np.allclose(ak.to_numpy(flat.kt), ak.to_numpy(ak.flatten(ref_lund.kt)), rtol=1e-9)
    # z is the softer branch's fraction; every Delta lies within the AK8 jet (< 2 R)
    z = ak.to_numpy(flat.z)
    assert np.all((z > 0) & (z <= 0.5))
    assert np.all(ak.to_numpy(ak.flatten(decl.ln_inv_delta)) > -np.log(2 * 0.8 + 1e-9))
    feats, mask = padded_graph(decl, 20)
    n = np.minimum(ak.to_numpy(ak.num(decl)), 20)
    assert np.array_equal(mask.sum(1), n)
    assert np.allclose(feats[:, 0, 1][n > 0], ak.to_numpy(decl.ln_kt[n > 0][:, 0]), rtol=1e-6)


def test_columns_hold_the_preselected_events(svj_output):
    for dataset, flow in svj_output["cutflow"].items():
        cols = svj_output["columns"][dataset]
        preselected = sum(int(c["preselected"].sum()) for c in cols)
        assert preselected == flow["dphi_min"]["events"]
        assert sum(len(c["mt"]) for c in cols) == flow["two_fatjets"]["events"]
        lund = np.concatenate([c["lund_mask"] for c in cols])
        assert lund.shape[1:] == (2, SVJConfig().lund.max_nodes)


@pytest.fixture(scope="session")
def svj_scored(svj_sample):
    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.svj.options import MODELS_DIR
    from processors.svj.processor import SVJProcessor

    fileset = load_fileset(svj_sample / "fileset.json")
    proc = make_processor(SVJProcessor, fileset, lund_columns=True, lundnet=MODELS_DIR / "lundnet.onnx",
                          tagger=MODELS_DIR / "abcdiscotec.onnx")
    return run(proc, fileset, RunOptions(executor="iterative", chunksize=700, status=False, cache_dir=""))


def test_processor_evaluates_the_shipped_models(svj_scored):
    from models.svj.inference import LundNetModel, flatten_graph
    from processors.svj.options import MODELS_DIR

    model = LundNetModel(MODELS_DIR / "lundnet.onnx")
    assert model.max_nodes == SVJConfig().lund.max_nodes
    hist_mt = svj_scored["histograms"]["mt"]
    for dataset, chunks in svj_scored["columns"].items():
        for c in chunks:
            n = len(c["mt"])
            feats = c["lund_features"].reshape(2 * n, *c["lund_features"].shape[2:])
            mask = c["lund_mask"].reshape(2 * n, -1)
            direct = model(flatten_graph(feats, mask))[:, 0].reshape(n, 2)
            assert np.allclose(direct[:, 0], c["lundnet_j0"], atol=1e-6)
            assert np.allclose(direct[:, 1], c["lundnet_j1"], atol=1e-6)
            assert np.all((c["x"] >= 0) & (c["x"] <= 1) & (c["y"] >= 0) & (c["y"] <= 1))
        # every preselected event is in exactly one plane and region of the M_T histogram
        pre = np.concatenate([c["preselected"] for c in chunks])
        w = np.concatenate([c["weight"] for c in chunks])
        regions = set(hist_mt.axes["region"])
        assert regions <= {f"{p}_{r}" for p in ("SP", "VP") for r in "ABCD"}
        filled = hist_mt[{"dataset": dataset}].sum(flow=True).value
        assert filled == pytest.approx(w[pre].sum(), rel=1e-9)


@pytest.mark.slow
def test_run_py_svj_quick(tmp_path):
    """``run.py svj --quick`` end to end: the summary, its WP metrics and the plots."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(root / "run.py"), "svj", "--quick", "--data", str(tmp_path / "data"),
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "working point (X, Y)" in done.stdout and "expected 95% CL limits" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["wp_metrics"]) >= {"z_mean", "pvalue", "nonclosure", "pull", "r_max"}
    assert len(summary["limits"]) == 9
    for name in ("score_planes.png", "mt_templates.png", "wp_scan.png", "limits.png"):
        assert (out / name).stat().st_size > 1000


def test_results_do_not_depend_on_executor_or_chunking(svj_sample, svj_scored):
    """Futures with 2 workers and another chunk size: the same per-event columns bit for bit and
    in the same order, hence the same scan, working point and closure; the histograms equal up to
    the order of the float sums (measured 1.3e-16 relative)."""
    import json

    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.svj.options import MODELS_DIR
    from processors.svj.processor import SVJProcessor
    from processors.svj.stages import analyze, public

    fileset = load_fileset(svj_sample / "fileset.json")
    proc = make_processor(SVJProcessor, fileset, lund_columns=True, lundnet=MODELS_DIR / "lundnet.onnx",
                          tagger=MODELS_DIR / "abcdiscotec.onnx")
    other = run(proc, fileset, RunOptions(executor="futures", workers=2, chunksize=450, status=False, cache_dir=""))
    assert set(other["histograms"]) == set(svj_scored["histograms"])
    for name, h in svj_scored["histograms"].items():
        np.testing.assert_allclose(other["histograms"][name].values(flow=True), h.values(flow=True), rtol=1e-12,
                                   atol=0, err_msg=name)
        np.testing.assert_allclose(other["histograms"][name].variances(flow=True), h.variances(flow=True),
                                   rtol=1e-12, atol=0, err_msg=name)
    for dataset, chunks in svj_scored["columns"].items():
        for key in chunks[0]:
            a = np.concatenate([c[key] for c in chunks])
            b = np.concatenate([c[key] for c in other["columns"][dataset]])
            assert np.array_equal(a, b), (dataset, key)
    quiet = dict(limits=False, log=lambda s: None)

    def text(output):  # NaN (closures without a prediction in this small sample) compare equal as text
        return json.dumps(public(analyze(output, **quiet)), sort_keys=True, default=float)

    assert text(svj_scored) == text(other)
