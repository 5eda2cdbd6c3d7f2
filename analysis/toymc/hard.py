"""Hard processes of the toy generator: generator-level particles and jets.

Each ``generate_<process>`` returns a :class:`HardEvents` for n events whose primary
vertex sits at ``pv`` (true position, cm). GenPart[0] of every event is a hard-process
particle produced at the true PV (the track classification relies on it). Mother indices
are local to the event (-1: none). Quarks and gluons are not stored in GenPart; they are
represented by their gen jets (visible part; neutrinos of semileptonic b decays are stored
as invisible GenPart entries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import constants as cfg
from .. import contract as dc
from ..signal_models import chargino_ctau_cm
from .jagged import Jagged, concatenate
from .kinematics import from_ptetaphim, from_ptyphim, to_ptetaphim, two_body_decay, wrap_phi
from .processes import PROCESSES, SIGNAL_ISR, SIGNAL_PAIR_FRACTIONS

GEN_FIELDS = ("pt", "eta", "phi", "mass", "pdgId", "status", "mother", "vx", "vy", "vz")
JET_FIELDS = ("pt", "eta", "phi", "mass", "flavour")
TAU_CTAU_CM = 0.008703
MUON_MASS = 0.1056584
ELECTRON_MASS = 0.000511
CHARGED_PDG = (11, 13, 211, 321, 2212)
INVISIBLE_PDG = (12, 14, 16, 1000022)
MAX_ABS_ETA = 5.0


@dataclass
class HardEvents:
    genpart: Jagged
    genjets: Jagged
    taus_h: Jagged  # visible hadronic taus: pt, eta, phi, charge, prongs


def _p4_fields(px, py, pz, e):
    pt, eta, phi, m = to_ptetaphim(px, py, pz, e)
    return pt, np.clip(eta, -10, 10), phi, m


class _Builder:
    """Fixed-width GenPart rows (n_events, width) with a mask; compressed at the end.

    The arrays are (n_events, width) views of one (fields, width, n_events) storage, so that a
    slot (a column) is contiguous: the generator fills them slot by slot, and :meth:`build`
    compresses all fields in one pass (:func:`_compress_rows`).
    """

    def __init__(self, n: int, width: int, pv: tuple[np.ndarray, np.ndarray, np.ndarray]):
        self.n, self.width = n, width
        self.mask = np.zeros((width, n), bool).T
        self._data = np.zeros((len(GEN_FIELDS), width, n), np.float64)
        self.f = {k: self._data[i].T for i, k in enumerate(GEN_FIELDS)}
        self.f["mother"][:] = -1
        for k, v in zip(("vx", "vy", "vz"), pv, strict=True):
            self.f[k][:] = v[:, None]

    def set(self, slot, p4, pdg, status, mother=-1, where=None, vertex=None):
        pt, eta, phi, m = _p4_fields(*p4)
        vals = {"pt": pt, "eta": eta, "phi": phi, "mass": m, "pdgId": pdg, "status": status, "mother": mother}
        if vertex is not None:
            vals |= dict(zip(("vx", "vy", "vz"), vertex, strict=True))
        for k, v in vals.items():
            np.copyto(self.f[k][:, slot], v, where=True if where is None else where)
        self.mask[:, slot] |= True if where is None else where

    def set_rows(self, slot, rows, p4, pdg, status, mother=-1):
        """:meth:`set` for the events ``rows`` alone, ``p4`` and array values given for
        those rows (a slot that few events fill: no four-vector arithmetic for the others)."""
        pt, eta, phi, m = _p4_fields(*p4)
        for k, v in {"pt": pt, "eta": eta, "phi": phi, "mass": m, "pdgId": pdg, "status": status,
                     "mother": mother}.items():
            self.f[k][rows, slot] = v
        self.mask[rows, slot] = True

    def build(self) -> Jagged:
        """The kept slots of every event, in slot order; a mother slot becomes the local index of
        the last kept slot at or before it (the mother itself where it is kept), -1 stays -1."""
        counts = self.mask.sum(axis=1).astype(np.int64)
        out = np.empty((len(GEN_FIELDS), int(counts.sum())))
        mother = np.empty(out.shape[1], np.int64)
        _compress_rows(self._data, self.mask.T, GEN_FIELDS.index("mother"), out, mother)
        fields = {k: out[i] for i, k in enumerate(GEN_FIELDS)}
        fields["mother"] = mother
        return Jagged(counts, fields)


@njit(cache=True, _nrt=False)
def _compress_rows(data, mask, i_mother, out, mother):
    """out[:, j] = data[:, slot, e] for the kept (mask[slot, e]) slots of every event e in slot
    order; mother[j] = the local index of the last kept slot at or before the mother slot
    (mother < 0: -1, the slot clipped to the width)."""
    n_fields, width, n = data.shape
    j = 0
    for e in range(n):
        for slot in range(width):
            if mask[slot, e]:
                for f in range(n_fields):
                    out[f, j] = data[f, slot, e]
                m = np.int64(data[i_mother, slot, e])
                if m < 0:
                    mother[j] = -1
                else:
                    kept = -1  # kept slots up to the mother, less one
                    for t in range(min(m, width - 1) + 1):
                        kept += mask[t, e]
                    mother[j] = kept
                j += 1


def _jagged_from_flat(event: np.ndarray, n: int, **fields) -> Jagged:
    order = np.argsort(event, kind="stable")
    return Jagged(np.bincount(event, minlength=n).astype(np.int64), {k: np.asarray(v)[order] for k, v in fields.items()})


def _finalize(genpart: Jagged) -> Jagged:
    out = {k: genpart[k] for k in GEN_FIELDS}
    out["pdgId"] = out["pdgId"].astype(np.int32)
    out["status"] = out["status"].astype(np.int32)
    out["mother"] = out["mother"].astype(np.int32)
    return Jagged(genpart.counts, out)


# --- Building blocks -------------------------------------------------------------------
def boson(spec_pt: np.ndarray, mass: np.ndarray, rng: np.random.Generator):
    n = spec_pt.size
    y = rng.normal(0.0, 1.1, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    return from_ptyphim(spec_pt, y, phi, mass)


def breit_wigner(m0: float, width: float, n: int, rng, lo: float, hi: float) -> np.ndarray:
    a, b = np.arctan(2 * (lo - m0) / width), np.arctan(2 * (hi - m0) / width)
    return m0 + 0.5 * width * np.tan(rng.uniform(a, b, n))


def isr_jets(recoil_px, recoil_py, rng: np.random.Generator, max_jets: int = 3) -> Jagged:
    """Jets carrying a given total transverse recoil (1 to max_jets jets, exact balance)."""
    n = recoil_px.size
    rec_pt = np.hypot(recoil_px, recoil_py)
    rec_phi = np.arctan2(recoil_py, recoil_px)
    n_extra = np.minimum(rng.poisson(0.7, n), max_jets - 1)
    width = max_jets - 1
    ept = np.minimum(15.0 + rng.exponential(25.0, (n, width)), 0.35 * rec_pt[:, None] + 15.0)
    ephi = rec_phi[:, None] + rng.normal(0.0, 1.2, (n, width))
    emask = np.arange(width)[None, :] < n_extra[:, None]
    epx = np.where(emask, ept * np.cos(ephi), 0.0)
    epy = np.where(emask, ept * np.sin(ephi), 0.0)
    lpx, lpy = recoil_px - epx.sum(1), recoil_py - epy.sum(1)
    pt = np.concatenate([np.hypot(lpx, lpy)[:, None], ept], axis=1)
    phi = np.concatenate([np.arctan2(lpy, lpx)[:, None], ephi], axis=1)
    eta = np.clip(rng.normal(0.0, 1.4, (n, max_jets)), -4.7, 4.7)
    mask = np.concatenate([np.ones((n, 1), bool), emask], axis=1)
    mass = pt * rng.uniform(0.04, 0.15, (n, max_jets))
    flav = np.where(rng.random((n, max_jets)) < 0.03, 5, 0)
    return Jagged.from_rows(mask, pt=pt, eta=eta, phi=wrap_phi(phi), mass=mass, flavour=flav)


def underlying_jets(n: int, rng: np.random.Generator, mean: float = 1.2) -> Jagged:
    counts = rng.poisson(mean, n)
    k = counts.sum()
    pt = 10.0 + rng.exponential(9.0, k)
    return Jagged(counts.astype(np.int64), {
        "pt": pt, "eta": rng.uniform(-4.7, 4.7, k), "phi": rng.uniform(-np.pi, np.pi, k),
        "mass": pt * rng.uniform(0.05, 0.2, k), "flavour": np.zeros(k, np.int64),
    })


def jets_from_p4(p4, where, flavour, rng) -> Jagged:
    """Gen jets from parton four-vectors (fixed-width arrays)."""
    pt, eta, phi, _ = _p4_fields(*p4)
    mass = pt * rng.uniform(0.04, 0.15, pt.shape)
    mask = where & (np.abs(eta) < MAX_ABS_ETA) & (pt > 5.0)
    return Jagged.from_rows(mask, pt=pt, eta=eta, phi=phi, mass=mass, flavour=np.broadcast_to(flavour, pt.shape))


def decay_taus(genpart: Jagged, rng: np.random.Generator) -> tuple[Jagged, Jagged]:
    """Decay every tau (status 2 entries of GenPart) at a displaced vertex.

    Hadronic decays (65%: 1-prong 77%, 3-prong 23%) give charged pions and a neutrino, the
    neutral pions' energy being part of the visible tau; leptonic ones an e or mu and two
    neutrinos (collinear approximation with a small opening). Returns (children appended to
    GenPart, visible hadronic taus).
    """
    n = genpart.n_events
    is_tau = (np.abs(genpart["pdgId"]) == dc.PDG_TAU) & (genpart["status"] == 2)
    ev = genpart.event_index()[is_tau]
    loc = genpart.local_index()[is_tau]
    k = ev.size
    pt, eta, phi = genpart["pt"][is_tau], genpart["eta"][is_tau], genpart["phi"][is_tau]
    sign = -np.sign(genpart["pdgId"][is_tau])  # tau- (15) has charge -1
    p = pt * np.cosh(eta)
    decay_len = p / cfg.TAU_MASS * TAU_CTAU_CM * rng.standard_exponential(k)
    theta = 2 * np.arctan(np.exp(-eta))
    dvx = genpart["vx"][is_tau] + decay_len * np.sin(theta) * np.cos(phi)
    dvy = genpart["vy"][is_tau] + decay_len * np.sin(theta) * np.sin(phi)
    dvz = genpart["vz"][is_tau] + decay_len * np.cos(theta)
    u = rng.random(k)
    mode = np.where(u < 0.178, 11, np.where(u < 0.352, 13, np.where(u < 0.352 + 0.648 * 0.77, 1, 3)))
    x_vis = np.where(mode == 3, rng.uniform(0.45, 1.0, k), rng.uniform(0.15, 1.0, k))
    charged_frac = np.where(mode == 1, rng.uniform(0.3, 1.0, k), np.where(mode == 3, rng.uniform(0.6, 1.0, k), 1.0))
    angle = cfg.TAU_MASS / np.maximum(p, cfg.TAU_MASS)
    children = []  # flat pieces: event, fields
    ntaus = np.arange(k)

    def child(sel, frac, pdg, status=1):
        m = sel.sum()
        cpt = pt[sel] * frac
        ceta = eta[sel] + rng.normal(0, 1, m) * angle[sel] * 0.5
        cphi = wrap_phi(phi[sel] + rng.normal(0, 1, m) * angle[sel] * 0.5)
        mass = np.select([np.abs(pdg) == 211, np.abs(pdg) == 13, np.abs(pdg) == 11], [cfg.PION_MASS, MUON_MASS, ELECTRON_MASS], 0.0)
        children.append({
            "event": ev[sel], "tau": ntaus[sel], "pt": cpt, "eta": ceta, "phi": cphi,
            "mass": np.broadcast_to(mass, cpt.shape).astype(np.float64), "pdgId": pdg,
            "status": np.full(m, status), "mother": loc[sel], "vx": dvx[sel], "vy": dvy[sel], "vz": dvz[sel],
        })

    nu_frac = 1.0 - x_vis
    lep = (mode == 11) | (mode == 13)
    # leptonic: l, nu_l, nu_tau ; hadronic 1-prong: pi, nu ; 3-prong: pi pi pi, nu
    child(lep, x_vis[lep], (mode[lep] * -sign[lep]).astype(np.int64))  # e-/mu- have pdgId +11/+13
    child(lep, nu_frac[lep] * 0.5, (mode[lep] + 1) * sign[lep])
    child(lep, nu_frac[lep] * 0.5, -16 * sign[lep])
    one = mode == 1
    child(one, x_vis[one] * charged_frac[one], 211 * sign[one])
    child(one, nu_frac[one], -16 * sign[one])
    three = mode == 3
    w = rng.dirichlet((2.0, 2.0, 2.0), three.sum()) if three.any() else np.zeros((0, 3))
    for j, q in enumerate((1, 1, -1)):
        child(three, x_vis[three] * charged_frac[three] * w[:, j], 211 * sign[three] * q)
    child(three, nu_frac[three], -16 * sign[three])
    flat = {key: np.concatenate([np.asarray(c[key]) for c in children]) for key in children[0]}
    event = flat.pop("event")
    flat.pop("tau")
    for key in ("pdgId", "status", "mother"):
        flat[key] = flat[key].astype(np.float64)
    kids = _jagged_from_flat(event.astype(np.int64), n, **flat)
    had = ~lep
    vis_pt = pt[had] * x_vis[had]
    taus = _jagged_from_flat(
        ev[had], n, pt=vis_pt, eta=eta[had], phi=phi[had], charge=sign[had], prongs=mode[had],
    )
    return kids, taus


def append_children(genpart: Jagged, kids: Jagged) -> Jagged:
    """Append decay products whose ``mother`` is a local index into ``genpart``."""
    return concatenate([genpart, kids])


def _decay_w(b: _Builder, slot_w, slot_l, slot_nu, w_p4, w_mass, charge, rng, hadronic_frac=0.0):
    """W -> l nu (or q q' if hadronic_frac > 0: returns the quark four-vectors and mask)."""
    n = b.n
    u = rng.random(n)
    had = u < hadronic_frac
    lep_u = rng.integers(0, 3, n)
    flavour = np.array([11, 13, 15])[lep_u]
    lmass = np.array([ELECTRON_MASS, MUON_MASS, cfg.TAU_MASS])[lep_u]
    d1, d2 = two_body_decay(w_p4, w_mass, lmass, 0.0, rng)
    # charged lepton of a W+ is l+ (pdgId -11...), neutrino +12...
    lep_pdg = -charge * flavour
    nu_pdg = charge * (flavour + 1)
    status = np.where(flavour == 15, 2, 1)
    b.set(slot_l, d1, lep_pdg, status, mother=slot_w, where=~had)
    b.set(slot_nu, d2, nu_pdg, 1, mother=slot_w, where=~had)
    q1, q2 = two_body_decay(w_p4, w_mass, 0.0, 0.0, rng)
    return had, q1, q2


# --- Processes -------------------------------------------------------------------------
def generate_v_jets(process: str, n: int, pv, rng, power_shift: float = 0.0, pt_range=None) -> HardEvents:
    spec = PROCESSES[process]
    pt = spec.spectrum.sample(n, rng, n=spec.spectrum.n + power_shift, pt_range=pt_range)
    b = _Builder(n, 3, pv)
    if process == "wjets_lnu":
        mass = breit_wigner(cfg.W_MASS, cfg.W_WIDTH, n, rng, 50.0, 110.0)
        charge = np.where(rng.random(n) < 0.58, 1, -1)  # W+ / W- at the LHC
        p4 = boson(pt, mass, rng)
        b.set(0, p4, dc.PDG_W * charge, 62)
        _decay_w(b, 0, 1, 2, p4, mass, charge, rng)
    else:
        mass = breit_wigner(cfg.Z_MASS, cfg.Z_WIDTH, n, rng, 60.0, 120.0)
        p4 = boson(pt, mass, rng)
        b.set(0, p4, dc.PDG_Z, 62)
        if process == "dy_mumu":
            d1, d2 = two_body_decay(p4, mass, MUON_MASS, MUON_MASS, rng)
            b.set(1, d1, 13, 1, mother=0)
            b.set(2, d2, -13, 1, mother=0)
        else:
            d1, d2 = two_body_decay(p4, mass, 0.0, 0.0, rng)
            flav = rng.choice([12, 14, 16], n)
            b.set(1, d1, flav, 1, mother=0)
            b.set(2, d2, -flav, 1, mother=0)
    genpart = b.build()
    jets = isr_jets(-p4[0], -p4[1], rng)
    return _with_taus(genpart, [jets], rng)


def _with_taus(genpart: Jagged, jet_parts: list[Jagged], rng) -> HardEvents:
    kids, taus = decay_taus(genpart, rng)
    genpart = append_children(genpart, kids)
    n = genpart.n_events
    tau_jets = Jagged(taus.counts, {
        "pt": taus["pt"], "eta": taus["eta"], "phi": taus["phi"],
        "mass": np.full(taus["pt"].size, cfg.TAU_MASS), "flavour": np.full(taus["pt"].size, 15),
    })
    parts = [*jet_parts, underlying_jets(n, rng), tau_jets]
    parts = [Jagged(p.counts, {k: np.asarray(p[k], np.float64) for k in JET_FIELDS}) for p in parts]
    jets = concatenate(parts)
    jets, _ = jets.sort_within(jets["pt"])
    return HardEvents(_finalize(genpart), jets, taus)


def _b_neutrinos(b: _Builder, slots_b, slot_nu0, rng):
    """Semileptonic b decays: with probability 0.2 a neutrino takes a fraction of the b."""
    for k, sb in enumerate(slots_b):
        sel = b.mask[:, sb] & (rng.random(b.n) < 0.2)
        frac = rng.uniform(0.05, 0.4, b.n)
        pt = b.f["pt"][:, sb]
        rows = np.flatnonzero(sel)
        p4 = from_ptetaphim(pt[rows] * frac[rows], b.f["eta"][rows, sb], b.f["phi"][rows, sb], 0.0)
        b.set_rows(slot_nu0 + k, rows, p4, np.where(b.f["pdgId"][rows, sb] > 0, 14, -14), 1)
        b.f["pt"][:, sb] = np.where(sel, pt * (1 - frac), pt)


def generate_ttjets(n: int, pv, rng, pt_range=None) -> HardEvents:
    spec = PROCESSES["ttjets"]
    sys_pt = spec.spectrum.sample(n, rng, pt_range=pt_range)
    mtt = 2 * cfg.TOP_MASS * (1.0 + rng.exponential(0.25, n))
    sys_p4 = boson(sys_pt, mtt, rng)
    t1, t2 = two_body_decay(sys_p4, mtt, cfg.TOP_MASS, cfg.TOP_MASS, rng)
    # slots: 0 t, 1 tbar, 2 b, 3 W+, 4 bbar, 5 W-, 6-7 W+ products, 8-9 W- products, 10-11 b neutrinos
    b = _Builder(n, 12, pv)
    b.set(0, t1, 6, 62)
    b.set(1, t2, -6, 62)
    jets = []
    for slot_t, slot_b, slot_w, charge, tp4 in ((0, 2, 3, 1, t1), (1, 4, 5, -1, t2)):
        wm = breit_wigner(cfg.W_MASS, cfg.W_WIDTH, n, rng, 60.0, 100.0)
        bq, w = two_body_decay(tp4, cfg.TOP_MASS, 4.8, wm, rng)
        b.set(slot_b, bq, 5 * charge, 71, mother=slot_t)
        b.set(slot_w, w, 24 * charge, 22, mother=slot_t)
        slot_l = 6 if charge > 0 else 8
        had, q1, q2 = _decay_w(b, slot_w, slot_l, slot_l + 1, w, wm, np.full(n, charge), rng, hadronic_frac=0.676)
        jets.append(jets_from_p4(tuple(np.stack([a, c], 1) for a, c in zip(q1, q2, strict=True)), np.stack([had, had], 1), 0, rng))
    _b_neutrinos(b, (2, 4), 10, rng)
    bjets = Jagged.from_rows(
        b.mask[:, [2, 4]] & (b.f["pt"][:, [2, 4]] > 5), pt=b.f["pt"][:, [2, 4]], eta=b.f["eta"][:, [2, 4]],
        phi=b.f["phi"][:, [2, 4]], mass=np.full((n, 2), 4.8), flavour=np.full((n, 2), 5),
    )
    b.mask[:, [2, 4]] = False  # quarks are represented by their jets
    genpart = b.build()
    isr = isr_jets(-sys_p4[0], -sys_p4[1], rng)
    return _with_taus(genpart, [isr, bjets, *jets], rng)


def generate_qcd(n: int, pv, rng, pt_range=None) -> HardEvents:
    """Dijet events with FSR splitting, an optional ISR jet and semileptonic b decays."""
    spec = PROCESSES["qcd"]
    pthat = spec.spectrum.sample(n, rng, pt_range=pt_range)
    y = rng.normal(0.0, 1.2, (n, 2))
    phi0 = rng.uniform(-np.pi, np.pi, n)
    pt = np.stack([pthat, pthat], 1)
    phi = np.stack([phi0, phi0 + np.pi], 1)
    # ISR: an extra jet, recoil shared by the two partons
    has_isr = rng.random(n) < 0.5
    isr_pt = np.where(has_isr, 20.0 + rng.exponential(0.12, n) * pthat, 0.0)
    isr_phi = rng.uniform(-np.pi, np.pi, n)
    px = pt * np.cos(phi) - 0.5 * (isr_pt * np.cos(isr_phi))[:, None]
    py = pt * np.sin(phi) - 0.5 * (isr_pt * np.sin(isr_phi))[:, None]
    pt, phi = np.hypot(px, py), np.arctan2(py, px)
    # FSR: each parton may split into two jets (transverse momentum conserved)
    split = rng.random((n, 2)) < 0.35
    z = rng.uniform(0.1, 0.45, (n, 2))
    dphi = rng.choice([-1, 1], (n, 2)) * rng.uniform(0.5, 1.3, (n, 2))
    deta = rng.normal(0.0, 0.5, (n, 2))
    eta = np.clip(y, -4.5, 4.5)
    pt_a = np.where(split, pt * (1 - z), pt)
    pt_b = pt * z
    jet_pt = np.concatenate([pt_a, pt_b, isr_pt[:, None]], 1)
    jet_eta = np.concatenate([eta, np.clip(eta + deta, -4.7, 4.7), rng.normal(0, 1.6, (n, 1))], 1)
    jet_phi = wrap_phi(np.concatenate([phi, phi + dphi, isr_phi[:, None]], 1))
    # keep the split pair's vector sum: adjust the harder part
    sx = np.where(split, pt_b * np.cos(jet_phi[:, 2:4]), 0.0)
    sy = np.where(split, pt_b * np.sin(jet_phi[:, 2:4]), 0.0)
    ax, ay = pt * np.cos(phi) - sx, pt * np.sin(phi) - sy
    jet_pt[:, :2], jet_phi[:, :2] = np.hypot(ax, ay), np.arctan2(ay, ax)
    mask = np.concatenate([np.ones((n, 2), bool), split, has_isr[:, None]], 1)
    flav = np.where(rng.random((n, 5)) < 0.05, 5, 0)
    # semileptonic b: a neutrino takes a fraction of the jet
    b = _Builder(n, 5, pv)
    nu = mask & (flav == 5) & (rng.random((n, 5)) < 0.25)
    frac = rng.uniform(0.05, 0.4, (n, 5))
    for j in range(5):  # ~1% of the jets: the four-vectors of those alone
        sign = np.where(rng.random(n) < 0.5, 14, -14)
        rows = np.flatnonzero(nu[:, j])
        p4 = from_ptetaphim(jet_pt[rows, j] * frac[rows, j], jet_eta[rows, j], jet_phi[rows, j], 0.0)
        b.set_rows(j, rows, p4, sign[rows], 1)
    jet_pt = np.where(nu, jet_pt * (1 - frac), jet_pt)
    # GenPart[0] must exist: the outgoing partons' system is not stored, so store a proton
    # remnant marker? No: store the two leading partons as status-23 entries (pdgId 21).
    lead = _Builder(n, 2, pv)
    for j in range(2):
        lead.set(j, from_ptetaphim(pt[:, j], eta[:, j], phi[:, j], 0.0), 21, 23)
    genpart = concatenate([lead.build(), b.build()])
    jets = Jagged.from_rows(mask & (jet_pt > 5.0), pt=jet_pt, eta=jet_eta, phi=jet_phi,
                            mass=jet_pt * rng.uniform(0.04, 0.15, (n, 5)), flavour=flav)
    return _with_taus(genpart, [jets], rng)


def generate_signal(n: int, pv, rng, m_chargino: float, dm: float) -> HardEvents:
    """Higgsino pairs recoiling against ISR; chargino -> neutralino + pion (docs/physics.md sec. 10)."""
    m_n1 = m_chargino - dm
    m_n2 = m_chargino + dm  # Delta m0 = 2 Delta m+- (docs/physics.md sec. 10)
    isr_pt = SIGNAL_ISR.sample(n, rng)
    msys = (2 * m_chargino) * (1.0 + rng.exponential(0.3, n))
    sys_p4 = boson(isr_pt, msys, rng)
    pair = rng.choice(4, n, p=SIGNAL_PAIR_FRACTIONS)
    # slot 0: first higgsino, 1: second; 2-3: decay products of 0; 4-5: of 1
    q = np.where(rng.random(n) < 0.5, 1, -1)
    pdg_a = np.where(pair == 3, dc.PDG_NEUTRALINO1, dc.PDG_CHARGINO * q)
    pdg_b = np.select([pair == 0, pair == 1, pair == 2], [-dc.PDG_CHARGINO * q, dc.PDG_NEUTRALINO2, dc.PDG_NEUTRALINO1], dc.PDG_NEUTRALINO2)
    mass_of = lambda pdg: np.select(  # noqa: E731
        [np.abs(pdg) == dc.PDG_CHARGINO, pdg == dc.PDG_NEUTRALINO2], [m_chargino, m_n2], m_n1
    )
    ma, mb = mass_of(pdg_a), mass_of(pdg_b)
    a4, b4 = two_body_decay(sys_p4, msys, ma, mb, rng)
    bld = _Builder(n, 6, pv)
    bld.set(0, a4, pdg_a, 62)
    bld.set(1, b4, pdg_b, 62)
    ctau = chargino_ctau_cm(dm)
    for slot, p4, pdg, m in ((0, a4, pdg_a, ma), (1, b4, pdg_b, mb)):
        is_c = np.abs(pdg) == dc.PDG_CHARGINO
        is_n2 = pdg == dc.PDG_NEUTRALINO2
        p = np.sqrt(p4[0] ** 2 + p4[1] ** 2 + p4[2] ** 2)
        length = np.where(is_c, p / m * ctau * rng.standard_exponential(n), 0.0)
        vtx = tuple(v + length * c / np.maximum(p, 1e-12) for v, c in zip(pv, p4[:3], strict=True))
        n1, pi = two_body_decay(p4, m, m_n1, cfg.PION_MASS, rng)
        bld.set(2 + 2 * slot, n1, dc.PDG_NEUTRALINO1, 1, mother=slot, where=is_c | is_n2, vertex=vtx)
        bld.set(3 + 2 * slot, pi, dc.PDG_PION * np.sign(pdg), 1, mother=slot, where=is_c, vertex=vtx)
        bld.f["status"][:, slot] = np.where(is_c | is_n2, 62, 1)
    genpart = bld.build()
    jets = isr_jets(-sys_p4[0], -sys_p4[1], rng)
    return _with_taus(genpart, [jets], rng)


def generate_hard(process: str, n: int, pv, rng, *, power_shift: float = 0.0,
                  m_chargino: float | None = None, dm: float | None = None,
                  pt_range: tuple[float, float] | None = None) -> HardEvents:
    """``pt_range``: a slice [lo, hi) of the process' generator variable (processes.SamplePlan)."""
    if process in ("zjets_nunu", "wjets_lnu", "dy_mumu"):
        return generate_v_jets(process, n, pv, rng, power_shift if process == "dy_mumu" else 0.0, pt_range)
    if process == "ttjets":
        return generate_ttjets(n, pv, rng, pt_range)
    if process == "qcd":
        return generate_qcd(n, pv, rng, pt_range)
    if process == "signal":
        return generate_signal(n, pv, rng, m_chargino, dm)
    raise ValueError(f"unknown process {process!r}")
