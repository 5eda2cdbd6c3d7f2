"""The soft component of the toy generator: vertices, tracks, PF candidates, isolation.

Every event has a leading primary vertex (PV) and Poisson pileup interactions; charged
particles come from the primary interaction (prompt, and secondary from K0S decays), from
the hard process (leptons, tau decays, signal pions), from pileup interactions, and
spurious (fake) tracks are added. Tracks carry measured helix parameters smeared with the
covariance of :class:`~analysis.toymc.truth.TrackModel`, stored in the convention of
:mod:`analysis.contract`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import config as cfg
from .. import contract as dc
from .hard import CHARGED_PDG, GEN_FIELDS, HardEvents
from .jagged import Jagged, concatenate
from .kinematics import from_ptetaphim, to_ptetaphim, two_body_decay, wrap_phi
from .truth import Detector

PROMPT_TRACKS_MEAN = 16.0
V0_MEAN = 0.8
K0S_MASS = 0.497611
K0S_CTAU_CM = 2.6844
PDG_K0S = 310
SPURIOUS_MEAN = 3.0
NEUTRAL_PF_MEAN = 10.0
NEAR_JET_FRACTION = 0.5
SV_RECO_EFF = 0.7
PF_ISO_CONE = 0.3
ASSOC_DZ_SIGMAS = 3.0
ASSOC_DZ_FLOOR = 0.05  # cm
ASSOC_DXY_MAX = 0.2  # cm


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
    pu = det.pileup
    n = n_pu.size
    k = n_pu.sum()
    tx, ty, tz = (rng.normal(0, pu.beamspot_sigma_xy, k), rng.normal(0, pu.beamspot_sigma_xy, k),
                  rng.normal(0, pu.beamspot_sigma_z, k))
    reco = rng.random(k) < pu.vertex_reco_eff
    allpu = Jagged(n_pu.astype(np.int64), {"x": tx, "y": ty, "z": tz, "reco": reco})
    rec = allpu.filter(reco)
    m = rec["x"].size
    sxy, sz = pu.pu_sigma_xy * rng.uniform(0.7, 1.5, m), pu.pu_sigma_z * rng.uniform(0.7, 1.5, m)
    other = Jagged(rec.counts, {
        "x": rec["x"] + sxy * rng.standard_normal(m), "y": rec["y"] + sxy * rng.standard_normal(m),
        "z": rec["z"] + sz * rng.standard_normal(m),
        "covXX": sxy**2, "covXY": np.zeros(m), "covXZ": np.zeros(m), "covYY": sxy**2,
        "covYZ": np.zeros(m), "covZZ": sz**2,
    })
    # index of each pileup interaction's reco vertex in the combined list (0 = PV)
    ridx = np.cumsum(reco) - 1
    first = np.zeros(n, np.int64)
    if k:
        starts = allpu.offsets[:-1]
        cum = np.concatenate([[0], np.cumsum(reco)])
        first = cum[starts]
    allpu["vtx"] = np.where(reco, ridx - np.repeat(first, n_pu) + 1, -1)
    px, py, pz = pu.pv_sigma_xy, pu.pv_sigma_xy, pu.pv_sigma_z
    pv = {
        "PV_x": true_pv[0] + px * rng.standard_normal(n), "PV_y": true_pv[1] + py * rng.standard_normal(n),
        "PV_z": true_pv[2] + pz * rng.standard_normal(n),
        "PV_covXX": np.full(n, px**2), "PV_covXY": np.zeros(n), "PV_covXZ": np.zeros(n),
        "PV_covYY": np.full(n, py**2), "PV_covYZ": np.zeros(n), "PV_covZZ": np.full(n, pz**2),
        "PV_npvs": (1 + rec.counts).astype(np.int32), "PV_npvsGood": (1 + rec.counts).astype(np.int32),
        "PV_chi2": rng.gamma(4.0, 0.25, n), "PV_ndof": 2.0 * (10 + rng.poisson(15, n)),
    }
    return Vertices(pv, other, true_pv, allpu)


def soft_pt(k: int, rng) -> np.ndarray:
    hard_tail = rng.random(k) < 0.1
    return np.where(hard_tail, 1.0 + rng.pareto(2.5, k), 0.08 + rng.gamma(1.6, 0.45, k))


def _directions(counts, jets: Jagged, rng):
    """eta, phi of soft particles: half of them near a random gen jet above 20 GeV."""
    n = counts.size
    k = counts.sum()
    ev = np.repeat(np.arange(n), counts)
    eta, phi = rng.uniform(-2.6, 2.6, k), rng.uniform(-np.pi, np.pi, k)
    hard_jets = jets.filter((jets["pt"] > 20.0) & (np.abs(jets["eta"]) < 2.6))
    nj = hard_jets.counts[ev]
    near = (rng.random(k) < NEAR_JET_FRACTION) & (nj > 0)
    pick = hard_jets.offsets[:-1][ev] + (rng.random(k) * np.maximum(nj, 1)).astype(np.int64)
    pick = np.minimum(pick, max(hard_jets["pt"].size - 1, 0))
    if hard_jets["pt"].size:
        eta = np.where(near, hard_jets["eta"][pick] + rng.normal(0, 0.15, k), eta)
        phi = np.where(near, hard_jets["phi"][pick] + rng.normal(0, 0.15, k), phi)
    return eta, wrap_phi(phi)


def primary_particles(hard: HardEvents, true_pv, det: Detector, rng) -> Jagged:
    """GenPart entries of the primary interaction: prompt hadrons and K0S -> pi+ pi-."""
    n = hard.genjets.n_events
    rate = det.model.pv_track_rate
    counts = rng.poisson(PROMPT_TRACKS_MEAN * rate, n)
    k = counts.sum()
    ev = np.repeat(np.arange(n), counts)
    eta, phi = _directions(counts, hard.genjets, rng)
    species = rng.choice(np.array([211, 321, 2212]), k, p=[0.8, 0.12, 0.08])
    mass = np.select([species == 211, species == 321], [cfg.PION_MASS, 0.493677], 0.938272)
    prompt = {
        "pt": soft_pt(k, rng), "eta": eta, "phi": phi, "mass": mass,
        "pdgId": (species * rng.choice([-1, 1], k)).astype(np.float64), "status": np.ones(k),
        "mother": np.full(k, -1.0), "vx": true_pv[0][ev], "vy": true_pv[1][ev], "vz": true_pv[2][ev],
    }
    # K0S: the neutral kaon at the PV, its two pions at the decay vertex
    nv = rng.poisson(V0_MEAN * rate, n)
    kv = nv.sum()
    evv = np.repeat(np.arange(n), nv)
    veta, vphi = _directions(nv, hard.genjets, rng)
    vpt = 0.3 + rng.gamma(2.0, 0.7, kv)
    p4 = from_ptetaphim(vpt, veta, vphi, K0S_MASS)
    p = np.sqrt(p4[0] ** 2 + p4[1] ** 2 + p4[2] ** 2)
    length = p / K0S_MASS * K0S_CTAU_CM * rng.standard_exponential(kv)
    dvx, dvy, dvz = (true_pv[i][evv] + length * p4[i] / p for i in range(3))
    d1, d2 = two_body_decay(p4, K0S_MASS, cfg.PION_MASS, cfg.PION_MASS, rng)
    base = hard.genpart.counts[evv] + counts[evv]  # local index where this event's V0 block starts
    vloc = base + (np.arange(kv) - np.repeat(np.concatenate([[0], np.cumsum(nv)[:-1]]), nv)) * 3
    rows = []
    for j, (vec, pdg, vert, mother) in enumerate(
        ((p4, PDG_K0S, (true_pv[0][evv], true_pv[1][evv], true_pv[2][evv]), -1), (d1, 211, (dvx, dvy, dvz), 0), (d2, -211, (dvx, dvy, dvz), 0))
    ):
        pt_, eta_, phi_, m_ = to_ptetaphim(*vec)
        rows.append({
            "pt": pt_, "eta": np.clip(eta_, -10, 10), "phi": phi_, "mass": m_, "pdgId": np.full(kv, float(pdg)),
            "status": np.full(kv, 2.0 if j == 0 else 1.0),
            "mother": np.full(kv, -1.0) if mother < 0 else vloc.astype(np.float64),
            "vx": vert[0], "vy": vert[1], "vz": vert[2],
        })
    v0 = {key: np.stack([r[key] for r in rows], 1).reshape(-1) for key in GEN_FIELDS}
    v0_j = Jagged((3 * nv).astype(np.int64), v0)
    prompt_j = Jagged(counts.astype(np.int64), prompt)
    out, _ = concatenate([prompt_j, v0_j])
    return out


def helix_at_beamline(pt, eta, phi, charge, vx, vy, vz):
    """Helix parameters at the PCA to the beam line of particles produced at (vx, vy, vz).

    Returns (qoverpt, lambda, phi_ref, d0, z0) in the convention of :mod:`analysis.contract`.
    """
    radius = pt * cfg.R1_CM / charge
    cx, cy = vx + radius * np.sin(phi), vy - radius * np.cos(phi)
    cnorm = np.maximum(np.hypot(cx, cy), 1e-12)
    s = np.sign(radius)
    phi_ref = np.arctan2(s * cx / cnorm, -s * cy / cnorm)
    ref_x = cx - np.abs(radius) * cx / cnorm
    ref_y = cy - np.abs(radius) * cy / cnorm
    t = wrap_phi(phi - phi_ref)
    lam = np.arctan(np.sinh(eta))
    z0 = vz + radius * np.tan(lam) * t
    d0 = -ref_x * np.sin(phi_ref) + ref_y * np.cos(phi_ref)
    return charge / pt, lam, phi_ref, d0, z0


def smear_helix(params, det: Detector, rng):
    """Measured helix parameters and their covariance (n, 5, 5 is not built: sigmas + corr)."""
    q_pt, lam, phi, d0, z0 = params
    pt = 1.0 / np.abs(q_pt)
    eta = np.arcsinh(np.tan(lam))
    sig = det.tracks.sigmas(pt, eta)
    sig[:, 3] *= det.model.dxy_err_scale
    sig[:, 4] *= det.model.dz_err_scale
    chol = det.tracks.cholesky()
    z = rng.standard_normal((pt.size, 5)) @ chol.T
    noise = z * sig
    meas = [q_pt + noise[:, 0], lam + noise[:, 1], wrap_phi(phi + noise[:, 2]), d0 + noise[:, 3], z0 + noise[:, 4]]
    meas[0] = meas[0] / det.model.track_pt_scale
    return meas, sig


def covariance_branches(sig: np.ndarray, det: Detector) -> dict[str, np.ndarray]:
    corr = np.array(det.tracks.correlation)
    return {
        b: (sig[:, i] * sig[:, j] * corr[i, j]).astype(np.float32)
        for b, (i, j) in zip(dc.TRACK_COV_BRANCHES, dc.TRACK_COV_PAIRS)
    }


@njit(cache=True)
def _associate(offsets, ref_x, ref_y, ref_z, phi, tanl, dz_err, voffsets, vx, vy, vz, vsz, pv_x, pv_y, pv_z, pv_sz,
               n_sig, floor, dxy_max):
    """Closest vertex in (straight-line) dz, associated within n_sig sigma: 0 = PV, k = OtherPV[k-1]."""
    out = np.full(ref_x.size, -1, np.int32)
    for e in range(offsets.size - 1):
        for i in range(offsets[e], offsets[e + 1]):
            c, s = np.cos(phi[i]), np.sin(phi[i])
            best, best_pull = -1, 1e300
            for k in range(-1, voffsets[e + 1] - voffsets[e]):
                if k < 0:
                    x, y, z, sz = pv_x[e], pv_y[e], pv_z[e], pv_sz[e]
                else:
                    j = voffsets[e] + k
                    x, y, z, sz = vx[j], vy[j], vz[j], vsz[j]
                dxy = -(ref_x[i] - x) * s + (ref_y[i] - y) * c
                dz = (ref_z[i] - z) - ((ref_x[i] - x) * c + (ref_y[i] - y) * s) * tanl[i]
                sigma = np.sqrt(dz_err[i] ** 2 + sz * sz)
                if abs(dxy) > dxy_max or abs(dz) > max(n_sig * sigma, floor):
                    continue
                pull = abs(dz) / sigma
                if pull < best_pull:
                    best_pull, best = pull, k + 1
            out[i] = best
    return out


@njit(cache=True)
def _isolation(t_off, t_eta, t_phi, p_off, p_pt, p_eta, p_phi, p_use, p_trk, cone):
    """Sum of pT of the used PF candidates within DeltaR < cone of each track, excluding itself."""
    out = np.zeros(t_eta.size, np.float64)
    cone2 = cone * cone
    for e in range(t_off.size - 1):
        for i in range(t_off[e], t_off[e + 1]):
            local = i - t_off[e]
            s = 0.0
            for j in range(p_off[e], p_off[e + 1]):
                if not p_use[j] or p_trk[j] == local:
                    continue
                dphi = p_phi[j] - t_phi[i]
                while dphi > np.pi:
                    dphi -= 2 * np.pi
                while dphi < -np.pi:
                    dphi += 2 * np.pi
                deta = p_eta[j] - t_eta[i]
                if deta * deta + dphi * dphi < cone2:
                    s += p_pt[j]
            out[i] = s
    return out


def tracks_and_pf(genpart: Jagged, vtx: Vertices, hard: HardEvents, det: Detector, is_data: bool, rng):
    """Reconstruct tracks from all charged sources, associate vertices, build SV and PF candidates."""
    n = genpart.n_events
    tm = det.tracks
    # (1) charged generator particles of the primary and the hard interaction
    apdg = np.abs(genpart["pdgId"]).astype(np.int64)
    charged = (genpart["status"] == 1) & np.isin(apdg, CHARGED_PDG)
    q = np.where(apdg == 11, -1, np.where(apdg == 13, -1, 1)) * np.sign(genpart["pdgId"])
    rho = np.hypot(genpart["vx"], genpart["vy"])
    eff = tm.efficiency(genpart["pt"], rho)
    reco_g = charged & (np.abs(genpart["eta"]) < tm.max_abs_eta) & (rng.random(eff.size) < eff)
    g = np.nonzero(reco_g)[0]
    gparams = helix_at_beamline(genpart["pt"][g], genpart["eta"][g], genpart["phi"][g], q[g].astype(np.float64),
                                genpart["vx"][g], genpart["vy"][g], genpart["vz"][g])
    # (2) pileup tracks
    pu = vtx.pu_true
    per_pu = rng.poisson(det.pileup.tracks_per_pu, pu["x"].size)
    k = per_pu.sum()
    ppt = soft_pt(k, rng)
    keep = rng.random(k) < tm.efficiency(ppt)
    src = np.repeat(np.arange(pu["x"].size), per_pu)[keep]
    m_pu = keep.sum()
    pparams = helix_at_beamline(ppt[keep], rng.uniform(-2.5, 2.5, m_pu), rng.uniform(-np.pi, np.pi, m_pu),
                                rng.choice([-1.0, 1.0], m_pu), pu["x"][src], pu["y"][src], pu["z"][src])
    # (3) spurious tracks: random helices
    ns = rng.poisson(SPURIOUS_MEAN * det.model.spurious_track_rate, n)
    ks = ns.sum()
    ev_s = np.repeat(np.arange(n), ns)
    s_pt = 0.1 + rng.exponential(0.6, ks)
    sparams = (rng.choice([-1.0, 1.0], ks) / s_pt, np.arctan(np.sinh(rng.uniform(-2.5, 2.5, ks))),
               rng.uniform(-np.pi, np.pi, ks), rng.laplace(0.0, 0.15, ks), vtx.true_pv[2][ev_s] + rng.laplace(0.0, 1.5, ks))
    # all tracks, flat, then grouped by event (genuine, pileup, spurious within an event)
    event = np.concatenate([genpart.event_index()[g], pu.event_index()[src], ev_s])
    params = tuple(np.concatenate([gparams[i], pparams[i], sparams[i]]) for i in range(5))
    origin = dc.TRACK_ORIGINS
    kind = np.concatenate([np.full(g.size, origin["primary"], np.int8), np.full(m_pu, origin["pileup"], np.int8),
                           np.full(ks, origin["spurious"], np.int8)])
    gen_local = np.concatenate([genpart.local_index()[g], np.full(m_pu + ks, -1)])
    gflat = np.concatenate([g, np.full(m_pu + ks, -1)])
    meas, sig = smear_helix(params, det, rng)
    spurious = kind == origin["spurious"]
    sig[spurious] *= 1.5
    q_pt, lam, phi, d0, z0 = meas
    pt = 1.0 / np.abs(q_pt)
    eta = np.arcsinh(np.tan(lam))
    keep = (pt > tm.min_pt) & (np.abs(eta) < tm.max_abs_eta)
    order = np.nonzero(keep)[0]
    order = order[np.argsort(event[order], kind="stable")]
    m = order.size
    spurious = spurious[order]
    pt, phi, d0 = pt[order], phi[order], d0[order]
    fields = {
        "pt": pt, "eta": eta[order], "phi": phi, "charge": np.sign(q_pt[order]).astype(np.int32),
        "refX": -d0 * np.sin(phi), "refY": d0 * np.cos(phi), "refZ": z0[order],
        **covariance_branches(sig[order], det),
        "highPurity": rng.random(m) < np.where(spurious, 0.35, np.where(pt < 0.3, 0.9, 0.97)),
        "isPFcand": rng.random(m) < np.where(spurious, 0.6, 0.95),
        "nValidHits": np.where(spurious, 5 + rng.poisson(2, m), 8 + rng.poisson(6, m)).astype(np.int32),
        "chi2ndof": np.where(spurious, rng.gamma(2.0, 1.5, m), rng.gamma(5.0, 0.2, m)).astype(np.float32),
        "genPartIdx": gen_local[order].astype(np.int32), "genOrigin": kind[order],
        "_gflat": gflat[order],
    }
    col = Jagged(np.bincount(event[order], minlength=n).astype(np.int64), fields)
    # straight-line IPs w.r.t. the reco PV and their errors
    ev = col.event_index()
    pvx, pvy, pvz = (vtx.pv[f"PV_{c}"][ev] for c in "xyz")
    c, s = np.cos(col["phi"]), np.sin(col["phi"])
    tanl = np.sinh(col["eta"])
    dx, dy = col["refX"] - pvx, col["refY"] - pvy
    col["dxy"] = -dx * s + dy * c
    col["dz"] = (col["refZ"] - pvz) - (dx * c + dy * s) * tanl
    pv_xy_var = vtx.pv["PV_covXX"][ev] * s**2 + vtx.pv["PV_covYY"][ev] * c**2
    col["dxyErr"] = np.sqrt(col["cov33"] + pv_xy_var)
    col["dzErr"] = np.sqrt(col["cov44"] + vtx.pv["PV_covZZ"][ev])
    vo = vtx.other
    col["vtxIdx"] = _associate(
        col.offsets, col["refX"], col["refY"], col["refZ"], col["phi"], tanl, col["dzErr"],
        vo.offsets, vo["x"], vo["y"], vo["z"], np.sqrt(vo["covZZ"]),
        vtx.pv["PV_x"], vtx.pv["PV_y"], vtx.pv["PV_z"], np.sqrt(vtx.pv["PV_covZZ"]),
        ASSOC_DZ_SIGMAS, ASSOC_DZ_FLOOR, ASSOC_DXY_MAX,
    )
    sv, col["svIdx"] = secondary_vertices(genpart, col, rng)
    pf = pf_candidates(col, hard, rng)
    col["pfIso03"] = _isolation(col.offsets, col["eta"], col["phi"], pf.offsets, pf["pt"], pf["eta"], pf["phi"],
                                 (pf["charge"] == 0) | (pf["fromPV"] >= 2), pf["trkIdx"], PF_ISO_CONE)
    del col.fields["_gflat"]
    if is_data:
        del col.fields["genPartIdx"], col.fields["genOrigin"]
    return col, sv, pf


def secondary_vertices(genpart: Jagged, tracks: Jagged, rng) -> tuple[Jagged, np.ndarray]:
    """SV from K0S decays with both pions reconstructed (efficiency SV_RECO_EFF)."""
    n = genpart.n_events
    gmap = np.full(genpart["pt"].size, -1, np.int64)
    gsrc = tracks["_gflat"]
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


def pf_candidates(tracks: Jagged, hard: HardEvents, rng) -> Jagged:
    """Charged PF candidates from PF tracks, neutral ones near jets and uniform."""
    n = tracks.n_events
    use = tracks["isPFcand"]
    vtx = tracks["vtxIdx"]
    from_pv = np.where(vtx == 0, np.where(np.abs(tracks["dz"]) < 0.02, 3, 2), np.where(vtx > 0, 0, 1))
    ch = Jagged(tracks.counts, {
        "pt": tracks["pt"], "eta": tracks["eta"], "phi": tracks["phi"], "charge": tracks["charge"].astype(np.int32),
        "pdgId": (211 * tracks["charge"]).astype(np.int32), "fromPV": from_pv.astype(np.int32),
        "trkIdx": tracks.local_index().astype(np.int32),
    }).filter(use)
    counts = rng.poisson(NEUTRAL_PF_MEAN, n)
    k = counts.sum()
    eta, phi = _directions(counts, hard.genjets, rng)
    neu = Jagged(counts.astype(np.int64), {
        "pt": 0.5 + rng.exponential(2.0, k), "eta": eta, "phi": phi, "charge": np.zeros(k, np.int32),
        "pdgId": np.where(rng.random(k) < 0.6, 22, 130).astype(np.int32), "fromPV": np.zeros(k, np.int32),
        "trkIdx": np.full(k, -1, np.int32),
    })
    pf, _ = concatenate([ch, neu])
    return pf
