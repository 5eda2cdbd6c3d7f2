"""Processes of the toy generator: phase space, spectra and cross sections.

Cross sections are those of the thesis (Table A.3 for backgrounds, summed over the HT bins
and with the k-factors it quotes; Table 2.1 for the signal), restricted to the generated
phase space by the generator filter of each process. The boson pT spectra have the closed
form dsigma/dpT ~ pT (pT^2 + a^2)^-n, so the filter efficiency of a cut is analytic:

    sigma(pT > c) = sigma(pT > 100 GeV) * ((a^2 + 100^2) / (a^2 + c^2))^(n - 1)

(the thesis' HT > 100 GeV samples are identified with boson pT > 100 GeV).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..signal_models import SIGNAL_GRID, signal_xsec_pb

PT_REFERENCE = 100.0  # GeV: the thesis' samples start at HT = 100 GeV


@dataclass(frozen=True)
class PowerSpectrum:
    """dsigma/dpT ~ pT (pT^2 + a^2)^-n above ``cut`` (GeV)."""

    a: float
    n: float
    cut: float

    def fraction_above(self, c: float, n: float | None = None) -> float:
        """sigma(pT > c) / sigma(pT > PT_REFERENCE); 0 for c = inf."""
        n = self.n if n is None else n
        if np.isinf(c):
            return 0.0
        return ((self.a**2 + PT_REFERENCE**2) / (self.a**2 + c**2)) ** (n - 1.0)

    def sample(self, size: int, rng: np.random.Generator, n: float | None = None,
               pt_range: tuple[float, float] | None = None) -> np.ndarray:
        """pT values above the cut, or in ``pt_range`` = [lo, hi) (a slice: inverse CDF
        restricted to it, so the shape inside the slice is the spectrum's)."""
        n = self.n if n is None else n
        lo, hi = pt_range if pt_range is not None else (self.cut, np.inf)
        u = rng.random(size)
        if np.isfinite(hi):  # u in (r, 1] maps to [lo, hi): r = P(pT > hi | pT > lo)
            r = ((self.a**2 + lo**2) / (self.a**2 + hi**2)) ** (n - 1.0)
            u = r + (1.0 - r) * (1.0 - u)
        return np.sqrt((self.a**2 + lo**2) * u ** (-1.0 / (n - 1.0)) - self.a**2)

    def pdf(self, pt: np.ndarray, n: float | None = None) -> np.ndarray:
        """Normalized density above the cut."""
        n = self.n if n is None else n
        norm = 2.0 * (n - 1.0) * (self.a**2 + self.cut**2) ** (n - 1.0)
        return np.where(pt >= self.cut, norm * pt * (pt**2 + self.a**2) ** -n, 0.0)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    description: str
    #: cross section (pb) of the full reference phase space (boson pT > 100 GeV, or inclusive)
    xsec_reference_pb: float
    spectrum: PowerSpectrum
    #: generator filter in words, written to the fileset metadata
    filter: str

    #: the generator variable the filter and the slices cut on
    variable: str = "pT(V)"

    @property
    def xsec_pb(self) -> float:
        """Cross section of the generated phase space."""
        return self.xsec_reference_pb * self.spectrum.fraction_above(self.spectrum.cut)

    def xsec_slice_pb(self, lo: float, hi: float) -> float:
        """Cross section of the slice lo <= variable < hi (exact: the spectrum's closed form)."""
        return self.xsec_reference_pb * (self.spectrum.fraction_above(lo) - self.spectrum.fraction_above(hi))


_Z_NUNU = 325.1 + 89.09 + 12.21 + 2.932 + 1.320 + 0.3055 + 0.0069  # incl. k = 1.23
_W_LNU = 1523 + 405.2 + 54.23 + 12.92 + 6.088 + 1.398 + 0.0317  # incl. k = 1.21
_DY_LL = 171.2 + 47.23 + 6.364 + 1.547 + 0.6886 + 0.1605 + 0.0037  # e, mu, tau
_TT = 53.05 + 105.9 + 105.0

#: Z pT spectrum of the simulated Drell-Yan and Z -> nu nu samples (power n); pseudo-data
#: shifts n for Drell-Yan by DataModel.ptz_power_shift.
BOSON_A = 40.0
ZNUNU_POWER = 2.55
DY_POWER = 2.65
W_POWER = 2.60

PROCESSES: dict[str, ProcessSpec] = {
    "zjets_nunu": ProcessSpec(
        "zjets_nunu", "Z(->nu nu)+jets", _Z_NUNU, PowerSpectrum(BOSON_A, ZNUNU_POWER, 150.0),
        "pT(Z) > 150 GeV", "pT(Z)",
    ),
    "wjets_lnu": ProcessSpec(
        "wjets_lnu", "W(->l nu)+jets, l = e, mu, tau", _W_LNU, PowerSpectrum(BOSON_A, W_POWER, 180.0),
        "pT(W) > 180 GeV", "pT(W)",
    ),
    "ttjets": ProcessSpec(
        # reference: inclusive; spectrum of the ttbar system pT (its recoil against ISR)
        "ttjets", "ttbar+jets, all decays", _TT / PowerSpectrum(60.0, 2.4, 0.0).fraction_above(0.0),
        PowerSpectrum(60.0, 2.4, 120.0), "pT(ttbar) > 120 GeV", "pT(ttbar)",
    ),
    "dy_mumu": ProcessSpec(
        "dy_mumu", "Z/gamma*(->mu mu)+jets", _DY_LL / 3.0, PowerSpectrum(BOSON_A, DY_POWER, 150.0),
        "pT(Z) > 150 GeV", "pT(Z)",
    ),
}

#: QCD dijet pT-hat spectrum ~ pT^-4, sigma(pT-hat > 300 GeV) = 15 nb (HT above ~600 GeV)
_QCD = PowerSpectrum(0.0, 2.5, 300.0)
PROCESSES["qcd"] = ProcessSpec(
    "qcd", "QCD multijet", 15000.0 / _QCD.fraction_above(_QCD.cut), _QCD, "pT-hat > 300 GeV", "pT-hat"
)

#: signal: higgsino pairs recoiling against ISR with pT(ISR) above the cut
SIGNAL_ISR = PowerSpectrum(80.0, 2.7, 250.0)
SIGNAL_FILTER = "pT(ISR) > 250 GeV"

#: pair composition of higgsino production (chi1+ chi1-, chi1+- chi2^0, chi1+- chi1^0, chi1^0 chi2^0)
SIGNAL_PAIR_FRACTIONS = (0.25, 0.35, 0.25, 0.15)

BACKGROUNDS: tuple[str, ...] = ("zjets_nunu", "wjets_lnu", "ttjets", "dy_mumu", "qcd")
ALL_PROCESSES: tuple[str, ...] = (*BACKGROUNDS, "signal")

#: pseudo-data streams: trigger and the processes they are made of
DATA_STREAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data_met": ("HLT_PFMETNoMu120_PFMHTNoMu120_IDTight", ("zjets_nunu", "wjets_lnu", "ttjets", "dy_mumu", "qcd")),
    "data_singlemuon": ("HLT_IsoMu24", ("dy_mumu", "wjets_lnu", "ttjets")),
    "data_jetht": ("HLT_PFHT1050", ("qcd", "ttjets", "wjets_lnu", "zjets_nunu")),
}


# --- samples as CMS makes them: slices and enrichment ---------------------------------------
@dataclass(frozen=True)
class Enrichment:
    """A detector-level enrichment of a sample in tiers, normalized by counting every trial.

    Every generated trial goes through the hard process and the detector response of the
    hard objects and falls into the first tier whose cut it passes (``tiers``: (cut name in
    ENRICHMENT_CUTS, prescale) in order), or into the rest (prescale ``rest``). A trial of a
    tier of prescale p is kept with probability 1/p and weight p. Nothing is cut away: every
    selection sees an unbiased sample (the events of the prescaled tiers are only fewer and
    heavier), and the number of trials normalizes it exactly.
    """

    tiers: tuple[tuple[str, int], ...]
    rest: int

    def __post_init__(self):
        for cut, _ in self.tiers:
            if cut not in ENRICHMENT_CUTS:
                raise ValueError(f"unknown enrichment cut {cut!r}: one of {sorted(ENRICHMENT_CUTS)}")
        for prescale in (*(p for _, p in self.tiers), self.rest):
            if int(prescale) != prescale or prescale < 1:
                raise ValueError(f"a prescale must be a positive integer, got {prescale!r}")

    def tiers_of(self, reco: dict) -> np.ndarray:
        """The tier of each trial: the index of the first tier whose cut it passes, else
        len(tiers) (the rest)."""
        n = np.asarray(reco["MET_pt"]).size
        out = np.full(n, len(self.tiers), np.int64)
        for i in reversed(range(len(self.tiers))):  # the first passing tier wins
            out[np.asarray(ENRICHMENT_CUTS[self.tiers[i][0]][1](reco), bool)] = i
        return out

    @property
    def prescale_of_tier(self) -> np.ndarray:
        return np.array([*(p for _, p in self.tiers), self.rest], np.float64)

    def describe(self) -> str:
        tiers = [f"{ENRICHMENT_CUTS[c][0]} (1/{p})" for c, p in self.tiers]
        return f"enriched in tiers: {'; else '.join(tiers)}; else 1/{self.rest}"

    def as_dict(self) -> dict:
        return {"tiers": [[c, int(p)] for c, p in self.tiers], "rest": int(self.rest)}


def _leading_jets(reco: dict, max_abs_eta: float, n_max: int | None = None):
    """Flat (event index, pt, phi) of the reconstructed jets with pT > 30 GeV and |eta| below
    ``max_abs_eta``, the ``n_max`` leading of each event (the collection is pT-ordered)."""
    jet = reco["Jet"]
    pt, eta, phi = (np.asarray(jet[f]) for f in ("pt", "eta", "phi"))
    ev = np.repeat(np.arange(jet.counts.size), jet.counts)
    good = (pt > 30.0) & (np.abs(eta) < max_abs_eta)
    if n_max is not None:
        rank = np.cumsum(good) - 1
        first = np.concatenate([[0], np.cumsum(good)])[jet.offsets[:-1]]
        good &= (rank - np.repeat(first, jet.counts)) < n_max
    return ev[good], pt[good], phi[good]


def _search_like(reco: dict) -> np.ndarray:
    """p_T^miss > 250 GeV and min DeltaPhi(p_T^miss, jets 1-4 with pT > 30, |eta| < 2.4) > 0.3."""
    met, met_phi = np.asarray(reco["MET_pt"]), np.asarray(reco["MET_phi"])
    ev, _, phi = _leading_jets(reco, 2.4, 4)
    dphi = np.abs((phi - met_phi[ev] + np.pi) % (2.0 * np.pi) - np.pi)
    min_dphi = np.full(met.size, np.inf)
    np.minimum.at(min_dphi, ev, dphi)
    return (met > 250.0) & (min_dphi > 0.3)


def _met_or_mht_above_200(reco: dict) -> np.ndarray:
    """p_T^miss > 200 GeV or H_T^miss (jets pT > 30, |eta| < 5) > 200 GeV."""
    met = np.asarray(reco["MET_pt"])
    ev, pt, phi = _leading_jets(reco, 5.0)
    mht = np.hypot(np.bincount(ev, pt * np.cos(phi), minlength=met.size),
                   np.bincount(ev, pt * np.sin(phi), minlength=met.size))
    return (met > 200.0) | (mht > 200.0)


#: detector-level enrichment cuts: name -> (description, function of the reco branches)
ENRICHMENT_CUTS: dict[str, tuple[str, object]] = {
    "search_like": ("reconstructed p_T^miss > 250 GeV and min DeltaPhi(p_T^miss, jets 1-4) > 0.3",
                    _search_like),
    "met_or_mht200": ("reconstructed p_T^miss or H_T^miss > 200 GeV", _met_or_mht_above_200),
}


@dataclass(frozen=True)
class SamplePlan:
    """How one simulated sample is generated (docs/physics.md sec. 1, "Samples as CMS makes them").

    ``slices`` are the edges of the process' generator variable (ProcessSpec.variable), the
    first being the process' filter; ``shares`` the fraction of the events generated in each
    slice. The slices are stitched into one dataset: an event of slice s carries
    genWeight = sign x (sigma_s / sigma) x (T / T_s), T_s the signed number of trials of the
    slice and T their sum (the dataset's ``sum_genweight``), so that every slice is
    normalized to its exact cross section (closed form of the spectrum). An ``enrichment``
    keeps the events of a detector-level cut in every slice and prescales the others.
    """

    slices: tuple[float, ...]
    shares: tuple[float, ...]
    enrichment: Enrichment | None = None
    #: events of this process in units of the request's events per sample
    events_factor: float = 1.0
    # (the last edge may be inf: an open slice; written as null in JSON)

    def __post_init__(self):
        e = self.slices
        if len(e) < 2 or any(not (a < b) for a, b in zip(e[:-1], e[1:], strict=True)):
            raise ValueError(f"slice edges must increase: {e}")
        if len(self.shares) != len(e) - 1 or any(x <= 0 for x in self.shares):
            raise ValueError(f"one positive share per slice: {len(e) - 1} slices, shares {self.shares}")
        if not self.events_factor > 0:
            raise ValueError(f"events_factor must be positive, got {self.events_factor!r}")

    def describe(self, process: str) -> str:
        spec = PROCESSES[process]
        parts = [f"{spec.variable} slices {', '.join(_slice_text(a, b) for a, b in self.ranges())} GeV"]
        if self.enrichment is not None:
            parts.append(self.enrichment.describe())
        return "; ".join(parts)

    def ranges(self) -> list[tuple[float, float]]:
        return list(zip(self.slices[:-1], self.slices[1:], strict=True))

    def events(self, n: int) -> list[int]:
        """Events per slice for ``n`` x events_factor in all (each at least 1)."""
        total = sum(self.shares)
        return [max(int(round(n * self.events_factor * x / total)), 1) for x in self.shares]

    def as_dict(self) -> dict:
        return {"slices": [float(x) if np.isfinite(x) else None for x in self.slices], "shares": [float(x) for x in self.shares],
                "events_factor": float(self.events_factor),
                "enrichment": None if self.enrichment is None else self.enrichment.as_dict()}


def _slice_text(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g})" if np.isfinite(hi) else f">= {lo:g}"


INF = float("inf")
#: the main job's samples: most events where the selections are (p_T^miss > 300 GeV needs
#: pT(V) above ~250 GeV), the low slices kept for what reaches down there (the pT(Z)
#: weights are derived with p_T^miss > 200 GeV); QCD enriched in reconstructed p_T^miss,
#: since its p_T^miss is jet mismeasurement, which no generator variable predicts
MAIN_JOB_PLANS: dict[str, SamplePlan] = {
    "zjets_nunu": SamplePlan((150.0, 250.0, INF), (1.0, 4.0), events_factor=4.0),
    # W reaches the search baseline through a lost lepton: enriched in the search-like tier
    "wjets_lnu": SamplePlan((180.0, 280.0, INF), (1.0, 4.0), Enrichment((("search_like", 1),), rest=5),
                            events_factor=4.0),
    "dy_mumu": SamplePlan((150.0, 250.0, INF), (1.0, 3.0), events_factor=4.0),
    "ttjets": SamplePlan((120.0, 300.0, INF), (1.0, 1.0)),
    "qcd": SamplePlan((300.0, 600.0, INF), (1.1, 1.0),
                      Enrichment((("search_like", 1), ("met_or_mht200", 10)), rest=500), events_factor=5.5),
}

#: reconstructed-level skims of the pseudo-data streams (like CMS skims: every selection
#: reading the stream is tighter); name -> (description, function of the reco branches)
def _met_skim(reco: dict) -> np.ndarray:
    return np.asarray(reco["MET_pt"]) > 250.0


def _dimuon_skim(reco: dict) -> np.ndarray:
    """The two leading muons (the collection is pT-ordered) above 25 GeV, pT(mu mu) > 150 GeV."""
    mu = reco["Muon"]
    two = mu.counts >= 2
    first = mu.offsets[:-1][two]
    pt, phi = np.asarray(mu["pt"]), np.asarray(mu["phi"])
    out = np.zeros(mu.counts.size, bool)
    a, b = first, first + 1
    ptmm = np.hypot(pt[a] * np.cos(phi[a]) + pt[b] * np.cos(phi[b]), pt[a] * np.sin(phi[a]) + pt[b] * np.sin(phi[b]))
    out[two] = (pt[a] > 25.0) & (pt[b] > 25.0) & (ptmm > 150.0)
    return out


STREAM_SKIMS: dict[str, tuple[str, object]] = {
    "data_met": ("reconstructed p_T^miss > 250 GeV", _met_skim),
    "data_singlemuon": ("two muons pT > 25 GeV with pT(mu mu) > 150 GeV", _dimuon_skim),
}

#: the main job's pseudo-data: stated luminosity per stream (fb^-1 per era) and skimmed
MAIN_JOB_STREAM_LUMI_FB: dict[str, float] = {"data_met": 0.025, "data_singlemuon": 3.0}


def signal_xsec_filtered_pb(m_chargino: float) -> float:
    """Signal cross section (pb) inside the generator filter (SIGNAL_FILTER)."""
    inclusive = SIGNAL_ISR.fraction_above(0.0)
    return signal_xsec_pb(m_chargino) * SIGNAL_ISR.fraction_above(SIGNAL_ISR.cut) / inclusive


def signal_points(spec: str) -> list[tuple[float, float]]:
    """Parse ``benchmarks``, ``grid`` or ``M:DM,M:DM`` into (m_chargino, dm) pairs."""
    from ..errors import ConfigError
    from ..signal_models import SIGNAL_BENCHMARKS

    if spec == "benchmarks":
        return list(SIGNAL_BENCHMARKS)
    if spec == "grid":
        return [(m, dm) for m, (dms, _) in sorted(SIGNAL_GRID.items()) for dm in dms]
    points = []
    for item in spec.split(","):
        try:
            m, dm = (float(x) for x in item.split(":"))
        except ValueError:
            raise ConfigError(
                f"bad signal point {item!r}: use M:DM in GeV, e.g. 115:0.27, or 'benchmarks'/'grid'"
            ) from None
        if not (100.0 <= m <= 500.0) or not (0.14 < dm < 5.0):
            raise ConfigError(f"signal point {item!r} outside m in [100, 500] GeV, dm in (0.14, 5) GeV")
        points.append((m, dm))
    return points


def signal_dataset_name(m: float, dm: float) -> str:
    """Dataset name of a signal point, e.g. signal_m115_dm0p27."""
    return f"signal_m{m:g}_dm{dm:g}".replace(".", "p")
