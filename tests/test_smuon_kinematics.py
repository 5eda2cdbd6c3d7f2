"""M_T2, M_CT and the anti-kt reclustering of the smuon search against references and
analytic cases (analysis/smuon/kinematics.py; docs/smuon.md sec. 3)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.constants import MUON_MASS
from analysis.smuon.kinematics import antikt_recluster, mct, mt2


def _random_events(n: int, seed: int):
    rng = np.random.default_rng(seed)
    pt1, pt2 = rng.exponential(60, n) + 5, rng.exponential(60, n) + 5
    f1, f2, fm = (rng.uniform(-np.pi, np.pi, n) for _ in range(3))
    met = rng.exponential(80, n)
    return (pt1 * np.cos(f1), pt1 * np.sin(f1), pt2 * np.cos(f2), pt2 * np.sin(f2), met * np.cos(fm), met * np.sin(fm))


@pytest.mark.parametrize("m_vis", [MUON_MASS, 5.0])
@pytest.mark.parametrize("m_chi", [0.0, 100.0])
def test_mt2_against_lester_nachman(m_vis, m_chi):
    """The bisection algorithm of Lester and Nachman (1411.4312; the mt2 package) agrees to
    1e-3 GeV on 20000 random configurations, unbalanced solutions included."""
    ref = pytest.importorskip("mt2")
    p1x, p1y, p2x, p2y, mx, my = _random_events(20000, 3)
    ours = mt2(m_vis, p1x, p1y, m_vis, p2x, p2y, mx, my, m_chi)
    theirs = ref.mt2(m_vis, p1x, p1y, m_vis, p2x, p2y, mx, my, m_chi, m_chi)
    assert np.max(np.abs(ours - theirs)) < 1e-3


def test_mt2_without_upstream_momentum_is_mct():
    """Massless visibles and invisibles, no upstream momentum (p_T^miss = -(p1 + p2)):
    M_T2 = M_CT = sqrt(2 pT1 pT2 (1 + cos dphi)) (Cho et al. 0810.4853; Tovey 0802.2879)."""
    p1x, p1y, p2x, p2y, _, _ = _random_events(5000, 4)
    analytic = np.sqrt(2 * np.hypot(p1x, p1y) * np.hypot(p2x, p2y) + 2 * (p1x * p2x + p1y * p2y))
    assert np.allclose(mct(0.0, p1x, p1y, 0.0, p2x, p2y), analytic, rtol=1e-12, atol=1e-9)
    assert np.allclose(mt2(0.0, p1x, p1y, 0.0, p2x, p2y, -(p1x + p2x), -(p1y + p2y), 0.0), analytic, atol=1e-4)


def test_mt2_unbalanced_and_bounds():
    """m_vis <= M_T2 <= min_i M_T(v_i, p_T^miss) for massless invisibles (q_i = p_T^miss, the
    other side's q = 0: the bound the generator's enrichment uses); a heavy visible whose own
    minimum satisfies the other side gives the unbalanced value m_1 + m_chi."""
    p1x, p1y, p2x, p2y, mx, my = _random_events(5000, 5)
    m = MUON_MASS
    value = mt2(m, p1x, p1y, m, p2x, p2y, mx, my, 0.0)
    met = np.hypot(mx, my)
    mt = [np.sqrt(m**2 + 2 * (np.sqrt(m**2 + px**2 + py**2) * met - px * mx - py * my))
          for px, py in ((p1x, p1y), (p2x, p2y))]
    assert np.all(value <= np.minimum(*mt) + 1e-6)
    assert np.all(value >= m - 1e-9)
    # unbalanced: heavy visible 1 at rest-ish, p_T^miss zero: M_T2 = m1 + m_chi
    assert mt2(50.0, 1.0, 0.0, 0.0, 30.0, 0.0, 0.0, 0.0, 10.0)[()] == pytest.approx(60.0, abs=1e-6)


def test_mt2_endpoint_of_smuon_decays():
    """With the true invisible momenta and mass, M_T2 of smuon pairs never exceeds m_smuon and
    reaches it (the endpoint; Lester and Summers hep-ph/9906349)."""
    from analysis.toymc.smuon import generate_smuon_pairs
    from analysis.toymc.soft import sample_primary
    from analysis.toymc.truth import SIM_DETECTOR

    rng = np.random.default_rng(11)
    n, m_smuon, m_chi = 4000, 300.0, 100.0
    hard = generate_smuon_pairs(n, sample_primary(n, SIM_DETECTOR, rng), rng, m_smuon, m_chi)
    gp = hard.genpart
    pdg, pt, phi = gp["pdgId"], gp["pt"], gp["phi"]
    ev = gp.event_index()

    def per_event(mask):
        idx = np.nonzero(mask)[0]
        return idx[np.argsort(ev[idx], kind="stable")].reshape(n, 2)

    mu, chi = per_event(np.abs(pdg) == 13), per_event(pdg == 1000022)
    mx = (pt[chi] * np.cos(phi[chi])).sum(1)
    my = (pt[chi] * np.sin(phi[chi])).sum(1)
    px, py = pt[mu] * np.cos(phi[mu]), pt[mu] * np.sin(phi[mu])
    value = mt2(MUON_MASS, px[:, 0], py[:, 0], MUON_MASS, px[:, 1], py[:, 1], mx, my, m_chi)
    assert value.max() <= m_smuon + 1e-3
    assert value.max() > 0.97 * m_smuon


def test_mct_with_masses():
    """M_CT^2 = m1^2 + m2^2 + 2 (E_T1 E_T2 + p_T1 . p_T2) (Tovey 0802.2879 eq. 2)."""
    p1x, p1y, p2x, p2y, _, _ = _random_events(1000, 6)
    m1, m2 = 3.0, 7.0
    et1, et2 = np.sqrt(m1**2 + p1x**2 + p1y**2), np.sqrt(m2**2 + p2x**2 + p2y**2)
    expected = np.sqrt(m1**2 + m2**2 + 2 * (et1 * et2 + p1x * p2x + p1y * p2y))
    assert np.allclose(mct(m1, p1x, p1y, m2, p2x, p2y), expected, rtol=1e-12)


def test_antikt_against_fastjet():
    """The numba anti-kt (R = 1.0, E scheme) gives FastJet's jets exactly."""
    ak = pytest.importorskip("awkward")
    fastjet = pytest.importorskip("fastjet")
    pytest.importorskip("vector")
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 9, 400)
    k = int(counts.sum())
    pt, eta = rng.exponential(30, k) + 15, rng.uniform(-3, 3, k)
    phi, mass = rng.uniform(-np.pi, np.pi, k), pt * rng.uniform(0.05, 0.15, k)
    off = np.concatenate([[0], np.cumsum(counts)])
    n_jets, jets = antikt_recluster(off, pt, eta, phi, mass, 1.0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    arr = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": np.sqrt(px**2 + py**2 + pz**2 + mass**2)},
                              with_name="Momentum4D"), counts)
    ref = fastjet.ClusterSequence(arr, fastjet.JetDefinition(fastjet.antikt_algorithm, 1.0)).inclusive_jets()
    ref_pt = ak.sort(np.hypot(ref.px, ref.py), axis=1, ascending=False)
    assert np.array_equal(ak.to_numpy(ak.num(ref_pt)), n_jets)
    assert np.allclose(ak.to_numpy(ak.flatten(ref_pt)), jets["pt"], rtol=1e-10)
