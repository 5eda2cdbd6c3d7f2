"""Tests of the Rebalance and Smear kernels (analysis/rs/; docs/physics.md sec. 8, seed 004).

A numpy toy with known truth: gen jets from a falling pT spectrum, 2-6 per event, balanced up
to a small true hard MHT (Gaussian, 8 GeV per component), smeared with a response that is a
Gaussian core plus half-Gaussian low/high tails whose parameters are constant per template
(pT, |eta|) bin (as the project's toy detector does). The toy is also used by
benchmarks/bench_rs.py.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

import analysis.rs as rs
from analysis.errors import ConfigError, CorrectionError, InputFileError
from analysis.rs.defaults import RS_TEMPLATE_ABSETA_EDGES, RS_TEMPLATE_PT_EDGES
from analysis.softtrack.config import OBJECT_CUTS

PT_EDGES = np.asarray(RS_TEMPLATE_PT_EDGES)
ETA_EDGES = np.asarray(RS_TEMPLATE_ABSETA_EDGES)
#: toy response: low tail (fraction, width in core sigmas), high tail, allowed response range
F_LOW, A_LOW, F_HIGH, A_HIGH = 0.04, 3.0, 0.015, 2.0
R_MIN, R_MAX = 0.05, 2.95
TRUE_MHT_SIGMA = 8.0  # GeV per component
TOY_PT_SCALE = 25.0  # GeV, scale of the Pareto pT spectrum


# ----------------------------------------------------------------------------------------
# The toy
# ----------------------------------------------------------------------------------------
def toy_core(ipt, ieta):
    """Mean and core width of the toy response in template bin (ipt, ieta)."""
    ptc = np.sqrt(PT_EDGES[ipt] * PT_EDGES[ipt + 1])
    sigma = np.sqrt((1.5 / ptc) ** 2 + 1.0 / ptc + 0.05**2) * (1.0 + 0.1 * ieta)
    return 1.0 - 0.01 * ieta, sigma


def toy_bins(pt, abseta):
    ipt = np.clip(np.searchsorted(PT_EDGES, pt, side="right") - 1, 0, PT_EDGES.size - 2)
    ieta = np.clip(np.searchsorted(ETA_EDGES, abseta, side="right") - 1, 0, ETA_EDGES.size - 2)
    return ipt, ieta


def toy_response(gen_pt, gen_eta, rng):
    """Draw responses: core N(mu, s), low tail mu - |N(0, A_LOW s)|, high tail mu + |N(0, A_HIGH s)|,
    each truncated to (R_MIN, R_MAX) by rejection."""
    mu, sigma = toy_core(*toy_bins(gen_pt, np.abs(gen_eta)))
    u = rng.random(gen_pt.size)
    r = np.empty(gen_pt.size)
    todo = np.arange(gen_pt.size)
    while todo.size:
        z = rng.standard_normal(todo.size)
        m, s, uu = mu[todo], sigma[todo], u[todo]
        rr = np.where(uu < F_LOW, m - A_LOW * s * np.abs(z),
                      np.where(uu < F_LOW + F_HIGH, m + A_HIGH * s * np.abs(z), m + s * z))
        ok = (rr > R_MIN) & (rr < R_MAX)
        r[todo[ok]] = rr[ok]
        todo = todo[~ok]
    return r


def toy_truth_moments(ipt, ieta):
    """Mean and standard deviation of the toy response in a bin, by quadrature."""
    mu, s = toy_core(ipt, ieta)
    rg = np.linspace(R_MIN, R_MAX, 200001)

    def gauss(x, w):
        return np.exp(-0.5 * (x / w) ** 2)

    parts = [(1 - F_LOW - F_HIGH, gauss(rg - mu, s)),
             (F_LOW, np.where(rg < mu, gauss(rg - mu, A_LOW * s), 0.0)),
             (F_HIGH, np.where(rg > mu, gauss(rg - mu, A_HIGH * s), 0.0))]
    pdf = sum(f * c / np.trapezoid(c, rg) for f, c in parts)
    mean = np.trapezoid(pdf * rg, rg)
    return mean, np.sqrt(np.trapezoid(pdf * (rg - mean) ** 2, rg))


def make_toy(n_events: int, seed: int, pt_scale: float = TOY_PT_SCALE) -> dict[str, np.ndarray]:
    """Balanced multijet toy: gen and reco jets (flat arrays + offsets), b-jet counts."""
    rng = np.random.default_rng(seed)
    n_try = 3 * n_events
    nj = rng.integers(2, 7, size=n_try)
    off = np.zeros(n_try + 1, np.int64)
    np.cumsum(nj, out=off[1:])
    pt = pt_scale * (1.0 + rng.pareto(2.5, off[-1]))
    phi = rng.uniform(-np.pi, np.pi, off[-1])
    eta = rng.uniform(-4.5, 4.5, off[-1]) * np.sqrt(rng.uniform(0, 1, off[-1]))
    ev = np.repeat(np.arange(n_try), nj)
    last = off[1:] - 1
    others = np.ones(off[-1], bool)
    others[last] = False
    # the last jet balances the others up to a small true hard MHT
    sx = np.bincount(ev, pt * np.cos(phi) * others, n_try) + rng.normal(0, TRUE_MHT_SIGMA, n_try)
    sy = np.bincount(ev, pt * np.sin(phi) * others, n_try) + rng.normal(0, TRUE_MHT_SIGMA, n_try)
    pt[last] = np.hypot(sx, sy)
    phi[last] = np.arctan2(-sy, -sx)
    good = np.flatnonzero(np.bincount(ev, pt < 20.0, n_try) == 0)[:n_events]
    assert good.size == n_events
    jets = np.isin(ev, good)
    gpt, geta, gphi = pt[jets], eta[jets], phi[jets]
    goff = np.zeros(n_events + 1, np.int64)
    np.cumsum(nj[good], out=goff[1:])
    rpt = gpt * toy_response(gpt, geta, rng)
    reta = geta + rng.normal(0, 0.01, gpt.size)
    rphi = np.angle(np.exp(1j * (gphi + rng.normal(0, 0.01, gpt.size))))
    btag = rng.random(gpt.size) < 0.1
    nb = np.bincount(np.repeat(np.arange(n_events), nj[good]), btag, n_events).astype(np.int64)
    return {"gen_pt": gpt, "gen_eta": geta, "gen_phi": gphi, "offsets": goff,
            "reco_pt": rpt, "reco_eta": reta, "reco_phi": rphi, "n_bjets": nb}


def seed_jets(toy: dict[str, np.ndarray], pt_min: float = 15.0) -> dict[str, np.ndarray]:
    """R&S jets of the toy's reco events (pT > pt_min) with their gen partners."""
    off = toy["offsets"]
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    m = toy["reco_pt"] > pt_min
    soff = np.zeros(off.size, np.int64)
    np.cumsum(np.bincount(ev[m], minlength=off.size - 1), out=soff[1:])
    return {"pt": toy["reco_pt"][m], "eta": toy["reco_eta"][m], "phi": toy["reco_phi"][m],
            "gen_pt": toy["gen_pt"][m], "gen_phi": toy["gen_phi"][m], "offsets": soff, "n_bjets": toy["n_bjets"],
            "entry": np.arange(off.size - 1)}


def build_inputs(toy):
    sel = rs.select_template_jets(
        toy["reco_pt"], toy["reco_eta"], toy["reco_phi"], toy["offsets"],
        toy["gen_pt"], toy["gen_eta"], toy["gen_phi"], toy["offsets"],
    )
    templates = rs.build_response_templates(sel["reco_pt"], sel["gen_pt"], sel["gen_eta"])
    priors = rs.build_priors(toy["gen_pt"], toy["gen_eta"], toy["gen_phi"], toy["offsets"],
                             toy["n_bjets"], pt_min=OBJECT_CUTS.jet_pt_rs)
    return sel, templates, priors


def w68(x):
    """Half-width of the central 68% interval."""
    q = np.percentile(x, [16.0, 84.0])
    return 0.5 * (q[1] - q[0])


# ----------------------------------------------------------------------------------------
# Fixtures (session scope, fixed seeds)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def template_toy():
    return make_toy(120_000, seed=1)


@pytest.fixture(scope="session")
def inputs(template_toy):
    return build_inputs(template_toy)


@pytest.fixture(scope="session")
def seeds():
    return seed_jets(make_toy(40_000, seed=2))


@pytest.fixture(scope="session")
def rebalanced(seeds, inputs):
    _, templates, priors = inputs
    return rs.rebalance(seeds["pt"], seeds["eta"], seeds["phi"], seeds["offsets"],
                        seeds["n_bjets"], templates, priors, pt_min=OBJECT_CUTS.jet_pt_rs)


# ----------------------------------------------------------------------------------------
# Templates and priors
# ----------------------------------------------------------------------------------------
def test_templates_recover_toy_response(inputs):
    sel, templates, _ = inputs
    mean, std = templates.moments()
    ipt, ieta = toy_bins(sel["gen_pt"], np.abs(sel["gen_eta"]))
    resp = sel["reco_pt"] / sel["gen_pt"]
    checked = 0
    for i in range(mean.shape[0]):
        for k in range(mean.shape[1]):
            r = resp[(ipt == i) & (ieta == k)]
            if r.size < 2000:
                continue
            tm, ts = toy_truth_moments(i, k)
            # stat. precision of the mean and of the std (kurtosis from the sample)
            kurt = np.mean((r - r.mean()) ** 4) / r.var() ** 2
            se_mean = ts / np.sqrt(r.size)
            se_std = ts * np.sqrt((kurt - 1.0) / (4.0 * r.size))
            # the smoothing kernel adds its variance; binning is Sheppard-corrected
            std_unsmoothed = np.sqrt(std[i, k] ** 2 - templates.smooth_sigma**2)
            assert abs(mean[i, k] - tm) < 4 * se_mean + 1e-3, (i, k)
            assert abs(std_unsmoothed - ts) < 4 * se_std + 2e-3, (i, k)
            checked += 1
    assert checked >= 15
    # normalization and CDF
    w = templates.response_edges[1] - templates.response_edges[0]
    np.testing.assert_allclose((templates.pdf * w).sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(templates.cdf[..., -1], 1.0, rtol=1e-12)


def test_template_selection_matching_and_isolation():
    # event 0: two gen jets 0.3 apart (not isolated) and one isolated jet matched at DeltaR 0.1;
    # event 1: an isolated gen jet whose only reco jet is 0.5 away (no match)
    gen = {"pt": [50.0, 40.0, 100.0, 80.0], "eta": [0.0, 0.3, 2.0, 1.0],
           "phi": [0.0, 0.0, 2.0, -1.0], "off": [0, 3, 4]}
    reco = {"pt": [45.0, 38.0, 90.0, 70.0], "eta": [0.0, 0.3, 2.1, 1.5],
            "phi": [0.0, 0.0, 2.0, -1.0], "off": [0, 3, 4]}
    out = rs.select_template_jets(reco["pt"], reco["eta"], reco["phi"], reco["off"],
                                  gen["pt"], gen["eta"], gen["phi"], gen["off"])
    np.testing.assert_array_equal(out["gen_index"], [2])
    np.testing.assert_array_equal(out["reco_index"], [2])
    np.testing.assert_allclose(out["reco_pt"] / out["gen_pt"], [0.9])
    # the isolated gen jet of event 1 has no reco jet within DeltaR 0.4: lost (below threshold)
    np.testing.assert_array_equal(out["lost_gen_index"], [3])
    np.testing.assert_array_equal(out["lost_event"], [1])
    # ... unless it lies outside the reco acceptance
    far = rs.select_template_jets(reco["pt"], reco["eta"], reco["phi"], reco["off"], gen["pt"], gen["eta"],
                                  gen["phi"], gen["off"], lost_eta_max=0.5)
    assert far["lost_gen_index"].size == 0


def test_lost_jets_fill_the_response_below_threshold():
    """Lost gen jets enter the templates uniformly below r = 15 GeV / pT_gen, with their full
    weight; matched jets are unchanged."""
    idx, r, f = rs.lost_jet_responses(np.array([300.0, 60.0]), reco_pt_min=15.0, n_points=4)
    np.testing.assert_array_equal(idx, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(r[:4], 0.05 * (np.arange(4) + 0.5) / 4)
    assert np.all(r[4:] < 0.25) and r[4:].max() > 0.2
    np.testing.assert_allclose(np.bincount(idx, f), 1.0)
    rng = np.random.default_rng(3)
    gpt = rng.uniform(300.0, 390.0, 20_000)
    geta = rng.uniform(0.0, 4.9, gpt.size)
    geta[:10_000] = rng.uniform(0.0, 0.7, 10_000)
    reco = gpt * rng.normal(1.0, 0.07, gpt.size)
    lost_pt = np.full(100, 350.0)
    plain = rs.build_response_templates(reco, gpt, geta)
    with_lost = rs.build_response_templates(reco, gpt, geta, lost_gen_pt=lost_pt, lost_gen_eta=np.full(100, 0.3))
    i = np.searchsorted(plain.pt_edges, 350.0) - 1
    k = np.searchsorted(plain.cdf[i, 0], 0.0, side="right")  # first response bin with mass
    below = np.searchsorted(plain.response_edges, 0.1)  # above 15/350 plus the smoothing
    assert plain.cdf[i, 0, below] == 0.0 and k > below
    n_bin = plain.entries[i, 0]
    assert with_lost.cdf[i, 0, below] == pytest.approx(100 / (n_bin + 100), rel=0.01)


def test_priors_are_normalized_and_reflect_truth(inputs, template_toy):
    _, _, priors = inputs
    w = priors.mht_edges[1] - priors.mht_edges[0]
    np.testing.assert_allclose((priors.pdf_mht * w).sum(-1), 1.0, rtol=1e-12)
    dw = priors.dphi_edges[1] - priors.dphi_edges[0]
    np.testing.assert_allclose((priors.pdf_dphi * dw).sum(-1), 1.0, rtol=1e-12)
    # the toy's true hard MHT is Rayleigh with sigma = 8 GeV: mean 8 sqrt(pi/2)
    c = 0.5 * (priors.mht_edges[1:] + priors.mht_edges[:-1])
    # (first H_T bin, no b jet; the toy's true hard MHT does not depend on H_T)
    assert priors.pdf_mht.shape == (priors.ht_edges.size - 1, 3, priors.mht_edges.size - 1)
    mean = (priors.pdf_mht[0, 0] * c * w).sum()
    assert mean == pytest.approx(TRUE_MHT_SIGMA * np.sqrt(np.pi / 2), rel=0.08)
    # the exponential tail keeps every bin positive (no flat floor for the fit)
    assert np.all(priors.pdf_mht > 0)
    assert np.all(np.diff(np.log(priors.pdf_mht[0, 0, 20:])) < 0)


def test_interpolation_is_linear_in_pt(inputs):
    _, templates, _ = inputs
    c = templates.pt_centers
    r = templates.response_centers[100]  # node of the response axis
    a = templates.evaluate(c[3], 0.1, r)
    b = templates.evaluate(c[4], 0.1, r)
    mid = templates.evaluate(0.75 * c[3] + 0.25 * c[4], 0.1, r)
    assert mid == pytest.approx(0.75 * a + 0.25 * b, rel=1e-12)
    assert a == pytest.approx(templates.pdf[3, 0, 100], rel=1e-12)


def test_correctionset_round_trip(inputs, tmp_path):
    import correctionlib

    _, templates, priors = inputs
    path = rs.write_correctionset(tmp_path / "rs_templates.json.gz", templates, priors)
    t2, p2 = rs.read_correctionset(path)
    for name in ("pt_edges", "eta_edges", "response_edges", "pdf", "entries", "cdf"):
        np.testing.assert_array_equal(getattr(t2, name), getattr(templates, name))
    for name in ("mht_edges", "pdf_mht", "dphi_mht_edges", "dphi_edges", "pdf_dphi", "entries", "ht_edges"):
        np.testing.assert_array_equal(getattr(p2, name), getattr(priors, name))
    assert t2.smooth_sigma == templates.smooth_sigma
    # the correctionlib evaluator (C++) reads the same numbers
    with gzip.open(path, "rt") as fh:
        cset = correctionlib.CorrectionSet.from_string(fh.read())
    rc = templates.response_centers
    got = cset[rs.CORRECTION_RESPONSE].evaluate(
        np.full(rc.size, 95.0), np.full(rc.size, 1.2), rc)
    np.testing.assert_allclose(got, templates.pdf[5, 1], rtol=1e-12)  # 70-100 GeV, |eta| 0.8-1.3
    got = cset[rs.CORRECTION_PRIOR_MHT].evaluate(np.full(3, 700.0), np.full(3, 7.0), np.array([10.0, 52.5, 500.0]))
    np.testing.assert_allclose(got, priors.pdf_mht[1, 2, [2, 10, -1]], rtol=1e-12)  # H_T 600-1000
    got = cset[rs.CORRECTION_PRIOR_DPHI].evaluate(1.0, 60.0, 3.0)
    assert got == pytest.approx(priors.pdf_dphi[1, 3, 30], rel=1e-12)
    # the model and a JSON string also load
    t3, _ = rs.from_correctionset(rs.to_correctionset(templates, priors))
    np.testing.assert_array_equal(t3.pdf, templates.pdf)
    text = rs.to_correctionset(templates, priors).model_dump_json()
    t4, _ = rs.from_correctionset(text)
    np.testing.assert_array_equal(t4.pdf, templates.pdf)


def test_correctionset_errors(inputs, tmp_path):
    _, templates, priors = inputs
    with pytest.raises(InputFileError, match="does not exist"):
        rs.read_correctionset(tmp_path / "missing.json")
    data = json.loads(rs.to_correctionset(templates, priors).model_dump_json())
    data["corrections"] = data["corrections"][:1]
    with pytest.raises(CorrectionError, match="rs_prior_mht"):
        rs.from_correctionset(data)


def test_vary_response(inputs):
    _, templates, _ = inputs
    wide = rs.vary_response(templates, core_width_scale=1.2)
    tails = rs.vary_response(templates, tail_fraction_scale=2.0)
    same = rs.vary_response(templates)
    w = templates.response_edges[1] - templates.response_edges[0]
    for t in (wide, tails, same):
        np.testing.assert_allclose((t.pdf * w).sum(-1), 1.0, rtol=1e-12)
    rc = templates.response_centers
    i, k = 5, 0  # 70-100 GeV, central
    mu, s = toy_core(i, k)

    def tail_mass(pdf):
        return (pdf[np.abs(rc - mu) > 4 * s] * w).sum()

    nominal = templates.pdf[i, k]
    # Gaussian core widened by k: mass within +-1 sigma drops from 0.683 to ~0.595
    in1 = np.abs(rc - mu) < s
    ratio = wide.pdf[i, k][in1].sum() / nominal[in1].sum()
    assert ratio == pytest.approx(0.595 / 0.683, abs=0.03)
    assert tail_mass(tails.pdf[i, k]) / tail_mass(nominal) == pytest.approx(2.0, rel=0.15)
    # no variation: the core/tail decomposition reassembles the template
    np.testing.assert_allclose(same.pdf, templates.pdf, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------------------
# Rebalance
# ----------------------------------------------------------------------------------------
def test_gradient_matches_finite_differences(inputs):
    _, templates, priors = inputs
    rng = np.random.default_rng(5)
    for _ in range(5):
        n = rng.integers(2, 6)
        pt = rng.uniform(20, 400, n)
        phi = rng.uniform(-np.pi, np.pi, n)
        eta = rng.uniform(0, 4.5, n)
        x = rng.normal(0, 0.2, n)
        f, g = rs.neg_log_posterior(x, pt, phi, eta, int(rng.integers(0, 3)), templates, priors)
        h = 1e-6
        num = np.empty(n)
        for i in range(n):
            e = np.zeros(n)
            e[i] = h
            num[i] = (rs.neg_log_posterior(x + e, pt, phi, eta, 0, templates, priors)[0]
                      - rs.neg_log_posterior(x - e, pt, phi, eta, 0, templates, priors)[0]) / (2 * h)
        g0 = rs.neg_log_posterior(x, pt, phi, eta, 0, templates, priors)[1]
        np.testing.assert_allclose(g0, num, rtol=1e-4, atol=1e-4)
        assert np.isfinite(f) and np.all(np.isfinite(g))


def test_rebalance_restores_truth(seeds, rebalanced):
    res = rebalanced
    s = res.summary
    assert s["converged"] >= 0.99 * (s["events"] - s["too_few_jets"])
    assert s["kept"] >= 0.98 * s["events"]
    off = seeds["offsets"]
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    mht_reco = rs.hard_mht(seeds["pt"], seeds["eta"], seeds["phi"], off, 15.0, OBJECT_CUTS.jet_eta_wide)["mht"]
    # the rebalanced hard MHT sits at the true (prior) scale, far below the reco one
    big = res.keep & (mht_reco > 80.0)
    assert big.sum() >= 100
    assert np.median(res.mht[big]) < 30.0
    # seed 004 Fig. 2: in mis-measured (large hard MHT) events the response of the rebalanced
    # jets to their gen jets peaks much more narrowly at 1 than the reco response
    jets = big[ev]
    r_reco = seeds["pt"][jets] / seeds["gen_pt"][jets]
    r_reb = res.pt[jets] / seeds["gen_pt"][jets]
    far_reco = np.mean(np.abs(r_reco - 1) > 0.3)
    far_reb = np.mean(np.abs(r_reb - 1) > 0.3)
    print(f"MHT>80: w68 reco {w68(r_reco):.3f} rebalanced {w68(r_reb):.3f}; "
          f"|r-1|>0.3 reco {far_reco:.3f} rebalanced {far_reb:.3f}")
    assert w68(r_reco) / w68(r_reb) > 1.15
    assert far_reco / far_reb > 1.3
    assert abs(np.median(r_reb) - 1.0) < 0.03
    # jets not fitted keep their pT; the scale is 1 there
    np.testing.assert_allclose(res.pt, res.scale * seeds["pt"])


def test_numba_optimizer_matches_scipy(seeds, inputs, rebalanced):
    _, templates, priors = inputs
    n = 150
    off = seeds["offsets"][: n + 1]
    sl = slice(0, off[-1])
    ref = rs.rebalance_scipy(seeds["pt"][sl], seeds["eta"][sl], seeds["phi"][sl], off,
                             seeds["n_bjets"][:n], templates, priors, pt_min=OBJECT_CUTS.jet_pt_rs)
    d = rebalanced.neg_log_posterior[:n] - ref["neg_log_posterior"]
    ok = np.isfinite(d)
    assert ok.sum() > 0.95 * n
    # same optimum in the vast majority of events; the posterior can be multi-modal
    assert np.mean(np.abs(d[ok]) < 1e-3) > 0.7
    assert np.mean(d[ok] > 0.5) < 0.05


def test_rebalance_edge_cases(inputs):
    _, templates, priors = inputs
    nan = np.nan
    events = [
        ([], [], []),  # no jets
        ([80.0], [0.1], [0.0]),  # one jet
        ([80.0, nan, 60.0], [0.1, 0.2, 0.3], [0.0, 3.0, 1.0]),  # NaN input
        ([4000.0, 3800.0], [0.5, -0.5], [0.0, np.pi]),  # pT above the templates
        ([100.0, 90.0, 10.0], [5.5, 0.0, 0.0], [0.0, 3.0, 1.0]),  # |eta| beyond, soft jet
        ([100.0, 90.0], [0.0, 1.0], [0.0, 3.0]),  # ordinary
    ]
    pt = np.concatenate([np.asarray(e[0], float) for e in events])
    eta = np.concatenate([np.asarray(e[1], float) for e in events])
    phi = np.concatenate([np.asarray(e[2], float) for e in events])
    off = np.r_[0, np.cumsum([len(e[0]) for e in events])]
    res = rs.rebalance(pt, eta, phi, off, np.zeros(len(events), int), templates, priors,
                       pt_min=OBJECT_CUTS.jet_pt_rs, eta_max=6.0)
    st = res.status
    assert st[0] == rs.STATUS_TOO_FEW_JETS and st[1] == rs.STATUS_TOO_FEW_JETS
    assert st[2] == rs.STATUS_NAN_INPUT
    assert st[3] == st[4] == st[5] == rs.STATUS_CONVERGED
    s = res.summary
    assert s["too_few_jets"] == 2 and s["nan_input"] == 1
    assert s["jets_pt_above_template"] == 2
    assert s["jets_eta_beyond_template"] == 1
    assert s["jets_fitted"] == 9  # not the 10 GeV jet, not the NaN jet
    np.testing.assert_array_equal(res.keep, [False, False, False, True, True, True])
    assert res.pt[off[4] + 2] == 10.0  # below the R&S threshold: passed through
    assert np.all(np.isfinite(res.mht[3:]))
    with pytest.raises(ConfigError, match="offsets"):
        rs.rebalance(pt, eta, phi, off[:-1], np.zeros(len(events) - 1, int), templates, priors,
                     pt_min=OBJECT_CUTS.jet_pt_rs)


def test_rebalance_drops_large_mht(seeds, inputs):
    _, templates, priors = inputs
    n = 2000
    off = seeds["offsets"][: n + 1]
    sl = slice(0, off[-1])
    args = (seeds["pt"][sl], seeds["eta"][sl], seeds["phi"][sl], off, seeds["n_bjets"][:n],
            templates, priors)
    strict = rs.rebalance(*args, max_rebalanced_mht=10.0, reject_quantile=0.0, pt_min=OBJECT_CUTS.jet_pt_rs)
    conv = strict.status == rs.STATUS_CONVERGED
    np.testing.assert_array_equal(strict.keep, conv & (strict.mht <= 10.0))
    assert strict.summary["mht_too_large"] == int((conv & (strict.mht > 10.0)).sum()) > 0
    # default: the threshold is the prior's 0.999 quantile where that is above the fixed one
    q = priors.mht_quantile(0.999)
    thr = priors.rejection_threshold(np.array([100.0, 100.0]), np.array([0, 5]), 0.999, 10.0)
    np.testing.assert_allclose(thr, np.maximum(10.0, q[0, [0, 2]]))
    loose = rs.rebalance(*args, max_rebalanced_mht=10.0, pt_min=OBJECT_CUTS.jet_pt_rs)
    assert loose.summary["kept"] > strict.summary["kept"]


def test_prior_quantile_and_tail_extrapolation(inputs):
    """The quantile of the hard-MHT prior matches its cdf; beyond the table the log-prior
    continues to fall (exponential tail), so the fit keeps a gradient at any hard MHT."""
    _, templates, priors = inputs
    w = priors.mht_edges[1] - priors.mht_edges[0]
    cdf = np.cumsum(priors.pdf_mht[0, 0] * w)
    q50 = priors.mht_quantile(0.5)[0, 0]
    assert np.interp(q50, priors.mht_edges[1:], cdf) == pytest.approx(0.5, abs=0.02)
    pt = np.array([2000.0, 1000.0])
    phi = np.array([0.0, np.pi])
    eta = np.array([0.1, 0.2])
    f = [rs.neg_log_posterior(np.zeros(2), pt, phi, eta, 0, templates, priors)[0]]
    for c in (1.2, 1.4):  # hard MHT 1000 -> 1400 -> 1800 GeV, far above the 300 GeV table
        f.append(rs.neg_log_posterior(np.log([c, 1.0]), pt, phi, eta, 0, templates, priors)[0])
    assert f[0] < f[1] < f[2]
    _, g = rs.neg_log_posterior(np.zeros(2), pt, phi, eta, 0, templates, priors)
    assert g[0] > 0 and g[1] < 0  # lowering the leading jet / raising the other balances


# ----------------------------------------------------------------------------------------
# Smear
# ----------------------------------------------------------------------------------------
def test_smear_closure_hard_mht(seeds, inputs, rebalanced):
    """Prediction vs the toy's reco-level hard MHT (eq. 2.6, jets pT > 30), incl. the tail."""
    _, templates, _ = inputs
    off = seeds["offsets"]
    sm = rs.smear(rebalanced.pt, seeds["eta"], seeds["phi"], off, templates, seed=11,
                  file_id="toy.root", entry=seeds["entry"], n_smear=50, keep=rebalanced.keep)
    edges = np.array([0.0, 20.0, 40.0, 60.0, 80.0, 100.0, 130.0, 170.0, 250.0])
    reco = np.histogram(rs.hard_mht(seeds["pt"], seeds["eta"], seeds["phi"], off, OBJECT_CUTS.jet_pt,
                                     OBJECT_CUTS.jet_eta_wide)["mht"],
                        edges)[0]
    mht_pred = rs.hard_mht(sm.pt, sm.eta, sm.phi, sm.offsets, OBJECT_CUTS.jet_pt, OBJECT_CUTS.jet_eta_wide)["mht"]
    pred = np.histogram(mht_pred, edges, weights=sm.weight)[0]
    boot = rs.bootstrap_weights(11, "toy.root", seeds["entry"])
    mean, std = rs.bootstrap_mean_std(
        rs.bootstrap_histograms(mht_pred, sm.weight, boot[sm.event_index], edges))
    ratio = pred / reco
    tol = 3.0 * np.sqrt(1.0 / reco + (std / pred) ** 2) + 0.10
    print("hard MHT bins", edges, "\nreco", reco, "\npred", np.round(pred, 1),
          "\nboot std", np.round(std, 1), "\nratio", np.round(ratio, 3))
    assert np.all(np.abs(ratio - 1.0) < tol)
    assert reco[-3:].sum() > 100  # the tail (hard MHT > 100 GeV) is really tested
    np.testing.assert_allclose(mean, pred, rtol=0.1)


def test_smear_layout_and_weights(seeds, rebalanced, inputs):
    _, templates, _ = inputs
    n = 500
    off = seeds["offsets"][: n + 1]
    sl = slice(0, off[-1])
    keep = rebalanced.keep[:n]
    sm = rs.smear(rebalanced.pt[sl], seeds["eta"][sl], seeds["phi"][sl], off, templates,
                  seed=3, file_id="f", entry=seeds["entry"][:n], n_smear=7, keep=keep,
                  event_weight=np.full(n, 2.0))
    assert sm.offsets.size - 1 == 7 * keep.sum()
    np.testing.assert_array_equal(np.bincount(sm.event_index, minlength=n)[keep], 7)
    np.testing.assert_array_equal(sm.replica[:7], np.arange(7))
    np.testing.assert_allclose(sm.weight, 2.0 / 7)
    assert sm.weight.sum() == pytest.approx(2.0 * keep.sum())
    # directions unchanged, pT rescaled
    src = np.concatenate([np.arange(off[e], off[e + 1]) for e in sm.event_index])
    np.testing.assert_array_equal(sm.eta, seeds["eta"][sl][src])
    np.testing.assert_array_equal(sm.phi, seeds["phi"][sl][src])
    r = sm.pt / rebalanced.pt[sl][src]
    assert np.all((r >= templates.response_edges[0]) & (r <= templates.response_edges[-1]))


def test_smear_samples_the_templates(inputs):
    _, templates, _ = inputs
    n = 200_000
    k = 6  # pT bin 150-200 GeV
    pt = np.full(n, templates.pt_centers[k])
    sm = rs.smear(pt, np.full(n, 0.3), np.zeros(n), np.arange(n + 1), templates, seed=1,
                  file_id="x", entry=np.arange(n), n_smear=1)
    r = sm.pt / pt
    mean, std = templates.moments()
    assert r.mean() == pytest.approx(mean[k, 0], abs=3 * std[k, 0] / np.sqrt(n))
    assert r.std() == pytest.approx(std[k, 0], rel=0.02)
    # a pT between two bin centers samples the linear mixture of the two pdfs
    pt_mid = 0.5 * (templates.pt_centers[k] + templates.pt_centers[k + 1])
    sm = rs.smear(np.full(n, pt_mid), np.full(n, 0.3), np.zeros(n), np.arange(n + 1), templates,
                  seed=2, file_id="x", entry=np.arange(n), n_smear=1)
    r = sm.pt / pt_mid
    expect = 0.5 * (mean[k, 0] + mean[k + 1, 0])
    assert r.mean() == pytest.approx(expect, abs=4 * std[k, 0] / np.sqrt(n))


def test_reproducible_regardless_of_chunking(seeds, inputs):
    _, templates, priors = inputs
    n = 600
    off = seeds["offsets"][: n + 1]

    def run(lo, hi):
        o = off[lo: hi + 1] - off[lo]
        sl = slice(off[lo], off[hi])
        reb = rs.rebalance(seeds["pt"][sl], seeds["eta"][sl], seeds["phi"][sl], o,
                           seeds["n_bjets"][lo:hi], templates, priors, pt_min=OBJECT_CUTS.jet_pt_rs)
        sm = rs.smear(reb.pt, seeds["eta"][sl], seeds["phi"][sl], o, templates, seed=42,
                      file_id="root://site//store/file.root", entry=seeds["entry"][lo:hi],
                      n_smear=5, keep=reb.keep)
        boot = rs.bootstrap_weights(42, "root://site//store/file.root", seeds["entry"][lo:hi])
        return reb, sm, boot

    full = run(0, n)
    parts = [run(0, 217), run(217, 480), run(480, n)]
    np.testing.assert_array_equal(np.concatenate([p[0].pt for p in parts]), full[0].pt)
    np.testing.assert_array_equal(np.concatenate([p[1].pt for p in parts]), full[1].pt)
    np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), full[2])
    # a different seed or file changes the stream
    other = rs.smear(full[0].pt, seeds["eta"][: off[-1]], seeds["phi"][: off[-1]], off,
                     templates, seed=43, file_id="root://site//store/file.root",
                     entry=seeds["entry"][:n], n_smear=5, keep=full[0].keep)
    assert not np.array_equal(other.pt, full[1].pt)


# ----------------------------------------------------------------------------------------
# Bootstrap
# ----------------------------------------------------------------------------------------
def test_bootstrap_weights_are_poisson():
    w = rs.bootstrap_weights(7, "file", np.arange(200_000), n_bootstrap=10)
    assert w.shape == (200_000, 10)
    assert w.mean() == pytest.approx(1.0, abs=0.005)
    assert w.var() == pytest.approx(1.0, abs=0.01)
    assert np.mean(w == 0) == pytest.approx(np.exp(-1), abs=0.003)
    # replicas are independent
    assert abs(np.corrcoef(w[:, 0], w[:, 1])[0, 1]) < 0.01


def test_bootstrap_uncertainty_of_a_count():
    """The bootstrap std of a histogram of N unit-weight seeds is ~ sqrt(N) per bin."""
    n = 20_000
    values = np.random.default_rng(3).exponential(50.0, n)
    edges = np.array([0.0, 25.0, 50.0, 100.0, 200.0])
    boot = rs.bootstrap_weights(1, "f", np.arange(n), n_bootstrap=200)
    mean, std = rs.bootstrap_mean_std(rs.bootstrap_histograms(values, 1.0, boot, edges))
    counts = np.histogram(values, edges)[0]
    np.testing.assert_allclose(mean, counts, rtol=0.02)
    np.testing.assert_allclose(std, np.sqrt(counts), rtol=0.15)
    with pytest.raises(ConfigError):
        rs.bootstrap_mean_std(np.ones((1, 4)))


# ----------------------------------------------------------------------------------------
# Empty |eta| bins and a configurable binning (issue 21)
# ----------------------------------------------------------------------------------------
def test_empty_eta_bins_borrow_from_the_nearest_populated_one(tmp_path):
    """Template jets only at |eta| < 2.5: the 2.5-3.0 and 3.0-5.0 bins borrow the pdfs of the
    1.9-2.5 bin (counted, in the file too), and the prediction runs, jets at |eta| > 2.5
    included."""
    toy = make_toy(6000, seed=21)
    sel = rs.select_template_jets(toy["reco_pt"], toy["reco_eta"], toy["reco_phi"], toy["offsets"],
                                  toy["gen_pt"], toy["gen_eta"], toy["gen_phi"], toy["offsets"])
    central = np.abs(sel["gen_eta"]) < 2.5
    templates = rs.build_response_templates(sel["reco_pt"][central], sel["gen_pt"][central],
                                            sel["gen_eta"][central])
    k_last = int(np.searchsorted(ETA_EDGES, 2.5)) - 1  # the last populated |eta| bin
    assert ETA_EDGES[k_last + 1] == 2.5 and templates.pdf.shape[1] == k_last + 3
    for k in (k_last + 1, k_last + 2):
        np.testing.assert_array_equal(templates.pdf[:, k], templates.pdf[:, k_last])
        assert np.all(templates.entries[:, k] == 0)
    n_pt = PT_EDGES.size - 1
    assert templates.borrowed_bins()["abseta"] == 2 * n_pt
    assert templates.borrowed_bins()["pt"] == int((templates.entries[:, : k_last + 1] <= 0).sum())
    # a middle empty bin takes its nearest neighbour (the lower one of two equally near)
    mid = np.abs(sel["gen_eta"]) < 0.8
    mid |= (np.abs(sel["gen_eta"]) >= 1.3) & (np.abs(sel["gen_eta"]) < 2.5)
    t2 = rs.build_response_templates(sel["reco_pt"][mid], sel["gen_pt"][mid], sel["gen_eta"][mid],
                                     eta_edges=(0.0, 0.8, 1.3, 2.5))
    np.testing.assert_array_equal(t2.pdf[:, 1], t2.pdf[:, 0])
    with pytest.raises(ConfigError, match="no matched jets in any"):
        rs.build_response_templates(sel["reco_pt"][:0], sel["gen_pt"][:0], sel["gen_eta"][:0])
    # the file says how many bins were borrowed and reads back the same binning
    priors = rs.build_priors(toy["gen_pt"], toy["gen_eta"], toy["gen_phi"], toy["offsets"],
                             toy["n_bjets"], pt_min=OBJECT_CUTS.jet_pt_rs)
    path = rs.write_correctionset(tmp_path / "t.json", templates, priors)
    desc = json.loads(path.read_text())["corrections"][0]["description"]
    assert json.loads(desc.split("softtrack metadata: ", 1)[1])["abseta_borrowed_bins"] == 2 * n_pt
    back, priors_back = rs.read_correctionset(path)
    np.testing.assert_array_equal(back.eta_edges, ETA_EDGES)
    np.testing.assert_array_equal(back.pdf, templates.pdf)
    # the prediction: rebalance and smear seed jets reaching |eta| 4.5
    s = seed_jets(make_toy(300, seed=22))
    assert np.any(np.abs(s["eta"]) > 3.0)
    reb = rs.rebalance(s["pt"], s["eta"], s["phi"], s["offsets"], s["n_bjets"], back, priors_back,
                       pt_min=OBJECT_CUTS.jet_pt_rs)
    assert reb.keep.sum() > 100 and np.all(np.isfinite(reb.pt))
    sm = rs.smear(reb.pt, s["eta"], s["phi"], s["offsets"], back, seed=3, file_id="f", entry=s["entry"],
                  n_smear=3, keep=reb.keep, event_weight=np.ones(s["entry"].size))
    assert sm.offsets.size - 1 == 3 * reb.keep.sum() and np.all(np.isfinite(sm.pt))


def test_fully_populated_templates_file_is_unchanged(inputs):
    """No empty |eta| bin: no borrowing key in the file (the default files stay as they were)."""
    _, templates, priors = inputs
    assert templates.borrowed_bins()["abseta"] == 0
    assert "abseta_borrowed_bins" not in rs.to_correctionset(templates, priors).corrections[0].description


# ----------------------------------------------------------------------------------------
# Jet directions: resolution, fit of the azimuths, smearing (docs/physics.md sec. 8)
# ----------------------------------------------------------------------------------------
#: the azimuth resolution of make_toy's reco jets
TOY_PHI_SIGMA = 0.01


def _with_directions(templates, sigma=TOY_PHI_SIGMA):
    from dataclasses import replace

    return replace(templates, phi_resolution=np.full(templates.entries.shape, sigma))


def test_direction_resolution_recovers_the_toy(inputs):
    sel, templates, _ = inputs
    ipt = np.clip(np.searchsorted(templates.pt_edges, sel["gen_pt"], side="right") - 1, 0, templates.pt_edges.size - 2)
    ieta = np.clip(np.searchsorted(templates.eta_edges, np.abs(sel["gen_eta"]), side="right") - 1, 0,
                   templates.eta_edges.size - 2)
    shape = templates.entries.shape
    flat = np.ravel_multi_index((ipt, ieta), shape)
    sumw = np.bincount(flat, minlength=np.prod(shape)).reshape(shape).astype(float)
    sumw2 = np.bincount(flat, sel["delta_phi"] ** 2, np.prod(shape)).reshape(shape)
    sumw[0, :] = sumw2[0, :] = 0.0  # an empty pT row borrows from its neighbour
    sigma = rs.direction_resolution(sumw, sumw2)
    filled = sumw > 200
    assert filled.sum() >= 10
    # RMS of a Gaussian of width sigma from N pairs: relative precision 1/sqrt(2N)
    assert np.all(np.abs(sigma[filled] / TOY_PHI_SIGMA - 1) < 4 / np.sqrt(2 * sumw[filled]))
    np.testing.assert_array_equal(sigma[0], sigma[1])


def test_gradient_with_directions_matches_finite_differences(inputs):
    _, templates, priors = inputs
    templates = _with_directions(templates, 0.03)
    rng = np.random.default_rng(6)
    for _ in range(5):
        n = int(rng.integers(2, 6))
        pt = rng.uniform(20, 400, n)
        phi = rng.uniform(-np.pi, np.pi, n)
        eta = rng.uniform(0, 4.5, n)
        x = np.r_[rng.normal(0, 0.2, n), rng.normal(0, 1.0, n)]
        nb = int(rng.integers(0, 3))
        f, g = rs.neg_log_posterior(x, pt, phi, eta, nb, templates, priors)
        h = 1e-7
        num = np.array([(rs.neg_log_posterior(x + h * e, pt, phi, eta, nb, templates, priors)[0]
                         - rs.neg_log_posterior(x - h * e, pt, phi, eta, nb, templates, priors)[0]) / (2 * h)
                        for e in np.eye(2 * n)])
        np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-3)
        assert np.isfinite(f)


def test_direction_fit_matches_scipy(seeds, inputs):
    _, templates, priors = inputs
    templates = _with_directions(templates)
    n = 100
    off = seeds["offsets"][: n + 1]
    sl = slice(0, off[-1])
    res = rs.rebalance(seeds["pt"][sl], seeds["eta"][sl], seeds["phi"][sl], off, seeds["n_bjets"][:n], templates,
                       priors, pt_min=OBJECT_CUTS.jet_pt_rs)
    ref = rs.rebalance_scipy(seeds["pt"][sl], seeds["eta"][sl], seeds["phi"][sl], off, seeds["n_bjets"][:n],
                             templates, priors, pt_min=OBJECT_CUTS.jet_pt_rs)
    d = res.neg_log_posterior - ref["neg_log_posterior"]
    ok = np.isfinite(d)
    print("numba - scipy -log posterior: quantiles", np.round(np.quantile(d[ok], [0.05, 0.25, 0.5, 0.75, 0.95]), 4))
    # twice the parameters, a more multi-modal posterior (which jet turned): most events reach
    # the same optimum, and the numba optimizer is not the worse one more often
    assert ok.sum() > 0.95 * n and np.mean(np.abs(d[ok]) < 1e-3) > 0.6
    assert np.mean(d[ok] > 0.1) < np.mean(d[ok] < -0.1) + 0.05


def test_direction_fit_removes_the_direction_imbalance(inputs):
    """Hard jets (pT scale 400 GeV) with azimuths mis-measured by 0.05 rad: with the azimuths
    fitted, fewer events keep a hard MHT too large to smear and the rebalanced hard MHT is
    closer to the true one (of the gen jets) than with the directions kept."""
    _, templates, _ = inputs
    toy = make_toy(6000, seed=9, pt_scale=400.0)
    rng = np.random.default_rng(10)
    toy["reco_phi"] = np.angle(np.exp(1j * (toy["gen_phi"] + rng.normal(0, 0.05, toy["gen_phi"].size))))
    s = seed_jets(toy)
    templates = _with_directions(templates, 0.05)
    priors = rs.build_priors(toy["gen_pt"], toy["gen_eta"], toy["gen_phi"], toy["offsets"], toy["n_bjets"],
                             pt_min=OBJECT_CUTS.jet_pt_rs)
    fits = {name: rs.rebalance(s["pt"], s["eta"], s["phi"], s["offsets"], s["n_bjets"], templates, priors,
                               pt_min=OBJECT_CUTS.jet_pt_rs, fit_directions=fd)
            for name, fd in (("fitted", True), ("kept", False))}
    np.testing.assert_array_equal(fits["kept"].phi, s["phi"])  # without the direction fit: the measured ones
    for r in fits.values():
        assert r.summary["converged"] >= 0.99 * r.summary["events"]
    assert fits["fitted"].summary["mht_too_large"] < 0.6 * fits["kept"].summary["mht_too_large"]
    off = s["offsets"]
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    gen = -(np.bincount(ev, s["gen_pt"] * np.cos(s["gen_phi"]), off.size - 1)
            + 1j * np.bincount(ev, s["gen_pt"] * np.sin(s["gen_phi"]), off.size - 1))
    mht = rs.hard_mht(s["pt"], s["eta"], s["phi"], off, 15.0, OBJECT_CUTS.jet_eta_wide)["mht"]
    big = fits["fitted"].keep & fits["kept"].keep & (mht > 40.0)
    assert big.sum() > 1000
    rms = {name: float(np.sqrt(np.mean(np.abs(r.mht * np.exp(1j * r.mht_phi) - gen)[big] ** 2)))
           for name, r in fits.items()}
    print("rms |MHT_rebalanced - MHT_true| (GeV):", rms, {k: r.summary["mht_too_large"] for k, r in fits.items()})
    assert rms["fitted"] < 0.92 * rms["kept"]


def test_smearing_draws_the_azimuth_resolution(inputs):
    _, templates, _ = inputs
    templates = _with_directions(templates, 0.04)
    n = 20000
    off = np.arange(0, 2 * n + 1, 2)
    pt = np.full(2 * n, 300.0)
    phi = np.tile([0.0, np.pi - 1e-3], n)
    out = rs.smear(pt, np.zeros(2 * n), phi, off, templates, seed=3, file_id="f", entry=np.arange(n), n_smear=2)
    d = np.angle(np.exp(1j * (out.phi - np.tile(phi[:2], 2 * n))))  # every event: the same two jets, twice
    assert abs(d.std() / 0.04 - 1) < 0.02 and abs(d.mean()) < 0.001
    plain = rs.smear(pt, np.zeros(2 * n), phi, off, inputs[1], seed=3, file_id="f", entry=np.arange(n), n_smear=2)
    np.testing.assert_array_equal(plain.phi, np.tile(phi[:2], 2 * n))


@pytest.mark.parametrize("directions", [False, True])
def test_smear_skimmed_keeps_exactly_what_smear_and_the_mht_skim_keep(seeds, inputs, rebalanced, directions):
    """The fused smear-and-skim kernel: bit for bit the events :func:`rs.smear` makes whose
    hard MHT (:func:`rs.hard_mht`) passes the skim, with their sources, seed events, weights
    and the pre-skim totals, in batches."""
    _, templates, _ = inputs
    if directions:
        templates = _with_directions(templates)
    n = 3000
    off = seeds["offsets"][: n + 1]
    pt, eta, phi = (a[: off[-1]] for a in (rebalanced.pt, seeds["eta"], rebalanced.phi))
    keep = rebalanced.keep[:n].copy()
    keep[::7] = False
    entry = np.arange(n, dtype=np.int64) * 3 + 11
    weight = np.random.default_rng(4).uniform(0.5, 2.0, n)
    kw = {"seed": 5, "file_id": "f.root", "n_smear": 20}
    cut = {"mht_pt_min": 30.0, "mht_eta_max": 2.4, "skim_mht": 60.0}
    batches = list(rs.smear_skimmed(pt, eta, phi, off, keep, templates, entry=entry, event_weight=weight,
                                    batch_events=1000, **kw, **cut))
    assert len(batches) == 3
    got = {f: np.concatenate([getattr(b, f) for b, _, _ in batches]) for f in ("pt", "eta", "phi", "source",
                                                                             "event_index", "weight")}
    sm = rs.smear(pt, eta, phi, off, templates, entry=entry, keep=keep, event_weight=weight, **kw)
    mht = rs.hard_mht(sm.pt, sm.eta, sm.phi, sm.offsets, cut["mht_pt_min"], cut["mht_eta_max"])["mht"]
    passed = mht > cut["skim_mht"]
    assert 0.01 < passed.mean() < 0.9
    jets = np.repeat(passed, np.diff(sm.offsets))
    sel = np.flatnonzero(keep)
    src = np.concatenate([np.arange(off[e], off[e + 1]) for e in np.repeat(sel, kw["n_smear"])])
    for field, ref in (("pt", sm.pt[jets]), ("eta", sm.eta[jets]), ("phi", sm.phi[jets]), ("source", src[jets]),
                       ("event_index", sm.event_index[passed]), ("weight", sm.weight[passed])):
        assert got[field].tobytes() == ref.tobytes(), field
    counts = np.concatenate([np.diff(b.offsets) for b, _, _ in batches])
    np.testing.assert_array_equal(counts, np.diff(sm.offsets)[passed])
    assert sum(k for _, _, k in batches) == sm.weight.size
    assert sum(w for _, w, _ in batches) == pytest.approx(sm.weight.sum(), rel=1e-12)
