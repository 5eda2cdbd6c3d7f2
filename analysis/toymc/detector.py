"""Detector response of the toy generator for the hard objects: jets, leptons, taus,
photons, p_T^miss, triggers and noise filters.

Tracks, vertices and PF candidates (the soft component) are in :mod:`.soft`.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.special import ndtr

from .. import constants as cfg
from .. import contract as dc
from .hard import ELECTRON_MASS, INVISIBLE_PDG, MUON_MASS, HardEvents
from .jagged import Jagged
from .kinematics import wrap_phi
from .truth import Detector

#: reconstruction acceptance of the toy detector: muons |eta| < 2.4, electrons |eta| < 2.5,
#: hadronic taus pT > 20 GeV and |eta| < 2.3; central jets above 30 GeV set the event's activity
MUON_ETA_MAX = 2.4
ELECTRON_ETA_MAX = 2.5
TAU_MIN_PT = 20.0
TAU_ETA_MAX = 2.3
CENTRAL_JET_MIN_PT = 30.0

GENJET_MIN_PT = 10.0
RECO_JET_MIN_PT = 15.0
RECO_JET_MAX_ETA = 4.7
MUON_MIN_PT = 3.0
ELECTRON_MIN_PT = 5.0
FLAG_NAMES = (
    "goodVertices", "globalSuperTightHalo2016Filter", "HBHENoiseFilter", "HBHENoiseIsoFilter",
    "EcalDeadCellTriggerPrimitiveFilter", "BadPFMuonFilter", "BadPFMuonDzFilter",
    "eeBadScFilter", "ecalBadCalibFilter",
)
TRIGGER_MET_THRESHOLD = (125.0, 25.0)  # turn-on midpoint and width in MET-no-mu (GeV)
TRIGGER_HT_THRESHOLD = (1050.0, 30.0)
TRIGGER_MU_PT = 24.0
JET_FIELD_ORDER = ("pt", "eta", "phi", "mass", "btagDeepB", "jetId", "chHEF", "neHEF", "hadronFlavour", "genJetIdx")


def _sum_vec(j: Jagged, pt: np.ndarray, phi: np.ndarray, mask: np.ndarray | None = None):
    """Per-event vector sum (px, py) of the items of ``j`` (where ``mask``) of transverse momentum pt."""
    idx = j.event_index()
    if mask is not None:
        idx, pt, phi = idx[mask], pt[mask], phi[mask]
    n = j.n_events
    return (np.bincount(idx, pt * np.cos(phi), n), np.bincount(idx, pt * np.sin(phi), n))


@njit(cache=True)
def _reco_jets(counts, hem, g_pt, eta, phi, r, g_mass, g_flavour, hem_box, hem_response, gen_min_pt, reco_min_pt,
               reco_max_eta, pt, fl, it, reco_counts):
    """Reconstructed jets of gen jets with response r and smeared eta, phi: pt of every jet (the HEM
    response in the HEM box of affected events), and the kept ones (pt > reco_min_pt, |eta| < reco_max_eta)
    as (pt, eta, phi, mass) in fl and (hadronFlavour, genJetIdx) in it, genJetIdx the local index
    among the gen jets above gen_min_pt; returns how many are kept."""
    i = k = 0
    for e in range(counts.size):
        n_gen = 0
        for _ in range(counts[e]):
            in_box = (eta[i] > hem_box[0]) & (eta[i] < hem_box[1]) & (phi[i] > hem_box[2]) & (phi[i] < hem_box[3])
            pt[i] = g_pt[i] * r[i] * (hem_response if hem[e] and in_box else 1.0)
            gen_idx = n_gen if g_pt[i] > gen_min_pt else -1
            n_gen += g_pt[i] > gen_min_pt
            if pt[i] > reco_min_pt and abs(eta[i]) < reco_max_eta:
                fl[0, k], fl[1, k], fl[2, k], fl[3, k] = pt[i], eta[i], phi[i], g_mass[i] * r[i]
                it[0, k], it[1, k] = 5 if np.int64(g_flavour[i]) == 5 else 0, gen_idx
                reco_counts[e] += 1
                k += 1
            i += 1
    return k


def jets(hard: HardEvents, det: Detector, hem: np.ndarray, rng) -> tuple[Jagged, Jagged, tuple]:
    """GenJet and reco Jet collections; returns (genjet, jet, reco sum (px, py) of all jets)."""
    g = hard.genjets
    r = det.jets.sample(g["pt"], g["eta"], rng)
    eta = g["eta"] + rng.normal(0.0, det.jet_angle_resolution, g["pt"].size)
    phi = wrap_phi(g["phi"] + rng.normal(0.0, det.jet_angle_resolution, g["pt"].size))
    # GenJet: gen jets above threshold (they are pt-sorted already)
    genjet = g.filter(g["pt"] > GENJET_MIN_PT)
    pt, fl, it = np.empty(r.size), np.empty((4, r.size)), np.empty((2, r.size), np.int64)
    counts = np.zeros(g.n_events, np.int64)
    k = _reco_jets(g.counts, hem, g["pt"], eta, phi, r, g["mass"], g["flavour"], np.array([*cfg.HEM_ETA, *cfg.HEM_PHI]),
                   det.hem_response, GENJET_MIN_PT, RECO_JET_MIN_PT, RECO_JET_MAX_ETA, pt, fl, it, counts)
    sum_all = _sum_vec(g, pt, phi)
    reco = Jagged(counts, {"pt": fl[0, :k], "eta": fl[1, :k], "phi": fl[2, :k], "mass": fl[3, :k],
                           "hadronFlavour": it[0, :k], "genJetIdx": it[1, :k]})
    # b tagging, energy fractions and jet ID only for the reconstructed jets
    k = reco["pt"].size
    is_b = reco["hadronFlavour"] == 5
    btag = np.empty(k)
    btag[is_b] = rng.beta(5.0, 1.5, np.count_nonzero(is_b))
    btag[~is_b] = rng.beta(0.6, 12.0, k - np.count_nonzero(is_b))
    chf = rng.beta(6.0, 4.0, k) * 0.85
    reco["btagDeepB"] = btag
    reco["jetId"] = np.where(rng.random(k) < det.jet_id_fail, 2, 6)
    reco["chHEF"] = chf
    reco["neHEF"] = (1.0 - chf) * rng.uniform(0.1, 0.6, k)
    reco = Jagged(reco.counts, {f: reco[f] for f in JET_FIELD_ORDER})
    reco, _ = reco.sort_within(reco["pt"])
    genjet = Jagged(genjet.counts, {k2: genjet[k2] for k2 in ("pt", "eta", "phi", "mass")} | {
        "partonFlavour": genjet["flavour"].astype(np.int64)})
    return genjet, reco, sum_all


def leptons(hard: HardEvents, det: Detector, rng):
    """Muon and Electron collections from the final-state e/mu of GenPart.

    Leptons outside the acceptance are lost and count as invisible in p_T^miss; inside the
    acceptance they are measured (and enter p_T^miss as visible) even when the
    identification fails.
    """
    gp = hard.genpart
    n = gp.n_events
    apdg = np.abs(gp["pdgId"])
    final = gp["status"] == 1
    out = {}
    visible = []
    for name, pdg, eta_max, min_pt, eff, res, mass in (
        ("Muon", dc.PDG_MUON, MUON_ETA_MAX, MUON_MIN_PT, det.muon_eff, 0.015, MUON_MASS),
        ("Electron", dc.PDG_ELECTRON, ELECTRON_ETA_MAX, ELECTRON_MIN_PT, det.electron_eff, 0.025, ELECTRON_MASS),
    ):
        sel = np.nonzero(final & (apdg == pdg))[0]  # the generator's leptons of this flavour
        k = sel.size
        ev, eta, phi, pdg_id = gp.event_index()[sel], gp["eta"][sel], gp["phi"][sel], gp["pdgId"][sel]
        pt = gp["pt"][sel] * (1.0 + res * rng.standard_normal(k))
        in_acc = np.abs(eta) < eta_max
        visible.append((np.bincount(ev[in_acc], (pt * np.cos(phi))[in_acc], n),
                        np.bincount(ev[in_acc], (pt * np.sin(phi))[in_acc], n)))
        reco = in_acc & (pt > min_pt) & (rng.random(k) < eff)
        fields = {
            "pt": pt, "eta": eta + rng.normal(0, 0.001, k), "phi": phi, "mass": np.full(k, mass),
            "charge": -np.sign(pdg_id).astype(np.int32), "pdgId": pdg_id.astype(np.int32),
            "pfRelIso03_all": rng.exponential(0.02, k), "dxy": rng.normal(0, 0.002, k), "dz": rng.normal(0, 0.003, k),
            "genPartIdx": gp.local_index()[sel].astype(np.int32),
        }
        if name == "Muon":
            fields |= {"looseId": np.ones(k, bool), "mediumId": rng.random(k) < 0.98, "tightId": rng.random(k) < 0.95}
        else:
            fields |= {"cutBased": rng.choice([2, 3, 4], k, p=[0.1, 0.2, 0.7]).astype(np.int32)}
        col = Jagged(np.bincount(ev[reco], minlength=n).astype(np.int64), {f: v[reco] for f, v in fields.items()})
        col, _ = col.sort_within(col["pt"])
        out[name] = col
    vis = (visible[0][0] + visible[1][0], visible[0][1] + visible[1][1])
    return out["Muon"], out["Electron"], vis


def taus(hard: HardEvents, det: Detector, rng) -> Jagged:
    t = hard.taus_h
    k = t["pt"].size
    pt = t["pt"] * (1.0 + 0.08 * rng.standard_normal(k))
    keep = (pt > TAU_MIN_PT) & (np.abs(t["eta"]) < TAU_ETA_MAX) & (rng.random(k) < det.tau_eff)
    col = Jagged(t.counts, {
        "pt": pt, "eta": t["eta"], "phi": t["phi"], "mass": np.full(k, cfg.TAU_MASS),
        "charge": t["charge"].astype(np.int32), "decayMode": np.where(t["prongs"] == 3, 10, 0).astype(np.int32),
        "idDeepTau2017v2p1VSjet": np.full(k, 255, np.uint8),
    }).filter(keep)
    return col


def photons(n: int, rng) -> Jagged:
    """Photons from neutral mesons in jets (mostly non-isolated) and a few isolated ones."""
    counts = rng.poisson(0.12, n)
    k = counts.sum()
    iso = np.where(rng.random(k) < 0.2, rng.exponential(0.05, k), 0.2 + rng.exponential(0.6, k))
    return Jagged(counts.astype(np.int64), {
        "pt": 15.0 + rng.exponential(15.0, k), "eta": rng.uniform(-2.5, 2.5, k),
        "phi": rng.uniform(-np.pi, np.pi, k), "pfRelIso03_all": iso,
        "cutBased": rng.choice([1, 2, 3], k).astype(np.int32),
    })


def invisible_sum(hard: HardEvents):
    gp = hard.genpart
    inv = (gp["status"] == 1) & np.isin(np.abs(gp["pdgId"]), INVISIBLE_PDG)
    return _sum_vec(gp, gp["pt"], gp["phi"], inv)


def missing_pt(hard: HardEvents, det: Detector, jet_sum, lepton_vis, flags_failed, rng):
    """Reco p_T^miss = -(all jets + measured leptons + unclustered energy), and GenMET.

    The unclustered energy U balances the event exactly at generator level; it is measured
    with response ``unclustered_response`` and a resolution ~ sqrt(|U| + 50 GeV). Events
    failing a noise filter carry an extra fake deposit.
    """
    gp, g = hard.genpart, hard.genjets
    n = g.n_events
    inv = invisible_sum(hard)
    gj = _sum_vec(g, g["pt"], g["phi"])
    gl = _sum_vec(gp, gp["pt"], gp["phi"], (gp["status"] == 1) & np.isin(np.abs(gp["pdgId"]), (11, 13)))
    ux, uy = -(gj[0] + gl[0] + inv[0]), -(gj[1] + gl[1] + inv[1])
    sigma = det.unclustered_resolution * np.sqrt(np.hypot(ux, uy) + 50.0)
    rx = det.unclustered_response * ux + sigma * rng.standard_normal(n)
    ry = det.unclustered_response * uy + sigma * rng.standard_normal(n)
    fake = np.where(flags_failed, rng.exponential(150.0, n), 0.0)
    fphi = rng.uniform(-np.pi, np.pi, n)
    mx = -(jet_sum[0] + lepton_vis[0] + rx) + fake * np.cos(fphi)
    my = -(jet_sum[1] + lepton_vis[1] + ry) + fake * np.sin(fphi)
    sumet = g["pt"].sum() / max(n, 1) + np.hypot(ux, uy)
    return {
        "MET_pt": np.hypot(mx, my), "MET_phi": np.arctan2(my, mx), "MET_sumEt": sumet,
        "GenMET_pt": np.hypot(*inv), "GenMET_phi": np.arctan2(inv[1], inv[0]),
    }


def noise_flags(n: int, era: str, det: Detector, rng) -> tuple[dict[str, np.ndarray], np.ndarray]:
    flags = {f"Flag_{name}": rng.random(n) >= det.noise_filter_fail for name in FLAG_NAMES}
    used = [f"Flag_{f}" for f in cfg.NOISE_FILTERS if f not in cfg.NOISE_FILTERS_SKIP.get(era, ())]
    failed = ~np.logical_and.reduce([flags[f] for f in used])
    return flags, failed


def triggers(met: dict, muons: Jagged, jets_: Jagged, rng) -> dict[str, np.ndarray]:
    n = met["MET_pt"].size
    mu_x, mu_y = _sum_vec(muons, muons["pt"], muons["phi"])
    mx = met["MET_pt"] * np.cos(met["MET_phi"]) + mu_x
    my = met["MET_pt"] * np.sin(met["MET_phi"]) + mu_y
    metnomu = np.hypot(mx, my)
    u = rng.random((3, n))
    central = (jets_["pt"] > CENTRAL_JET_MIN_PT) & (np.abs(jets_["eta"]) < 2.5)
    ht = np.bincount(jets_.event_index(), np.where(central, jets_["pt"], 0.0), n)
    good_mu = (muons["pt"] > TRIGGER_MU_PT) & (muons["pfRelIso03_all"] < 0.15)
    has_mu = np.bincount(muons.event_index(), good_mu, n) > 0
    m0, w = TRIGGER_MET_THRESHOLD
    h0, hw = TRIGGER_HT_THRESHOLD
    return {
        f"HLT_{dc.HLT_MET}": u[0] < 0.98 * ndtr((metnomu - m0) / w),
        f"HLT_{dc.HLT_SINGLEMUON}": has_mu & (u[1] < 0.92),
        f"HLT_{dc.HLT_JETHT}": u[2] < ndtr((ht - h0) / hw),
    }
