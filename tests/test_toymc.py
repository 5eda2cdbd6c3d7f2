"""The toy generator against its own truth (issue 2): decay lengths, jet response, track
efficiency, injected data/simulation differences, file structure and reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot

from analysis import contract as dc
from analysis.softtrack import config as cfg
from analysis.toymc.hard import generate_hard
from analysis.toymc.processes import PROCESSES
from analysis.toymc.sample import generate_mc, make_rng
from analysis.toymc.soft import primary_particles
from analysis.toymc.truth import DATA_DETECTOR, INJECTED, SIM_DETECTOR, JetResponseModel


def _pv(n, rng):
    return (np.zeros(n), np.zeros(n), rng.normal(0, 3.5, n))


@pytest.mark.parametrize("dm", [0.27, 0.58, 1.0])
def test_chargino_proper_decay_length(dm):
    """Mean proper decay length of charginos equals c*tau(dm) of docs/physics.md sec. 10 within 3%."""
    rng = make_rng(11, "ctau", dm)
    n = 30000
    hard = generate_hard("signal", n, _pv(n, rng), rng, m_chargino=140.0, dm=dm)
    gp = hard.genpart
    pion = (np.abs(gp["pdgId"]) == dc.PDG_PION) & (gp["mother"] >= 0)
    mother = gp.offsets[:-1][gp.event_index()] + gp["mother"]
    mom = mother[pion]
    assert np.all(np.abs(gp["pdgId"][mom]) == dc.PDG_CHARGINO)
    length = np.sqrt(sum((gp[c][pion] - gp[c][mom]) ** 2 for c in ("vx", "vy", "vz")))
    p = gp["pt"][mom] * np.cosh(gp["eta"][mom])
    proper = length * gp["mass"][mom] / p
    expected = cfg.chargino_ctau_cm(dm)
    stat = proper.std() / np.sqrt(proper.size)
    assert proper.size > 20000
    assert abs(proper.mean() / expected - 1) < 0.03
    assert abs(proper.mean() - expected) < 4 * stat


def test_jet_response_model_moments():
    """Sampled responses reproduce the configured mean and width in every (pT, eta) bin."""
    model = JetResponseModel()
    rng = np.random.default_rng(3)
    mean, width = model.moments()
    edges_pt = np.array(model.pt_edges[:-1]) + 1.0
    for i, pt in enumerate(edges_pt):
        for j, eta in enumerate(np.array(model.eta_edges[:-1]) + 0.1):
            r = model.sample(np.full(200000, pt), np.full(200000, eta), rng)
            assert abs(r.mean() - mean[i, j]) < 5 * width[i, j] / np.sqrt(r.size)
            assert abs(r.std() / width[i, j] - 1) < 0.02


def test_jet_response_in_files(small_sample):
    """Reco/gen pT of matched jets in the QCD file follows the configured response per bin."""
    out, _ = small_sample
    t = uproot.open(out / "qcd_2018.root")["Events"]
    a = t.arrays(["Jet_pt", "Jet_genJetIdx", "GenJet_pt", "GenJet_eta"])
    model = JetResponseModel()
    mean, width = model.moments()
    import awkward as ak

    idx = a["Jet_genJetIdx"]
    ok = idx >= 0
    gen_pt = a["GenJet_pt"][ak.where(ok, idx, 0)][ok]
    gen_eta = a["GenJet_eta"][ak.where(ok, idx, 0)][ok]
    r = ak.to_numpy(ak.flatten(a["Jet_pt"][ok] / gen_pt))
    gpt, geta = ak.to_numpy(ak.flatten(gen_pt)), ak.to_numpy(ak.flatten(gen_eta))
    ipt, ieta = model.bin_index(gpt, geta)
    checked = 0
    for i in range(len(model.pt_edges) - 1):
        if model.pt_edges[i] < 100:  # the 15 GeV reco threshold biases low bins
            continue
        for j in range(len(model.eta_edges) - 1):
            sel = (ipt == i) & (ieta == j)
            if sel.sum() < 400:
                continue
            checked += 1
            # HEM and noise do not touch simulated jets: the response is the model's
            assert abs(r[sel].mean() - mean[i, j]) < 5 * width[i, j] / np.sqrt(sel.sum())
            assert abs(r[sel].std() / width[i, j] - 1) < 0.15
    assert checked >= 3


def test_reco_leptons_and_jet_tags_follow_the_detector_model():
    """Muons and electrons: efficiency in the acceptance and pT resolution; jets: the b-tag score
    of b and light jets and the charged hadron fraction are their documented Beta variates."""
    from scipy import stats

    b, _ = generate_mc("ttjets", "2018", 4000, 12)
    gp = b["GenPart"]
    first = np.concatenate([[0], np.cumsum(gp.counts)[:-1]])
    for name, pdg, eff, res, eta_max in (("Muon", 13, SIM_DETECTOR.muon_eff, 0.015, cfg.OBJECT_CUTS.muon_eta),
                                         ("Electron", 11, SIM_DETECTOR.electron_eff, 0.025, cfg.OBJECT_CUTS.electron_eta)):
        col = b[name]
        flat = first[col.event_index()] + col["genPartIdx"]
        assert np.all(np.abs(gp["pdgId"][flat]) == pdg) and np.all(gp["status"][flat] == 1)
        ratio = col["pt"] / gp["pt"][flat]
        assert abs(ratio.std() / res - 1) < 0.1 and abs(ratio.mean() - 1) < 0.005
        gen = (gp["status"] == 1) & (np.abs(gp["pdgId"]) == pdg) & (np.abs(gp["eta"]) < eta_max) & (gp["pt"] > 10)
        found = np.isin(np.nonzero(gen)[0], flat)
        assert gen.sum() > 500
        assert abs(found.mean() - eff) < 4 * np.sqrt(eff * (1 - eff) / gen.sum())
    jet = b["Jet"]
    is_b = jet["hadronFlavour"] == 5
    assert is_b.sum() > 2000
    for score, dist in ((jet["btagDeepB"][is_b], stats.beta(5.0, 1.5)), (jet["btagDeepB"][~is_b], stats.beta(0.6, 12.0)),
                        (jet["chHEF"] / 0.85, stats.beta(6.0, 4.0))):
        assert stats.kstest(score, dist.cdf).pvalue > 1e-3


def test_track_efficiency_curve(small_sample):
    """Fraction of prompt charged generator particles with a track follows the configured curve."""
    out, _ = small_sample
    import awkward as ak

    a = uproot.open(out / "zjets_nunu_2018.root")["Events"].arrays(
        ["GenPart_pt", "GenPart_eta", "GenPart_pdgId", "GenPart_status", "GenPart_vx", "GenPart_vy", "Track_genPartIdx"])
    ngen = ak.num(a["GenPart_pt"])
    flat_idx = ak.flatten(a["Track_genPartIdx"] + ak.Array(np.concatenate([[0], np.cumsum(ngen)[:-1]]))[:, None]
                          * ak.ones_like(a["Track_genPartIdx"]))
    tidx = ak.to_numpy(ak.flatten(a["Track_genPartIdx"]))
    found = np.zeros(int(ak.sum(ngen)), bool)
    found[ak.to_numpy(flat_idx)[tidx >= 0]] = True
    pt = ak.to_numpy(ak.flatten(a["GenPart_pt"]))
    eta = ak.to_numpy(ak.flatten(a["GenPart_eta"]))
    rho = np.hypot(ak.to_numpy(ak.flatten(a["GenPart_vx"])), ak.to_numpy(ak.flatten(a["GenPart_vy"])))
    apdg = np.abs(ak.to_numpy(ak.flatten(a["GenPart_pdgId"])))
    sel = (ak.to_numpy(ak.flatten(a["GenPart_status"])) == 1) & np.isin(apdg, (211, 321, 2212)) & (np.abs(eta) < 2.3) & (rho < 0.01)
    model = SIM_DETECTOR.tracks
    for lo, hi in ((0.09, 0.11), (0.45, 0.55), (1.0, 3.0), (3.0, 20.0)):
        s = sel & (pt > lo) & (pt < hi)
        eff = found[s].mean()
        expected = model.efficiency(pt[s]).mean()
        err = np.sqrt(expected * (1 - expected) / s.sum())
        assert abs(eff - expected) < 4 * err + 0.01, (lo, hi, eff, expected)
    assert model.efficiency(np.array([0.1]))[0] == pytest.approx(0.10, abs=0.005)
    assert model.efficiency(np.array([0.5]))[0] == pytest.approx(0.80, abs=0.005)
    assert model.efficiency(np.array([1.0, 5.0])) == pytest.approx([0.90, 0.90], abs=0.005)


def test_injected_values_are_documented():
    assert INJECTED.pv_track_rate == 0.91
    assert INJECTED.spurious_track_rate == 1.18
    assert DATA_DETECTOR.model is INJECTED
    assert SIM_DETECTOR.model.pv_track_rate == 1.0


def test_injected_pv_track_rate():
    """Primary-interaction particle rate of the pseudo-data detector is 0.91 x simulation."""
    n = 40000
    counts = {}
    for name, det in (("sim", SIM_DETECTOR), ("data", DATA_DETECTOR)):
        rng = make_rng(5, "rate", name)
        pv = _pv(n, rng)
        hard = generate_hard("zjets_nunu", n, pv, rng)
        prim = primary_particles(hard, pv, det, rng)
        counts[name] = (prim["mother"] < 0).sum()
    ratio = counts["data"] / counts["sim"]
    err = ratio * np.sqrt(1 / counts["data"] + 1 / counts["sim"])
    assert abs(ratio - INJECTED.pv_track_rate) < 4 * err


def test_injected_error_scales():
    """dxyErr and dzErr of high-pT tracks scale by the injected factors in pseudo-data."""
    from analysis.toymc.soft import smear_helix

    n = 20000
    params = (np.full(n, 1 / 10.0), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))
    _, s_sim = smear_helix(params, SIM_DETECTOR, np.random.default_rng(1))
    meas, s_dat = smear_helix(params, DATA_DETECTOR, np.random.default_rng(1))
    assert s_dat[:, 3] / s_sim[:, 3] == pytest.approx(INJECTED.dxy_err_scale)
    assert s_dat[:, 4] / s_sim[:, 4] == pytest.approx(INJECTED.dz_err_scale)
    # the smearing follows the reported resolution
    assert meas[3].std() / s_dat[0, 3] == pytest.approx(1.0, abs=0.03)
    assert 1 / np.abs(meas[0]).mean() / 10.0 == pytest.approx(INJECTED.track_pt_scale, abs=0.002)


def test_injected_met_slope():
    met = np.array([100.0, 300.0, 650.0, 1000.0, 2000.0])
    r = INJECTED.met_ratio(met)
    s = INJECTED.met_slope_per_gev
    assert r == pytest.approx([1, 1, 1 + 350 * s, 1 + 700 * s, 1 + 700 * s])


def test_dy_data_spectrum_is_harder():
    spec = PROCESSES["dy_mumu"].spectrum
    rng = np.random.default_rng(2)
    sim = spec.sample(200000, rng)
    dat = spec.sample(200000, rng, n=spec.n + INJECTED.ptz_power_shift)
    assert INJECTED.ptz_power_shift < 0
    # P(pT > 600 | pT > 150) grows by ((a^2+150^2)/(a^2+600^2))^shift ~ 1.38
    assert (dat > 600).mean() > 1.25 * (sim > 600).mean()


def test_counters_match_and_no_nan(small_sample):
    out, fileset = small_sample
    for dataset, entry in fileset.items():
        (path,) = entry["files"]
        tree = uproot.open(path)["Events"]
        arrays = tree.arrays(library="np")
        assert tree.num_entries == entry["metadata"]["n_events"]
        for name, values in arrays.items():
            if name.startswith("n") and name[1:2].isupper():
                coll = name[1:]
                for field in (k for k in arrays if k.startswith(coll + "_")):
                    lengths = np.array([len(x) for x in arrays[field]])
                    assert np.array_equal(lengths, values), (dataset, field)
            flat = np.concatenate(values) if values.dtype == object else values
            if flat.dtype.kind == "f":
                assert np.isfinite(flat).all(), (dataset, name)
        if entry["metadata"]["is_data"]:
            assert "GenPart_pt" not in arrays and "Track_genPartIdx" not in arrays and "genWeight" not in arrays
        ids = np.stack([arrays["run"], arrays["luminosityBlock"], arrays["event"]], 1)
        assert len(np.unique(ids, axis=0)) == len(ids)


def test_fileset_metadata(small_sample):
    _, fileset = small_sample
    for _dataset, entry in fileset.items():
        meta = entry["metadata"]
        assert set(entry) == {"files", "metadata"}
        assert list(entry["files"].values()) == ["Events"]
        assert meta["era"] == "2018"
        if meta["is_data"]:
            assert meta["lumi_fb"] > 0 and meta["process"].startswith("data_")
        else:
            assert meta["xsec_pb"] > 0 and meta["sum_genweight"] > 0
        if meta["process"] == "signal":
            assert (meta["m_chargino"], meta["dm_chargino"]) == (115.0, 0.27)


def test_same_seed_same_arrays_different_seed_differs():
    a, _ = generate_mc("dy_mumu", "2017", 300, 4)
    b, _ = generate_mc("dy_mumu", "2017", 300, 4)
    c, _ = generate_mc("dy_mumu", "2017", 300, 5)
    assert np.array_equal(a["Track"]["pt"], b["Track"]["pt"])
    assert np.array_equal(a["MET_pt"], b["MET_pt"])
    assert not np.array_equal(a["MET_pt"], c["MET_pt"])


def test_files_reproducible(tmp_path):
    """Same request, same bytes of every branch and the same fileset, whether samples are made
    in 1 or 2 processes (which generate an enriched sample first)."""
    from analysis.toymc.processes import Enrichment, SamplePlan
    from analysis.toymc.writer import FILESET, generate_samples

    plans = {"ttjets": SamplePlan((120.0, 300.0, np.inf), (1.0, 1.0), Enrichment((("search_like", 1),), rest=3))}
    for sub, workers in (("a", 1), ("b", 2)):
        generate_samples(tmp_path / sub, ["2016"], ["signal", "data_jetht", "ttjets"], [(140.0, 0.58)], 200, 3,
                         workers=workers, plans=plans)
    fa, fb = ((tmp_path / sub / FILESET).read_text().replace(str(tmp_path / sub), "") for sub in "ab")
    assert fa == fb and list(json.loads(fa)) == ["signal_m140_dm0p58_2016", "data_jetht_2016", "ttjets_2016"]
    for name in ("signal_m140_dm0p58_2016.root", "data_jetht_2016.root", "ttjets_2016.root"):
        ta = uproot.open(tmp_path / "a" / name)["Events"].arrays(library="np")
        tb = uproot.open(tmp_path / "b" / name)["Events"].arrays(library="np")
        for k in ta:
            va, vb = ta[k], tb[k]
            if va.dtype == object:
                va, vb = np.concatenate(va), np.concatenate(vb)
            assert va.tobytes() == vb.tobytes(), k


def test_signal_truth_links(small_sample):
    """Signal pions point to chargino mothers, are displaced and reconstructed as tracks."""
    from coffea.nanoevents import NanoEventsFactory

    from processors.schema import SoftTrackSchema

    out, _ = small_sample
    ev = NanoEventsFactory.from_root({str(out / "signal_m115_dm0p27_2018.root"): "Events"},
                                     schemaclass=SoftTrackSchema, mode="eager").events()
    import awkward as ak

    gen = ev.Track.matched_gen
    is_pion = ak.fill_none(abs(gen.pdgId) == 211, False)
    mother = gen.parent
    sig = is_pion & ak.fill_none(abs(mother.pdgId) == dc.PDG_CHARGINO, False)
    n_sig = ak.sum(sig)
    assert n_sig > 50
    tr = ev.Track[sig]
    assert ak.mean(tr.charge == np.sign(ev.Track.matched_gen[sig].pdgId)) > 0.98  # pi+ is +211
    assert ak.mean(abs(ev.Track.matched_gen[sig].vx - ev.GenPart.vx[:, 0])) > 0.05
    assert ak.all(ev.GenPart.pdgId[:, 0] != 0)


def test_keep_freed_memory_applies_on_glibc():
    """run.py generate tunes glibc's allocator: every mallopt call must be accepted (it returns
    0 for a parameter or value it refuses). Other C libraries are left alone."""
    import platform

    from analysis.toymc.memory import keep_freed_memory

    applied = keep_freed_memory()
    assert applied is (platform.libc_ver()[0] == "glibc")
    assert keep_freed_memory() is applied  # idempotent
