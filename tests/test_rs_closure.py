"""End-to-end tests of the R&S processors and commands (processors/rs.py, analysis/rs_observables.py,
commands/rs_*.py; SPEC.md sec. 8, seed 004 sec. 2-4, issue 7).

A small closure (two independent generated QCD samples of 2018, fixed seeds) runs the whole
chain once per session: templates processor -> correctionlib file -> prediction processor ->
closure.json and plots. Statistics are far too small for the closure numbers themselves (the
full closure is `python run.py rs-closure`), so the tests check the structure, the
bookkeeping, the invariance to chunking, and that rebalancing moves jets towards their gen jets.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import analysis.rebalance_smear as rs
from analysis import rs_observables as rso
from analysis.config import (
    RS_CLOSURE_BINS,
    RS_PRIOR_DPHI_EDGES,
    RS_PRIOR_DPHI_MHT_EDGES,
    RS_PRIOR_MHT_EDGES,
)

N_EVENTS = 4000
SEED = 5
ROOT = Path(__file__).resolve().parents[1]


def _kernel_toy():
    spec = importlib.util.spec_from_file_location("rs_toy", ROOT / "tests" / "test_rebalance_smear.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _opts(chunksize: int = 50_000):
    from processors.runner import RunOptions

    return RunOptions(executor="iterative", chunksize=chunksize, status=False, systematics=True)


@pytest.fixture(scope="module")
def closure(tmp_path_factory):
    from commands.rs_closure import run_closure

    out = tmp_path_factory.mktemp("rs_closure")
    result = run_closure(out, N_EVENTS, SEED, n_smear=20, n_bootstrap=10, opts=_opts(), plots=True,
                         log=lambda *a: None)
    return out, result


# ----------------------------------------------------------------------------------------
# pure functions
# ----------------------------------------------------------------------------------------
def test_priors_from_histograms_equal_build_priors():
    """The mergeable-histogram priors are those of build_priors on the same events."""
    toy = _kernel_toy().make_toy(20_000, seed=3)
    off, nb = toy["offsets"], toy["n_bjets"]
    w = np.random.default_rng(1).uniform(0.5, 1.5, off.size - 1)
    ref = rs.build_priors(toy["gen_pt"], toy["gen_eta"], toy["gen_phi"], off, nb, weights=w)
    mht, dphi = rso.prior_event_values(toy["gen_pt"], toy["gen_eta"], toy["gen_phi"], off)
    cat = np.minimum(nb, 2)
    me = np.r_[np.asarray(RS_PRIOR_MHT_EDGES), np.inf]
    ok = np.isfinite(dphi)
    sw = np.stack([np.histogram(mht[ok & (cat == c)], me, weights=w[ok & (cat == c)])[0] for c in range(3)])
    sx = np.stack([np.histogram(mht[ok & (cat == c)], me, weights=(w * mht)[ok & (cat == c)])[0] for c in range(3)])
    cnt = np.stack([np.histogram(mht[ok & (cat == c)], me)[0] for c in range(3)]).astype(float)
    hd = np.stack([np.histogram2d(mht[ok & (cat == c)], dphi[ok & (cat == c)],
                                  bins=(RS_PRIOR_DPHI_MHT_EDGES, RS_PRIOR_DPHI_EDGES), weights=w[ok & (cat == c)])[0]
                   for c in range(3)])
    got = rso.priors_from_histograms(sw, sx, cnt, hd)
    np.testing.assert_allclose(got.pdf_mht, ref.pdf_mht, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(got.pdf_dphi, ref.pdf_dphi, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(got.entries, ref.entries, rtol=1e-9)


def test_templates_from_histogram_equal_build_response_templates():
    """Histogram -> templates reproduces build_response_templates on bin-center pairs."""
    rng = np.random.default_rng(2)
    gpt = rng.uniform(15, 2000, 50_000)
    geta = rng.uniform(0, 4.9, gpt.size)
    r = np.clip(rng.normal(1.0, 0.15, gpt.size), 0.01, 2.99)
    ref = rs.build_response_templates(r * gpt, gpt, geta)
    h = np.histogramdd(np.c_[gpt, geta, r], bins=(ref.pt_edges, ref.eta_edges, ref.response_edges))[0]
    got = rso.templates_from_histogram(h)
    np.testing.assert_allclose(got.entries, ref.entries)
    np.testing.assert_allclose(got.pdf, ref.pdf, rtol=1e-9, atol=1e-12)


def test_met_after_smearing():
    """MET_smeared = MET_seed - sum of the jets' change (vectors); unchanged jets keep MET."""
    off = np.array([0, 2, 3])
    seed_pt = np.array([100.0, 50.0, 80.0])
    phi = np.array([0.0, np.pi / 2, np.pi])
    met, mphi = rso.met_after_smearing(np.array([20.0, 5.0]), np.array([np.pi, 0.0]), seed_pt, phi,
                                       seed_pt + np.array([10.0, 0.0, 0.0]), phi, off)
    np.testing.assert_allclose(met, [30.0, 5.0])
    np.testing.assert_allclose(np.cos(mphi), [-1.0, 1.0], atol=1e-12)


def test_smear_skimmed_does_not_depend_on_batching():
    mod = _kernel_toy()
    toy = mod.make_toy(3000, seed=4)
    _, templates, priors = mod.build_inputs(mod.make_toy(20_000, seed=5))
    off = toy["offsets"]
    reb = rs.rebalance(toy["reco_pt"], toy["reco_eta"], toy["reco_phi"], off, toy["n_bjets"], templates, priors)
    kw = dict(seed=9, file_id="f.root", entry=np.arange(off.size - 1) + 100, n_smear=10, skim_mht=60.0)
    a = list(rso.smear_skimmed(reb.pt, toy["reco_eta"], toy["reco_phi"], off, reb.keep, templates,
                               batch_events=7, **kw))
    b = list(rso.smear_skimmed(reb.pt, toy["reco_eta"], toy["reco_phi"], off, reb.keep, templates,
                               batch_events=10_000, **kw))
    cat = {f: np.concatenate([getattr(x[0], f) for x in a]) for f in ("pt", "source", "event_index", "weight")}
    assert b[0][0].pt.size > 0
    for f, v in cat.items():
        np.testing.assert_array_equal(v, getattr(b[0][0], f))
    assert sum(x[2] for x in a) == b[0][2] == 10 * int(reb.keep.sum())
    # the skim is exact: every kept event has hard MHT above the threshold
    mht = rs.hard_mht(b[0][0].pt, b[0][0].eta, b[0][0].phi, b[0][0].offsets)["mht"]
    assert np.all(mht > 60.0)


# ----------------------------------------------------------------------------------------
# end to end
# ----------------------------------------------------------------------------------------
def test_closure_json_structure(closure):
    out, result = closure
    data = json.loads((out / "closure.json").read_text())
    assert set(data["baseline"]) == {"ratio", "uncertainty", "predicted", "simulated"}
    assert data["baseline"]["predicted"] > 0 and data["baseline"]["simulated"] > 0
    assert set(data["bins"]) == set(RS_CLOSURE_BINS)
    for obs, entries in data["bins"].items():
        assert len(entries) == len(RS_CLOSURE_BINS[obs]) - 1
        for e in entries:
            assert set(e) == {"edges", "predicted", "predicted_unc", "simulated", "simulated_unc", "ratio"}
            assert e["predicted_unc"] >= 0 and e["simulated_unc"] >= 0
    for png in ("closure_mht.png", "closure_min_dphi.png", "closure_n_jets.png", "closure_ht.png",
                "response_rebalanced.png"):
        assert (out / png).stat().st_size > 10_000
    assert (out / "rs_templates.json.gz").is_file()


def test_counters_and_cutflow_are_surfaced(closure):
    out, result = closure
    c = result["counters"]["nominal"]
    assert set(c) >= {"events", "converged", "too_few_jets", "nan_input", "mht_too_large", "kept",
                      "jets_pt_above_template", "jets_eta_beyond_template", "smeared_events", "smeared_skimmed"}
    assert c["events"] == N_EVENTS
    assert c["kept"] + c["too_few_jets"] + c["nan_input"] + c["mht_too_large"] + (c["events"] - c["converged"]
            - c["too_few_jets"] - c["nan_input"]) == c["events"]
    assert c["smeared_events"] <= 20 * c["kept"]
    assert set(result["counters"]) == {"nominal", "coreUp", "tailUp"}


def test_rebalancing_restores_truth(closure):
    """Seed 004 Fig. 2: in mis-measured events (hard MHT > 200 GeV) the response of the
    rebalanced subleading jet to its gen jet is centred at 1 and narrower than the reco one."""
    _, result = closure
    reco, reb = result["response"]["subleading_reco"], result["response"]["subleading_rebalanced"]
    assert reco["entries"] > 0
    assert abs(reb["mean"] - 1.0) < abs(reco["mean"] - 1.0)
    assert reb["core_fraction"] > reco["core_fraction"] + 0.1
    assert reb["half_width_68"] < reco["half_width_68"]


def test_prediction_invariant_to_chunk_size(closure):
    from commands.rs_predict import predict
    from processors.fileset import load_fileset

    out, _ = closure
    fileset = load_fileset(out / "sample_prediction" / "fileset.json")
    kw = dict(rs_templates=str(out / "rs_templates.json.gz"), rs_seed=3, rs_n_smear=5, rs_n_bootstrap=10)
    a = predict(fileset, _opts(chunksize=N_EVENTS), **kw)
    b = predict(fileset, _opts(chunksize=1100), **kw)
    assert len(b["chunks"]["processed"]) == 4
    assert a["cutflow"].keys() == b["cutflow"].keys()
    for key in a["cutflow"]:
        for step, v in a["cutflow"][key].items():
            assert v["events"] == b["cutflow"][key][step]["events"], (key, step)
            assert v["weighted"] == pytest.approx(b["cutflow"][key][step]["weighted"], rel=1e-12)
    for name, h in a["histograms"].items():
        hb = b["histograms"][name]
        assert list(h.axes.name) == list(hb.axes.name)
        np.testing.assert_allclose(h.values(flow=True), hb.values(flow=True), rtol=1e-10, atol=1e-9, err_msg=name)


def test_cli_help_and_bad_input(tmp_path, capsys):
    import run

    for cmd in ("rs-templates", "rs-predict", "rs-closure"):
        with pytest.raises(SystemExit) as exc:
            run.main([cmd, "--help"])
        assert exc.value.code == 0
    fileset = tmp_path / "f.json"
    fileset.write_text("{}")
    code = run.main(["rs-predict", "--fileset", str(fileset), "--rs-templates", str(tmp_path / "none.json.gz"),
                     "--out", str(tmp_path / "o.coffea")])
    assert code == 2
