"""The smuon-search processes of the toy generator against their documented truth
(analysis/toymc/smuon.py; docs/smuon.md sec. 1)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.toymc import smuon as truth
from analysis.toymc.smuon import BACKGROUNDS, SMUON_XSEC_FB, generate_smuon_sample, smuon_xsec_pb


def test_cross_sections():
    """The signal at the table's nodes and log-linear between them; the backgrounds are the
    documented cross sections times branching ratios."""
    for m, fb in SMUON_XSEC_FB.items():
        assert smuon_xsec_pb(m) == pytest.approx(fb / 1000.0, rel=1e-12)
    assert smuon_xsec_pb(125.0) == pytest.approx(np.sqrt(120.0 * 38.0) / 1000.0, rel=1e-9)
    masses = sorted(SMUON_XSEC_FB)
    assert all(smuon_xsec_pb(a) > smuon_xsec_pb(b) for a, b in zip(masses, masses[1:], strict=False))
    assert BACKGROUNDS["ttbar_mumu"].xsec_pb == pytest.approx(833.9 * 0.1063**2)
    assert BACKGROUNDS["ww_mumu"].xsec_pb == pytest.approx(118.7 * 0.1063**2)
    zz, wz = 16.9 * 2 * 0.03366 * 0.2, 50.0 * 3 * 0.1086 * 0.03366
    assert BACKGROUNDS["diboson_mumu"].xsec_pb == pytest.approx(zz + wz)
    assert truth.DIBOSON_WZ_FRACTION == pytest.approx(wz / (zz + wz))
    with pytest.raises(ValueError, match="outside"):
        smuon_xsec_pb(50.0)


def _per_event_pairs(gp, mask, n):
    idx = np.nonzero(mask)[0]
    ev = gp.event_index()[idx]
    return idx[np.argsort(ev, kind="stable")].reshape(n, 2)


def _p4(gp, idx):
    pt, eta, phi, m = (gp[k][idx] for k in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)])


def test_signal_kinematics_match_truth():
    """Each event holds two smuons of the point's mass, each decaying to a muon and a
    neutralino (their invariant mass is m_smuon); the pair's mass follows
    M = 2 m (1 + Gamma(k, theta)); the metadata carry the point and its cross section."""
    from analysis.toymc.smuon import generate_smuon_pairs
    from analysis.toymc.soft import sample_primary
    from analysis.toymc.truth import SIM_DETECTOR

    rng = np.random.default_rng(5)
    n, m, x = 20000, 300.0, 100.0
    gp = generate_smuon_pairs(n, sample_primary(n, SIM_DETECTOR, rng), rng, m, x).genpart
    pdg = gp["pdgId"]
    smuons = _per_event_pairs(gp, np.abs(pdg) == truth.PDG_SMUON_R, n)
    mu = _per_event_pairs(gp, np.abs(pdg) == 13, n)
    chi = _per_event_pairs(gp, pdg == 1000022, n)
    assert np.allclose(gp["mass"][smuons], m, rtol=1e-6)
    assert np.allclose(gp["mass"][chi], x, rtol=1e-5)
    for k in (0, 1):  # smuon k -> mu + chi: the daughters' invariant mass is the smuon's
        s = _p4(gp, mu[:, k]) + _p4(gp, chi[:, k])
        assert np.allclose(np.sqrt(s[3] ** 2 - s[0] ** 2 - s[1] ** 2 - s[2] ** 2), m, rtol=2e-3)
    assert np.all(np.sign(pdg[mu[:, 0]]) != np.sign(pdg[mu[:, 1]]))
    pair = _p4(gp, smuons[:, 0]) + _p4(gp, smuons[:, 1])
    mass = np.sqrt(np.maximum(pair[3] ** 2 - pair[0] ** 2 - pair[1] ** 2 - pair[2] ** 2, 0))
    k, theta = truth.PAIR_MASS_SHAPE["smuon"]
    x_rel = mass / (2 * m) - 1
    assert x_rel.min() >= -1e-5
    assert x_rel.mean() == pytest.approx(k * theta, rel=0.03)
    assert x_rel.var() == pytest.approx(k * theta**2, rel=0.08)
    branches, meta = generate_smuon_sample("smuon", 200, 3, (m, x))
    assert meta["xsec_pb"] == pytest.approx(smuon_xsec_pb(m))
    assert (meta["m_smuon"], meta["m_neutralino"]) == (m, x)
    assert meta["sum_genweight"] == 200 and np.all(branches["genWeight"] == 1)


def _yield(branches, meta, lumi_fb=139.0):
    """Weighted events with two muons pT > 25 and 20 GeV and p_T^miss > 100 GeV: a selection of
    the kind the preselection makes, computed here from the raw branches."""
    mu = branches["Muon"]
    two = mu.counts >= 2
    first = mu.offsets[:-1][two]
    pt = mu["pt"]
    ok = np.zeros(mu.counts.size, bool)
    ok[two] = (pt[first] > 25) & (pt[first + 1] > 20)
    ok &= branches["MET_pt"] > 100
    w = branches["genWeight"].astype(np.float64) * meta["xsec_pb"] * 1000 * lumi_fb / meta["sum_genweight"]
    return w[ok].sum(), np.sqrt((w[ok] ** 2).sum())


@pytest.mark.parametrize("process", ["ww_mumu", "diboson_mumu"])
def test_enrichment_does_not_bias(process, monkeypatch):
    """The enriched sample (prescaled rest, weights = prescale, sum_genweight = trials)
    predicts the yield of a selection as the unprescaled one does, within 3 sigma; every event
    of the kept tier has weight 1."""
    enriched, meta_e = generate_smuon_sample(process, 6000, 21)
    whole = truth.enrichment_tier(enriched)
    assert np.all(enriched["genWeight"][whole] == 1)
    assert set(np.unique(enriched["genWeight"][~whole])) <= {float(truth.ENRICHMENT_PRESCALE[process])}
    monkeypatch.setitem(truth.ENRICHMENT_PRESCALE, process, 1)
    plain, meta_p = generate_smuon_sample(process, int(meta_e["sum_genweight"]), 22)
    (ye, se), (yp, sp) = _yield(enriched, meta_e), _yield(plain, meta_p)
    assert abs(ye - yp) < 3 * np.hypot(se, sp)


def test_sample_files(tmp_path):
    """generate_samples writes the smuon processes with their metadata (the fileset loads)."""
    from analysis.toymc.writer import generate_samples
    from processors.fileset import load_fileset

    fs = generate_samples(tmp_path, ["run2"], ["smuon", "diboson_mumu"], [(200.0, 50.0)], 300, 1, signal_events=100)
    assert set(fs) == {"smuon_m200_x50_run2", "diboson_mumu_run2"}
    loaded = load_fileset(tmp_path / "fileset.json")
    assert loaded["smuon_m200_x50_run2"]["metadata"]["m_neutralino"] == 50.0
