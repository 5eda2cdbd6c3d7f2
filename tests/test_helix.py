"""Tests of analysis.helix (docs/physics.md sec. 3): closest approach against an independent
numpy reference, covariance propagation by pulls, helical truth matching and the track
classes. Fixed seeds; the reference never calls the numba kernels.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from analysis import helix
from analysis.contract import TRACK_COV_PAIRS, cov_index
from analysis.softtrack.config import R1_CM, TRACK_CLASSES
from analysis.softtrack.labels import track_class_labels, track_class_labels_jagged
from analysis.toymc.perigee import perigee_from_point

# --- tolerances of the tests -------------------------------------------------------------
IP_TOLERANCE_CM = 1.0e-5
#: two minima closer than this in distance are treated as degenerate (distance-only check)
DEGENERATE_MARGIN_CM = 1.0e-4
PULL_WIDTH_TOLERANCE = 0.05
N_ACCURACY = 100_000
N_SAMPLES = 1024
#: bisections of the reference refinement: the bracket of 2 samples shrinks below 1e-18 rad
N_BISECTIONS = 56
N_PULLS = 40_000


# =========================================================================================
# Independent reference: dense sampling of eq. 3.1 plus bisection on the derivative
# =========================================================================================
def _helix_offset(t, pt, eta, phi0, q, ref, vtx):
    """P(t) - V from the contract formula (thesis eq. 3.1), plain numpy, broadcasting."""
    radius = pt * R1_CM / q
    tanl = np.sinh(eta)
    dx = ref[0] - vtx[0] + radius * (np.sin(phi0) - np.sin(phi0 - t))
    dy = ref[1] - vtx[1] + radius * (np.cos(phi0 - t) - np.cos(phi0))
    dz = ref[2] - vtx[2] + radius * tanl * t
    return dx, dy, dz


def _dist2_derivative(t, pt, eta, phi0, q, ref, vtx):
    radius = pt * R1_CM / q
    dx, dy, dz = _helix_offset(t, pt, eta, phi0, q, ref, vtx)
    return dx * radius * np.cos(phi0 - t) + dy * radius * np.sin(phi0 - t) + dz * radius * np.sinh(eta)


def reference_closest_approach(pt, eta, phi0, q, ref, vtx, chunk=2000):
    """Returns (t, dx, dy, dz, degenerate) of the global minimum over t in [-pi, pi]."""
    n = pt.shape[0]
    grid = np.linspace(-np.pi, np.pi, N_SAMPLES)
    step = grid[1] - grid[0]
    cg, sg = np.cos(grid), np.sin(grid)
    out_t = np.empty(n)
    degenerate = np.zeros(n, dtype=bool)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        p, e, f, c = pt[sl, None], eta[sl, None], phi0[sl, None], q[sl, None]
        rr = [r[sl, None] for r in ref]
        vv = [v[sl, None] for v in vtx]
        radius = p * R1_CM / c
        s0, c0 = np.sin(f), np.cos(f)
        sin_pt = s0 * cg - c0 * sg  # sin(phi0 - t)
        cos_pt = c0 * cg + s0 * sg
        dx = rr[0] - vv[0] + radius * (s0 - sin_pt)
        dy = rr[1] - vv[1] + radius * (cos_pt - c0)
        dz = rr[2] - vv[2] + radius * np.sinh(e) * grid
        d2 = dx * dx + dy * dy + dz * dz
        # sampled local minima (ends included)
        left = np.concatenate([np.full((d2.shape[0], 1), np.inf), d2[:, :-1]], 1)
        right = np.concatenate([d2[:, 1:], np.full((d2.shape[0], 1), np.inf)], 1)
        is_min = (d2 <= left) & (d2 <= right)
        score = np.where(is_min, d2, np.inf)
        top = np.argpartition(score, 2, axis=1)[:, :3]
        cands_t = []
        cands_d = []
        for j in range(top.shape[1]):
            idx = top[:, j]
            valid = np.isfinite(score[np.arange(idx.size), idx])
            tc = grid[idx]
            lo = np.maximum(tc - step, -np.pi)
            hi = np.minimum(tc + step, np.pi)
            args = (p[:, 0], e[:, 0], f[:, 0], c[:, 0], [r[:, 0] for r in rr], [v[:, 0] for v in vv])
            glo = _dist2_derivative(lo, *args)
            ghi = _dist2_derivative(hi, *args)
            bracket = (glo < 0) & (ghi > 0)
            a, b = lo.copy(), hi.copy()
            for _ in range(N_BISECTIONS):
                mid = 0.5 * (a + b)
                gm = _dist2_derivative(mid, *args)
                a = np.where(bracket & (gm < 0), mid, a)
                b = np.where(bracket & (gm >= 0), mid, b)
            troot = 0.5 * (a + b)
            # no sign change: the minimum is at an end of the bracket
            tend = np.where(glo >= 0, lo, hi)
            tbest = np.where(bracket, troot, tend)
            ddx, ddy, ddz = _helix_offset(tbest, *args)
            dist = np.sqrt(ddx**2 + ddy**2 + ddz**2)
            cands_t.append(tbest)
            cands_d.append(np.where(valid, dist, np.inf))
        ct = np.array(cands_t)
        cd = np.array(cands_d)
        order = np.argsort(cd, axis=0)
        best = order[0]
        second = order[1]
        cols = np.arange(ct.shape[1])
        out_t[sl] = ct[best, cols]
        gap = cd[second, cols] - cd[best, cols]
        far = np.abs(ct[second, cols] - ct[best, cols]) > 2 * step
        degenerate[sl] = (gap < DEGENERATE_MARGIN_CM) & far
    dx, dy, dz = _helix_offset(out_t, pt, eta, phi0, q, ref, vtx)
    return out_t, dx, dy, dz, degenerate


def _random_helices(rng, n):
    pt = np.exp(rng.uniform(np.log(0.1), np.log(20.0), n))
    eta = rng.uniform(-2.4, 2.4, n)
    phi0 = rng.uniform(-np.pi, np.pi, n)
    q = rng.choice([-1.0, 1.0], n)
    d0 = rng.uniform(-2.0, 2.0, n)
    ref = (-d0 * np.sin(phi0), d0 * np.cos(phi0), rng.uniform(-5.0, 5.0, n))
    kind = rng.integers(0, 3, n)
    # (0) vertex anywhere in a +-5 cm box around the reference point
    box = [r + rng.uniform(-5.0, 5.0, n) for r in ref]
    # (1) near the helix: a point within 10 cm of arc, displaced by 1e-5 .. 3 cm
    radius = pt * R1_CM / q
    tv = np.clip(rng.uniform(-10.0, 10.0, n) / radius, -np.pi, np.pi)
    on = _helix_offset(tv, pt, eta, phi0, q, ref, (0.0, 0.0, 0.0))
    size = np.exp(rng.uniform(np.log(1e-5), np.log(3.0), n))
    direc = rng.normal(size=(3, n))
    direc /= np.linalg.norm(direc, axis=0)
    near = [on[i] + size * direc[i] for i in range(3)]
    # (2) a primary vertex near the beam line
    pv = (rng.normal(0, 0.01, n), rng.normal(0, 0.01, n), rng.normal(0, 5.0, n))
    vtx = tuple(np.select([kind == 0, kind == 1], [box[i], near[i]], pv[i]) for i in range(3))
    return pt, eta, phi0, q, ref, vtx


@pytest.fixture(scope="session")
def accuracy_sample():
    rng = np.random.default_rng(20240611)
    pt, eta, phi0, q, ref, vtx = _random_helices(rng, N_ACCURACY)
    ca = helix.closest_approach(pt, eta, phi0, q, *ref, *vtx)
    t_ref, dx, dy, dz, degenerate = reference_closest_approach(pt, eta, phi0, q, ref, vtx)
    return dict(pt=pt, eta=eta, phi0=phi0, q=q, ref=ref, vtx=vtx, ca=ca, t_ref=t_ref,
                dx=dx, dy=dy, dz=dz, degenerate=degenerate)  # fmt: skip


# =========================================================================================
# Closest approach
# =========================================================================================
def test_reference_agrees_with_scipy(accuracy_sample):
    """The numpy reference itself against scipy's bounded Brent on a subsample."""
    s = accuracy_sample
    rng = np.random.default_rng(7)
    n_check = 200
    worst = 0.0
    for i in rng.choice(N_ACCURACY, n_check, replace=False):
        args = (s["pt"][i], s["eta"][i], s["phi0"][i], s["q"][i],
                [r[i] for r in s["ref"]], [v[i] for v in s["vtx"]])  # fmt: skip

        def d2(t, args=args):
            return sum(c**2 for c in _helix_offset(t, *args))

        grid = np.linspace(-np.pi, np.pi, 20001)
        t0 = grid[np.argmin(d2(grid))]
        h = grid[1] - grid[0]
        res = minimize_scalar(d2, bounds=(max(t0 - h, -np.pi), min(t0 + h, np.pi)),
                              method="bounded", options={"xatol": 1e-12})  # fmt: skip
        ref_d = np.sqrt(s["dx"][i] ** 2 + s["dy"][i] ** 2 + s["dz"][i] ** 2)
        worst = max(worst, np.sqrt(res.fun) - ref_d)
    # the reference is never worse than scipy (it may be better: bisection on d'(t))
    assert worst < 1e-7


def test_ip3d_accuracy(accuracy_sample):
    s = accuracy_sample
    ref_d = np.sqrt(s["dx"] ** 2 + s["dy"] ** 2 + s["dz"] ** 2)
    err = np.abs(s["ca"].ip3d - ref_d)
    print(f"max |ip3d - reference| = {err.max():.3e} cm over {err.size} helices")
    assert err.max() < IP_TOLERANCE_CM


def test_component_accuracy(accuracy_sample):
    s = accuracy_sample
    ok = ~s["degenerate"]
    ca = s["ca"]
    err_xy = np.abs(ca.ipxy - np.hypot(s["dx"], s["dy"]))[ok]
    err_z = np.abs(ca.ipz_signed - s["dz"])[ok]
    phit = s["phi0"] - s["t_ref"]
    signed_xy = -np.sin(phit) * s["dx"] + np.cos(phit) * s["dy"]
    err_sxy = np.abs(ca.ipxy_signed - signed_xy)[ok]
    print(f"unique minima: {ok.sum()} of {ok.size}; max errors ipxy {err_xy.max():.3e}, "
          f"ipz {err_z.max():.3e}, ipxy_signed {err_sxy.max():.3e} cm")  # fmt: skip
    assert ok.mean() > 0.99
    assert err_xy.max() < IP_TOLERANCE_CM
    assert err_z.max() < IP_TOLERANCE_CM
    assert err_sxy.max() < IP_TOLERANCE_CM
    # the closest point, the extrapolated azimuth and the turning angle
    x, y, z = (v + d for v, d in zip(s["vtx"], (s["dx"], s["dy"], s["dz"]), strict=True))
    assert np.max(np.abs(ca.x - x)[ok]) < IP_TOLERANCE_CM
    assert np.max(np.abs(ca.z - z)[ok]) < IP_TOLERANCE_CM
    dphi = np.angle(np.exp(1j * (ca.phi - phit)))
    radius = s["pt"] * R1_CM
    assert np.max((np.abs(dphi) * radius)[ok]) < IP_TOLERANCE_CM
    assert np.all((ca.t >= -np.pi) & (ca.t <= np.pi))


def test_zero_length_and_roundtrip():
    """A vertex exactly on the helix: zero distance, found at the right t."""
    rng = np.random.default_rng(11)
    n = 20_000
    pt = np.exp(rng.uniform(np.log(0.1), np.log(20.0), n))
    eta = rng.uniform(-2.4, 2.4, n)
    phi0 = rng.uniform(-np.pi, np.pi, n)
    q = rng.choice([-1.0, 1.0], n)
    d0 = rng.uniform(-2.0, 2.0, n)
    ref = (-d0 * np.sin(phi0), d0 * np.cos(phi0), rng.uniform(-5, 5, n))
    tv = rng.uniform(-0.9 * np.pi, 0.9 * np.pi, n)
    on = _helix_offset(tv, pt, eta, phi0, q, ref, (0.0, 0.0, 0.0))
    ca = helix.closest_approach(pt, eta, phi0, q, *ref, *on)
    scale = np.abs(pt * R1_CM)
    assert np.all(ca.ip3d < 1e-12 * (scale + 10.0))
    assert np.allclose(ca.t, tv, atol=1e-9)
    # perigee_from_point: the helix through a point with a momentum there
    phi_at = phi0 - tv
    per = perigee_from_point(*on, pt, eta, phi_at, q)
    assert np.allclose(per.ref_x, ref[0], atol=1e-8)
    assert np.allclose(per.ref_y, ref[1], atol=1e-8)
    assert np.allclose(per.ref_z, ref[2], atol=1e-7)
    assert np.allclose(np.angle(np.exp(1j * (per.phi0 - phi0))), 0.0, atol=1e-10)
    assert np.allclose(per.d0, d0, atol=1e-8)


def test_straight_line_limit():
    """High pT: the helix IP tends to the straight-line one; charge 0 is exactly a line."""
    rng = np.random.default_rng(3)
    n = 1000
    eta = rng.uniform(-2.4, 2.4, n)
    phi0 = rng.uniform(-np.pi, np.pi, n)
    d0 = rng.uniform(-0.1, 0.1, n)
    ref = (-d0 * np.sin(phi0), d0 * np.cos(phi0), rng.uniform(-1, 1, n))
    vtx = (rng.normal(0, 0.01, n), rng.normal(0, 0.01, n), rng.normal(0, 1, n))
    line = helix.straight_line_impact(eta, phi0, *ref, *vtx)
    for q, pt, tol in ((0.0, 1.0, 1e-12), (1.0, 1e5, 1e-6)):
        ca = helix.closest_approach(pt, eta, phi0, q, *ref, *vtx)
        assert np.allclose(ca.ipxy_signed, line.dxy, atol=tol)
        # the 3D closest point slides along the line: dz_3D = dz cos^2(lambda)
        assert np.allclose(ca.ipz_signed, line.dz / np.cosh(eta) ** 2, atol=tol)
    assert np.all(helix.closest_approach(1.0, eta, phi0, 0.0, *ref, *vtx).t == 0.0)


@pytest.mark.parametrize(
    "case",
    ["tiny_pt", "zero_pt", "negative_pt", "huge_eta", "inf_eta", "far_vertex",
     "vertex_on_axis", "zero_length_origin", "large_phi"],
)  # fmt: skip
def test_degenerate_inputs_are_finite(case):
    pt, eta, phi, q = 1.0, 0.5, 0.3, 1.0
    ref = [0.01, -0.02, 0.5]
    vtx = [0.0, 0.0, 0.0]
    if case == "tiny_pt":
        pt = 1e-12
    elif case == "zero_pt":
        pt = 0.0
    elif case == "negative_pt":
        pt = -2.0
    elif case == "huge_eta":
        eta = 1e3
    elif case == "inf_eta":
        eta = -np.inf
    elif case == "far_vertex":
        vtx = [1e4, -3e4, 2e5]
    elif case == "vertex_on_axis":
        # vertex on the axis of the circle, lambda = 0: every point is a minimum
        radius = pt * R1_CM
        ref = [0.0, 0.0, 0.0]
        vtx = [-radius * np.sin(phi), radius * np.cos(phi), 0.0]
        eta = 0.0
    elif case == "zero_length_origin":
        ref = [0.0, 0.0, 0.0]
    elif case == "large_phi":
        phi = 0.3 + 200 * np.pi
    ca = helix.closest_approach(pt, eta, phi, q, *ref, *vtx)
    for field in ca:
        assert np.all(np.isfinite(field)), (case, ca)
    cov = np.eye(5)[np.array(TRACK_COV_PAIRS).T[0], np.array(TRACK_COV_PAIRS).T[1]] * 1e-6
    ips = helix.impact_parameters(pt, eta, phi, q, *ref, *vtx, cov, np.array([1e-6, 0, 0, 1e-6, 0, 1e-6]))
    for field in ips:
        assert np.all(np.isfinite(field)), (case, ips)
    if case == "zero_length_origin":
        assert ca.ip3d[0] == 0.0 and ips.ip3d_sig[0] == 0.0


def test_nan_in_nan_out():
    ca = helix.closest_approach([np.nan, 1.0], [0.1, np.nan], 0.2, 1.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1)
    for field in ca:
        assert np.all(np.isnan(field))


def test_far_vertex_matches_reference():
    rng = np.random.default_rng(5)
    pt, eta, phi0, q, ref, _ = _random_helices(rng, 2000)
    vtx = tuple(rng.uniform(-100, 100, 2000) for _ in range(3))
    ca = helix.closest_approach(pt, eta, phi0, q, *ref, *vtx)
    _, dx, dy, dz, _ = reference_closest_approach(pt, eta, phi0, q, ref, vtx)
    assert np.max(np.abs(ca.ip3d - np.sqrt(dx**2 + dy**2 + dz**2))) < IP_TOLERANCE_CM


# =========================================================================================
# Significances by pulls
# =========================================================================================
#: correlation matrix of (q/pT, lambda, phi, d0, z0) used in the pulls
_CORRELATION = np.array(
    [
        [1.0, 0.0, 0.3, -0.2, 0.0],
        [0.0, 1.0, 0.0, 0.0, -0.5],
        [0.3, 0.0, 1.0, -0.5, 0.0],
        [-0.2, 0.0, -0.5, 1.0, 0.0],
        [0.0, -0.5, 0.0, 0.0, 1.0],
    ]
)


def _cms_like_covariance(pt, q):
    """(n, 5, 5) helix covariance: sigma(d0) = 10 um (+) 90 um/pT, etc."""
    sig = np.stack(
        [
            0.01 * np.abs(q / pt),
            1.5e-3 / pt,
            2.0e-3 / pt,
            np.hypot(10e-4, 90e-4 / pt),
            np.hypot(20e-4, 100e-4 / pt),
        ],
        1,
    )
    return sig[:, :, None] * _CORRELATION[None] * sig[:, None, :]


_VERTEX_COV = np.array([[15e-4**2, 0.2 * 15e-4**2, 0.0], [0.2 * 15e-4**2, 15e-4**2, 0.0],
                        [0.0, 0.0, 20e-4**2]])  # fmt: skip


def _pull_sample(rng, n, displaced_production, vertex_is_production):
    pt = np.exp(rng.uniform(np.log(0.3), np.log(10.0), n))
    eta = rng.uniform(-2.4, 2.4, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    q = rng.choice([-1.0, 1.0], n)
    pv = np.stack([rng.normal(0, 0.002, n), rng.normal(0, 0.002, n), rng.normal(0, 3.0, n)])
    if displaced_production:
        lxy = rng.uniform(1.0, 10.0, n)
        ang = rng.uniform(-np.pi, np.pi, n)
        prod = pv + np.stack([lxy * np.cos(ang), lxy * np.sin(ang), rng.uniform(-3, 3, n)])
    else:
        prod = pv
    per = perigee_from_point(*prod, pt, eta, phi, q)
    vtx_true = prod if vertex_is_production else pv
    theta = np.stack([q / pt, np.arctan(np.sinh(eta)), per.phi0, per.d0, per.ref_z], 1)
    cov = _cms_like_covariance(pt, q)
    chol = np.linalg.cholesky(cov)
    meas = theta + np.einsum("nij,nj->ni", chol, rng.normal(size=(n, 5)))
    vtx_meas = vtx_true + np.linalg.cholesky(_VERTEX_COV) @ rng.normal(size=(3, n))
    m_q = np.sign(meas[:, 0])
    m_pt = np.abs(1.0 / meas[:, 0])
    m_eta = np.arcsinh(np.tan(meas[:, 1]))
    m_ref = (-meas[:, 3] * np.sin(meas[:, 2]), meas[:, 3] * np.cos(meas[:, 2]), meas[:, 4])
    tcov = np.stack([cov[:, i, j] for i, j in TRACK_COV_PAIRS], 1)
    vcov = np.array([_VERTEX_COV[i, j] for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))])
    ips = helix.impact_parameters(m_pt, m_eta, meas[:, 2], m_q, *m_ref, *vtx_meas, tcov, vcov)
    truth = helix.closest_approach(pt, eta, per.phi0, q, per.ref_x, per.ref_y, per.ref_z, *vtx_true)
    return ips, truth, eta


def _widths(pull):
    return np.std(pull), 1.4826 * np.median(np.abs(pull - np.median(pull)))


@pytest.mark.parametrize(
    "displaced_production, vertex_is_production",
    [(False, True), (True, True), (True, False)],
    ids=["prompt_to_pv", "displaced_to_production_vertex", "displaced_to_pv"],
)
def test_pull_widths(displaced_production, vertex_is_production):
    rng = np.random.default_rng(99)
    ips, truth, eta = _pull_sample(rng, N_PULLS, displaced_production, vertex_is_production)
    pulls = {
        "ipxy_signed": (ips.ipxy_signed - truth.ipxy_signed) / ips.ipxy_signed_err,
        "ipz_signed": (ips.ipz_signed - truth.ipz_signed) / ips.ipz_signed_err,
    }
    forward = np.abs(eta) > 1.2
    for name, pull in pulls.items():
        for region, sel in (("all", slice(None)), ("forward", forward), ("central", ~forward)):
            std, mad = _widths(pull[sel])
            print(f"{name:12s} {region:8s}: std {std:.4f}  MAD-width {mad:.4f}  "
                  f"mean {np.mean(pull[sel]):+.4f}")  # fmt: skip
            assert abs(std - 1.0) < PULL_WIDTH_TOLERANCE, (name, region, std)
            assert abs(mad - 1.0) < PULL_WIDTH_TOLERANCE, (name, region, mad)
            assert abs(np.mean(pull[sel])) < PULL_WIDTH_TOLERANCE
    if vertex_is_production:
        # true IP = 0: the 3D IP / sigma is distributed as the norm of 2 unit normals
        # projected on its own direction, i.e. mostly below 3
        assert np.mean(ips.ip3d_sig < 3.0) > 0.97


def test_error_neglecting_closest_point_motion_would_fail():
    """The implicit-differentiation term matters: forward z0 errors shrink by cos^2(lambda)."""
    ips, truth, eta = _pull_sample(np.random.default_rng(1), 5000, False, True)
    forward = np.abs(eta) > 1.5
    err_z0 = np.hypot(20e-4, 100e-4)  # the z0 error at 1 GeV, for scale
    assert np.median(ips.ipz_signed_err[forward]) < 0.5 * err_z0


def test_covariance_input_forms():
    n = 3
    tcov = np.tile(np.array([1e-4 if i == j else 0.0 for i, j in TRACK_COV_PAIRS]), (n, 1))
    vcov = np.tile([1e-6, 0, 0, 1e-6, 0, 1e-6], (n, 1))
    args = (np.ones(n), 0.1, 0.2, 1.0, 0.01, 0.0, 0.1, 0.0, 0.0, 0.0)
    a = helix.impact_parameters(*args, tcov, vcov)
    b = helix.impact_parameters(*args, tuple(tcov.T), tuple(vcov.T))
    assert np.allclose(a.ip3d_err, b.ip3d_err)
    assert cov_index(3, 3) == 12
    with pytest.raises(ValueError, match="15"):
        helix.impact_parameters(*args, tcov[:, :14], vcov)


# =========================================================================================
# Helical truth matching
# =========================================================================================
def _smear_track(rng, pt, eta, phi, q, prod):
    per = perigee_from_point(*prod, pt, eta, phi, q)
    cov = _cms_like_covariance(pt, q)
    theta = np.stack([q / pt, np.arctan(np.sinh(eta)), per.phi0, per.d0, per.ref_z], 1)
    m = theta + np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.normal(size=theta.shape))
    return dict(pt=np.abs(1 / m[:, 0]), eta=np.arcsinh(np.tan(m[:, 1])), phi=m[:, 2],
                charge=np.sign(m[:, 0]), refX=-m[:, 3] * np.sin(m[:, 2]),
                refY=m[:, 3] * np.cos(m[:, 2]), refZ=m[:, 4])  # fmt: skip


@pytest.fixture(scope="session")
def matching_sample():
    """Events with one displaced signal pion, prompt particles, and decoy tracks.

    Per event: gen 0 = a prompt particle at the PV (hard process), gen 1 = signal pion from
    a decay at L_xy in [1, 10] cm with pT in [0.1, 2] GeV, gens 2..6 prompt particles; each
    gen has its own reconstructed track. Decoys: 3 prompt tracks of the opposite charge
    close to the pion in pT, eta and phi0, and 2 random tracks.
    """
    rng = np.random.default_rng(2024)
    n_ev = 3000
    n_prompt = 6
    pv = np.stack([rng.normal(0, 0.002, n_ev), rng.normal(0, 0.002, n_ev), rng.normal(0, 4, n_ev)])
    # signal pions
    lxy = rng.uniform(1.0, 10.0, n_ev)
    ang = rng.uniform(-np.pi, np.pi, n_ev)
    prod = pv + np.stack([lxy * np.cos(ang), lxy * np.sin(ang), rng.uniform(-2, 2, n_ev)])
    s_pt = rng.uniform(0.1, 2.0, n_ev)
    s_eta = rng.uniform(-2.0, 2.0, n_ev)
    # emitted within 90 degrees of the flight direction, as from a boosted parent
    s_phi = ang + rng.uniform(-np.pi / 2, np.pi / 2, n_ev)
    s_q = rng.choice([-1.0, 1.0], n_ev)
    # prompt particles
    p_pt = np.exp(rng.uniform(np.log(0.5), np.log(20.0), (n_ev, n_prompt)))
    p_eta = rng.uniform(-2.4, 2.4, (n_ev, n_prompt))
    p_phi = rng.uniform(-np.pi, np.pi, (n_ev, n_prompt))
    p_q = rng.choice([-1.0, 1.0], (n_ev, n_prompt))
    gen = {
        "pt": np.concatenate([p_pt[:, :1], s_pt[:, None], p_pt[:, 1:]], 1),
        "eta": np.concatenate([p_eta[:, :1], s_eta[:, None], p_eta[:, 1:]], 1),
        "phi": np.concatenate([p_phi[:, :1], s_phi[:, None], p_phi[:, 1:]], 1),
        "charge": np.concatenate([p_q[:, :1], s_q[:, None], p_q[:, 1:]], 1),
    }
    n_gen = n_prompt + 1
    vtx = np.repeat(pv[:, :, None], n_gen, 2)
    vtx[:, :, 1] = prod
    gen.update(vx=vtx[0], vy=vtx[1], vz=vtx[2])
    gen_tracks = _smear_track(
        rng, gen["pt"].ravel(), gen["eta"].ravel(), gen["phi"].ravel(), gen["charge"].ravel(),
        (vtx[0].ravel(), vtx[1].ravel(), vtx[2].ravel()),
    )  # fmt: skip
    gen_tracks = {k: v.reshape(n_ev, n_gen) for k, v in gen_tracks.items()}
    # decoys: opposite charge, close in kinematics to the pion, prompt
    n_dec = 3
    d_pt = s_pt[:, None] * rng.uniform(0.85, 1.15, (n_ev, n_dec))
    d_eta = s_eta[:, None] + rng.uniform(-0.08, 0.08, (n_ev, n_dec))
    d_phi = s_phi[:, None] + rng.uniform(-1.0, 1.0, (n_ev, n_dec))
    d_q = np.repeat(-s_q[:, None], n_dec, 1)
    r_pt = np.exp(rng.uniform(np.log(0.2), np.log(10.0), (n_ev, 2)))
    r_eta = rng.uniform(-2.4, 2.4, (n_ev, 2))
    r_phi = rng.uniform(-np.pi, np.pi, (n_ev, 2))
    r_q = rng.choice([-1.0, 1.0], (n_ev, 2))
    dec_pt = np.concatenate([d_pt, r_pt], 1)
    dec = _smear_track(
        rng, dec_pt.ravel(), np.concatenate([d_eta, r_eta], 1).ravel(),
        np.concatenate([d_phi, r_phi], 1).ravel(), np.concatenate([d_q, r_q], 1).ravel(),
        tuple(np.repeat(pv[i][:, None], n_dec + 2, 1).ravel() for i in range(3)),
    )  # fmt: skip
    dec = {k: v.reshape(n_ev, n_dec + 2) for k, v in dec.items()}
    # shuffle the tracks of each event; remember where each gen's own track went
    n_trk = n_gen + n_dec + 2
    perm = np.argsort(rng.random((n_ev, n_trk)), 1)
    tracks = {k: np.take_along_axis(np.concatenate([gen_tracks[k], dec[k]], 1), perm, 1)
              for k in gen_tracks}  # fmt: skip
    inv = np.argsort(perm, 1)
    truth_track_of_gen = inv[:, :n_gen]
    return dict(n_ev=n_ev, n_gen=n_gen, n_trk=n_trk, gen=gen, tracks=tracks,
                truth=truth_track_of_gen, lxy=lxy, s_pt=s_pt)  # fmt: skip


def _flat_match_args(smp):
    tr = smp["tracks"]
    gen = smp["gen"]
    t_counts = np.full(smp["n_ev"], smp["n_trk"])
    g_counts = np.full(smp["n_ev"], smp["n_gen"])
    targs = [tr[k].ravel() for k in ("pt", "eta", "phi", "charge", "refX", "refY", "refZ")]
    gargs = [gen[k].ravel() for k in ("pt", "eta", "phi", "charge", "vx", "vy", "vz")]
    return (*targs, t_counts, *gargs, g_counts)


def test_helical_matching_recovers_displaced_pions(matching_sample):
    smp = matching_sample
    res = helix.helical_match(*_flat_match_args(smp))
    gen_trk = res.gen_track_idx.reshape(smp["n_ev"], smp["n_gen"])
    sig_ok = gen_trk[:, 1] == smp["truth"][:, 1]
    sig_wrong = (gen_trk[:, 1] >= 0) & ~sig_ok
    method = res.track_method.reshape(smp["n_ev"], smp["n_trk"])
    sig_method = method[np.arange(smp["n_ev"]), smp["truth"][:, 1]]
    # the plain DeltaR < 0.02 matching alone
    args = _flat_match_args(smp)
    plain = helix.delta_r_match(args[1], args[2], args[3], args[7], args[9], args[10], args[11], args[15])
    plain_ok = plain.gen_track_idx.reshape(smp["n_ev"], smp["n_gen"])[:, 1] == smp["truth"][:, 1]
    prompt_ok = gen_trk[:, 2:] == smp["truth"][:, 2:]
    print(f"signal pions (Lxy 1-10 cm, pT < 2 GeV): helical+fallback eff {sig_ok.mean():.4f} "
          f"(helical {np.mean(sig_ok & (sig_method == helix.MATCH_HELICAL)):.4f}), "
          f"plain DeltaR eff {plain_ok.mean():.4f}, wrong-track rate {sig_wrong.mean():.4f}; "
          f"prompt eff {prompt_ok.mean():.4f}")  # fmt: skip
    assert sig_ok.mean() > 0.95
    assert plain_ok.mean() < 0.5
    assert sig_wrong.mean() < 0.01
    assert prompt_ok.mean() > 0.95
    # one-to-one
    for ev in range(0, smp["n_ev"], 97):
        row = gen_trk[ev]
        assert len(set(row[row >= 0])) == np.sum(row >= 0)
    # per Lxy bin the helical matching keeps its efficiency
    for lo, hi in ((1, 3), (3, 6), (6, 10)):
        sel = (smp["lxy"] >= lo) & (smp["lxy"] < hi)
        assert sig_ok[sel].mean() > 0.93


def test_wrong_charge_pairs_rarely_pass(matching_sample):
    smp = matching_sample
    pairs = helix.helical_match_pairs(*_flat_match_args(smp))
    on_pion = pairs.gen_idx == 1
    passing = (pairs.delta_xyz < helix.HELICAL_MATCH_MAX_DXYZ_CM) & (
        pairs.delta_r_extrapolated < helix.HELICAL_MATCH_MAX_DR_EXTRAPOLATED
    )
    truth_pair = pairs.track_idx == smp["truth"][pairs.event, 1]
    opp = on_pion & ~pairs.same_charge
    same_true = on_pion & truth_pair
    print(f"pion pairs: opposite charge {opp.sum()} pass {passing[opp].mean():.4f}; "
          f"true same-charge {same_true.sum()} pass {passing[same_true].mean():.4f}")  # fmt: skip
    assert opp.sum() > 1000
    assert passing[opp].mean() < 0.01
    assert passing[same_true].mean() > 0.95


def test_fallback_and_jagged_wrapper():
    """A track without vertex information matches by DeltaR; the awkward wrapper agrees."""
    tracks = ak.Array([
        [{"pt": 5.0, "eta": 0.3, "phi": 1.0, "charge": 1, "refX": 0.0, "refY": 0.0, "refZ": 0.0},
         {"pt": 3.0, "eta": -1.0, "phi": -2.0, "charge": -1, "refX": 0.0, "refY": 0.0, "refZ": 1.0}],
        [],
    ])  # fmt: skip
    gen = ak.Array([
        # pi+ at the origin: helical; mu- (pdgId 13) produced 30 cm away in z: DeltaR only
        [{"pt": 5.0, "eta": 0.3, "phi": 1.0, "pdgId": 211, "vx": 0.0, "vy": 0.0, "vz": 0.0,
          "genPartIdxMother": -1},
         {"pt": 3.0, "eta": -1.0, "phi": -2.005, "pdgId": 13, "vx": 0.0, "vy": 0.0, "vz": 30.0,
          "genPartIdxMother": -1},
         {"pt": 3.0, "eta": -1.0, "phi": -2.0, "pdgId": 22, "vx": 0.0, "vy": 0.0, "vz": 1.0,
          "genPartIdxMother": -1}],
        [],
    ])  # fmt: skip
    res = helix.helical_match_jagged(tracks, gen)
    assert res.genPartIdx.tolist() == [[0, 1], []]
    assert res.method.tolist() == [[helix.MATCH_HELICAL, helix.MATCH_DELTA_R], []]
    labels = track_class_labels_jagged(res.genPartIdx, gen)
    assert labels.tolist() == [[TRACK_CLASSES.index("pv_prompt"), TRACK_CLASSES.index("pv_secondary")], []]
    ca = helix.closest_approach_jagged(tracks, [0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
    assert ak.num(ca, axis=1).tolist() == [2, 0]
    assert ca.ip3d[0, 0] < 1e-12


def test_gen_charge():
    pdg = np.array([211, -211, 321, 2212, -2212, 2112, 11, -11, 13, -13, 15, 22, 111, 130,
                    1000024, -1000024, 1000022, 411, 521, -431, 3222, 3112, 24, 12])  # fmt: skip
    want = [1, -1, 1, 1, -1, 0, -1, 1, -1, 1, -1, 0, 0, 0, 1, -1, 0, 1, 1, -1, 1, -1, 1, 0]
    assert helix.gen_charge(pdg).tolist() == want


# =========================================================================================
# Track classes
# =========================================================================================
def test_track_class_labels():
    # one event: 0 chargino at the PV (hard process), 1 pion from it, 2 neutralino,
    # 3 tau (prompt), 4 pion from the tau, 5 rho from the tau, 6 pion from the rho,
    # 7 prompt pion, 8 K0S at the PV, 9 pion from the K0S (displaced), 10 pion 5 um away
    pdg = [1000024, 211, 1000022, 15, -211, 213, 211, 211, 310, -211, 211]
    mother = [-1, 0, 0, -1, 3, 3, 5, -1, -1, 8, -1]
    vx = [0.0, 1.5, 1.5, 0.0, 0.01, 0.0, 0.02, 0.0, 0.0, 2.0, 5e-4]
    vy = [0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    vz = [0.0] * 11
    track_gen = [1, 4, 6, 7, 9, 10, -1, 2]
    labels = track_class_labels(track_gen, [8], pdg, mother, vx, vy, vz, [11])
    names = [TRACK_CLASSES[i] for i in labels]
    assert names == ["signal", "tau", "tau", "pv_prompt", "pv_secondary", "pv_prompt",
                     "spurious", "pv_secondary"]  # fmt: skip
    # the true PV is the vertex of GenPart[0] of each event, not the origin
    labels = track_class_labels([0, 0], [1, 1], [211, 211], [-1, -1],
                                      [0.3, 0.0], [0.0, 0.0], [2.0, 0.0], [1, 1])  # fmt: skip
    assert [TRACK_CLASSES[i] for i in labels] == ["pv_prompt", "pv_prompt"]
