"""The soft component of the toy generator: vertices, tracks, PF candidates, isolation.

Every event has a leading primary vertex (PV) and Poisson pileup interactions; charged
particles come from the primary interaction (prompt, and secondary from K0S decays), from
the hard process (leptons, tau decays, signal pions), from pileup interactions, and
spurious (fake) tracks are added. Tracks carry measured helix parameters smeared with the
covariance of :class:`~analysis.toymc.truth.TrackModel`, stored in the convention of
:mod:`analysis.contract` (the reconstruction itself is in :mod:`.tracking`). The per-particle
work runs in numba kernels that draw from an inlined stream of :mod:`.rand` seeded from the
sample's ``numpy.random.Generator``; as in
:mod:`.tracking`, those that fill per-particle arrays get them allocated by NumPy and run
without numba's reference counting where they can (``_nrt=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import contract as dc
from ..constants import PION_MASS
from . import rand, tracking
from .hard import GEN_FIELDS, HardEvents
from .jagged import Jagged, copy_blocks
from .tracking import soft_pt, wrap
from .truth import Detector

# numba caches a kernel by its own file only: a change of soft_pt or wrap (tracking.py) or of the
# inlined draws (rand.py) must come with a change of this file, or a cached kernel here keeps the old one

PROMPT_TRACKS_MEAN = 16.0
V0_MEAN = 0.8
K0S_MASS = 0.497611
K0S_CTAU_CM = 2.6844
PDG_K0S = 310
SPURIOUS_MEAN = 3.0
NEUTRAL_PF_MEAN = 10.0
NEAR_JET_FRACTION = 0.5
NEAR_JET_SPREAD = 0.15  # eta and phi spread of soft particles around their jet
SOFT_ETA = 2.6  # soft particles away from jets: uniform in |eta| below this
KAON_MASS = 0.493677
PROTON_MASS = 0.938272
K0S_PT_MIN = 0.3
K0S_PT_GAMMA = (2.0, 0.7)
NEUTRAL_PT_MIN = 0.5
NEUTRAL_PT_MEAN = 2.0
PHOTON_FRACTION = 0.6  # neutral PF candidates: photons, the rest neutral hadrons (130)
FROM_PV_TIGHT_DZ = 0.02  # cm: fromPV = 3 (PV-associated and |dz| below this), else 2
SV_RECO_EFF = 0.7
PF_ISO_CONE = 0.3


@dataclass
class Vertices:
    pv: dict[str, np.ndarray]  # reco PV fields (flat per event)
    other: Jagged  # OtherPV (reco pileup vertices)
    true_pv: tuple[np.ndarray, np.ndarray, np.ndarray]
    pu_true: Jagged  # all pileup interactions: x, y, z (true), reco index or -1


def sample_primary(n: int, det: Detector, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pu = det.pileup
    return (rng.normal(0, pu.beamspot_sigma_xy, n), rng.normal(0, pu.beamspot_sigma_xy, n),
            rng.normal(0, pu.beamspot_sigma_z, n))


def vertices(true_pv, n_pu: np.ndarray, det: Detector, rng) -> Vertices:
    """Pileup interactions (true positions in the beam spot), their reconstructed vertices
    (efficiency and resolution of PileupModel) and the reconstructed leading PV."""
    pu = det.pileup
    n = n_pu.size
    n_pu = n_pu.astype(np.int64)
    total = int(n_pu.sum())
    true, reco, counts, pv = np.empty((4, total)), np.empty((5, total)), np.zeros(n, np.int64), np.empty((5, n))
    m = _vertices(rand.stream(rng), n_pu, *true_pv, pu.beamspot_sigma_xy, pu.beamspot_sigma_z, pu.vertex_reco_eff,
                  pu.pu_sigma_xy, pu.pu_sigma_z, pu.pv_sigma_xy, pu.pv_sigma_z, true, reco, counts, pv)
    reco = reco[:, :m]
    zeros = np.zeros(counts.sum())
    other = Jagged(counts, {"x": reco[0], "y": reco[1], "z": reco[2], "covXX": reco[3], "covXY": zeros,
                            "covXZ": zeros, "covYY": reco[3], "covYZ": zeros, "covZZ": reco[4]})
    pu_true = Jagged(n_pu.astype(np.int64), {"x": true[0], "y": true[1], "z": true[2], "vtx": true[3].astype(np.int64)})
    n_good = (1 + counts).astype(np.int32)
    pv_fields = {
        "PV_x": pv[0], "PV_y": pv[1], "PV_z": pv[2],
        "PV_covXX": np.full(n, pu.pv_sigma_xy**2), "PV_covXY": np.zeros(n), "PV_covXZ": np.zeros(n),
        "PV_covYY": np.full(n, pu.pv_sigma_xy**2), "PV_covYZ": np.zeros(n), "PV_covZZ": np.full(n, pu.pv_sigma_z**2),
        "PV_npvs": n_good, "PV_npvsGood": n_good.copy(), "PV_chi2": pv[3], "PV_ndof": pv[4],
    }
    return Vertices(pv_fields, other, true_pv, pu_true)


@njit(cache=True, _nrt=False)
def _vertices(st, n_pu, tx, ty, tz, bs_xy, bs_z, reco_eff, pu_xy, pu_z, pv_xy, pv_z, true, reco, counts, pv):
    """Fill true (x, y, z, reco index or -1) of pileup interactions; reco (x, y, z, covXX, covZZ) of
    the reconstructed ones with per-event counts; reco PV (x, y, z, chi2, ndof). Returns the
    number of reconstructed pileup vertices."""
    n = n_pu.size
    j = m = 0
    for e in range(n):
        for _ in range(n_pu[e]):
            x, y, z = bs_xy * rand.normal(st), bs_xy * rand.normal(st), bs_z * rand.normal(st)
            true[0, j], true[1, j], true[2, j], true[3, j] = x, y, z, -1
            if rand.uniform(st) < reco_eff:
                counts[e] += 1
                true[3, j] = counts[e]  # 0 is the PV
                sxy, sz = pu_xy * (0.7 + 0.8 * rand.uniform(st)), pu_z * (0.7 + 0.8 * rand.uniform(st))
                reco[0, m], reco[1, m] = x + sxy * rand.normal(st), y + sxy * rand.normal(st)
                reco[2, m], reco[3, m], reco[4, m] = z + sz * rand.normal(st), sxy * sxy, sz * sz
                m += 1
            j += 1
        pv[0, e], pv[1, e] = tx[e] + pv_xy * rand.normal(st), ty[e] + pv_xy * rand.normal(st)
        pv[2, e], pv[3, e] = tz[e] + pv_z * rand.normal(st), 0.25 * rand.gamma(st, 4.0)
        pv[4, e] = 2.0 * (10 + rand.poisson(st, 15.0))
    return m


@njit(cache=True)  # called, not inlined: each inlined draw costs compile time
def _direction(st, e, j_off, j_eta, j_phi):
    """eta, phi of a soft particle: with probability NEAR_JET_FRACTION near a random hard gen jet."""
    nj = j_off[e + 1] - j_off[e]
    if nj > 0 and rand.uniform(st) < NEAR_JET_FRACTION:
        k = j_off[e] + min(int(rand.uniform(st) * nj), nj - 1)
        return j_eta[k] + NEAR_JET_SPREAD * rand.normal(st), wrap(j_phi[k] + NEAR_JET_SPREAD * rand.normal(st))
    return SOFT_ETA * (2.0 * rand.uniform(st) - 1.0), math.pi * (2.0 * rand.uniform(st) - 1.0)


def hard_jets(genjets: Jagged) -> Jagged:
    """Gen jets that soft particles cluster around (pT > 20 GeV inside the tracker)."""
    return genjets.filter((genjets["pt"] > 20.0) & (np.abs(genjets["eta"]) < SOFT_ETA))


def _hard_jets_of(hard: HardEvents) -> Jagged:
    """:func:`hard_jets` of the events' gen jets, computed once per gen-jet collection (the
    primary particles and the neutral PF candidates both cluster around them)."""
    genjets, jets = hard.__dict__.get("_hard_jets", (None, None))
    if genjets is not hard.genjets:
        jets = hard_jets(hard.genjets)
        hard.__dict__["_hard_jets"] = (hard.genjets, jets)
    return jets


def primary_particles(hard: HardEvents, true_pv, det: Detector, rng, with_hard: bool = False) -> Jagged:
    """GenPart entries of the primary interaction: prompt hadrons and K0S -> pi+ pi-.

    Per event the prompt hadrons come first, then (K0S, pi+, pi-) triplets; mother indices
    are local to the event after the hard process's GenPart entries. ``with_hard``: each event's
    hard-process entries first, then these (the event's GenPart, every field float64), written
    in place instead of concatenated afterwards.
    """
    jets = _hard_jets_of(hard)
    rate = det.model.pv_track_rate
    st = rand.stream(rng)
    hard_counts = hard.genpart.counts
    n_prompt, n_v0 = _primary_counts(st, hard_counts.size, PROMPT_TRACKS_MEAN * rate, V0_MEAN * rate)
    counts = n_prompt + 3 * n_v0
    if with_hard:
        counts = counts + hard_counts
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = np.empty((len(GEN_FIELDS), int(offsets[-1])))
    start = offsets[:-1]  # where the primary particles of an event go
    if with_hard:
        for i, k in enumerate(GEN_FIELDS):
            copy_blocks(rows[i], start, hard.genpart[k].astype(np.float64, copy=False), hard_counts)
        start = start + hard_counts
    _primary(st, n_prompt, n_v0, hard_counts, *true_pv, jets.offsets, jets["eta"], jets["phi"], start, rows)
    return Jagged(counts, {k: rows[i] for i, k in enumerate(GEN_FIELDS)})


@njit(cache=True)
def _primary_counts(st, n, prompt_mean, v0_mean):
    """Prompt hadrons and K0S of every event."""
    n_prompt, n_v0 = np.empty(n, np.int64), np.empty(n, np.int64)
    for e in range(n):
        n_prompt[e] = rand.poisson(st, prompt_mean)
        n_v0[e] = rand.poisson(st, v0_mean)
    return n_prompt, n_v0


@njit(cache=True, _nrt=False)
def _primary(st, n_prompt, n_v0, hard_counts, pv_x, pv_y, pv_z, j_off, j_eta, j_phi, start, out):
    """Fill ``out`` (GEN_FIELDS x particles) with the particles of :func:`primary_particles`, those
    of event e from position start[e] on."""
    n = hard_counts.size
    p_star = _two_body_momentum(K0S_MASS, PION_MASS, PION_MASS)
    for e in range(n):
        m = start[e]
        for _ in range(n_prompt[e]):
            eta, phi = _direction(st, e, j_off, j_eta, j_phi)
            u = rand.uniform(st)
            pdg, mass = (211, PION_MASS) if u < 0.8 else ((321, KAON_MASS) if u < 0.92 else (2212, PROTON_MASS))
            sign = 1.0 if rand.uniform(st) < 0.5 else -1.0
            _gen_row(out, m, soft_pt(st), eta, phi, mass, sign * pdg, 1.0, -1.0, pv_x[e], pv_y[e], pv_z[e])
            m += 1
        base = hard_counts[e] + n_prompt[e]  # local index of this event's first K0S
        for b in range(n_v0[e]):
            eta, phi = _direction(st, e, j_off, j_eta, j_phi)
            pt = K0S_PT_MIN + K0S_PT_GAMMA[1] * rand.gamma(st, K0S_PT_GAMMA[0])
            px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
            p = math.sqrt(pt * pt + pz * pz)
            energy = math.sqrt(p * p + K0S_MASS * K0S_MASS)
            length = p / K0S_MASS * K0S_CTAU_CM * rand.exponential(st)
            dx, dy, dz = pv_x[e] + length * px / p, pv_y[e] + length * py / p, pv_z[e] + length * pz / p
            _gen_row(out, m, pt, min(max(eta, -10.0), 10.0), phi, K0S_MASS, PDG_K0S, 2.0, -1.0, pv_x[e], pv_y[e], pv_z[e])
            # isotropic decay in the K0S rest frame, boosted to the lab
            cos_t = 2.0 * rand.uniform(st) - 1.0
            sin_t = math.sqrt(1.0 - cos_t * cos_t)
            ph = math.pi * (2.0 * rand.uniform(st) - 1.0)
            kx, ky, kz = p_star * sin_t * math.cos(ph), p_star * sin_t * math.sin(ph), p_star * cos_t
            e_star = math.sqrt(p_star * p_star + PION_MASS * PION_MASS)
            for d, sign in ((1, 1.0), (2, -1.0)):
                qx, qy, qz = _boost(sign * kx, sign * ky, sign * kz, e_star, px / energy, py / energy, pz / energy)
                q_pt = math.hypot(qx, qy)
                q_eta = min(max(math.asinh(qz / q_pt), -10.0), 10.0) if q_pt > 0 else math.copysign(10.0, qz)
                _gen_row(out, m + d, q_pt, q_eta, math.atan2(qy, qx), PION_MASS, sign * 211, 1.0, base + 3 * b, dx, dy, dz)
            m += 3


@njit(cache=True, inline="always")
def _gen_row(out, m, pt, eta, phi, mass, pdg, status, mother, vx, vy, vz):
    out[0, m], out[1, m], out[2, m], out[3, m], out[4, m] = pt, eta, phi, mass, pdg
    out[5, m], out[6, m], out[7, m], out[8, m], out[9, m] = status, mother, vx, vy, vz


@njit(cache=True, inline="always")
def _two_body_momentum(m, m1, m2):
    a = (m - m1 - m2) * (m + m1 + m2)
    b = (m - m1 + m2) * (m + m1 - m2)
    return math.sqrt(max(a * b, 0.0)) / (2.0 * m)


@njit(cache=True, inline="always")
def _boost(px, py, pz, e, bx, by, bz):
    """Three-momentum of (px, py, pz, e) boosted by velocity (bx, by, bz)."""
    b2 = bx * bx + by * by + bz * bz
    if b2 <= 0.0:
        return px, py, pz
    gamma = 1.0 / math.sqrt(max(1.0 - b2, 1e-300))
    bp = bx * px + by * py + bz * pz
    f = (gamma - 1.0) / b2 * bp + gamma * e
    return px + f * bx, py + f * by, pz + f * bz


def smear_helix(params, det: Detector, rng):
    """Measured helix parameters (list of 5 arrays) and resolutions (n, 5) of true ``params``."""
    _, res, chol, _ = tracking.model_arrays(det)
    meas, sig = tracking.smear_many(*(np.asarray(p, np.float64) for p in params), res, chol, rand.stream(rng))
    return [meas[:, i] for i in range(5)], sig


def tracks_and_pf(genpart: Jagged, vtx: Vertices, hard: HardEvents, det: Detector, is_data: bool, rng):
    """Reconstruct tracks from all charged sources, associate vertices, build SV and PF candidates."""
    pv = np.stack([vtx.pv["PV_x"], vtx.pv["PV_y"], vtx.pv["PV_z"],
                   *(np.sqrt(vtx.pv[f"PV_cov{c}"]) for c in ("XX", "YY", "ZZ"))])
    vo, pu = vtx.other, vtx.pu_true
    counts, fl, it, cov = tracking.reconstruct(
        rng, genpart.offsets, genpart["pt"], genpart["eta"], genpart["phi"], genpart["pdgId"].astype(np.int64),
        genpart["status"].astype(np.int64), genpart["vx"], genpart["vy"], genpart["vz"],
        pu.offsets, pu["x"], pu["y"], pu["z"], det.pileup.tracks_per_pu, SPURIOUS_MEAN * det.model.spurious_track_rate,
        vtx.true_pv[2], pv, vo.offsets, vo["x"], vo["y"], vo["z"], np.sqrt(vo["covZZ"]), *tracking.model_arrays(det),
    )
    fields = {name: fl[i] for i, name in enumerate(tracking.FLOAT_FIELDS)}
    fields |= {name: it[i].astype(dc.TRACK_FIELDS.get(name, ("int64",))[0]) for i, name in enumerate(tracking.INT_FIELDS)}
    fields |= {b: cov[i] for i, b in enumerate(dc.TRACK_COV_BRANCHES)}
    col = Jagged(counts, fields)
    sv, col["svIdx"] = secondary_vertices(genpart, col, rng)
    pf, col["pfIso03"] = pf_candidates(col, hard, rng)
    del col.fields["gflat"]
    if is_data:
        del col.fields["genPartIdx"], col.fields["genOrigin"]
    return col, sv, pf


def secondary_vertices(genpart: Jagged, tracks: Jagged, rng) -> tuple[Jagged, np.ndarray]:
    """SV from K0S decays with both pions reconstructed (efficiency SV_RECO_EFF)."""
    n = genpart.n_events
    gmap = np.full(genpart["pt"].size, -1, np.int64)
    gsrc = tracks["gflat"]
    gmap[gsrc[gsrc >= 0]] = np.nonzero(gsrc >= 0)[0]
    is_v0 = genpart["pdgId"] == PDG_K0S
    v0 = np.nonzero(is_v0)[0]
    d1, d2 = v0 + 1, v0 + 2  # the generator writes K0S, pi+, pi- consecutively
    t1, t2 = gmap[d1], gmap[d2]
    ok = (t1 >= 0) & (t2 >= 0) & (rng.random(v0.size) < SV_RECO_EFF)
    v0, d1, t1, t2 = v0[ok], d1[ok], t1[ok], t2[ok]
    ev = genpart.event_index()[v0]
    k = v0.size
    sig = 0.02
    sv = Jagged(np.bincount(ev, minlength=n).astype(np.int64), {
        "x": genpart["vx"][d1] + sig * rng.standard_normal(k), "y": genpart["vy"][d1] + sig * rng.standard_normal(k),
        "z": genpart["vz"][d1] + sig * rng.standard_normal(k),
        "covXX": np.full(k, sig**2), "covXY": np.zeros(k), "covXZ": np.zeros(k), "covYY": np.full(k, sig**2),
        "covYZ": np.zeros(k), "covZZ": np.full(k, sig**2), "ntracks": np.full(k, 2, np.int32),
        "mass": K0S_MASS + 0.005 * rng.standard_normal(k), "chi2": rng.gamma(2.0, 0.5, k), "ndof": np.ones(k),
    })
    # ev is sorted (genpart is event-ordered) so the SV local index follows directly
    local = np.arange(k) - np.repeat(sv.offsets[:-1], sv.counts)
    sv_idx = np.full(tracks["pt"].size, -1, np.int32)
    sv_idx[t1] = local
    sv_idx[t2] = local
    return sv, sv_idx


def pf_candidates(tracks: Jagged, hard: HardEvents, rng) -> tuple[Jagged, np.ndarray]:
    """PF candidates (charged ones from PF tracks, neutral ones near jets and uniform) and the
    PF isolation of every track (sum pT of charged PV candidates and neutrals in DeltaR < 0.3)."""
    jets = _hard_jets_of(hard)
    n = tracks.n_events
    st = rand.stream(rng)
    n_neutral = _poisson_per_event(st, n, NEUTRAL_PF_MEAN)
    is_pf = tracks["isPFcand"]
    cap = int(np.count_nonzero(is_pf)) + int(n_neutral.sum())
    fl, it, counts, iso = np.empty((3, cap)), np.empty((4, cap), np.int32), np.zeros(n, np.int64), np.zeros(is_pf.size, np.float32)
    most = int(np.max(tracks.counts + n_neutral)) if n else 0  # candidates of one event, at most
    scratch = (np.empty(most), np.empty(most), np.empty(most), np.empty(most, np.int64))
    m = _pf_and_isolation(st, tracks.offsets, tracks["pt"], tracks["eta"], tracks["phi"], tracks["charge"],
                          tracks["dz"], tracks["vtxIdx"], is_pf, jets.offsets, jets["eta"], jets["phi"], n_neutral,
                          PF_ISO_CONE, scratch, fl, it, counts, iso)
    fl, it = fl[:, :m], it[:, :m]
    fields = {"pt": fl[0], "eta": fl[1], "phi": fl[2]}
    fields |= {k: it[i] for i, k in enumerate(("charge", "pdgId", "fromPV", "trkIdx"))}
    return Jagged(counts, fields), iso


@njit(cache=True)
def _poisson_per_event(st, n, mean):
    """A Poisson count of the given mean for each of n events (neutral PF candidates)."""
    out = np.empty(n, np.int64)
    for e in range(n):
        out[e] = rand.poisson(st, mean)
    return out


@njit(cache=True, _nrt=False)
def _pf_and_isolation(st, t_off, t_pt, t_eta, t_phi, t_charge, t_dz, t_vtx, t_pf, j_off, j_eta, j_phi,
                      n_neutral, cone, scratch, fl, it, counts, iso):
    """Fill the PF candidates (fl, it, counts) and the track isolation ``iso``; returns the number
    of candidates. ``scratch`` holds four arrays as long as the most candidates of one event."""
    n = t_off.size - 1
    m = 0
    for e in range(n):
        start = m
        for i in range(t_off[e], t_off[e + 1]):
            if not t_pf[i]:
                continue
            v = t_vtx[i]
            from_pv = (3 if abs(t_dz[i]) < FROM_PV_TIGHT_DZ else 2) if v == 0 else (0 if v > 0 else 1)
            fl[0, m], fl[1, m], fl[2, m] = t_pt[i], t_eta[i], t_phi[i]
            it[0, m], it[1, m], it[2, m], it[3, m] = t_charge[i], 211 * t_charge[i], from_pv, i - t_off[e]
            m += 1
        for _ in range(n_neutral[e]):
            eta, phi = _direction(st, e, j_off, j_eta, j_phi)
            fl[0, m], fl[1, m], fl[2, m] = NEUTRAL_PT_MIN + NEUTRAL_PT_MEAN * rand.exponential(st), eta, phi
            it[0, m], it[1, m], it[2, m], it[3, m] = 0, 22 if rand.uniform(st) < PHOTON_FRACTION else 130, 0, -1
            m += 1
        counts[e] = m - start
        _isolation(t_off[e], t_off[e + 1], t_eta, t_phi, start, m, fl, it, cone, scratch, iso)
    return m


@njit(cache=True, _nrt=False, fastmath={"reassoc"})
def _isolation(first, last, t_eta, t_phi, start, stop, fl, it, cone, scratch, iso):
    """Sum pT of PF candidates start..stop-1 (neutral, or charged from the PV) in DeltaR < cone of
    tracks first..last-1, excluding the track's own candidate.

    The sum over candidates is branchless and may be reassociated (``fastmath={"reassoc"}``), so
    that LLVM vectorizes it (~2x faster isolation); it changes the float64 sum in its last bits.
    """
    pt, eta, phi, trk = scratch
    k = 0
    for j in range(start, stop):
        if it[0, j] == 0 or it[2, j] >= 2:
            pt[k], eta[k], phi[k], trk[k] = fl[0, j], fl[1, j], fl[2, j], it[3, j]
            k += 1
    cone2 = cone * cone
    for i in range(first, last):
        local, s = i - first, 0.0
        for a in range(k):
            deta = eta[a] - t_eta[i]
            dphi = abs(phi[a] - t_phi[i])
            dphi = min(dphi, 2.0 * math.pi - dphi)
            s += pt[a] if (deta * deta + dphi * dphi < cone2) & (trk[a] != local) else 0.0
        iso[i] = s
