"""Toy processes of the smuon search (docs/smuon.md sec. 1; seed 002 sec. II): their truth in one place.

Right-handed smuon pairs, each smuon -> mu + lightest neutralino, over a grid of
(m_smuon, m_neutralino), and the three backgrounds of seed 002: ttbar -> mu mu b b nu nu,
W W -> mu nu mu nu and a diboson (Z Z -> mu mu nu nu and W Z -> l nu mu mu). Everything a
test compares against is defined here and nowhere else:

* cross sections (:data:`SMUON_XSEC_FB`, :func:`smuon_xsec_pb`, :data:`BACKGROUNDS`);
* the hard kinematics: the pair's invariant mass ``M = M0 (1 + X)`` with ``X ~ Gamma(k,
  theta)`` above the threshold ``M0`` (:data:`PAIR_MASS_SHAPE`), rapidity ``y ~ N(0,
  PAIR_RAPIDITY_SIGMA)``, transverse recoil against initial-state radiation with
  ``dsigma/dpT ~ pT (pT^2 + a^2)^-n`` (:data:`RECOIL`), one to three ISR jets carrying it;
  smuon -> mu chi and W/Z decays isotropic in the parent's rest frame (a scalar decays
  isotropically; for the W and Z it is the toy's simplification), masses of W and Z on
  Breit-Wigner lines;
* the generator's enrichment (:data:`ENRICHMENT_PRESCALE`, :func:`enrichment_tier`): every
  trial goes through the detector; those with two muons of pT > 18 GeV, p_T^miss > 90 GeV and
  min_i M_T(mu_i, p_T^miss) > 85 GeV are all kept, the others one in ``P`` with weight ``P``.
  Nothing is cut away (every selection sees an unbiased sample); min_i M_T(mu_i, p_T^miss) is
  an upper bound of M_T2 with a massless invisible test mass, so every event with M_T2 above
  85 GeV on the same muons is kept with weight 1 (the preselection asks for 90 GeV).
  ``sum_genweight`` counts every trial.

The detector is the toy detector of :mod:`.detector` and :mod:`.truth` (simulation), without
the soft component (no tracks, PF candidates or pileup vertices: nothing here reads them).
The pseudo-era ``run2`` stands for the seed's 139 fb^-1 of 13 TeV collisions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import constants as cfg
from .. import contract as dc
from .detector import jets, leptons, missing_pt, noise_flags, photons, taus, triggers
from .hard import (
    MUON_MASS,
    HardEvents,
    _b_neutrinos,
    _Builder,
    _with_taus,
    breit_wigner,
    isr_jets,
    jets_from_p4,
)
from .jagged import Jagged
from .kinematics import from_ptyphim, two_body_decay
from .processes import PowerSpectrum
from .soft import sample_primary
from .truth import SIM_DETECTOR

#: version of these processes (part of a sample request's hash: a changed generator regenerates)
SMUON_GENERATOR_VERSION = "1"
#: the pseudo-era of the smuon samples (seed 002: 139 fb^-1 at 13 TeV, no era split)
SMUON_ERA = "run2"
PDG_SMUON_R = 2000013
ELECTRON_MASS = 0.000511

# --- cross sections --------------------------------------------------------------------------
#: pp -> smuon_R smuon_R* at 13 TeV (fb), one smuon flavour, right-handed: a documented
#: parametrization with the magnitude and mass dependence of the NLO+NLL (Resummino)
#: predictions the LHC SUSY cross-section group recommends for sleptons (Fuks et al., JHEP 10
#: (2013) 120; Fiaschi et al. 1801.10357), rounded; between the nodes log(sigma) is linear in m.
#: Not the group's table itself (which could not be read here): docs/smuon.md sec. 1.
SMUON_XSEC_FB: dict[float, float] = {
    100.0: 120.0, 150.0: 38.0, 200.0: 16.0, 250.0: 7.6, 300.0: 3.9, 350.0: 2.2, 400.0: 1.25,
    450.0: 0.75, 500.0: 0.47, 550.0: 0.30, 600.0: 0.19, 700.0: 0.085, 800.0: 0.040,
}


def smuon_xsec_pb(m_smuon: float) -> float:
    """sigma(pp -> smuon_R pair) at 13 TeV (pb): log-linear between the nodes of SMUON_XSEC_FB."""
    m = np.array(sorted(SMUON_XSEC_FB))
    if not (m[0] <= m_smuon <= m[-1]):
        raise ValueError(f"m_smuon {m_smuon} GeV outside the cross-section table [{m[0]:g}, {m[-1]:g}] GeV")
    logs = np.log([SMUON_XSEC_FB[x] for x in m])
    return float(np.exp(np.interp(m_smuon, m, logs)) / 1000.0)


# branching ratios (PDG): W -> l nu per lepton flavour, Z -> mu mu, Z -> invisible
BR_W_LNU = 0.1086
BR_W_MUNU = 0.1063
BR_Z_MUMU = 0.03366
BR_Z_NUNU = 0.2000
#: inclusive cross sections (pb, 13 TeV): ttbar NNLO+NNLL (Czakon, Fiedler, Mitov, PRL 110 (2013)
#: 252004; m_t = 172.5 GeV), WW NNLO (Gehrmann et al., PRL 113 (2014) 212001), ZZ NNLO
#: (Cascioli et al., PLB 735 (2014) 311), W+-Z NNLO (Grazzini et al., PLB 761 (2016) 179)
SIGMA_TTBAR_PB = 833.9
SIGMA_WW_PB = 118.7
SIGMA_ZZ_PB = 16.9
SIGMA_WZ_PB = 50.0


@dataclass(frozen=True)
class Background:
    """One background process: its cross section into the generated final state (pb)."""

    name: str
    description: str
    xsec_pb: float


#: ttbar -> mu nu b mu nu b; W W -> mu nu mu nu; diboson: Z Z -> mu mu nu nu plus
#: W Z -> l nu mu mu (l = e, mu, tau), in the proportion of their cross sections
BACKGROUNDS: dict[str, Background] = {
    "ttbar_mumu": Background("ttbar_mumu", "ttbar -> mu nu b mu nu b", SIGMA_TTBAR_PB * BR_W_MUNU**2),
    "ww_mumu": Background("ww_mumu", "W W -> mu nu mu nu", SIGMA_WW_PB * BR_W_MUNU**2),
    "diboson_mumu": Background("diboson_mumu", "Z Z -> mu mu nu nu and W Z -> l nu mu mu",
                               SIGMA_ZZ_PB * 2 * BR_Z_MUMU * BR_Z_NUNU + SIGMA_WZ_PB * 3 * BR_W_LNU * BR_Z_MUMU),
}
#: the W Z share of the diboson sample
DIBOSON_WZ_FRACTION = (SIGMA_WZ_PB * 3 * BR_W_LNU * BR_Z_MUMU) / BACKGROUNDS["diboson_mumu"].xsec_pb
SIGNAL_PROCESS = "smuon"
SMUON_PROCESSES: tuple[str, ...] = (SIGNAL_PROCESS, *BACKGROUNDS)

# --- kinematics ------------------------------------------------------------------------------
#: X = M / M0 - 1 ~ Gamma(shape, scale) per process: the scalar pair's P-wave threshold
#: (sigma ~ beta^3) is steeper than the vector-boson pairs'
PAIR_MASS_SHAPE: dict[str, tuple[float, float]] = {
    "smuon": (2.0, 0.18), "ttbar_mumu": (1.0, 0.25), "ww_mumu": (1.3, 0.35), "diboson_mumu": (1.3, 0.35),
}
PAIR_RAPIDITY_SIGMA = 1.0
#: the pair's recoil against ISR: dsigma/dpT ~ pT (pT^2 + a^2)^-n (colour-singlet pairs
#: recoil less than ttbar, which is produced from gluons)
RECOIL: dict[str, PowerSpectrum] = {
    "smuon": PowerSpectrum(30.0, 2.6, 0.0), "ttbar_mumu": PowerSpectrum(60.0, 2.4, 0.0),
    "ww_mumu": PowerSpectrum(30.0, 2.6, 0.0), "diboson_mumu": PowerSpectrum(30.0, 2.6, 0.0),
}

# --- the grid ----------------------------------------------------------------------------------
#: the 18 benchmark (training) points of seed 002 Table 8: (m_smuon, m_neutralino) in GeV
BENCHMARKS: tuple[tuple[float, float], ...] = (
    (100.0, 0.0), (100.0, 25.0), (200.0, 0.0), (200.0, 50.0), (200.0, 100.0), (200.0, 150.0),
    (300.0, 0.0), (300.0, 50.0), (300.0, 100.0), (300.0, 200.0), (300.0, 250.0),
    (400.0, 0.0), (400.0, 200.0), (400.0, 350.0), (500.0, 0.0), (500.0, 100.0), (500.0, 300.0), (500.0, 450.0),
)
GRID_MASSES: tuple[float, ...] = tuple(float(m) for m in range(100, 601, 50))
GRID_NEUTRALINO_STEP = 50.0
#: the grid also holds m_neutralino = m_smuon - GRID_COMPRESSED_DM (the compressed edge)
GRID_COMPRESSED_DM = 25.0


def grid_points() -> list[tuple[float, float]]:
    """The scan grid: m_smuon 100-600 GeV in steps of 50, m_neutralino from 0 in steps of 50
    below m_smuon, and m_smuon - 25 GeV; with the benchmarks (docs/smuon.md sec. 1)."""
    points = set(BENCHMARKS)
    for m in GRID_MASSES:
        points |= {(m, float(x)) for x in np.arange(0.0, m - 1.0, GRID_NEUTRALINO_STEP)}
        points.add((m, m - GRID_COMPRESSED_DM))
    return sorted(points)


def smuon_dataset_name(m_smuon: float, m_neutralino: float) -> str:
    """Dataset name of a signal point, e.g. smuon_m300_x100."""
    return f"smuon_m{m_smuon:g}_x{m_neutralino:g}".replace(".", "p")


# --- enrichment --------------------------------------------------------------------------------
#: rest-tier prescale per process (the signal is kept whole)
ENRICHMENT_PRESCALE: dict[str, int] = {"smuon": 1, "ttbar_mumu": 1000, "ww_mumu": 200, "diboson_mumu": 20}
ENRICH_MUON_PT = 18.0
ENRICH_MET = 90.0
ENRICH_MIN_MT = 85.0
ENRICHMENT_DESCRIPTION = (f"kept: two muons pT > {ENRICH_MUON_PT:g} GeV, p_T^miss > {ENRICH_MET:g} GeV and "
                          f"min_i M_T(mu_i, p_T^miss) > {ENRICH_MIN_MT:g} GeV; the rest 1 in P with weight P")


def min_transverse_mass(reco: dict) -> np.ndarray:
    """Per event min_i M_T(mu_i, p_T^miss) over the two leading muons (0 with fewer than two),
    with the muon mass: M_T^2 = m^2 + 2 (E_T |p_T^miss| - p_T . p_T^miss), an upper bound of M_T2
    with a massless invisible test particle (docs/smuon.md sec. 3)."""
    mu = reco["Muon"]
    n = mu.counts.size
    two = mu.counts >= 2
    first = mu.offsets[:-1][two]
    pt, phi = np.asarray(mu["pt"]), np.asarray(mu["phi"])
    met, met_phi = np.asarray(reco["MET_pt"])[two], np.asarray(reco["MET_phi"])[two]
    out = np.zeros(n)
    mts = []
    for i in (first, first + 1):
        et = np.sqrt(pt[i] ** 2 + MUON_MASS**2)
        mt2 = MUON_MASS**2 + 2.0 * (et * met - pt[i] * met * np.cos(phi[i] - met_phi))
        mts.append(np.sqrt(np.maximum(mt2, 0.0)))
    out[two] = np.minimum(*mts)
    return out


def enrichment_tier(reco: dict) -> np.ndarray:
    """True for the trials kept whole (ENRICHMENT_DESCRIPTION)."""
    mu = reco["Muon"]
    two = mu.counts >= 2
    first = mu.offsets[:-1][two]
    pt = np.asarray(mu["pt"])
    pt_ok = np.zeros(mu.counts.size, bool)
    pt_ok[two] = (pt[first] > ENRICH_MUON_PT) & (pt[first + 1] > ENRICH_MUON_PT)
    return pt_ok & (np.asarray(reco["MET_pt"]) > ENRICH_MET) & (min_transverse_mass(reco) > ENRICH_MIN_MT)


# --- hard processes ------------------------------------------------------------------------------
def _pair_system(process: str, n: int, threshold: float | np.ndarray, rng):
    """The produced pair's four-vector (px, py, pz, E) and invariant mass."""
    shape, scale = PAIR_MASS_SHAPE[process]
    mass = threshold * (1.0 + rng.gamma(shape, scale, n))
    pt = RECOIL[process].sample(n, rng)
    y = rng.normal(0.0, PAIR_RAPIDITY_SIGMA, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    return from_ptyphim(pt, y, phi, mass), mass


def _lepton_mass(pdg: np.ndarray) -> np.ndarray:
    a = np.abs(pdg)
    return np.select([a == dc.PDG_MUON, a == dc.PDG_ELECTRON, a == dc.PDG_TAU], [MUON_MASS, ELECTRON_MASS, cfg.TAU_MASS], 0.0)


def _w_to_lepton(b: _Builder, slot_w, slot_l, w_p4, w_mass, charge, flavour, rng):
    """W -> l nu with lepton flavour ``flavour`` (11, 13 or 15 per event) into two slots."""
    lmass = _lepton_mass(flavour)
    lep, nu = two_body_decay(w_p4, w_mass, lmass, 0.0, rng)
    b.set(slot_l, lep, -charge * flavour, np.where(flavour == dc.PDG_TAU, 2, 1), mother=slot_w)
    b.set(slot_l + 1, nu, charge * (flavour + 1), 1, mother=slot_w)


def generate_smuon_pairs(n: int, pv, rng, m_smuon: float, m_neutralino: float) -> HardEvents:
    """smuon_R smuon_R* -> mu- chi mu+ chi (docs/smuon.md sec. 1)."""
    if not 0.0 <= m_neutralino < m_smuon:
        raise ValueError(f"need 0 <= m_neutralino < m_smuon, got ({m_smuon}, {m_neutralino})")
    sys_p4, msys = _pair_system("smuon", n, 2.0 * m_smuon, rng)
    a4, b4 = two_body_decay(sys_p4, msys, m_smuon, m_smuon, rng)
    b = _Builder(n, 6, pv)  # 0, 1: smuon-, smuon+; 2-3 and 4-5: their mu and chi
    for slot, p4, sign in ((0, a4, 1), (1, b4, -1)):
        b.set(slot, p4, sign * PDG_SMUON_R, 62)
        mu, chi = two_body_decay(p4, m_smuon, MUON_MASS, m_neutralino, rng)
        b.set(2 + 2 * slot, mu, sign * dc.PDG_MUON, 1, mother=slot)
        b.set(3 + 2 * slot, chi, dc.PDG_NEUTRALINO1, 1, mother=slot)
    return _with_taus(b.build(), [isr_jets(-sys_p4[0], -sys_p4[1], rng)], rng)


def generate_ttbar_mumu(n: int, pv, rng) -> HardEvents:
    """ttbar -> b W+ bbar W-, W -> mu nu (both), with ISR and semileptonic b decays."""
    sys_p4, mtt = _pair_system("ttbar_mumu", n, 2.0 * cfg.TOP_MASS, rng)
    t1, t2 = two_body_decay(sys_p4, mtt, cfg.TOP_MASS, cfg.TOP_MASS, rng)
    # slots: 0 t, 1 tbar, 2 b, 3 W+, 4 bbar, 5 W-, 6-7 W+ products, 8-9 W- products, 10-11 b neutrinos
    b = _Builder(n, 12, pv)
    b.set(0, t1, dc.PDG_TOP, 62)
    b.set(1, t2, -dc.PDG_TOP, 62)
    for slot_t, slot_b, slot_w, charge, tp4 in ((0, 2, 3, 1, t1), (1, 4, 5, -1, t2)):
        wm = breit_wigner(cfg.W_MASS, cfg.W_WIDTH, n, rng, 60.0, 100.0)
        bq, w = two_body_decay(tp4, cfg.TOP_MASS, 4.8, wm, rng)
        b.set(slot_b, bq, 5 * charge, 71, mother=slot_t)
        b.set(slot_w, w, dc.PDG_W * charge, 22, mother=slot_t)
        _w_to_lepton(b, slot_w, 6 if charge > 0 else 8, w, wm, charge, np.full(n, dc.PDG_MUON), rng)
    _b_neutrinos(b, (2, 4), 10, rng)
    bjets = jets_from_p4(_p4_of(b, (2, 4)), b.mask[:, [2, 4]], 5, rng)
    b.mask[:, [2, 4]] = False  # quarks are represented by their jets
    return _with_taus(b.build(), [isr_jets(-sys_p4[0], -sys_p4[1], rng), bjets], rng)


def _p4_of(b: _Builder, slots) -> tuple:
    """Four-vectors (px, py, pz, E) of builder slots, as (n, len(slots)) arrays."""
    pt, eta, phi, m = (b.f[k][:, list(slots)] for k in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)


def generate_ww_mumu(n: int, pv, rng) -> HardEvents:
    """W+ W- -> mu+ nu mu- nu with ISR."""
    w1m = breit_wigner(cfg.W_MASS, cfg.W_WIDTH, n, rng, 60.0, 100.0)
    w2m = breit_wigner(cfg.W_MASS, cfg.W_WIDTH, n, rng, 60.0, 100.0)
    sys_p4, msys = _pair_system("ww_mumu", n, w1m + w2m, rng)
    w1, w2 = two_body_decay(sys_p4, msys, w1m, w2m, rng)
    b = _Builder(n, 6, pv)
    for slot_w, slot_l, charge, p4, m in ((0, 2, 1, w1, w1m), (1, 4, -1, w2, w2m)):
        b.set(slot_w, p4, dc.PDG_W * charge, 62)
        _w_to_lepton(b, slot_w, slot_l, p4, m, charge, np.full(n, dc.PDG_MUON), rng)
    return _with_taus(b.build(), [isr_jets(-sys_p4[0], -sys_p4[1], rng)], rng)


def generate_diboson_mumu(n: int, pv, rng) -> HardEvents:
    """Z -> mu mu with a second Z -> nu nu (Z Z) or a W -> l nu, l = e, mu, tau (W Z), in the
    proportion DIBOSON_WZ_FRACTION."""
    is_wz = rng.random(n) < DIBOSON_WZ_FRACTION
    zm = breit_wigner(cfg.Z_MASS, cfg.Z_WIDTH, n, rng, 60.0, 120.0)
    other_m = np.where(is_wz, breit_wigner(cfg.W_MASS, cfg.W_WIDTH, n, rng, 60.0, 100.0),
                       breit_wigner(cfg.Z_MASS, cfg.Z_WIDTH, n, rng, 60.0, 120.0))
    sys_p4, msys = _pair_system("diboson_mumu", n, zm + other_m, rng)
    z, v = two_body_decay(sys_p4, msys, zm, other_m, rng)
    b = _Builder(n, 6, pv)  # 0 Z, 1 W or Z; 2-3 Z -> mu mu; 4-5 the other boson's decay
    b.set(0, z, dc.PDG_Z, 62)
    mu1, mu2 = two_body_decay(z, zm, MUON_MASS, MUON_MASS, rng)
    b.set(2, mu1, dc.PDG_MUON, 1, mother=0)
    b.set(3, mu2, -dc.PDG_MUON, 1, mother=0)
    charge = np.where(rng.random(n) < 0.6, 1, -1)  # W+ Z / W- Z at the LHC
    b.set(1, v, np.where(is_wz, dc.PDG_W * charge, dc.PDG_Z), 62)
    flavour = np.array([dc.PDG_ELECTRON, dc.PDG_MUON, dc.PDG_TAU])[rng.integers(0, 3, n)]
    lep, nu = two_body_decay(v, other_m, _lepton_mass(flavour), 0.0, rng)
    nu_a, nu_b = two_body_decay(v, other_m, 0.0, 0.0, rng)
    nu_flavour = rng.choice([12, 14, 16], n)
    b.set(4, tuple(np.where(is_wz, x, y) for x, y in zip(lep, nu_a, strict=True)),
          np.where(is_wz, -charge * flavour, nu_flavour), np.where(is_wz & (flavour == dc.PDG_TAU), 2, 1), mother=1)
    b.set(5, tuple(np.where(is_wz, x, y) for x, y in zip(nu, nu_b, strict=True)),
          np.where(is_wz, charge * (flavour + 1), -nu_flavour), 1, mother=1)
    return _with_taus(b.build(), [isr_jets(-sys_p4[0], -sys_p4[1], rng)], rng)


def generate_smuon_hard(process: str, n: int, pv, rng, point: tuple[float, float] | None = None) -> HardEvents:
    if process == SIGNAL_PROCESS:
        if point is None:
            raise ValueError("the smuon signal needs its point (m_smuon, m_neutralino)")
        return generate_smuon_pairs(n, pv, rng, *point)
    if process == "ttbar_mumu":
        return generate_ttbar_mumu(n, pv, rng)
    if process == "ww_mumu":
        return generate_ww_mumu(n, pv, rng)
    if process == "diboson_mumu":
        return generate_diboson_mumu(n, pv, rng)
    raise ValueError(f"unknown smuon-search process {process!r}: one of {SMUON_PROCESSES}")


# --- events -------------------------------------------------------------------------------------
def _events(hard: HardEvents, pv, rng) -> dict:
    """The detector response (simulation) and the NanoAOD-like branches of a block of trials."""
    det = SIM_DETECTOR
    n = hard.genpart.n_events
    genjet, jet, jet_sum = jets(hard, det, np.zeros(n, bool), rng)
    muon, electron, lep_vis = leptons(hard, det, rng)
    flags, failed = noise_flags(n, "2018", det, rng)
    met = missing_pt(hard, det, jet_sum, lep_vis, failed, rng)
    gp = hard.genpart
    genpart = {k: gp[k] for k in gp.fields}
    genpart["genPartIdxMother"] = genpart.pop("mother").astype(np.int32)
    out = {"GenJet": genjet, "Jet": jet, "Muon": muon, "Electron": electron, "Tau": taus(hard, det, rng),
           "Photon": photons(n, rng), **met, **flags, **triggers(met, muon, jet, rng),
           "GenPart": Jagged(gp.counts, genpart),
           "PV_x": pv[0].astype(np.float32), "PV_y": pv[1].astype(np.float32), "PV_z": pv[2].astype(np.float32)}
    return out


#: trials per block
TRIAL_BLOCK = 100_000
#: at most this many trials per requested event (a sample that keeps too few stops there)
MAX_TRIALS_PER_EVENT = 400


def generate_smuon_sample(process: str, n: int, seed: int, point: tuple[float, float] | None = None,
                          ) -> tuple[dict, dict]:
    """About ``n`` kept events of ``process`` (enriched: ENRICHMENT_DESCRIPTION); returns
    (branches, metadata). genWeight is the event's prescale, ``sum_genweight`` the number of
    trials, ``xsec_pb`` the cross section of the generated final state."""
    from .sample import _event_ids, make_rng, stack_events, take_events

    if process not in SMUON_PROCESSES:
        raise ValueError(f"unknown smuon-search process {process!r}: one of {SMUON_PROCESSES}")
    key = (process, SMUON_ERA) if point is None else (process, SMUON_ERA, *point)
    rng = make_rng(seed, *key)
    prescale = ENRICHMENT_PRESCALE[process]
    pieces, kept, trials = [], 0, 0
    while kept < n and trials < MAX_TRIALS_PER_EVENT * n:
        m = n - kept if prescale == 1 else int(min(TRIAL_BLOCK, max(1000, 2 * (n - kept) * max(trials, 1) / max(kept, 1))))
        pv = sample_primary(m, SIM_DETECTOR, rng)
        hard = generate_smuon_hard(process, m, pv, rng, point)
        ev = _events(hard, pv, rng)
        if prescale == 1:
            keep, w = np.ones(m, bool), np.ones(m)
        else:
            whole = enrichment_tier(ev)
            keep = whole | (rng.random(m) * prescale < 1.0)
            w = np.where(whole, 1.0, float(prescale))
            ev = take_events(ev, np.nonzero(keep)[0])
        ev["genWeight"] = w[keep].astype(np.float32)
        pieces.append(ev)
        kept += int(keep.sum())
        trials += m
    out = stack_events(pieces) if len(pieces) > 1 else pieces[0]
    out.update(_event_ids(int(out["genWeight"].size), 1))
    xsec = smuon_xsec_pb(point[0]) if process == SIGNAL_PROCESS else BACKGROUNDS[process].xsec_pb
    meta = {"process": process, "era": SMUON_ERA, "is_data": False, "xsec_pb": float(xsec),
            "sum_genweight": float(trials), "n_events": int(out["genWeight"].size), "seed": int(seed),
            "filter": "none (the whole final state)" if prescale == 1 else f"enriched (1/{prescale}): {ENRICHMENT_DESCRIPTION}",
            "generation": {"trials": trials, "prescale": prescale,
                           "normalization": "genWeight = prescale of the event's tier; sum_genweight = trials"}}
    if point is not None:
        meta |= {"m_smuon": float(point[0]), "m_neutralino": float(point[1])}
    return out, meta
