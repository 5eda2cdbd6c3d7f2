"""The smuon search's objects, features, preselection, vetoes and processor
(analysis/smuon/, processors/smuon/; docs/smuon.md sec. 2-4)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.smuon.config import SmuonConfig
from analysis.smuon.features import DERIVED, FEATURES, HIGH_LEVEL, LOW_LEVEL
from analysis.smuon.selection import dynamic_veto_names, veto_regions


def test_registered_and_features():
    from processors.registry import get

    analysis = get("smuon")
    assert analysis.processor_class().name == "smuon"
    assert len(FEATURES) == 37 and len(LOW_LEVEL) + len(HIGH_LEVEL) == 27 and len(DERIVED) == 10
    assert len(set(FEATURES)) == 37


def test_vetoes_on_synthetic_events():
    """Static: no jet above 25 GeV; dynamic: vetoed when the hadronic proxy exceeds the leptonic."""
    cfg = SmuonConfig().vetoes
    f = {"n_jets": np.array([0, 1, 2, 1]), "jet1_pt": np.array([-999.0, 24.0, 80.0, 150.0]),
         "ht": np.array([0.0, 24.0, 120.0, 150.0]), "muon1_pt": np.array([50.0, 50.0, 100.0, 100.0]),
         "st": np.array([80.0, 80.0, 110.0, 140.0]), "met": np.array([120.0, 120.0, 120.0, 120.0])}
    r = veto_regions(f, cfg)
    assert r["static_veto"].tolist() == [True, True, False, False]
    assert r["dyn_jet1_mu1"].tolist() == [True, True, True, False]
    assert r["dyn_ht_mu1"].tolist() == [True, True, False, False]
    assert r["dyn_ht_st"].tolist() == [True, True, False, False]
    assert r["dyn_ht_st_met"].tolist() == [True, True, True, True]
    assert sorted(r) == sorted(["static_veto", *dynamic_veto_names(cfg)]) and len(dynamic_veto_names(cfg)) == 6


def _independent_counts(path, cfg: SmuonConfig) -> dict[str, int]:
    """The first preselection steps counted from the raw branches (no analysis code)."""
    with uproot.open(path) as f:
        a = f["Events"].arrays(["MET_pt", "Muon_pt", "Muon_eta", "Muon_pfRelIso03_all", "Muon_charge"])
    mu = cfg.objects.muons
    good = (a.Muon_pt > mu.pt) & (abs(a.Muon_eta) < mu.eta) & (a.Muon_pfRelIso03_all < mu.rel_iso)
    met = ak.to_numpy(a.MET_pt) > cfg.preselection.met
    two = met & (ak.to_numpy(ak.sum(good, axis=1)) == 2)
    q = ak.fill_none(ak.prod(a.Muon_charge[good], axis=1), 0)
    return {"met": int(met.sum()), "two_muons": int(two.sum()), "opposite_charge": int((two & (ak.to_numpy(q) < 0)).sum())}


@pytest.fixture(scope="module")
def smuon_output(smuon_sample):
    from models.smuon.inference import SHIPPED, SmuonNetwork
    from processors.fileset import load_fileset
    from processors.runner import RunOptions, make_processor, run
    from processors.smuon.processor import SmuonProcessor

    out, _ = smuon_sample
    fileset = load_fileset(out / "fileset.json")
    networks = {n: SmuonNetwork(p) for n, p in SHIPPED.items() if p.is_file()}
    proc = make_processor(SmuonProcessor, fileset, networks=networks, store_features=True)
    return run(proc, fileset, RunOptions(executor="iterative", chunksize=2000, status=False)), fileset


def test_cutflow_against_an_independent_count(smuon_output):
    output, fileset = smuon_output
    cfg = SmuonConfig()
    for ds, entry in fileset.items():
        flow = output["cutflow"][ds]
        assert list(flow) == ["all", "finite_inputs", "met", "two_muons", "opposite_charge", "muon_pt", "mt2",
                              "lepton_veto"]
        events = [v["events"] for v in flow.values()]
        assert events == sorted(events, reverse=True)
        expected = _independent_counts(next(iter(entry["files"])), cfg)
        assert {k: flow[k]["events"] for k in expected} == expected


def test_features_of_selected_events(smuon_output):
    """37 finite columns; absent jets and electrons carry the null value; two muons always."""
    output, _ = smuon_output
    parts = [p for ds in output["features"].values() for p in ds]
    x = np.concatenate([p["x"] for p in parts])
    assert x.shape[1] == 37 and np.all(np.isfinite(x))
    col = {k: x[:, i] for i, k in enumerate(FEATURES)}
    assert np.all(col["n_muons"] == 2) and np.all(col["mt2"] > 90) and np.all(col["met"] > 100)
    no_jet = col["n_jets"] == 0
    assert np.all(col["jet1_pt"][no_jet] == -999.0) and np.all(col["ratio_jet1_mu1"][no_jet] == 0)
    assert np.all(col["electron1_pt"] == -999.0)  # the lepton veto
    assert np.allclose(col["st"], col["muon1_pt"] + col["muon2_pt"], rtol=1e-5)


def test_regions_and_histograms(smuon_output):
    """Every strategy's region is a subset of the preselection; the NN regions are filled when
    the shipped networks are there."""
    from models.smuon.inference import SHIPPED

    output, fileset = smuon_output
    h = output["histograms"]["sr_mt2"]
    regions = set(h.axes["region"])
    assert {"static_veto", *dynamic_veto_names(SmuonConfig().vetoes)} <= regions
    if all(p.is_file() for p in SHIPPED.values()):
        assert {"nn_low", "nn_high"} <= regions
    for ds in h.axes["dataset"]:
        presel = output["cutflow"][ds]["lepton_veto"]["weighted"]
        for r in regions:
            assert h[{"dataset": ds, "region": r}].sum(flow=True).value <= presel * (1 + 1e-9) + 1e-12
