"""The semi-visible-jet toy generator against its truth (docs/svj.md): momentum conservation of
the shower, r_inv, the PFNano cross-references, the generator filter, the colour factors."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from analysis.svj.config import SVJConfig
from analysis.toymc.svj import (
    GeneratorSettings,
    ShowerParams,
    _reco_met,
    generate_events,
    generate_hard,
)
from analysis.toymc.svj_shower import GLUON, QUARK, shower_events


def _jagged(j):
    return ak.unflatten(ak.zip(j.fields), j.counts)


@pytest.fixture(scope="module")
def qcd():
    return generate_events("qcd", 400, 11)


@pytest.fixture(scope="module")
def signal():
    return generate_events("svj", 400, 12, m_zprime=2000.0, r_inv=0.5)


@pytest.mark.parametrize("process", ["qcd", "ttbar", "wjets", "zjets"])
def test_shower_conserves_three_momentum(process):
    """Reconstructed p_T^miss after shower + clustering = the one predicted from the hard
    particles and their responses before the shower (float32 storage precision): the
    generator filters of every background are decided on the exact p_T^miss."""
    s = GeneratorSettings()
    hard, resp, _ = generate_hard(process, 300, 5, s)
    branches, _ = generate_events(process, 300, 5, s)
    expected = _reco_met(hard, resp)
    assert np.allclose(branches["MET_pt"], expected, rtol=1e-6, atol=1e-6)


def test_generator_filter_is_looser_than_the_preselection(qcd):
    """Every background event has p_T^miss above the filter, and the preselection (R_T > 0.24
    at M_T > 650 GeV) implies p_T^miss above it: the filter removes no preselected event."""
    branches, meta = qcd
    s = GeneratorSettings()
    assert branches["MET_pt"].min() > s.qcd_met_filter
    cfg = SVJConfig().preselection
    assert cfg.rt * cfg.mt > max(s.qcd_met_filter, s.other_met_filter)
    assert 0 < meta["generation"]["filter_efficiency"] < 1
    assert meta["xsec_pb"] == pytest.approx(s.xsec_qcd * meta["generation"]["filter_efficiency"])
    hard, resp, rec = generate_hard("ttbar", 300, 6, s)
    assert _reco_met(hard, resp).min() > s.other_met_filter
    assert np.all(rec["gen_weight"] == 1.0) and 0 < rec["filter_efficiency"] < 1


def _preselected(branches, cfg: SVJConfig) -> np.ndarray:
    """The preselection (scouting H_T, two AK8 jets, M_T, R_T, DeltaPhi_min) on the branches."""
    from analysis.svj.selection import event_observables, leading_two, preselection_steps

    t, p = cfg.trigger, cfg.preselection
    jets, fat = _jagged(branches["Jet"]), _jagged(branches["FatJet"])
    ht = ak.to_numpy(ak.sum(jets.pt[(jets.pt > t.jet_pt) & (abs(jets.eta) < t.jet_eta)], axis=1))
    good = fat[(fat.pt >= p.fatjet_pt) & (abs(fat.eta) <= p.fatjet_eta)]
    obs = event_observables(leading_two(good), branches["MET_pt"], branches["MET_phi"])
    keep = np.ones(len(ht), bool)
    for _, m in preselection_steps(ak.to_numpy(ak.num(good)), ht, obs, t, p):
        keep &= m
    return keep


def test_prescaled_enriched_qcd_is_unbiased_in_the_preselection():
    """The default QCD (p_T^miss filter, the prescale in p_T^miss and parton p_T with 1/a weights, the enriched
    response tails) against the plain generation (the filter only, unit weights): the
    preselected cross sections agree within the statistics; a biased filter (a p_T^miss cut
    at 250 GeV, above the preselection's bound of 156 GeV) fails the same comparison."""
    from dataclasses import replace

    cfg = SVJConfig()
    s = GeneratorSettings()
    plain = replace(s, qcd_tail_probability=s.response.tail_probability, qcd_met_accept_scale=0.0,
                    qcd_soft_parton_accept=1.0)
    yields = {}
    for name, settings, n, seed in (("default", s, 5000, 31), ("plain", plain, 9000, 32)):
        branches, meta = generate_events("qcd", n, seed, settings)
        w = branches["genWeight"].astype(np.float64) * meta["xsec_pb"] / meta["sum_genweight"]
        sel = _preselected(branches, cfg)
        for tag, m in (("", sel), ("_met250", sel & (branches["MET_pt"] > 250.0))):
            yields[name + tag] = (w[m].sum(), np.sqrt((w[m] ** 2).sum()), int(m.sum()))
    (y_d, e_d, n_d), (y_p, e_p, n_p) = yields["default"], yields["plain"]
    assert n_d > 1.3 * n_p * 5000 / 9000  # the prescale keeps more preselected events per showered one
    assert abs(y_d - y_p) < 3.0 * np.hypot(e_d, e_p)
    y_b, e_b, _ = yields["default_met250"]
    assert abs(y_b - y_p) > 4.0 * np.hypot(e_b, e_p)


def test_invisible_fraction_and_genmet(signal):
    branches, meta = signal
    stable = branches["SVJTruth_nDarkStable"].sum()
    unstable = branches["SVJTruth_nDarkUnstable"].sum()
    n = stable + unstable
    frac = stable / n
    assert abs(frac - meta["r_inv"]) < 4 * np.sqrt(0.25 / n)
    # p_T^miss: the invisible dark hadrons plus the visible response
    assert np.median(branches["GenMET_pt"]) > 100.0
    assert np.corrcoef(branches["GenMET_pt"], branches["MET_pt"])[0, 1] > 0.9


def test_fatjet_constituents_rebuild_the_jet(signal):
    branches, _ = signal
    pf, ref, fj = _jagged(branches["PFCands"]), _jagged(branches["FatJetPFCands"]), _jagged(branches["FatJet"])
    px = pf.pt * np.cos(pf.phi)
    py = pf.pt * np.sin(pf.phi)
    cpx = px[ref.pFCandsIdx]
    cpy = py[ref.pFCandsIdx]
    n_jets = ak.num(fj)
    for k in range(2):
        has = ak.to_numpy(n_jets > k)
        m = ref.jetIdx == k
        sx = ak.to_numpy(ak.sum(cpx[m], axis=1))[has]
        sy = ak.to_numpy(ak.sum(cpy[m], axis=1))[has]
        pt = ak.to_numpy(fj.pt[has][:, k])
        assert np.allclose(np.hypot(sx, sy), pt, rtol=1e-3)
        assert np.array_equal(ak.to_numpy(ak.sum(m, axis=1))[has], ak.to_numpy(fj.nConstituents[has][:, k]))
    # p_T-ordered, and the signal jets are made of dark-hadron decays
    assert ak.all(fj.pt[:, :-1] >= fj.pt[:, 1:]) if ak.max(n_jets) > 1 else True
    assert np.median(ak.to_numpy(ak.flatten(fj.darkPtFraction[:, :2]))) > 0.9


def test_colour_factor_of_primary_emissions():
    """Primary emissions of gluons and quarks of the same energy: ratio near C_A / C_F = 9/4
    (the soft limit; the splitting functions' hard-collinear factors lower it slightly)."""
    n = 2000
    p = np.zeros((2 * n, 3))
    p[:, 0] = 500.0
    kind = np.array([QUARK, GLUON] * n, np.int64)
    offsets = np.arange(2 * n + 1, dtype=np.int64)
    out = shower_events(offsets, p, kind, np.ones(2 * n), ShowerParams().array(), 3, 2 * n * 400)
    n_primary = out[-1]
    ratio = n_primary[kind == GLUON].mean() / n_primary[kind == QUARK].mean()
    assert 1.8 < ratio < 2.4


def test_enriched_qcd_is_unbiased():
    """The response tails drawn more often and weighted back: the filtered cross section and the
    weighted p_T^miss spectrum agree with the unenriched generation within the statistics."""
    from dataclasses import replace

    default = GeneratorSettings()
    assert default.qcd_tail_probability == default.response.tail_probability  # the default: not enriched
    # the enrichment alone (the prescale is tested in the preselection below)
    plain = replace(default, qcd_met_accept_scale=0.0, qcd_soft_parton_accept=1.0)
    s = replace(plain, qcd_tail_probability=0.45)
    out = {}
    for name, settings, seed in (("enriched", s, 21), ("plain", plain, 22)):
        hard, resp, rec = generate_hard("qcd", 6000, seed, settings)
        out[name] = (_reco_met(hard, resp), rec["gen_weight"], rec["filter_efficiency"], rec["trials"])
    (m_e, w_e, eff_e, _), (m_p, w_p, eff_p, n_p) = out["enriched"], out["plain"]
    assert np.allclose(w_p, 1.0)
    # efficiency of the plain filter: binomial error on 6000 kept of n_p trials
    assert eff_e == pytest.approx(eff_p, rel=4 * np.sqrt(1.0 / 6000) + 0.02)
    for cut in (250.0, 400.0):  # the weighted fraction above a harder cut
        f_e = w_e[m_e > cut].sum() / w_e.sum()
        f_p = (m_p > cut).mean()
        err = np.sqrt(f_p * (1 - f_p) / m_p.size) + np.sqrt((w_e[m_e > cut] ** 2).sum()) / w_e.sum()
        assert abs(f_e - f_p) < 4 * err
    # the enrichment keeps more events with a mismeasured parton: fewer trials per kept event
    assert out["enriched"][3] < n_p
