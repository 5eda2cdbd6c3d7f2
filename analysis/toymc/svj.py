"""Toy events of the semi-visible-jet search with jet constituents (docs/svj.md).

Hard processes (the truth of docs/svj.md, "Hard processes"), showered by
:mod:`analysis.toymc.svj_shower`, clustered with scikit-hep ``fastjet`` (anti-k_T R = 0.8
FatJet and R = 0.4 Jet over the stored PF candidates) and written in PFNano's layout:
``PFCands_*``, ``FatJet_*``, ``FatJetPFCands_jetIdx`` / ``_pFCandsIdx`` (the cross-reference
of each AK8 jet's constituents), ``Jet_*``, ``MET_*`` (minus the vector sum of every visible
reconstructed particle), ``GenMET_*`` (the invisible truth), ``GenPart_*`` (the hard
particles) and ``SVJTruth_*`` (dark hadrons per event).

* ``svj``: Z' (mass m_Z', narrow) -> chi chi-bar (m_chi = 10 GeV) recoiling against an ISR
  gluon; each dark quark showers in the dark sector with invisible fraction r_inv;
* ``qcd``: 2 -> 2 dijets above a p_T-hat slice with an ISR gluon, kept above a generator
  filter on the reconstructed p_T^miss (known before the shower: docs/svj.md), the filter
  efficiency carried in the cross section;
* ``wjets`` (W -> mu nu) and ``zjets`` (Z -> nu nu) with two recoiling partons, ``ttbar``
  (t -> b W, W -> q q' or mu nu), kept above the same p_T^miss filter.

QCD above the filter is also prescaled (kept with probability a = min(1, p_T^miss / 400 GeV),
halved when a dijet parton's reconstructed p_T is below 150 GeV; genWeight x 1/a), optionally
enriched in response tails (importance weights): both exact,
decided before the shower, and tested unbiased in the preselection (tests/test_svj_toymc.py).

The generator is a test fixture: a data source for commands, tests and benchmarks only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np

from analysis.constants import TOP_MASS, W_MASS, Z_MASS

from .jagged import Jagged
from .kinematics import two_body_decay
from .svj_shower import (
    DARK_QUARK,
    FROM_DARK,
    GLUON,
    LEPTON,
    NEUTRINO,
    QUARK,
    shower_events,
)
from .writer import TREE, write_root

GENERATOR_VERSION = "svj-2"
#: dark-sector masses (seed 003, "A Benchmark Model")
M_CHI = 10.0
M_DARK = 20.0
#: PDG-style ids of the hard particles in GenPart (dark sector: the 49xxxxx convention)
PDG_ZPRIME, PDG_DARK_QUARK = 4900023, 4900101
PROCESSES = ("qcd", "ttbar", "wjets", "zjets", "svj")
BACKGROUNDS = ("qcd", "ttbar", "wjets", "zjets")


@dataclass(frozen=True)
class ShowerParams:
    """Shower constants (docs/svj.md, "The toy shower"; the order is the kernel's)."""

    kt_min: float = 1.0            # GeV, QCD cutoff and alpha_s freezing scale
    theta_min: float = 0.01        # rad, collinear cutoff (calorimeter granularity)
    lambda_qcd: float = 0.25       # GeV, one-loop Lambda
    b0: float = (33.0 - 10.0) / (12.0 * np.pi)  # one loop, 5 flavours
    theta_max_qcd: float = 1.0     # rad, first emission angle of a QCD parton
    kt_min_dark: float = 15.0      # GeV, dark confinement scale (between m_chi and m_dark)
    theta_max_dark: float = 1.2    # rad, wider first angle of the dark shower
    alpha_dark: float = 0.8        # fixed dark coupling
    m_dark: float = M_DARK
    r_inv: float = 0.3
    charged_fraction: float = 2.0 / 3.0
    #: fragmentation of a final parton: 1 + Poisson(frag_multiplicity ln(1 + E / frag_e0))
    #: hadrons with Gaussian transverse kicks of frag_kt GeV
    frag_multiplicity: float = 1.2
    frag_e0: float = 2.0
    frag_kt: float = 0.3

    def array(self) -> np.ndarray:
        return np.array(list(asdict(self).values()), dtype=np.float64)


@dataclass(frozen=True)
class Response:
    """Per-parton detector response of the visible hadrons: Gaussian core, low tail."""

    sigma: float = 0.08
    tail_probability: float = 0.15
    tail_mean: float = 0.3
    minimum: float = 0.2

    def draw(self, rng: np.random.Generator, n: int, tail_probability: float | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """n responses and their importance weights: drawn with the tail probability
        ``tail_probability`` (default the true one), weighted by true / drawn probability of
        the component (core or tail) each came from, so that weighted they follow the truth."""
        p_draw = self.tail_probability if tail_probability is None else float(tail_probability)
        r = rng.normal(1.0, self.sigma, n)
        tail = rng.random(n) < p_draw
        r[tail] = 1.0 - rng.exponential(self.tail_mean, tail.sum())
        w = np.where(tail, self.tail_probability / p_draw, (1.0 - self.tail_probability) / (1.0 - p_draw))
        return np.clip(r, self.minimum, None), w


@dataclass(frozen=True)
class GeneratorSettings:
    """What a toy sample depends on besides its process, events and seed (docs/svj.md)."""

    shower: ShowerParams = field(default_factory=ShowerParams)
    response: Response = field(default_factory=Response)
    #: p_T-hat slice of QCD and of the V+jets / ttbar hadronic systems (GeV); spectrum index
    pt_hat_min: float = 250.0
    pt_hat_index: float = 4.5
    #: boson p_T slice of V+jets (GeV)
    boson_pt_min: float = 150.0
    #: generator filter of QCD on the reconstructed p_T^miss (GeV): below the preselection's
    #: R_T > 0.24 at M_T > 650 GeV (p_T^miss > 156 GeV)
    qcd_met_filter: float = 150.0
    #: the same exact filter on ttbar, W+jets and Z+jets (their p_T^miss is known before the
    #: shower too: neutrinos plus the visible responses); 0 switches it off
    other_met_filter: float = 150.0
    #: QCD above the filter kept with probability a = min(1, p_T^miss / qcd_met_accept_scale)
    #: and weighted by 1/a (an exact prescale of the low p_T^miss events, decided before the
    #: shower: the preselection efficiency grows with p_T^miss); 0 switches it off
    qcd_met_accept_scale: float = 400.0
    #: and, times this factor, when the softer of the two dijet partons has a reconstructed
    #: p_T (response x p_T) below qcd_soft_parton_pt (the AK8 p_T cut; such events pass the
    #: preselection 5x less often, docs/svj.md); 1 switches it off
    qcd_soft_parton_accept: float = 0.5
    qcd_soft_parton_pt: float = 150.0
    #: QCD enriched in mismeasured partons: the response tail drawn with this probability and
    #: the events weighted back (genWeight = product of the partons' importance weights). Off
    #: by default (= Response.tail_probability): above the p_T^miss filter it leaves the
    #: preselected fraction unchanged and halves the effective statistics (docs/svj.md)
    qcd_tail_probability: float = 0.15
    #: ISR gluon: p_T = isr_pt_min + Exp(isr_pt_mean) GeV, |y| < isr_y_max
    isr_pt_min: float = 15.0
    isr_pt_mean: float = 60.0
    isr_y_max: float = 3.0
    #: rapidities: system boost ~ N(0, y_boost_sigma); QCD chi = exp(2|y*|) ~ U[1, chi_max]
    y_boost_sigma: float = 1.0
    chi_max: float = 30.0
    #: stored PF candidates and jets (GeV)
    pfcand_pt_min: float = 0.5
    fatjet_pt_min: float = 100.0
    jet_pt_min: float = 20.0
    fatjet_r: float = 0.8
    jet_r: float = 0.4
    #: toy cross sections (pb) before filters; signal: sigma(m) = xsec_svj_1tev (1 TeV / m)^xsec_svj_index
    xsec_qcd: float = 2.0e4
    xsec_ttbar: float = 500.0
    xsec_wjets: float = 225.0
    xsec_zjets: float = 30.0
    xsec_svj_1tev: float = 100.0
    xsec_svj_index: float = 2.0

    def as_dict(self) -> dict:
        return asdict(self)


def _isotropic_phi(rng, n):
    return rng.uniform(-np.pi, np.pi, n)


def _p3_from_pt_y_phi(pt, y, phi, m=0.0):
    mt = np.sqrt(pt**2 + m**2)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)], axis=1)


def _power_law(rng, n, x_min, index):
    """x >= x_min with density ~ x^-index."""
    return x_min * (1.0 - rng.random(n)) ** (-1.0 / (index - 1.0))


def _isr(rng, n, s: GeneratorSettings):
    pt = s.isr_pt_min + rng.exponential(s.isr_pt_mean, n)
    return _p3_from_pt_y_phi(pt, rng.uniform(-s.isr_y_max, s.isr_y_max, n), _isotropic_phi(rng, n))


def _dijet(rng, n, s: GeneratorSettings, recoil_px, recoil_py):
    """Two partons of a 2 -> 2 system: p_T-hat slice, chi = exp(2|y*|) flat, recoiling against
    (recoil_px, recoil_py), shared equally."""
    pt = _power_law(rng, n, s.pt_hat_min, s.pt_hat_index)
    ystar = 0.5 * np.log(rng.uniform(1.0, s.chi_max, n)) * rng.choice([-1.0, 1.0], n)
    yb = rng.normal(0.0, s.y_boost_sigma, n)
    phi = _isotropic_phi(rng, n)
    p1 = _p3_from_pt_y_phi(pt, yb + ystar, phi)
    p2 = _p3_from_pt_y_phi(pt, yb - ystar, phi + np.pi)
    for p in (p1, p2):
        p[:, 0] -= 0.5 * recoil_px
        p[:, 1] -= 0.5 * recoil_py
    return p1, p2


def _decay(parent_p3, m_parent, m1, m2, rng):
    e = np.sqrt((parent_p3**2).sum(axis=1) + m_parent**2)
    d1, d2 = two_body_decay((parent_p3[:, 0], parent_p3[:, 1], parent_p3[:, 2], e), m_parent, m1, m2, rng)
    return np.stack(d1[:3], axis=1), np.stack(d2[:3], axis=1)


@dataclass
class HardEvents:
    """The hard particles of n events: per event a fixed number ``k`` of showered particles
    (momentum, kind) and the GenPart record (all hard particles incl. resonances)."""

    p: np.ndarray  # (n, k, 3)
    kind: np.ndarray  # (n, k)
    gen: dict  # GenPart fields, (n, g) each
    xsec_pb: float
    meta: dict = field(default_factory=dict)


def _gen_record(parts: list[tuple[np.ndarray, float, int]]) -> dict:
    """GenPart fields from [(p3 (n, 3), mass, pdgId)]."""
    p = np.stack([x[0] for x in parts], axis=1)
    m = np.broadcast_to(np.array([x[1] for x in parts], float), p.shape[:2])
    pt = np.hypot(p[..., 0], p[..., 1])
    eta = np.arcsinh(p[..., 2] / np.maximum(pt, 1e-9))
    return {"pt": pt, "eta": eta, "phi": np.arctan2(p[..., 1], p[..., 0]), "mass": m.copy(),
            "pdgId": np.broadcast_to(np.array([x[2] for x in parts], np.int64), p.shape[:2]).copy()}


def hard_qcd(rng, n, s):
    isr = _isr(rng, n, s)
    p1, p2 = _dijet(rng, n, s, isr[:, 0], isr[:, 1])
    kinds = np.where(rng.random((n, 2)) < 0.6, GLUON, QUARK)
    kind = np.concatenate([kinds, np.full((n, 1), GLUON)], axis=1)
    gen = _gen_record([(p1, 0.0, 21), (p2, 0.0, 21), (isr, 0.0, 21)])
    return HardEvents(np.stack([p1, p2, isr], axis=1), kind, gen, s.xsec_qcd)


def hard_vjets(rng, n, s, boson: str):
    isr = _isr(rng, n, s)
    vpt = _power_law(rng, n, s.boson_pt_min, s.pt_hat_index)
    vphi = _isotropic_phi(rng, n)
    mass = W_MASS if boson == "w" else Z_MASS
    v = _p3_from_pt_y_phi(vpt, rng.normal(0.0, s.y_boost_sigma, n), vphi, mass)
    p1, p2 = _dijet(rng, n, s, isr[:, 0] + v[:, 0], isr[:, 1] + v[:, 1])
    l1, l2 = _decay(v, mass, 0.0, 0.0, rng)
    kinds = np.where(rng.random((n, 2)) < 0.5, GLUON, QUARK)
    lep_kinds = np.array([LEPTON, NEUTRINO] if boson == "w" else [NEUTRINO, NEUTRINO])
    kind = np.concatenate([kinds, np.full((n, 1), GLUON), np.broadcast_to(lep_kinds, (n, 2))], axis=1)
    pdg = (24, 13, 14) if boson == "w" else (23, 12, 12)
    gen = _gen_record([(v, mass, pdg[0]), (l1, 0.0, pdg[1]), (l2, 0.0, -pdg[2]), (p1, 0.0, 21), (p2, 0.0, 21)])
    xsec = s.xsec_wjets if boson == "w" else s.xsec_zjets
    return HardEvents(np.stack([p1, p2, isr, l1, l2], axis=1), kind, gen, xsec)


def hard_ttbar(rng, n, s):
    isr = _isr(rng, n, s)
    pt = 0.5 * s.pt_hat_min + rng.exponential(0.5 * s.pt_hat_min, n)
    ystar = rng.normal(0.0, 0.6, n)
    yb = rng.normal(0.0, s.y_boost_sigma, n)
    phi = _isotropic_phi(rng, n)
    t1 = _p3_from_pt_y_phi(pt, yb + ystar, phi, TOP_MASS)
    t2 = _p3_from_pt_y_phi(pt, yb - ystar, phi + np.pi, TOP_MASS)
    for t in (t1, t2):
        t[:, 0] -= 0.5 * isr[:, 0]
        t[:, 1] -= 0.5 * isr[:, 1]
    parts, kinds, gen = [isr], [np.full(n, GLUON)], []
    for t in (t1, t2):
        b, w = _decay(t, TOP_MASS, 0.0, W_MASS, rng)
        q1, q2 = _decay(w, W_MASS, 0.0, 0.0, rng)
        leptonic = rng.random(n) < 1.0 / 3.0
        parts += [b, q1, q2]
        kinds += [np.full(n, QUARK), np.where(leptonic, LEPTON, QUARK), np.where(leptonic, NEUTRINO, QUARK)]
        gen += [(t, TOP_MASS, 6), (b, 0.0, 5), (w, W_MASS, 24)]
    return HardEvents(np.stack(parts, axis=1), np.stack(kinds, axis=1), _gen_record(gen), s.xsec_ttbar)


def hard_svj(rng, n, s, m_zprime: float):
    isr = _isr(rng, n, s)
    zp = -isr.copy()
    zp[:, 2] = np.sqrt(zp[:, 0] ** 2 + zp[:, 1] ** 2 + m_zprime**2) * np.sinh(rng.normal(0.0, 0.8, n))
    # the dark quarks are showered as massless partons of the same momentum (m_chi << m_Z')
    c1, c2 = _decay(zp, m_zprime, M_CHI, M_CHI, rng)
    kind = np.concatenate([np.full((n, 2), DARK_QUARK), np.full((n, 1), GLUON)], axis=1)
    gen = _gen_record([(zp, m_zprime, PDG_ZPRIME), (c1, M_CHI, PDG_DARK_QUARK), (c2, M_CHI, -PDG_DARK_QUARK)])
    xsec = s.xsec_svj_1tev * (1000.0 / m_zprime) ** s.xsec_svj_index
    return HardEvents(np.stack([c1, c2, isr], axis=1), kind, gen, xsec)


def _reco_met(hard: HardEvents, response: np.ndarray) -> np.ndarray:
    """Reconstructed p_T^miss of each event before the shower: the shower conserves each hard
    particle's three-momentum, so MET = -sum over visible-producing particles of r p_T
    (neutrinos: r = 0); the dark hadrons' invisible part is not known here (signal only)."""
    r = np.where(hard.kind == NEUTRINO, 0.0, response)
    mx = -(r * hard.p[..., 0]).sum(axis=1)
    my = -(r * hard.p[..., 1]).sum(axis=1)
    return np.hypot(mx, my)


def _hard(process: str, rng, n, s: GeneratorSettings, m_zprime: float | None):
    if process == "qcd":
        return hard_qcd(rng, n, s)
    if process == "ttbar":
        return hard_ttbar(rng, n, s)
    if process in ("wjets", "zjets"):
        return hard_vjets(rng, n, s, process[0])
    if process == "svj":
        return hard_svj(rng, n, s, float(m_zprime))
    raise ValueError(f"unknown toy process {process!r}: choose from {PROCESSES}")


def _select_hard(h: HardEvents, keep: np.ndarray) -> HardEvents:
    return HardEvents(h.p[keep], h.kind[keep], {k: v[keep] for k, v in h.gen.items()}, h.xsec_pb, h.meta)


def generate_hard(process: str, n: int, seed: int, settings: GeneratorSettings,
                  m_zprime: float | None = None) -> tuple[HardEvents, np.ndarray, dict]:
    """``n`` hard events of ``process`` that pass its generator filter, their per-particle
    response, and the record of the filter (trials, efficiency)."""
    rng = np.random.default_rng(seed)
    parts, resp_parts, weight_parts, kept, tried = [], [], [], 0, 0
    enriched = settings.qcd_tail_probability if process == "qcd" else None
    while kept < n:
        batch = max(2 * (n - kept), 1000)
        h = _hard(process, rng, batch, settings, m_zprime)
        r, iw = settings.response.draw(rng, h.kind.size, enriched)
        r, iw = r.reshape(h.kind.shape), iw.reshape(h.kind.shape)
        r = np.where(h.kind == LEPTON, 1.0, r)  # muons are measured precisely
        # only the responses that act (visible-producing particles) carry importance weights
        iw = np.where((h.kind == LEPTON) | (h.kind == NEUTRINO), 1.0, iw)
        tried += batch
        keep = np.ones(batch, bool)
        accept = np.ones(batch)
        if process in BACKGROUNDS:
            met = _reco_met(h, r)
            keep = met > (settings.qcd_met_filter if process == "qcd" else settings.other_met_filter)
            if process == "qcd" and (settings.qcd_met_accept_scale > 0 or settings.qcd_soft_parton_accept < 1):
                if settings.qcd_met_accept_scale > 0:
                    accept = np.minimum(1.0, met / settings.qcd_met_accept_scale)
                soft = (r[:, :2] * np.hypot(h.p[:, :2, 0], h.p[:, :2, 1])).min(axis=1) < settings.qcd_soft_parton_pt
                accept = np.where(soft, settings.qcd_soft_parton_accept * accept, accept)
                keep &= rng.random(batch) < accept
        idx = np.flatnonzero(keep)
        need = n - kept
        if idx.size >= need:  # the trials after the last event needed do not count
            tried -= batch - (idx[need - 1] + 1)
            idx = idx[:need]
        parts.append(_select_hard(h, idx))
        resp_parts.append(r[idx])
        weight_parts.append(iw[idx].prod(axis=1) / accept[idx])
        kept += idx.size
    h = HardEvents(np.concatenate([x.p for x in parts]), np.concatenate([x.kind for x in parts]),
                   {k: np.concatenate([x.gen[k] for x in parts]) for k in parts[0].gen}, parts[0].xsec_pb)
    weights = np.concatenate(weight_parts)
    # the weighted filter efficiency: E[w] = 1 over all trials (importance weights and 1/a of
    # the prescale), so sum_kept w / trials
    eff = float(weights.sum() / tried)
    return h, np.concatenate(resp_parts), {"trials": int(tried), "filter_efficiency": eff, "gen_weight": weights}


def _cluster(px, py, pz, e, counts, r: float, pt_min: float):
    """anti-k_T jets (fastjet) of each event's particles: (jets, constituent indices)."""
    import fastjet

    parts = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts)
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, r)
    cs = fastjet.ClusterSequence(parts, jetdef)
    jets = cs.inclusive_jets(min_pt=pt_min)
    index = cs.constituent_index(min_pt=pt_min)
    return jets, index


def _jet_fields(jets) -> tuple[np.ndarray, dict]:
    counts = ak.to_numpy(ak.num(jets))
    px, py, pz, e = (ak.to_numpy(ak.flatten(jets[c])) for c in ("px", "py", "pz", "E"))
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    return counts, {"pt": pt, "eta": np.arcsinh(pz / pt), "phi": np.arctan2(py, px),
                    "mass": np.sqrt(np.maximum(e**2 - p**2, 0.0))}


def _pt_order(counts: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Flat permutation ordering each event's objects by decreasing p_T."""
    event = np.repeat(np.arange(counts.size), counts)
    return np.lexsort((-pt, event))


def generate_events(process: str, n: int, seed: int, settings: GeneratorSettings | None = None,
                    m_zprime: float | None = None, r_inv: float | None = None) -> tuple[dict, dict]:
    """Branches (a dict for :func:`analysis.toymc.writer.write_root`) and metadata of ``n``
    events of ``process`` (``svj``: at ``m_zprime`` GeV and ``r_inv``)."""
    s = settings or GeneratorSettings()
    shower = s.shower if r_inv is None else ShowerParams(**{**asdict(s.shower), "r_inv": float(r_inv)})
    hard, response, record = generate_hard(process, n, seed, s, m_zprime)
    k = hard.kind.shape[1]
    offsets = np.arange(n + 1, dtype=np.int64) * k
    capacity = n * 400
    while True:
        n_out, counts, out_p, pdg, charge, flags, invisible, n_dark, _ = shower_events(
            offsets, hard.p.reshape(-1, 3).astype(np.float64), hard.kind.reshape(-1).astype(np.int64),
            response.reshape(-1).astype(np.float64), shower.array(), int(seed) % (2**31), capacity)
        if n_out >= 0:
            break
        capacity *= 2
    out_p = out_p[:n_out]
    pdg, charge, flags = pdg[:n_out], charge[:n_out], flags[:n_out]
    pt_all = np.hypot(out_p[:, 0], out_p[:, 1])
    event_all = np.repeat(np.arange(n), counts)
    met_x = -np.bincount(event_all, out_p[:, 0], minlength=n)
    met_y = -np.bincount(event_all, out_p[:, 1], minlength=n)
    # the stored PF candidates (PFNano's PFCands), p_T-ordered within each event
    store = pt_all > s.pfcand_pt_min
    pc_counts = np.bincount(event_all[store], minlength=n).astype(np.int64)
    sp, spdg, sq, sflags = out_p[store], pdg[store], charge[store], flags[store]
    order = _pt_order(pc_counts, np.hypot(sp[:, 0], sp[:, 1]))
    sp, spdg, sq, sflags = sp[order], spdg[order], sq[order], sflags[order]
    px, py, pz = sp[:, 0], sp[:, 1], sp[:, 2]
    pcpt = np.hypot(px, py)
    e = np.sqrt(px**2 + py**2 + pz**2)
    pfcands = Jagged.from_counts(pc_counts, pt=pcpt, eta=np.arcsinh(pz / pcpt), phi=np.arctan2(py, px),
                                 mass=np.zeros(pcpt.size), charge=sq.astype(np.int32),
                                 pdgId=spdg.astype(np.int32),
                                 genFromDark=((sflags & FROM_DARK) > 0))
    # AK8 (FatJet) and AK4 (Jet) with fastjet
    fat, fat_index = _cluster(px, py, pz, e, pc_counts, s.fatjet_r, s.fatjet_pt_min)
    fj_counts, fj = _jet_fields(fat)
    fj_order = _pt_order(fj_counts, fj["pt"])  # fastjet's inclusive jets are pT-ordered already
    fj = {k2: v[fj_order] for k2, v in fj.items()}
    n_const = ak.num(fat_index, axis=2)
    fj["nConstituents"] = ak.to_numpy(ak.flatten(n_const)).astype(np.int32)[fj_order]
    # FatJetPFCands: one entry per constituent of each stored FatJet (jetIdx, pFCandsIdx local)
    local_jet = ak.local_index(fat_index, axis=1)
    jet_idx = ak.flatten(ak.broadcast_arrays(local_jet, fat_index)[0], axis=2)
    pf_idx = ak.flatten(fat_index, axis=2)
    fjpf_counts = ak.to_numpy(ak.num(pf_idx)).astype(np.int64)
    jet_idx_flat = ak.to_numpy(ak.flatten(jet_idx)).astype(np.int64)
    # fastjet's jet order -> the stored p_T order
    fj_start = np.cumsum(fj_counts) - fj_counts
    new_pos = np.empty_like(fj_order)
    new_pos[fj_order] = np.arange(fj_order.size)
    jet_event = np.repeat(np.arange(n), fjpf_counts)
    jet_idx_flat = (new_pos[fj_start[jet_event] + jet_idx_flat] - fj_start[jet_event]).astype(np.int32)
    pf_idx_flat = ak.to_numpy(ak.flatten(pf_idx)).astype(np.int32)
    # truth: the p_T fraction of each FatJet carried by constituents from dark-hadron decays
    dark_flat = pfcands["genFromDark"][np.repeat(np.cumsum(pc_counts) - pc_counts, fjpf_counts) + pf_idx_flat]
    const_pt = pcpt[np.repeat(np.cumsum(pc_counts) - pc_counts, fjpf_counts) + pf_idx_flat]
    fj_global = np.repeat(np.cumsum(fj_counts) - fj_counts, fjpf_counts) + jet_idx_flat
    dark_pt = np.bincount(fj_global, const_pt * dark_flat, minlength=fj_counts.sum())
    tot_pt = np.bincount(fj_global, const_pt, minlength=fj_counts.sum())
    fj["darkPtFraction"] = np.divide(dark_pt, tot_pt, out=np.zeros_like(tot_pt), where=tot_pt > 0)
    ak4, _ = _cluster(px, py, pz, e, pc_counts, s.jet_r, s.jet_pt_min)
    j_counts, jets = _jet_fields(ak4)
    pfcands.fields["genFromDark"] = pfcands.fields["genFromDark"].astype(np.int32)
    gen_n = hard.gen["pt"].shape[1]
    inv_x, inv_y = invisible[:, 0], invisible[:, 1]
    branches = {
        "run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32),
        "event": (np.arange(n, dtype=np.uint64) + 1),
        "genWeight": record["gen_weight"].astype(np.float32),
        "MET_pt": np.hypot(met_x, met_y), "MET_phi": np.arctan2(met_y, met_x),
        "GenMET_pt": np.hypot(inv_x, inv_y), "GenMET_phi": np.arctan2(inv_y, inv_x),
        "SVJTruth_nDarkStable": n_dark[:, 0].astype(np.int32),
        "SVJTruth_nDarkUnstable": n_dark[:, 1].astype(np.int32),
        "PFCands": pfcands,
        "FatJet": Jagged.from_counts(fj_counts, **fj),
        "FatJetPFCands": Jagged.from_counts(fjpf_counts, jetIdx=jet_idx_flat, pFCandsIdx=pf_idx_flat),
        "Jet": Jagged.from_counts(j_counts, **jets),
        "GenPart": Jagged.from_counts(np.full(n, gen_n, np.int64),
                                      **{k2: v.reshape(-1) for k2, v in hard.gen.items()}),
    }
    branches["GenPart"].fields["pdgId"] = branches["GenPart"].fields["pdgId"].astype(np.int32)
    meta = {"process": process, "is_data": False, "n_events": n, "seed": int(seed),
            "xsec_pb": float(hard.xsec_pb * record["filter_efficiency"]),
            "sum_genweight": float(record["gen_weight"].astype(np.float32).astype(np.float64).sum()),
            "generator_version": GENERATOR_VERSION,
            "generation": {"trials": record["trials"], "filter_efficiency": record["filter_efficiency"],
                           "xsec_before_filter_pb": float(hard.xsec_pb)}}
    if process == "qcd":
        meta["filter"] = (f"reconstructed p_T^miss > {s.qcd_met_filter:g} GeV (known before the shower), kept with "
                          f"probability min(1, p_T^miss / {s.qcd_met_accept_scale:g} GeV), x {s.qcd_soft_parton_accept:g} when "
                          f"a dijet parton's reconstructed p_T < {s.qcd_soft_parton_pt:g} GeV; response "
                          f"tails enriched to {s.qcd_tail_probability:g} per parton; both weighted back in genWeight")
    elif process in BACKGROUNDS and s.other_met_filter > 0:
        meta["filter"] = f"reconstructed p_T^miss > {s.other_met_filter:g} GeV (known before the shower)"
    if process == "svj":
        meta["m_zprime"] = float(m_zprime)
        meta["r_inv"] = float(shower.r_inv)
    return branches, meta


def dataset_name(process: str, m_zprime: float | None = None, r_inv: float | None = None) -> str:
    if process != "svj":
        return process
    return f"svj_mZprime{int(round(m_zprime))}_rinv{int(round(100 * r_inv)):02d}"


def request_hash(request: dict) -> str:
    text = json.dumps([GENERATOR_VERSION, request], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def generate_sample(out: Path, n_background: dict[str, int], signal_points: list[tuple[float, float]],
                    n_signal: int, seed: int, era: str = "2018", settings: GeneratorSettings | None = None,
                    progress=None) -> dict:
    """Write every requested dataset as ``out/<dataset>.root`` and ``out/fileset.json``; reuse
    the sample when ``out/request.json`` records the same request. Returns the fileset."""
    s = settings or GeneratorSettings()
    request = {"n_background": dict(sorted(n_background.items())), "signal_points": [list(p) for p in signal_points],
               "n_signal": n_signal, "seed": seed, "era": era, "settings": s.as_dict()}
    wanted = request_hash(request)
    out = Path(out)
    fileset_path, request_path = out / "fileset.json", out / "request.json"
    if fileset_path.is_file() and request_path.is_file():
        try:
            if json.loads(request_path.read_text()).get("hash") == wanted:
                fileset = json.loads(fileset_path.read_text())
                if all(Path(f).is_file() for d in fileset.values() for f in d["files"]):
                    return fileset
        except (OSError, json.JSONDecodeError):
            pass
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(p, None, None, n) for p, n in sorted(n_background.items())]
    jobs += [("svj", m, r, n_signal) for m, r in signal_points]
    fileset = {}
    for i, (process, m, r, n) in enumerate(jobs):
        name = dataset_name(process, m, r)
        # each dataset its own stream: (seed, dataset name)
        sub_seed = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")
        branches, meta = generate_events(process, n, sub_seed, s, m_zprime=m, r_inv=r)
        meta["era"] = era
        path = out / f"{name}.root"
        write_root(path, branches)
        fileset[name] = {"files": {str(path.resolve()): TREE}, "metadata": meta}
        if progress:
            progress(i + 1, len(jobs), name, n)
    tmp = fileset_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(fileset, indent=1))
    os.replace(tmp, fileset_path)
    request_path.write_text(json.dumps({"hash": wanted, "request": request}, indent=1, default=str))
    return fileset


__all__ = ["BACKGROUNDS", "GeneratorSettings", "PROCESSES", "Response", "ShowerParams", "dataset_name",
           "generate_events", "generate_hard", "generate_sample"]
