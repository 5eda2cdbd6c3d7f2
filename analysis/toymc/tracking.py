"""Track reconstruction of the toy detector: numba kernels that run over all events at once.

One pass per chunk of events turns every charged source into reconstructed tracks: charged
generator particles of the primary and the hard interaction (efficiency in true pT and
production radius), tracks of pileup interactions, and spurious (fake) tracks. Each track
gets helix parameters at its point of closest approach to the beam line, a correlated
Gaussian smearing with the pT- and eta-dependent resolution of
:class:`~analysis.toymc.truth.TrackModel` (and the injected scales of the data model), its
covariance, quality variables, straight-line impact parameters with respect to the
reconstructed PV and a vertex association, in the convention of :mod:`analysis.contract`.

Randomness comes from an inlined xoshiro256++ stream of :mod:`.rand`, seeded from the caller's
``numpy.random.Generator`` (a draw through numba's Generator is a call that cannot be inlined,
2-3x slower), so a sample stays reproducible from its seed; numba caches a kernel by its own
file only, so a change of rand.py must come with a change of this file and of soft.py.
Few transcendental functions per track: the measured lambda and phi come from the true ones
by angle-addition formulas (series for the small angles), the turning angle to the beam line
by the asin series, the efficiency decision by squeeze bounds; Poisson counts by inversion
from a guide table. What needs no random numbers (the covariance, the impact parameters with
respect to the PV and the vertex association) is done in a second pass over the tracks: in the
drawing loop, short of registers, the same work cost twice as much. Vertex association tests
only the vertices in a z window around the track (sorted per event), with the same result as
testing them all. The kernels that fill the tracks run without numba's reference counting
(``_nrt=False``: no atomic increment and decrement of every array handed to an inlined helper,
per track) into arrays that NumPy allocated (transparent huge pages for large ones: fewer page
faults); they cannot allocate, so the counts they need are drawn first by a small kernel with
the same random stream.
``benchmarks/bench_generate.py`` measures the throughput.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import constants as cfg
from .. import contract as dc
from . import rand
from .truth import Detector

#: soft-particle pT: a fraction from a power-law tail above SOFT_PT_TAIL_START (P(pT > x) =
#: (x / start)^-index), the rest SOFT_PT_MIN plus a Gamma variate. The density steps up by 56%
#: at the start of the tail (0.45 -> 0.70 per GeV), a known feature of the toy. Starting the tail
#: at SOFT_PT_MIN instead (continuous) gives more soft tracks with a poor dz resolution, and the
#: dz-template fit of the PV track-class SF (corrections.softtrack.derive) then lies ~0.5 sigma lower on
#: average (4 seeds; it is already biased low by the injected dzErr mis-modelling)
SOFT_PT_TAIL_FRACTION = 0.1
SOFT_PT_TAIL_INDEX = 2.5
SOFT_PT_TAIL_START = 1.0
SOFT_PT_MIN = 0.08
SOFT_PT_GAMMA = (1.6, 0.45)
#: spurious tracks: pT = 0.1 + Exp(mean), d0 and z0 - z(PV) Laplace-distributed (cm)
SPURIOUS_PT_MIN = 0.1
SPURIOUS_PT_MEAN = 0.6
SPURIOUS_D0_SCALE = 0.15
SPURIOUS_Z0_SCALE = 1.5
SPURIOUS_COV_INFLATION = 1.5  # the fit of a fake track under-estimates its errors
#: valid hits: a minimum plus a Poisson number of this mean (genuine tracks, spurious tracks)
HITS_MEAN = (6.0, 2.0)
#: pileup tracks are produced within this |eta|
PU_TRACK_ETA = 2.5
#: vertex association (straight-line dz in units of its error, with a floor; max |dxy|)
ASSOC_DZ_SIGMAS = 3.0
ASSOC_DZ_FLOOR = 0.05  # cm
ASSOC_DXY_MAX = 0.2  # cm
#: entries of the guide table of a Poisson inversion (a power of 2: j / size is exact)
POISSON_GUIDE_SIZE = 64
#: below this, sin, cos, asin and asinh of an argument come from their series (exact in float64)
SERIES_MAX = 0.05

_PRIMARY, _PILEUP, _SPURIOUS = (dc.TRACK_ORIGINS[k] for k in ("primary", "pileup", "spurious"))
_COV33, _COV44 = dc.cov_index(3, 3), dc.cov_index(4, 4)
_R1_CM = cfg.R1_CM
FLOAT_FIELDS = ("pt", "eta", "phi", "refX", "refY", "refZ", "dxy", "dz", "dxyErr", "dzErr", "chi2ndof")
INT_FIELDS = ("charge", "nValidHits", "genPartIdx", "genOrigin", "gflat", "highPurity", "isPFcand", "vtxIdx")
_N_FLOAT, _N_INT = len(FLOAT_FIELDS), len(INT_FIELDS)


def model_arrays(det: Detector) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The track model as flat arrays for the kernels: efficiency, resolution, Cholesky, correlation."""
    tm, dm = det.tracks, det.model
    eff = np.array([tm.eff_plateau, tm.eff_turn_on, tm.eff_width, tm.disp_full, tm.disp_zero])
    res = np.array([*tm.res_qoverpt, *tm.res_lambda, *tm.res_phi, *tm.res_d0, *tm.res_z0, tm.z0_eta_power,
                    tm.eta_growth, dm.dxy_err_scale, dm.dz_err_scale, dm.track_pt_scale, tm.max_abs_eta, tm.min_pt])
    corr = np.array(det.tracks.correlation, np.float64)
    return eff, res, np.linalg.cholesky(corr), corr


# --- scalar physics ---------------------------------------------------------------------
@njit(cache=True, inline="always")
def wrap(phi):
    """Angle wrapped to [-pi, pi)."""
    while phi >= math.pi:
        phi -= 2.0 * math.pi
    while phi < -math.pi:
        phi += 2.0 * math.pi
    return phi


@njit(cache=True, inline="always")
def efficiency(pt, rho, eff):
    """Reconstruction efficiency for true pT and production radius (see TrackModel.efficiency)."""
    turn_on = eff[0] / (1.0 + math.exp(-(pt - eff[1]) / eff[2]))
    disp = min(max((eff[4] - rho) / (eff[4] - eff[3]), 0.0), 1.0)
    return turn_on * disp


@njit(cache=True, inline="always")
def accepted(u, pt, rho, eff):
    """u < efficiency(pt, rho, eff), mostly without its exponential: with y = |pT - turn_on| /
    width and r = 1 + y + y^2/2 + y^3/6 <= e^y, the turn-on is at least plateau r / (r + 1) above
    the turn-on point and at most plateau / (r + 1) below it; only a u between the bound and the
    efficiency (a few percent of draws) needs the exponential. The bounds keep a relative margin
    of 1e-12, so the decision is the one of comparing with :func:`efficiency`."""
    disp = min(max((eff[4] - rho) / (eff[4] - eff[3]), 0.0), 1.0)
    plateau = eff[0] * disp
    if u >= plateau:
        return False
    x = (pt - eff[1]) / eff[2]
    y = abs(x)
    r = 1.0 + y * (1.0 + y * (0.5 + y / 6.0))
    if x >= 0.0:
        if u < plateau * r / (r + 1.0) * (1.0 - 1e-12):
            return True
    elif u >= plateau / (r + 1.0) * (1.0 + 1e-12):
        return False
    return u < efficiency(pt, rho, eff)


@njit(cache=True)
def poisson_cdf(lam):
    """The cumulative Poisson probabilities of mean ``lam`` for k = 0, 1, ..., summed by the
    recurrence p_k = p_(k-1) lam / k up to the first p_k that underflows to zero (the last entry)."""
    p = math.exp(-lam)
    cdf = [p]
    k, total = 0, p
    while p > 0.0:
        k += 1
        p *= lam / k
        total += p
        cdf.append(total)
    return np.array(cdf)


@njit(cache=True)
def poisson_table(lam):
    """(cdf, guide) of a Poisson of mean ``lam``: the CDF of :func:`poisson_cdf` and its guide
    table, guide[j] = the first k with cdf[k] >= j / POISSON_GUIDE_SIZE (or the last k)."""
    cdf = poisson_cdf(lam)
    guide = np.empty(POISSON_GUIDE_SIZE, np.int64)
    k = 0
    for j in range(POISSON_GUIDE_SIZE):
        while k < cdf.size - 1 and cdf[k] < j / POISSON_GUIDE_SIZE:
            k += 1
        guide[j] = k
    return cdf, guide


@njit(cache=True, inline="always")
def poisson_small(st, table):
    """A Poisson variate by inversion of the CDF of :func:`poisson_table` (one uniform of the stream
    ``st``; no exponential per draw)."""
    return poisson_inverse(rand.uniform(st), table[0], table[1])


@njit(cache=True, inline="always")
def poisson_inverse(u, cdf, guide):
    """The first k with u <= cdf[k] (the last k if none), searched from the guide table's entry for
    u: the same k as a search from 0 (u >= j / size in the j-th entry), in about one step."""
    k, last = guide[int(u * guide.size)], cdf.size - 1
    while k < last and u > cdf[k]:
        k += 1
    return k


@njit(cache=True)  # called, not inlined: each inlined draw costs compile time
def soft_pt(st):
    """pT of a soft charged particle (GeV)."""
    if rand.uniform(st) < SOFT_PT_TAIL_FRACTION:
        return SOFT_PT_TAIL_START * (1.0 + rand.pareto(st, SOFT_PT_TAIL_INDEX))
    return SOFT_PT_MIN + SOFT_PT_GAMMA[1] * rand.gamma(st, SOFT_PT_GAMMA[0])


@njit(cache=True, inline="always")
def helix_at_beamline(pt, eta, phi, charge, vx, vy, vz):
    """(q/pT, lambda, phi, d0, z0) at the PCA to the beam line of a particle made at (vx, vy, vz)."""
    tan_lambda = math.sinh(eta)
    phi_ref, _, _, d0, z0 = perigee(pt, tan_lambda, phi, charge, vx, vy, vz)
    return charge / pt, math.atan(tan_lambda), phi_ref, d0, z0


@njit(cache=True, inline="always")
def perigee(pt, tan_lambda, phi, charge, vx, vy, vz):
    """(phi, sin phi, cos phi, d0, z0) at the PCA to the beam line of a particle made at
    (vx, vy, vz) with transverse momentum pt in direction phi and tan(lambda) = sinh(eta).

    The turning angle from the production point to the PCA is tiny for a particle from the
    beam spot: it comes from its sine by the series of asin (exact in float64 below
    SERIES_MAX), not by atan2."""
    radius = pt * _R1_CM / charge
    sin_p, cos_p = math.sin(phi), math.cos(phi)
    cx, cy = vx + radius * sin_p, vy - radius * cos_p
    cnorm = max(math.sqrt(cx * cx + cy * cy), 1e-12)
    s = 1.0 if radius > 0 else -1.0
    sin_ref, cos_ref = s * cx / cnorm, -s * cy / cnorm  # of the momentum azimuth at the reference point
    sin_turn, cos_turn = sin_ref * cos_p - cos_ref * sin_p, cos_ref * cos_p + sin_ref * sin_p
    if cos_turn > 0.0 and abs(sin_turn) < SERIES_MAX:
        t2 = sin_turn * sin_turn  # asin
        turn = sin_turn * (1.0 + t2 * (1.0 / 6.0 + t2 * (3.0 / 40.0 + t2 * (5.0 / 112.0 + t2 * (35.0 / 1152.0 + t2 * (63.0 / 2816.0))))))
    else:
        turn = math.atan2(sin_turn, cos_turn)
    ref_x = cx - abs(radius) * cx / cnorm
    ref_y = cy - abs(radius) * cy / cnorm
    return wrap(phi + turn), sin_ref, cos_ref, -ref_x * sin_ref + ref_y * cos_ref, vz - radius * tan_lambda * turn


@njit(cache=True, inline="always")
def sigmas(pt, eta, res, out):
    """The five helix-parameter resolutions into ``out`` (TrackModel.sigmas times the data-model scales)."""
    sigmas_cosh(pt, math.cosh(eta), abs(eta), res, out)


@njit(cache=True, inline="always")
def sigmas_cosh(pt, cosh, abs_eta, res, out):
    """:func:`sigmas` of a particle with cosh(eta) and |eta| given."""
    p = pt * cosh
    growth = 1.0 + res[11] * abs_eta
    z_eta = math.sqrt(cosh) if res[10] == 0.5 else cosh ** res[10]
    out[0] = _quad(res[0], res[1] * pt) / pt * growth
    out[1] = _quad(res[2], res[3] / p) * growth
    out[2] = _quad(res[4], res[5] / pt) * growth
    out[3] = _quad(res[6], res[7] / pt) * growth * res[12]
    out[4] = _quad(res[8], res[9] / pt) * z_eta * growth * res[13]


@njit(cache=True, inline="always")
def _quad(a, b):
    return math.sqrt(a * a + b * b)


@njit(cache=True, inline="always")
def correlated_noise(st, chol, out):
    """Correlated standard-normal noise of the five helix parameters into ``out``: chol z, chol
    lower triangular (one inlined normal draw per parameter)."""
    for i in range(5):
        out[i] = 0.0
    for k in range(5):
        z = rand.normal(st)
        for i in range(k, 5):
            out[i] += chol[i, k] * z


@njit(cache=True, inline="always")
def smear(params, eta, res, chol, st, sig, meas):
    """Measured helix parameters: true ``params`` (of pseudorapidity ``eta``) plus correlated
    Gaussian noise of width ``sig``."""
    sigmas(1.0 / abs(params[0]), eta, res, sig)
    correlated_noise(st, chol, meas)
    for i in range(5):
        meas[i] = params[i] + meas[i] * sig[i]
    meas[2] = wrap(meas[2])
    meas[0] /= res[14]


@njit(cache=True, inline="always")
def sincos_small(x):
    """(sin x, cos x), by their series where |x| < SERIES_MAX."""
    if abs(x) >= SERIES_MAX:
        return math.sin(x), math.cos(x)
    x2 = x * x
    sin = x * (1.0 - x2 / 6.0 * (1.0 - x2 / 20.0 * (1.0 - x2 / 42.0 * (1.0 - x2 / 72.0 * (1.0 - x2 / 110.0)))))
    cos = 1.0 - x2 / 2.0 * (1.0 - x2 / 12.0 * (1.0 - x2 / 30.0 * (1.0 - x2 / 56.0 * (1.0 - x2 / 90.0 * (1.0 - x2 / 132.0)))))
    return sin, cos


@njit(cache=True, inline="always")
def asinh_small(x):
    """asinh x, by its series where |x| < SERIES_MAX."""
    if abs(x) >= SERIES_MAX:
        return math.asinh(x)
    x2 = x * x
    return x * (1.0 - x2 * (1.0 / 6.0 - x2 * (3.0 / 40.0 - x2 * (5.0 / 112.0 - x2 * (35.0 / 1152.0 - x2 * (63.0 / 2816.0))))))


@njit(cache=True)
def smear_many(q_pt, lam, phi, d0, z0, res, chol, st):
    """:func:`smear` of many tracks: (measured (n, 5), sigmas (n, 5))."""
    n = q_pt.size
    meas, sig = np.empty((n, 5)), np.empty((n, 5))
    params = np.empty(5)
    for i in range(n):
        params[0], params[1], params[2], params[3], params[4] = q_pt[i], lam[i], phi[i], d0[i], z0[i]
        smear(params, math.asinh(math.tan(lam[i])), res, chol, st, sig[i], meas[i])
    return meas, sig


# --- vertex association -----------------------------------------------------------------
@njit(cache=True)
def sort_vertices(e, pv, v_off, vx, vy, vz, vsz, zs, order):
    """The PV (index 0) and OtherPV (k >= 1) of event ``e`` sorted by z (stable): ``order`` their
    indices, ``zs`` (4, n) their z, x, y and sigma_z in that order; returns (count, largest
    transverse distance to the beam line, largest sigma_z)."""
    nv = v_off[e + 1] - v_off[e] + 1
    r_max, sz_max = math.sqrt(pv[0, e] ** 2 + pv[1, e] ** 2), pv[5, e]
    zs[0, 0], order[0] = pv[2, e], 0
    for k in range(1, nv):
        j = v_off[e] + k - 1
        r_max, sz_max = max(r_max, math.sqrt(vx[j] ** 2 + vy[j] ** 2)), max(sz_max, vsz[j])
        z, t = vz[j], k  # insertion sort: a few tens of vertices
        while t > 0 and zs[0, t - 1] > z:
            zs[0, t], order[t] = zs[0, t - 1], order[t - 1]
            t -= 1
        zs[0, t], order[t] = z, k
    for t in range(nv):
        k = order[t]
        if k == 0:
            zs[1, t], zs[2, t], zs[3, t] = pv[0, e], pv[1, e], pv[5, e]
        else:
            j = v_off[e] + k - 1
            zs[1, t], zs[2, t], zs[3, t] = vx[j], vy[j], vsz[j]
    return nv, r_max, sz_max


@njit(cache=True, inline="always")
def associate(rx, ry, rz, c, s, tanl, dz_err, zs, order, nv, r_max, sz_max, hint):
    """(vertex, window start) of a track at reference point (rx, ry, rz) with direction cos(phi) = c,
    sin(phi) = s: the vertex with the smallest straight-line dz pull within ASSOC_DZ_SIGMAS (floor
    ASSOC_DZ_FLOOR) and |dxy| <= ASSOC_DXY_MAX, 0 = PV, k = OtherPV[k-1], -1 = none; ties go to
    the lower index.

    Only vertices in a z window that provably contains every acceptable one are tested
    (``zs``, ``order``, ``nv``, ``r_max``, ``sz_max`` from :func:`sort_vertices`): |dz| is
    bounded by the largest window, and the straight-line correction by
    (|ref| + r_max) |tan(lambda)|. The window's first vertex is found by a walk from ``hint``, the
    window start of the event's previous track (its tracks come in groups from one vertex: the
    PV's, then each pileup interaction's), so in a step or two instead of a bisection's five
    mispredicted branches; it is the same vertex from any hint.
    """
    reach = math.sqrt(max(ASSOC_DZ_SIGMAS * ASSOC_DZ_SIGMAS * (dz_err * dz_err + sz_max * sz_max),
                          ASSOC_DZ_FLOOR * ASSOC_DZ_FLOOR))
    reach += (math.sqrt(rx * rx + ry * ry) + r_max) * abs(tanl)
    reach = reach * (1.0 + 1e-9) + 1e-9  # rounding
    lo, target = min(max(hint, 0), nv - 1), rz - reach  # lo: the first vertex with z >= target (or nv)
    if zs[0, lo] < target:
        lo += 1
        while lo < nv and zs[0, lo] < target:
            lo += 1
    else:
        while lo > 0 and zs[0, lo - 1] >= target:
            lo -= 1
    best, best_pull2 = -1, 1e300
    for t in range(lo, nv):
        if zs[0, t] > rz + reach:
            break
        dx, dy = rx - zs[1, t], ry - zs[2, t]
        if abs(-dx * s + dy * c) > ASSOC_DXY_MAX:
            continue
        dz = (rz - zs[0, t]) - (dx * c + dy * s) * tanl
        var = dz_err * dz_err + zs[3, t] * zs[3, t]
        if dz * dz > max(ASSOC_DZ_SIGMAS * ASSOC_DZ_SIGMAS * var, ASSOC_DZ_FLOOR * ASSOC_DZ_FLOOR):
            continue
        pull2, k = dz * dz / var, order[t]
        if pull2 < best_pull2 or (pull2 == best_pull2 and k < best):
            best_pull2, best = pull2, k
    return best, lo


# --- the event loop ---------------------------------------------------------------------
def reconstruct(rng, g_off, g_pt, g_eta, g_phi, g_pdg, g_status, g_vx, g_vy, g_vz,
                pu_off, pu_x, pu_y, pu_z, pu_tracks_mean, spurious_mean, true_pv_z,
                pv, v_off, vx, vy, vz, vsz, eff, res, chol, corr):
    """Reconstructed tracks of all events, in event order (genuine, pileup, spurious within an event).

    ``pv`` is (6, n_events): reco PV x, y, z, then sqrt(covXX), sqrt(covYY), sqrt(covZZ).
    Returns (counts, floats (len(FLOAT_FIELDS), m), ints (len(INT_FIELDS), m), cov (15, m)).
    """
    n = g_off.size - 1
    st = rand.stream(rng)
    n_pu_trk, n_spur = _candidate_counts(st, pu_x.size, n, pu_tracks_mean, spurious_mean)
    # The output is allocated by NumPy, which asks for transparent huge pages for large arrays
    # (far fewer page faults than numba's allocator), and the kernels that fill it run
    # without numba's reference counting (no atomic increments per inlined helper call).
    cap = g_pt.size + int(n_pu_trk.sum()) + int(n_spur.sum())
    fl, it, cov = np.empty((_N_FLOAT, cap)), np.empty((_N_INT, cap), np.int32), np.empty((15, cap), np.float32)
    counts, helix = np.zeros(n, np.int64), np.empty((8, cap))
    hits = (poisson_table(HITS_MEAN[0]), poisson_table(HITS_MEAN[1]))  # genuine, spurious
    m = _reconstruct(st, g_off, g_pt, g_eta, g_phi, g_pdg, g_status, g_vx, g_vy, g_vz, pu_off, pu_x, pu_y, pu_z,
                     n_pu_trk, n_spur, true_pv_z, eff, res, chol, hits, (np.empty(5), np.empty(5)),
                     counts, fl, it, helix)
    max_nv = 1 + (int(np.max(np.diff(v_off))) if n > 0 else 0)
    vertex_scratch = (np.empty((4, max_nv)), np.empty(max_nv, np.int64))  # sorted z, x, y, sigma_z; order
    _finish_tracks(counts, helix, corr, pv, v_off, vx, vy, vz, vsz, *vertex_scratch, fl, it, cov)
    return counts, fl[:, :m], it[:, :m], cov[:, :m]


@njit(cache=True)
def _candidate_counts(st, n_interactions, n_events, pu_tracks_mean, spurious_mean):
    """Charged-particle candidates of every pileup interaction, and spurious tracks of every event."""
    n_pu_trk = np.empty(n_interactions, np.int64)
    pu_table = poisson_table(pu_tracks_mean)
    for j in range(n_interactions):
        n_pu_trk[j] = poisson_small(st, pu_table)
    n_spur = np.empty(n_events, np.int64)
    spur_table = poisson_table(spurious_mean)
    for e in range(n_events):
        n_spur[e] = poisson_small(st, spur_table)
    return n_pu_trk, n_spur


@njit(cache=True, _nrt=False, fastmath={"arcp", "nsz"})
def _reconstruct(st, g_off, g_pt, g_eta, g_phi, g_pdg, g_status, g_vx, g_vy, g_vz,
                 pu_off, pu_x, pu_y, pu_z, n_pu_trk, n_spur, true_pv_z,
                 eff, res, chol, hits, scratch, counts, fl, it, helix):
    """Draw the tracks of every event: counts, the measured helix, charge, truth link and quality
    into fl and it, and into ``helix`` the cos phi, sin phi, tan lambda and five resolutions of
    each track that :func:`_finish_tracks` needs; returns the number of tracks.

    Compiled with ``fastmath={"arcp", "nsz"}``: a division may become a multiplication by the
    reciprocal (some twenty divisions per track; ~7% faster, values change by ~1e-16 relative),
    signed zeros may be ignored; no contraction to FMA (results as written on any CPU) and no
    assumption of finite values.
    """
    sig, noise = scratch
    max_eta = res[15]
    m = 0
    for e in range(g_off.size - 1):
        n_gen = g_off[e + 1] - g_off[e]
        n_pu = n_pu_trk[pu_off[e]:pu_off[e + 1]].sum()  # pileup-track candidates, interaction by interaction
        j, left = pu_off[e] - 1, 0
        for src in range(3):
            n_src = n_gen if src == 0 else (n_pu if src == 1 else n_spur[e])
            for a in range(n_src):
                gidx, local, kind = -1, -1, _SPURIOUS
                if src == 0:  # charged generator particle of this event
                    i = g_off[e] + a
                    apdg = abs(g_pdg[i])
                    if g_status[i] != 1 or abs(g_eta[i]) >= max_eta:
                        continue
                    if not (apdg == 211 or apdg == 321 or apdg == 2212 or apdg == 11 or apdg == 13):
                        continue
                    if not accepted(rand.uniform(st), g_pt[i], math.sqrt(g_vx[i] * g_vx[i] + g_vy[i] * g_vy[i]), eff):
                        continue
                    q = (-1.0 if apdg == 11 or apdg == 13 else 1.0) * (1.0 if g_pdg[i] > 0 else -1.0)
                    pt, eta, phi, x, y, z = g_pt[i], g_eta[i], g_phi[i], g_vx[i], g_vy[i], g_vz[i]
                    gidx, local, kind = i, a, _PRIMARY
                elif src == 1:  # a charged particle of a pileup interaction of this event
                    while left == 0:
                        j += 1
                        left = n_pu_trk[j]
                    left -= 1
                    pt = soft_pt(st)
                    if not accepted(rand.uniform(st), pt, 0.0, eff):
                        continue
                    eta = PU_TRACK_ETA * (2.0 * rand.uniform(st) - 1.0)
                    phi = math.pi * (2.0 * rand.uniform(st) - 1.0)
                    q = 1.0 if rand.uniform(st) < 0.5 else -1.0
                    x, y, z = pu_x[j], pu_y[j], pu_z[j]
                    kind = _PILEUP
                else:  # spurious: a random helix near the PV
                    q = 1.0 if rand.uniform(st) < 0.5 else -1.0
                    pt = SPURIOUS_PT_MIN + SPURIOUS_PT_MEAN * rand.exponential(st)
                    eta = PU_TRACK_ETA * (2.0 * rand.uniform(st) - 1.0)
                ex = math.exp(eta)  # sinh(eta) = tan(lambda) and cosh(eta) from one exp
                tanl, cosh = 0.5 * (ex - 1.0 / ex), 0.5 * (ex + 1.0 / ex)
                if src < 2:
                    phi, sin_p, cos_p, d0, z0 = perigee(pt, tanl, phi, q, x, y, z)
                else:
                    phi = math.pi * (2.0 * rand.uniform(st) - 1.0)
                    sin_p, cos_p = math.sin(phi), math.cos(phi)
                    d0 = SPURIOUS_D0_SCALE * rand.laplace(st)
                    z0 = true_pv_z[e] + SPURIOUS_Z0_SCALE * rand.laplace(st)
                true = (q / pt, tanl, cosh, eta, phi, sin_p, cos_p, d0, z0)
                m = _emit(st, true, gidx, local, kind, e, res, chol, sig, noise, fl, it, helix, m, counts, hits)
    return m


@njit(cache=True, _nrt=False, fastmath={"arcp", "nsz"})
def _finish_tracks(counts, helix, corr, pv, v_off, vx, vy, vz, vsz, zs, order, fl, it, cov):
    """What the tracks of :func:`_reconstruct` get without random numbers: the covariance, the
    straight-line dxy and dz to the PV with their errors, and the vertex association (``it[7]``).
    A pass of its own: in that kernel's loop, among the draws and short of registers, the same
    work cost twice as much."""
    stop = 0
    for e in range(counts.size):
        start, stop = stop, stop + counts[e]
        if start == stop:
            continue
        nv, r_max, sz_max = sort_vertices(e, pv, v_off, vx, vy, vz, vsz, zs, order)
        hint = 0
        for m in range(start, stop):
            c, s, tanl = helix[0, m], helix[1, m], helix[2, m]
            k = 0
            for i in range(5):
                for j in range(i, 5):
                    cov[k, m] = helix[3 + i, m] * helix[3 + j, m] * corr[i, j]
                    k += 1
            ref_x, ref_y, z0 = fl[3, m], fl[4, m], fl[5, m]
            dx, dy = ref_x - pv[0, e], ref_y - pv[1, e]
            dxy_err = math.sqrt(float(cov[_COV33, m]) + (pv[3, e] * s) ** 2 + (pv[4, e] * c) ** 2)
            dz_err = math.sqrt(float(cov[_COV44, m]) + pv[5, e] ** 2)
            fl[6, m] = -dx * s + dy * c
            fl[7, m] = (z0 - pv[2, e]) - (dx * c + dy * s) * tanl
            fl[8, m], fl[9, m] = dxy_err, dz_err
            it[7, m], hint = associate(ref_x, ref_y, z0, c, s, tanl, dz_err, zs, order, nv, r_max, sz_max, hint)


@njit(cache=True, inline="always")
def _emit(st, true, gidx, local, kind, e, res, chol, sig, noise, fl, it, helix, m, counts, hits):
    """Smear one track and write it at position m if it is in the acceptance; returns the next
    position. ``true`` is its helix at the PCA to the beam line: (q/pT, tan(lambda), cosh(eta), eta,
    phi, sin(phi), cos(phi), d0, z0).

    The measured lambda and phi differ from the true ones by small angles: their sines and
    cosines come from the true ones by the addition theorems, and eta from the true one by
    asinh(a) - asinh(b) = asinh(a sqrt(1 + b^2) - b sqrt(1 + a^2)) (series for small arguments).
    """
    q_pt, tanl_true, cosh_true, eta_true, phi_true, sin_true, cos_true, d0_true, z0_true = true
    sigmas_cosh(1.0 / abs(q_pt), cosh_true, abs(eta_true), res, sig)
    correlated_noise(st, chol, noise)
    q_pt_meas = (q_pt + noise[0] * sig[0]) / res[14]
    pt = 1.0 / abs(q_pt_meas)
    sin_dl, cos_dl = sincos_small(noise[1] * sig[1])
    den = cos_dl - tanl_true * sin_dl  # cos(lambda + dlambda) / (cos(lambda) cos(dlambda))
    if den <= 0.0:  # lambda pushed beyond +-pi/2
        return m
    tanl = (tanl_true * cos_dl + sin_dl) / den
    eta = eta_true + asinh_small(tanl * cosh_true - tanl_true * math.sqrt(1.0 + tanl * tanl))
    if not (pt > res[16] and abs(eta) < res[15]):
        return m
    dphi = noise[2] * sig[2]
    sin_dp, cos_dp = sincos_small(dphi)
    phi = wrap(phi_true + dphi)
    c, s = cos_true * cos_dp - sin_true * sin_dp, sin_true * cos_dp + cos_true * sin_dp  # cos, sin of phi
    d0, z0 = d0_true + noise[3] * sig[3], z0_true + noise[4] * sig[4]
    spurious = kind == _SPURIOUS
    if spurious:
        for i in range(5):
            sig[i] *= SPURIOUS_COV_INFLATION
    fl[0, m], fl[1, m], fl[2, m] = pt, eta, phi
    fl[3, m], fl[4, m], fl[5, m] = -d0 * s, d0 * c, z0  # the reference point
    helix[0, m], helix[1, m], helix[2, m] = c, s, tanl  # for _finish_tracks
    for i in range(5):
        helix[3 + i, m] = sig[i]
    it[0, m] = 1 if q_pt_meas > 0 else -1
    it[2, m], it[3, m], it[4, m] = local, kind, gidx
    # quality: high purity, PF candidate, valid hits, chi2/ndof (fake tracks are worse)
    p_hp = 0.35 if spurious else (0.9 if pt < 0.3 else 0.97)
    p_pf, min_hits = (0.6, 5) if spurious else (0.95, 8)
    chi2_shape, chi2_scale = (2.0, 1.5) if spurious else (5.0, 0.2)
    it[5, m] = rand.uniform(st) < p_hp
    it[6, m] = rand.uniform(st) < p_pf
    it[1, m] = min_hits + poisson_small(st, hits[1] if spurious else hits[0])
    fl[10, m] = chi2_scale * rand.gamma(st, chi2_shape)
    counts[e] += 1
    return m + 1
