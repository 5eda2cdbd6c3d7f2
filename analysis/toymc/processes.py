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
        n = self.n if n is None else n
        return ((self.a**2 + PT_REFERENCE**2) / (self.a**2 + c**2)) ** (n - 1.0)

    def sample(self, size: int, rng: np.random.Generator, n: float | None = None) -> np.ndarray:
        n = self.n if n is None else n
        u = rng.random(size)
        return np.sqrt((self.a**2 + self.cut**2) * u ** (-1.0 / (n - 1.0)) - self.a**2)

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

    @property
    def xsec_pb(self) -> float:
        """Cross section of the generated phase space."""
        return self.xsec_reference_pb * self.spectrum.fraction_above(self.spectrum.cut)


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
        "pT(Z) > 150 GeV",
    ),
    "wjets_lnu": ProcessSpec(
        "wjets_lnu", "W(->l nu)+jets, l = e, mu, tau", _W_LNU, PowerSpectrum(BOSON_A, W_POWER, 180.0),
        "pT(W) > 180 GeV",
    ),
    "ttjets": ProcessSpec(
        # reference: inclusive; spectrum of the ttbar system pT (its recoil against ISR)
        "ttjets", "ttbar+jets, all decays", _TT / PowerSpectrum(60.0, 2.4, 0.0).fraction_above(0.0),
        PowerSpectrum(60.0, 2.4, 120.0), "pT(ttbar) > 120 GeV",
    ),
    "dy_mumu": ProcessSpec(
        "dy_mumu", "Z/gamma*(->mu mu)+jets", _DY_LL / 3.0, PowerSpectrum(BOSON_A, DY_POWER, 150.0),
        "pT(Z) > 150 GeV",
    ),
}

#: QCD dijet pT-hat spectrum ~ pT^-4, sigma(pT-hat > 300 GeV) = 15 nb (HT above ~600 GeV)
_QCD = PowerSpectrum(0.0, 2.5, 300.0)
PROCESSES["qcd"] = ProcessSpec(
    "qcd", "QCD multijet", 15000.0 / _QCD.fraction_above(_QCD.cut), _QCD, "pT-hat > 300 GeV"
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
