"""The generator's numba kernels (tracks, vertices, PF candidates) against independent numpy
implementations of the same rules and against the documented detector model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from scipy import stats

from analysis import contract as dc
from analysis.toymc import rand, tracking
from analysis.toymc.perigee import perigee_from_point
from analysis.toymc.sample import generate_mc
from analysis.toymc.soft import FROM_PV_TIGHT_DZ, PF_ISO_CONE
from analysis.toymc.truth import DATA_DETECTOR, SIM_DETECTOR


@njit(cache=True)
def _draw_poisson(st, lam, n):
    table = tracking.poisson_table(lam)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = tracking.poisson_small(st, table)
    return out


def _inversion_by_summing(u, lam):
    """Poisson inversion that sums the CDF term by term for every draw (the generator before the table)."""
    p = math.exp(-lam)
    cdf, k = p, 0
    while u > cdf and p > 0.0:
        k += 1
        p *= lam / k
        cdf += p
    return k


@pytest.mark.parametrize("lam", [0.6, 2.0, 6.0])
def test_poisson_table_inverts_like_summing_per_draw(lam):
    """The guided inversion gives the k of summing the CDF for every draw, also at the edges of the
    guide table's entries and at the CDF values themselves."""
    cdf, guide = tracking.poisson_table(lam)
    edges = np.arange(guide.size) / guide.size
    u = np.concatenate([np.random.default_rng(3).random(20_000), [0.0, 1.0 - 2**-53, np.nextafter(1.0, 0) - 1e-16],
                        edges, np.nextafter(edges, 0.0)[1:], cdf[cdf < 1.0], np.nextafter(cdf[cdf < 1.0], 1.0)])
    assert np.array_equal([tracking.poisson_inverse(x, cdf, guide) for x in u], [_inversion_by_summing(x, lam) for x in u])


@pytest.mark.parametrize("lam", [0.6, 2.0, 6.0])
def test_poisson_by_inversion(lam):
    x = _draw_poisson(rand.stream(np.random.default_rng(4)), lam, 200_000)
    k = np.arange(int(4 * lam + 15))
    expected = stats.poisson.pmf(k, lam) * x.size
    observed = np.bincount(x, minlength=k.size)[: k.size]
    ok = expected > 10
    chi2 = (((observed - expected) ** 2 / expected)[ok]).sum()
    assert stats.chi2.sf(chi2, ok.sum() - 1) > 1e-3
    assert x.mean() == pytest.approx(lam, abs=5 * math.sqrt(lam / x.size))


@njit(cache=True)
def _soft_pts(st, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = tracking.soft_pt(st)
    return out


def _soft_pt_cdf(x):
    """The documented soft-pT distribution: SOFT_PT_MIN plus a Gamma variate, and a Pareto tail
    above SOFT_PT_TAIL_START."""
    f, start = tracking.SOFT_PT_TAIL_FRACTION, tracking.SOFT_PT_TAIL_START
    tail = 1.0 - (np.maximum(x, start) / start) ** -tracking.SOFT_PT_TAIL_INDEX
    shape, scale = tracking.SOFT_PT_GAMMA
    return f * tail + (1 - f) * stats.gamma.cdf(np.maximum(x - tracking.SOFT_PT_MIN, 0.0), shape, scale=scale)


def test_soft_pt_spectrum_is_the_documented_one():
    """The sampled soft-particle pT follows the documented density (chi2 over 0.08-20 GeV, bins
    of 0.04 GeV up to 3 GeV), with its documented 56% step at the start of the tail."""
    x = _soft_pts(rand.stream(np.random.default_rng(11)), 1_000_000)
    assert x.min() >= tracking.SOFT_PT_MIN
    edges = np.concatenate([np.arange(0.08, 3.0, 0.04), np.geomspace(3.0, 20.0, 15)[1:]])
    expected = np.diff(_soft_pt_cdf(edges)) * x.size
    observed, _ = np.histogram(x, edges)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, edges.size - 2) > 1e-3
    h = 1e-6
    below = (_soft_pt_cdf(1.0) - _soft_pt_cdf(1.0 - h)) / h
    above = (_soft_pt_cdf(1.0 + h) - _soft_pt_cdf(1.0)) / h
    assert above / below == pytest.approx(1.56, abs=0.01)


@njit(cache=True)
def _kernel_model(pt, eta, rho, eff, res):
    e, s = np.empty(pt.size), np.empty((pt.size, 5))
    for i in range(pt.size):
        e[i] = tracking.efficiency(pt[i], rho[i], eff)
        tracking.sigmas(pt[i], eta[i], res, s[i])
    return e, s


@pytest.mark.parametrize("det", [SIM_DETECTOR, DATA_DETECTOR], ids=["sim", "data"])
def test_kernel_track_model_is_the_documented_one(det):
    rng = np.random.default_rng(1)
    pt, eta, rho = rng.uniform(0.05, 20, 5000), rng.uniform(-2.5, 2.5, 5000), rng.uniform(0, 80, 5000)
    eff, res, _, _ = tracking.model_arrays(det)
    e, s = _kernel_model(pt, eta, rho, eff, res)
    assert e == pytest.approx(det.tracks.efficiency(pt, rho), rel=1e-12)
    expected = det.tracks.sigmas(pt, eta) * np.array([1, 1, 1, det.model.dxy_err_scale, det.model.dz_err_scale])
    assert s == pytest.approx(expected, rel=1e-12)


@njit(cache=True)
def _accepted(u, pt, rho, eff):
    out, ref = np.empty(u.size, np.bool_), np.empty(u.size)
    for i in range(u.size):
        out[i] = tracking.accepted(u[i], pt[i], rho[i], eff)
        ref[i] = tracking.efficiency(pt[i], rho[i], eff)
    return out, ref


def test_squeezed_efficiency_decides_as_the_efficiency():
    """The reconstruction decision with the squeeze bounds is u < efficiency for every u, also
    for u one rounding step either side of the efficiency and for displaced particles."""
    rng = np.random.default_rng(8)
    n = 400_000
    pt = np.concatenate([rng.uniform(0.0, 3.0, n), np.exp(rng.uniform(-3, 5, n))])
    rho = np.where(rng.random(2 * n) < 0.7, 0.0, rng.uniform(0, 70, 2 * n))
    eff, _, _, _ = tracking.model_arrays(SIM_DETECTOR)
    _, e = _accepted(np.zeros(pt.size), pt, rho, eff)
    for u in (rng.random(pt.size), e, np.nextafter(e, 0.0), np.nextafter(e, 1.0)):
        got, ref = _accepted(u, pt, rho, eff)
        assert np.array_equal(got, u < ref)


@njit(cache=True)
def _kernel_helix(pt, eta, phi, q, vx, vy, vz):
    out = np.empty((pt.size, 5))
    for i in range(pt.size):
        out[i] = tracking.helix_at_beamline(pt[i], eta[i], phi[i], q[i], vx[i], vy[i], vz[i])
    return out


def test_generator_helix_matches_analysis_perigee():
    """The generator's truth helix equals analysis.toymc.perigee.perigee_from_point (written separately)."""
    rng = np.random.default_rng(2)
    n = 20000
    pt, eta, phi = rng.uniform(0.1, 30, n), rng.uniform(-2.5, 2.5, n), rng.uniform(-np.pi, np.pi, n)
    q = rng.choice([-1.0, 1.0], n)
    r, a = rng.uniform(0, 40, n), rng.uniform(-np.pi, np.pi, n)
    vx, vy, vz = r * np.cos(a), r * np.sin(a), rng.normal(0, 5, n)
    got = _kernel_helix(pt, eta, phi, q, vx, vy, vz)
    ref = perigee_from_point(vx, vy, vz, pt, eta, phi, q)
    assert got[:, 0] == pytest.approx(q / pt)
    assert got[:, 1] == pytest.approx(np.arctan(np.sinh(eta)))
    dphi = (got[:, 2] - ref.phi0 + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(dphi).max() < 1e-9
    assert np.abs(got[:, 3] - ref.d0).max() < 1e-7
    assert np.abs(got[:, 4] - ref.ref_z).max() < 1e-7


@njit(cache=True)
def _series(x):
    out = np.empty((3, x.size))
    for i in range(x.size):
        out[0, i], out[1, i] = tracking.sincos_small(x[i])
        out[2, i] = tracking.asinh_small(x[i])
    return out


def test_series_equal_the_functions_to_rounding():
    """sin, cos and asinh of small arguments by their series agree with libm to ~1 ulp, up to and
    beyond SERIES_MAX (where the kernels switch to libm), and asin's series in the perigee too."""
    edge = tracking.SERIES_MAX
    x = np.concatenate([np.linspace(-2 * edge, 2 * edge, 200_001), np.geomspace(1e-300, edge, 1000),
                        np.nextafter(edge, 0.0) * np.array([-1.0, 1.0]), [0.0, -0.0]])
    got = _series(x)
    for row, ref in zip(got, (np.sin(x), np.cos(x), np.arcsinh(x)), strict=True):
        assert np.all(np.abs(row - ref) <= 2.5 * np.spacing(np.abs(ref)))
    # turning angles below and above SERIES_MAX (asin series and atan2) match the analysis helix
    pt = np.array([30.0, 30.0, 3.0, 0.5])  # radius 40 m .. 66 cm
    r = np.array([1e-3, 40.0, 20.0, 30.0])
    got = _kernel_helix(pt, np.full(4, 0.7), np.full(4, 0.3), np.ones(4), r, np.zeros(4), np.zeros(4))
    ref = perigee_from_point(r, np.zeros(4), np.zeros(4), pt, np.full(4, 0.7), np.full(4, 0.3), np.ones(4))
    assert np.abs(got[:, 2] - ref.phi0).max() < 1e-12
    assert np.abs(got[:, 4] - ref.ref_z).max() < 1e-9


@pytest.fixture(scope="module")
def events():
    branches, _ = generate_mc("ttjets", "2018", 400, 21)
    return branches


def _per_event(col):
    off = np.concatenate([[0], np.cumsum(col.counts)])
    return [slice(off[e], off[e + 1]) for e in range(col.counts.size)]


def test_track_impact_parameters_follow_the_contract(events):
    t = events["Track"]
    ev = t.event_index()
    pvx, pvy, pvz = (events[f"PV_{c}"][ev] for c in "xyz")
    s, c, tanl = np.sin(t["phi"]), np.cos(t["phi"]), np.sinh(t["eta"])
    dx, dy = t["refX"] - pvx, t["refY"] - pvy
    assert t["dxy"] == pytest.approx(-dx * s + dy * c, abs=1e-12)
    assert t["dz"] == pytest.approx((t["refZ"] - pvz) - (dx * c + dy * s) * tanl, abs=1e-12)
    dxy_err = np.sqrt(t["cov33"].astype(np.float64) + events["PV_covXX"][ev] * s**2 + events["PV_covYY"][ev] * c**2)
    assert t["dxyErr"] == pytest.approx(dxy_err, rel=1e-9)
    # the reference point is the PCA to the beam line: perpendicular to the momentum
    assert np.abs(t["refX"] * c + t["refY"] * s).max() < 1e-9


def test_vertex_association_brute_force(events):
    """vtxIdx: smallest straight-line dz pull within 3 sigma (floor 0.5 mm), |dxy| < 2 mm."""
    t, o = events["Track"], events["OtherPV"]
    n_checked = 0
    for ts, os_, e in zip(_per_event(t), _per_event(o), range(t.counts.size), strict=True):
        vx = np.concatenate([[events["PV_x"][e]], o["x"][os_]])
        vy = np.concatenate([[events["PV_y"][e]], o["y"][os_]])
        vz = np.concatenate([[events["PV_z"][e]], o["z"][os_]])
        vsz = np.sqrt(np.concatenate([[events["PV_covZZ"][e]], o["covZZ"][os_]]))
        phi, tanl = t["phi"][ts, None], np.sinh(t["eta"][ts, None])
        rx, ry, rz = t["refX"][ts, None] - vx, t["refY"][ts, None] - vy, t["refZ"][ts, None] - vz
        dxy = -rx * np.sin(phi) + ry * np.cos(phi)
        dz = rz - (rx * np.cos(phi) + ry * np.sin(phi)) * tanl
        sigma = np.sqrt(t["dzErr"][ts, None] ** 2 + vsz**2)
        ok = (np.abs(dxy) <= tracking.ASSOC_DXY_MAX) & (np.abs(dz) <= np.maximum(3 * sigma, tracking.ASSOC_DZ_FLOOR))
        pull = np.where(ok, np.abs(dz) / sigma, np.inf)
        expected = np.where(ok.any(axis=1), pull.argmin(axis=1), -1)
        assert np.array_equal(t["vtxIdx"][ts], expected)
        n_checked += expected.size
    assert n_checked > 5000
    origin = t["genOrigin"]
    primary = origin == dc.TRACK_ORIGINS["primary"]
    assert (t["vtxIdx"][primary & (np.abs(t["dxy"]) < 0.01)] == 0).mean() > 0.9
    assert (t["vtxIdx"][origin == dc.TRACK_ORIGINS["pileup"]] > 0).mean() > 0.5


def test_pf_candidates_and_isolation_brute_force(events):
    t, pf = events["Track"], events["PFCand"]
    for ts, ps in zip(_per_event(t), _per_event(pf), strict=True):
        charged = pf["charge"][ps] != 0
        # every PF track appears once as a charged candidate, with the fromPV rule
        trk = pf["trkIdx"][ps][charged]
        assert np.array_equal(trk, np.nonzero(t["isPFcand"][ts])[0])
        vtx, dz = t["vtxIdx"][ts][trk], t["dz"][ts][trk]
        expected = np.where(vtx == 0, np.where(np.abs(dz) < FROM_PV_TIGHT_DZ, 3, 2), np.where(vtx > 0, 0, 1))
        assert np.array_equal(pf["fromPV"][ps][charged], expected)
        assert np.all(pf["trkIdx"][ps][~charged] == -1)
        # isolation: neutral or PV-charged candidates within DeltaR < 0.3, not the track itself
        used = ~charged | (pf["fromPV"][ps] >= 2)
        deta = pf["eta"][ps][None, :] - t["eta"][ts][:, None]
        dphi = (pf["phi"][ps][None, :] - t["phi"][ts][:, None] + np.pi) % (2 * np.pi) - np.pi
        inside = (deta**2 + dphi**2 < PF_ISO_CONE**2) & used[None, :]
        inside &= pf["trkIdx"][ps][None, :] != np.arange(ts.stop - ts.start)[:, None]
        iso = (inside * pf["pt"][ps][None, :]).sum(axis=1)
        assert t["pfIso03"][ts] == pytest.approx(iso, rel=1e-5, abs=1e-5)


def test_tracks_are_their_truth_helix_smeared_by_the_stored_covariance():
    """Genuine tracks of prompt particles: (q/pT, lambda, phi, d0, z0) minus the truth perigee of
    their generator particle, divided by the stored errors, are unit normal with the configured
    correlations (the kernel smears by angle-addition formulas, not through lambda and atan)."""
    events, _ = generate_mc("ttjets", "2018", 3000, 21)
    t, g = events["Track"], events["GenPart"]
    linked = t["genPartIdx"] >= 0
    flat = (np.concatenate([[0], np.cumsum(g.counts)[:-1]])[t.event_index()] + t["genPartIdx"])[linked]
    apdg = np.abs(g["pdgId"][flat])
    q_true = np.where((apdg == 11) | (apdg == 13), -1.0, 1.0) * np.sign(g["pdgId"][flat])
    prompt = np.hypot(g["vx"][flat], g["vy"][flat]) < 0.01
    truth = perigee_from_point(g["vx"][flat], g["vy"][flat], g["vz"][flat], g["pt"][flat], g["eta"][flat],
                                     g["phi"][flat], q_true)
    true = np.stack([q_true / g["pt"][flat], np.arctan(np.sinh(g["eta"][flat])), truth.phi0, truth.d0, truth.ref_z])
    phi = t["phi"][linked]
    meas = np.stack([t["charge"][linked] / t["pt"][linked], np.arctan(np.sinh(t["eta"][linked])), phi,
                     -t["refX"][linked] * np.sin(phi) + t["refY"][linked] * np.cos(phi), t["refZ"][linked]])
    resid = meas - true
    resid[2] = (resid[2] + np.pi) % (2 * np.pi) - np.pi
    err = np.sqrt(np.stack([t[f"cov{i}{i}"][linked] for i in range(5)]).astype(np.float64))
    pull = (resid / err)[:, prompt]
    assert pull.shape[1] > 30000  # statistical precision of each moment: ~0.006
    assert np.abs(pull.mean(axis=1)).max() < 0.03
    assert np.abs(pull.std(axis=1) - 1.0).max() < 0.03
    corr = np.array(SIM_DETECTOR.tracks.correlation)
    assert np.abs(np.corrcoef(pull) - corr).max() < 0.03


def test_vertex_counts_and_truth_links(events):
    o, t, g = events["OtherPV"], events["Track"], events["GenPart"]
    assert np.array_equal(events["PV_npvs"], 1 + o.counts)
    assert o["covZZ"].min() > 0
    # every genuine track links to a charged, stable generator particle of its event
    linked = t["genPartIdx"] >= 0
    flat = (np.concatenate([[0], np.cumsum(g.counts)[:-1]])[t.event_index()] + t["genPartIdx"])[linked]
    assert np.all(g["status"][flat] == 1)
    assert np.all(np.isin(np.abs(g["pdgId"][flat]), (11, 13, 211, 321, 2212)))
    assert np.array_equal(linked, t["genOrigin"] == dc.TRACK_ORIGINS["primary"])


@njit(cache=True)
def _associate_all(e_of, rx, ry, rz, phi, tanl, dz_err, pv, v_off, vx, vy, vz, vsz, hints):
    """Association of every track (events in any order); the window search walks from the window
    start of the event's previous track (hints 0, as the generator), from the lowest vertex (1),
    from the highest (2) or from anywhere (3)."""
    max_nv = 1 + np.max(v_off[1:] - v_off[:-1])
    zs, order = np.empty((4, max_nv)), np.empty(max_nv, np.int64)
    out = np.empty(rx.size, np.int64)
    hint = 0
    for i in range(rx.size):
        e = e_of[i]
        nv, r_max, sz_max = tracking.sort_vertices(e, pv, v_off, vx, vy, vz, vsz, zs, order)
        if hints == 1:
            hint = 0
        elif hints == 2:
            hint = nv - 1
        elif hints == 3:
            hint = (i * 7919) % (nv + 3) - 1  # also out of range: clipped
        out[i], hint = tracking.associate(rx[i], ry[i], rz[i], math.cos(phi[i]), math.sin(phi[i]), tanl[i], dz_err[i],
                                          zs, order, nv, r_max, sz_max, hint)
    return out


def test_windowed_association_equals_testing_every_vertex():
    """The z-window search finds what a scan over all vertices finds, also for displaced, steep
    tracks, vertices far off the beam line and vertices at nearly the same z (ties), whichever
    vertex its walk starts from."""
    rng = np.random.default_rng(5)
    n_ev, n_trk = 300, 40
    n_v = rng.integers(0, 40, n_ev)
    v_off = np.concatenate([[0], np.cumsum(n_v)])
    m = v_off[-1]
    vz = rng.normal(0, 3.5, m)
    vz[::7] = np.round(vz[::7], 1)  # clusters and exact ties in z
    vx, vy = rng.normal(0, 0.05, m), rng.normal(0, 0.05, m)
    vsz = rng.uniform(0.002, 0.05, m)
    pv = np.stack([rng.normal(0, 0.01, n_ev), rng.normal(0, 0.01, n_ev), rng.normal(0, 3.5, n_ev),
                   np.full(n_ev, 0.0015), np.full(n_ev, 0.0015), rng.uniform(0.002, 0.02, n_ev)])
    e_of = np.repeat(np.arange(n_ev), n_trk)
    k = e_of.size
    phi = rng.uniform(-np.pi, np.pi, k)
    d0 = np.where(rng.random(k) < 0.5, rng.normal(0, 0.02, k), rng.laplace(0, 0.3, k))
    rx, ry = -d0 * np.sin(phi), d0 * np.cos(phi)
    # tracks near a vertex of their event (or the PV), and some anywhere
    pick = rng.integers(0, np.maximum(n_v[e_of], 1))
    has = n_v[e_of] > 0
    near = np.where(has, vz[np.minimum(v_off[e_of] + pick, m - 1)], pv[2, e_of])
    rz = np.where(rng.random(k) < 0.8, near + rng.normal(0, 0.05, k), rng.normal(0, 5, k))
    tanl = np.sinh(rng.uniform(-2.5, 2.5, k))
    dz_err = np.exp(rng.uniform(np.log(0.001), np.log(0.5), k))
    got = [_associate_all(e_of, rx, ry, rz, phi, tanl, dz_err, pv, v_off, vx, vy, vz, vsz, h) for h in range(4)]

    expected = np.empty(k, np.int64)
    for e in range(n_ev):
        sl = slice(v_off[e], v_off[e + 1])
        x, y = np.concatenate([[pv[0, e]], vx[sl]]), np.concatenate([[pv[1, e]], vy[sl]])
        z, sz = np.concatenate([[pv[2, e]], vz[sl]]), np.concatenate([[pv[5, e]], vsz[sl]])
        t = np.nonzero(e_of == e)[0][:, None]
        c, s = np.cos(phi[t]), np.sin(phi[t])
        dxy = -(rx[t] - x) * s + (ry[t] - y) * c
        dz = (rz[t] - z) - ((rx[t] - x) * c + (ry[t] - y) * s) * tanl[t]
        var = dz_err[t] ** 2 + sz**2
        ok = (np.abs(dxy) <= tracking.ASSOC_DXY_MAX) & (dz**2 <= np.maximum(9 * var, tracking.ASSOC_DZ_FLOOR**2))
        pull2 = np.where(ok, dz**2 / var, np.inf)
        expected[t[:, 0]] = np.where(ok.any(axis=1), pull2.argmin(axis=1), -1)
    for g in got:
        assert np.array_equal(g, expected)
    assert (expected > 0).mean() > 0.3 and (expected == 0).any() and (expected == -1).mean() > 0.05


def test_concatenate_is_the_per_event_interleaving():
    """jagged.concatenate (block copies per event) puts, in every event, the items of the first
    part, then of the second, ...: the same as a stable sort of all items by event; values take the
    first part's dtype; empty events and empty parts are fine; bad parts are refused."""
    from analysis.toymc.jagged import Jagged, concatenate

    rng = np.random.default_rng(3)
    for trial in range(50):
        n = int(rng.integers(0, 40))
        parts = []
        for k in range(int(rng.integers(1, 4))):
            counts = rng.integers(0, 5 if trial % 3 else 1, n).astype(np.int64)
            m = int(counts.sum())
            parts.append(Jagged(counts, {"x": rng.normal(size=m), "i": rng.integers(-9, 9, m).astype(np.int32 if k == 0 else np.float64)}))
        got = concatenate(parts)
        event = np.concatenate([p.event_index() for p in parts])
        order = np.argsort(event, kind="stable")
        assert np.array_equal(got.counts, np.sum([p.counts for p in parts], axis=0))
        assert np.array_equal(got["x"], np.concatenate([p["x"] for p in parts])[order])
        assert got["i"].dtype == np.int32
        assert np.array_equal(got["i"], np.concatenate([p["i"] for p in parts]).astype(np.int32)[order])
    a = Jagged(np.array([1, 2]), {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="events"):
        concatenate([a, Jagged(np.array([1]), {"x": np.zeros(1)})])
    with pytest.raises(ValueError, match="field x"):
        concatenate([a, Jagged(np.array([1, 1]), {"x": np.zeros(3)})])


def test_sort_within_is_numpys_stable_lexsort():
    """Jagged.sort_within (an insertion-sort kernel per event) gives exactly the permutation of
    np.lexsort by (event, key), ties (and -0.0 == 0.0) in their original order, NaN last."""
    from analysis.toymc.jagged import Jagged

    rng = np.random.default_rng(0)
    for trial in range(200):
        counts = rng.integers(0, rng.integers(1, 30), rng.integers(0, 60)).astype(np.int64)
        m = int(counts.sum())
        key = rng.integers(0, 5, m).astype(float) if trial % 2 else rng.normal(size=m)
        if m and trial % 5 == 0:
            key[rng.integers(0, m, 3)] = -0.0
        if m and trial % 7 == 0:
            key[rng.integers(0, m)] = np.nan
        jag = Jagged(counts, {"key": key})
        for descending in (True, False):
            k = -key if descending else key
            _, order = jag.sort_within(key, descending=descending)
            assert np.array_equal(order, np.lexsort((k, jag.event_index()))), (trial, descending)


def test_event_index_is_cached_per_counts_array_and_read_only():
    from analysis.toymc.jagged import Jagged

    jag = Jagged(np.array([2, 0, 3]), {"x": np.arange(5.0)})
    idx = jag.event_index()
    assert np.array_equal(idx, [0, 0, 2, 2, 2]) and jag.event_index() is idx
    with pytest.raises(ValueError):
        idx[0] = 1
    jag.counts = np.array([1, 4, 0])  # a new counts array: a new index
    assert np.array_equal(jag.event_index(), [0, 1, 1, 1, 1])


def test_jet_responses_are_the_binned_mixture():
    """JetResponseModel.sample (one kernel pass) gives exactly the array formula of the model:
    bins by searchsorted (pT on the edges and beyond the last, |eta| of either sign), the low
    tail below low_tail_frac, the high tail up to low + high, the Gaussian core otherwise, and
    the floor at 0.02."""
    from analysis.toymc.truth import JetResponseModel

    model = JetResponseModel()
    rng = np.random.default_rng(8)
    n = 50000
    edges = np.array(model.pt_edges[:-1])  # pT exactly on each edge, and beyond the last
    pt = np.concatenate([rng.uniform(0, 1200, n - edges.size - 6), edges, np.full(6, 2e5)])
    eta = np.concatenate([rng.uniform(-5.5, 5.5, n - 8), [-2.5, 2.5, 1.3, -1.3, 0.0, 5.0, -5.0, 7.0]])
    got = model.sample(pt, eta, np.random.default_rng(9))

    draw = np.random.default_rng(9)
    u, z, e = draw.random(n), draw.standard_normal(n), draw.standard_exponential(n)
    core, fl, fh = model.tables()
    ipt = np.clip(np.searchsorted(model.pt_edges, pt, side="right") - 1, 0, len(model.pt_edges) - 2)
    ieta = np.clip(np.searchsorted(model.eta_edges, np.abs(eta), side="right") - 1, 0, len(model.eta_edges) - 2)
    lo, hi = fl[ipt, ieta], fh[ipt, ieta]
    r = np.where(u < lo, 1.0 - model.low_tail_scale * e,
                 np.where(u < lo + hi, 1.0 + model.high_tail_scale * e, 1.0 + core[ipt, ieta] * z))
    assert np.array_equal(got, np.maximum(r, 0.02))
    assert (got == 0.02).any() and (got > 1.3).any()


def test_two_body_decay_is_the_array_formula():
    """kinematics.two_body_decay (one kernel pass) equals the array formulas of the rest-frame
    decay and kinematics.boost bit by bit, and conserves the parent's four-momentum."""
    from analysis.toymc.kinematics import boost, from_ptyphim, two_body_decay, two_body_momentum

    rng = np.random.default_rng(4)
    n = 20000
    m = rng.uniform(80, 400, n)
    parent = from_ptyphim(rng.exponential(200, n), rng.normal(0, 2, n), rng.uniform(-np.pi, np.pi, n), m)
    parent[0][:3] = parent[1][:3] = parent[2][:3] = 0.0  # parents at rest: no boost
    parent[3][:3] = m[:3]
    m1, m2 = 0.1056584, rng.uniform(0, 40, n)
    d1, d2 = two_body_decay(parent, m, m1, m2, np.random.default_rng(5))

    draw = np.random.default_rng(5)
    p = two_body_momentum(m, m1, m2) * np.ones(n)
    cos_t, ph = draw.uniform(-1.0, 1.0, n), draw.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    dx, dy, dz = p * sin_t * np.cos(ph), p * sin_t * np.sin(ph), p * cos_t
    b = tuple(c / parent[3] for c in parent[:3])
    ref1 = boost(dx, dy, dz, np.sqrt(p**2 + m1**2), *b)
    ref2 = boost(-dx, -dy, -dz, np.sqrt(p**2 + m2**2), *b)
    for got, ref in zip((*d1, *d2), (*ref1, *ref2), strict=True):
        assert np.array_equal(got, ref)
    total = np.array(d1) + np.array(d2)
    assert np.allclose(total, np.array(parent), rtol=1e-9, atol=1e-9)
    mass1 = np.sqrt(np.maximum(d1[3] ** 2 - d1[0] ** 2 - d1[1] ** 2 - d1[2] ** 2, 0))
    assert np.allclose(mass1, m1, atol=1e-4)  # a small mass from differences of large energies


def test_reco_jets_are_the_array_formula():
    """detector._reco_jets (one pass) gives what the array formulas give: the HEM response inside
    the box of affected events only, the reco selection, genJetIdx as the local index among the
    gen jets above threshold (-1 below it) and the b flavour."""
    from analysis.toymc.detector import GENJET_MIN_PT, RECO_JET_MAX_ETA, RECO_JET_MIN_PT, _reco_jets

    rng = np.random.default_rng(12)
    counts = rng.integers(0, 9, 3000).astype(np.int64)
    n, k = counts.size, int(counts.sum())
    g_pt, eta, phi = rng.exponential(30.0, k) + 3.0, rng.uniform(-5.0, 5.0, k), rng.uniform(-np.pi, np.pi, k)
    r, mass, flav = rng.uniform(0.3, 1.5, k), rng.uniform(1, 20, k), rng.choice([0.0, 4.0, 5.0], k)
    hem = rng.random(n) < 0.5
    box = np.array([-3.2, -1.2, -1.77, -0.67])
    pt, fl, it, got_counts = np.empty(k), np.empty((4, k)), np.empty((2, k), np.int64), np.zeros(n, np.int64)
    m = _reco_jets(counts, hem, g_pt, eta, phi, r, mass, flav, box, 0.8, GENJET_MIN_PT, RECO_JET_MIN_PT,
                   RECO_JET_MAX_ETA, pt, fl, it, got_counts)

    ev = np.repeat(np.arange(n), counts)
    in_hem = hem[ev] & (eta > box[0]) & (eta < box[1]) & (phi > box[2]) & (phi < box[3])
    ref_pt = g_pt * r * np.where(in_hem, 0.8, 1.0)
    gkeep = g_pt > GENJET_MIN_PT
    before = np.cumsum(gkeep) - gkeep  # gen jets above threshold before each jet, over all events
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gen_idx = np.where(gkeep, before - before[np.minimum(first, k - 1)][ev], -1)
    keep = (ref_pt > RECO_JET_MIN_PT) & (np.abs(eta) < 4.7)
    assert in_hem.any() and not keep.all()
    assert np.array_equal(pt, ref_pt)
    assert np.array_equal(got_counts, np.bincount(ev[keep], minlength=n))
    for row, ref in zip(fl[:, :m], (ref_pt, eta, phi, mass * r), strict=True):
        assert np.array_equal(row, ref[keep])
    assert np.array_equal(it[0, :m], np.where(flav == 5, 5, 0)[keep])
    assert np.array_equal(it[1, :m], gen_idx[keep])
