"""The toy detector and the injected data/simulation differences: one documented place.

Two detectors exist: :data:`SIMULATION` (what the simulated samples are made with) and
:data:`PSEUDO_DATA` (the "true detector" the pseudo-data streams are made with). They differ
only in the fields of :class:`DataModel`; every test, correction and refinement step that
checks recovery of a mis-modelling reads the injected values from here
(:data:`INJECTED`), never from a copy.

Everything else here is the detector both share: the binned jet response, the track
efficiency and resolution, pileup profiles, lepton acceptance, trigger turn-ons.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from ..constants import ERAS


# --- Jet response (docs/physics.md sec. 8; seed 004 sec. 2) ---------------------------------------
@dataclass(frozen=True)
class JetResponseModel:
    """Binned response r = pT_reco / pT_gen: Gaussian core plus exponential tails.

    In each (pT_gen, |eta|) bin, with probability ``low_tail_frac`` r = 1 - Exp(low_tail_scale)
    (heavy-flavour neutrinos, dead cells, punch-through), with probability
    ``high_tail_frac`` r = 1 + Exp(high_tail_scale), and otherwise r ~ N(1, core_sigma).
    Arrays are indexed [pt_bin, eta_bin]. :meth:`moments` gives the exact mean and width.
    """

    pt_edges: tuple[float, ...] = (0.0, 30.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1e5)
    eta_edges: tuple[float, ...] = (0.0, 1.3, 2.5, 5.0)
    # sigma/pT = sqrt(N^2/pT^2 + S^2/pT + C^2) evaluated at the bin centre, per eta bin
    noise: tuple[float, ...] = (3.0, 3.5, 4.0)
    stochastic: tuple[float, ...] = (1.0, 1.1, 1.2)
    constant: tuple[float, ...] = (0.04, 0.05, 0.06)
    low_tail_frac: tuple[float, ...] = (0.06, 0.07, 0.08)
    low_tail_scale: float = 0.18
    high_tail_frac: tuple[float, ...] = (0.02, 0.025, 0.03)
    high_tail_scale: float = 0.12

    def _centres(self) -> np.ndarray:
        e = np.array(self.pt_edges, dtype=np.float64)
        hi = np.where(np.isfinite(e[1:]) & (e[1:] < 1e4), e[1:], 2 * e[:-1])
        return np.maximum(0.5 * (e[:-1] + hi), 20.0)

    def core_sigma_table(self) -> np.ndarray:
        """Core width per (pt_bin, eta_bin), shape (n_pt, n_eta)."""
        pt = self._centres()[:, None]
        n, s, c = (np.array(x)[None, :] for x in (self.noise, self.stochastic, self.constant))
        return np.sqrt((n / pt) ** 2 + s**2 / pt + c**2)

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(core_sigma, low_tail_frac, high_tail_frac), each of shape (n_pt, n_eta)."""
        core = self.core_sigma_table()
        low = np.broadcast_to(np.array(self.low_tail_frac)[None, :], core.shape)
        high = np.broadcast_to(np.array(self.high_tail_frac)[None, :], core.shape)
        return core, np.array(low), np.array(high)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and standard deviation of r per (pt_bin, eta_bin)."""
        core, fl, fh = self.tables()
        a, b = self.low_tail_scale, self.high_tail_scale
        fc = 1.0 - fl - fh
        mean = 1.0 - fl * a + fh * b
        second = fc * (1.0 + core**2) + fl * (1.0 - 2 * a + 2 * a**2) + fh * (1.0 + 2 * b + 2 * b**2)
        return mean, np.sqrt(second - mean**2)

    def bin_index(self, pt: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ipt = np.clip(np.searchsorted(self.pt_edges, pt, side="right") - 1, 0, len(self.pt_edges) - 2)
        ieta = np.clip(
            np.searchsorted(self.eta_edges, np.abs(eta), side="right") - 1, 0, len(self.eta_edges) - 2
        )
        return ipt, ieta

    def sample(self, pt_gen: np.ndarray, eta_gen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw responses r for gen jets (flat arrays), in one pass (:func:`_responses`, whose bins
        are those of :meth:`bin_index`) instead of a dozen array operations."""
        pt_gen, eta_gen = np.asarray(pt_gen, np.float64), np.asarray(eta_gen, np.float64)
        u = rng.random(pt_gen.size)
        z = rng.standard_normal(pt_gen.size)
        e = rng.standard_exponential(pt_gen.size)
        return _responses(pt_gen, eta_gen, u, z, e, np.array(self.pt_edges, np.float64),
                          np.array(self.eta_edges, np.float64), *self.tables(), self.low_tail_scale, self.high_tail_scale)


@njit(cache=True)
def _bin(x, edges):
    """np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2) for one x (NaN
    sorts last)."""
    k = edges.size if x != x else 0
    while k < edges.size and edges[k] <= x:
        k += 1
    return min(max(k - 1, 0), edges.size - 2)


@njit(cache=True)
def _responses(pt, eta, u, z, e, pt_edges, eta_edges, core, fl, fh, low_scale, high_scale):
    """JetResponseModel.sample's responses from its uniform, normal and exponential variates."""
    r = np.empty(pt.size)
    for i in range(pt.size):
        ipt, ieta = _bin(pt[i], pt_edges), _bin(abs(eta[i]), eta_edges)
        lo, hi = fl[ipt, ieta], fh[ipt, ieta]
        if u[i] < lo:
            x = 1.0 - low_scale * e[i]
        elif u[i] < lo + hi:
            x = 1.0 + high_scale * e[i]
        else:
            x = 1.0 + core[ipt, ieta] * z[i]
        r[i] = x if not x < 0.02 else 0.02  # np.maximum: NaN stays NaN
    return r


# --- Tracks (docs/physics.md sec. 1, 3) --------------------------------------------------------
@dataclass(frozen=True)
class TrackModel:
    """Track reconstruction efficiency, resolution, quality and association.

    Efficiency: eps(pT) = plateau / (1 + exp(-(pT - turn_on)/width)), which gives 10% at
    0.1 GeV, 80% at 0.5 GeV and 90% above 1 GeV, times a displacement factor that falls
    linearly from 1 at ``disp_full`` to 0 at ``disp_zero`` (transverse production radius).

    Resolution of the five helix parameters (contract order qoverpt, lambda, phi, d0, z0):
    sigma(q/pT) = |q/pT| * (a (+) b pT), sigma(lambda) = l0 (+) l1/p, sigma(phi) = p0 (+) p1/pT,
    sigma(d0) = d0_0 (+) d0_1/pT, sigma(z0) = (z0_0 (+) z0_1/pT) * cosh(eta)^z0_eta_power,
    all times (1 + eta_growth |eta|), with a fixed correlation matrix between them.
    """

    eff_plateau: float = 0.90
    eff_turn_on: float = 0.30
    eff_width: float = 0.2 / np.log(8.0)
    disp_full: float = 10.0
    disp_zero: float = 60.0
    res_qoverpt: tuple[float, float] = (0.010, 0.00015)
    res_lambda: tuple[float, float] = (1.0e-4, 1.5e-3)
    res_phi: tuple[float, float] = (1.0e-4, 2.0e-3)
    res_d0: tuple[float, float] = (0.0010, 0.0090)
    res_z0: tuple[float, float] = (0.0020, 0.0100)
    z0_eta_power: float = 0.5
    eta_growth: float = 0.15
    #: correlation matrix of (qoverpt, lambda, phi, d0, z0) residuals
    correlation: tuple[tuple[float, ...], ...] = (
        (1.0, 0.0, 0.10, -0.05, 0.0),
        (0.0, 1.0, 0.0, 0.0, -0.55),
        (0.10, 0.0, 1.0, -0.60, 0.0),
        (-0.05, 0.0, -0.60, 1.0, 0.0),
        (0.0, -0.55, 0.0, 0.0, 1.0),
    )
    #: stored tracks: |eta| below this
    max_abs_eta: float = 2.5
    min_pt: float = 0.05

    def efficiency(self, pt_true: np.ndarray, rho_prod: np.ndarray | float = 0.0) -> np.ndarray:
        """Reconstruction efficiency for true pT (GeV) and production radius (cm)."""
        eff = self.eff_plateau / (1.0 + np.exp(-(pt_true - self.eff_turn_on) / self.eff_width))
        disp = np.clip((self.disp_zero - np.asarray(rho_prod)) / (self.disp_zero - self.disp_full), 0, 1)
        return eff * disp

    def sigmas(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Resolution of the five helix parameters, shape (n, 5)."""
        p = pt * np.cosh(eta)
        growth = 1.0 + self.eta_growth * np.abs(eta)
        out = np.empty((pt.size, 5))
        out[:, 0] = np.hypot(self.res_qoverpt[0], self.res_qoverpt[1] * pt) / pt
        out[:, 1] = np.hypot(self.res_lambda[0], self.res_lambda[1] / p)
        out[:, 2] = np.hypot(self.res_phi[0], self.res_phi[1] / pt)
        out[:, 3] = np.hypot(self.res_d0[0], self.res_d0[1] / pt)
        out[:, 4] = np.hypot(self.res_z0[0], self.res_z0[1] / pt) * np.cosh(eta) ** self.z0_eta_power
        return out * growth[:, None]

    def cholesky(self) -> np.ndarray:
        return np.linalg.cholesky(np.array(self.correlation))


# --- Pileup and vertices ---------------------------------------------------------------
@dataclass(frozen=True)
class PileupModel:
    """True number of interactions per era (Gamma profiles) and vertex reconstruction."""

    mean: dict[str, float] = field(default_factory=lambda: {"2016": 25.0, "2017": 32.0, "2018": 32.0})
    sd: dict[str, float] = field(default_factory=lambda: {"2016": 9.0, "2017": 12.0, "2018": 11.0})
    max_true: float = 99.0
    vertex_reco_eff: float = 0.75
    beamspot_sigma_xy: float = 0.0012
    beamspot_sigma_z: float = 3.5
    pv_sigma_xy: float = 0.0015
    pv_sigma_z: float = 0.0020
    pu_sigma_xy: float = 0.0040
    pu_sigma_z: float = 0.0060
    #: stored charged tracks per pileup interaction (mean)
    tracks_per_pu: float = 0.6

    def sample_true(self, era: str, n: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        m, s = self.mean[era] * scale, self.sd[era] * scale
        k = (m / s) ** 2
        return np.minimum(rng.gamma(k, m / k, n), self.max_true).astype(np.float32)


# --- The data model: what differs between simulation and pseudo-data --------------------
@dataclass(frozen=True)
class DataModel:
    """Detector and physics differences between simulation (all 1/0) and pseudo-data.

    Attributes
    ----------
    pv_track_rate : multiplies the rate of tracks from the primary interaction (prompt and
        secondary): the PV-associated track scale factor a correction must recover.
    spurious_track_rate : multiplies the rate of spurious (fake) tracks.
    track_pt_scale : multiplies every reconstructed track pT.
    dxy_err_scale, dz_err_scale : multiply the d0 and z0 resolutions (true smearing and the
        reported covariance, hence dxyErr and dzErr).
    ptz_power_shift : the Drell-Yan boson pT spectrum dsigma/dpT ~ pT (pT^2 + a^2)^-n has
        n -> n + shift (negative: harder) in data.
    met_slope_per_gev : data/simulation ratio of p_T^miss is 1 + slope (MET - met_slope_pivot)
        for MET above the pivot (1 below), up to ``met_slope_max`` where it freezes.
    pileup_scale : multiplies the mean and width of the true-interaction profile.
    hem_affected_run : 2018 runs from this one on have the HEM 15/16 failure (data only).
    """

    pv_track_rate: float = 1.0
    spurious_track_rate: float = 1.0
    track_pt_scale: float = 1.0
    dxy_err_scale: float = 1.0
    dz_err_scale: float = 1.0
    ptz_power_shift: float = 0.0
    met_slope_per_gev: float = 0.0
    met_slope_pivot: float = 300.0
    met_slope_max: float = 1000.0
    pileup_scale: float = 1.0
    hem_affected_run: int | None = None

    def met_ratio(self, met: np.ndarray) -> np.ndarray:
        """The injected data/simulation ratio of p_T^miss."""
        x = np.clip(met, self.met_slope_pivot, self.met_slope_max) - self.met_slope_pivot
        return 1.0 + self.met_slope_per_gev * x


SIMULATION = DataModel()
#: The pseudo-data "true detector" (issue 2; thesis sec. 6.2 found 0.91 and 1.18 in cleaned DY).
PSEUDO_DATA = DataModel(
    pv_track_rate=0.91,
    spurious_track_rate=1.18,
    track_pt_scale=1.015,
    dxy_err_scale=1.10,
    dz_err_scale=1.06,
    ptz_power_shift=-0.12,
    met_slope_per_gev=-2.0e-4,
    pileup_scale=1.04,
    hem_affected_run=319077,
)
INJECTED = PSEUDO_DATA


@dataclass(frozen=True)
class Detector:
    """Everything the generator needs about the detector, for one of the two data models."""

    jets: JetResponseModel = JetResponseModel()
    tracks: TrackModel = TrackModel()
    pileup: PileupModel = PileupModel()
    model: DataModel = SIMULATION
    #: lepton reconstruction efficiencies inside acceptance
    muon_eff: float = 0.96
    electron_eff: float = 0.88
    tau_eff: float = 0.60
    photon_eff: float = 0.85
    #: soft (unclustered) response and resolution (GeV per sqrt(GeV) of scalar sum)
    unclustered_response: float = 0.75
    unclustered_resolution: float = 0.6
    #: HEM failure: jet response in the HEM window for affected data
    hem_response: float = 0.65
    #: fraction of events failing each noise filter
    noise_filter_fail: float = 0.002
    #: jet mismeasurement: jets failing the tight lepton-veto ID
    jet_id_fail: float = 0.01
    #: jet direction resolution: Gaussian sigma of eta and of phi (rad), reco - gen
    jet_angle_resolution: float = 0.02

    def for_data(self) -> Detector:
        return replace(self, model=PSEUDO_DATA)


SIM_DETECTOR = Detector()
DATA_DETECTOR = Detector(model=PSEUDO_DATA)

#: era -> (first run, last run) of the pseudo-data
RUN_RANGES: dict[str, tuple[int, int]] = {
    "2016": (273150, 284044),
    "2017": (297046, 306462),
    "2018": (315252, 325175),
}
assert set(RUN_RANGES) == set(ERAS)
