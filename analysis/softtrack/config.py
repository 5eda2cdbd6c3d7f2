"""Analysis constants: one source of truth for cuts, eras, cross sections and the signal grid.

Everything that is a number of the physics (docs/physics.md sec. 2, 4, 8, 9, 10) lives here; the
branch names of the data contract live in :mod:`analysis.contract`.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator, model_validator

from analysis.configuration import AnalysisConfig, ConfigModel
from analysis.constants import (  # noqa: F401  (re-exported: the analysis' defaults)
    BFIELD_TESLA,
    ERAS,
    HEM_ERAS,
    HEM_ETA,
    HEM_PHI,
    LUMI_FB,
    LUMI_UNCERTAINTY,
    NOISE_FILTERS,
    NOISE_FILTERS_SKIP,
    PILEUP_NTRUE_MAX,
    PILEUP_SCALE_UNCERTAINTY,
    PION_MASS,
    R1_CM,
    TAU_MASS,
    TOP_MASS,
    W_MASS,
    W_WIDTH,
    Z_MASS,
    Z_WIDTH,
)
from analysis.rs.defaults import RS_TEMPLATE_ABSETA_EDGES, RS_TEMPLATE_PT_EDGES
from analysis.signal_models import (  # noqa: F401
    CHARGINO_CTAU_REF_CM,
    CHARGINO_DM_REF,
    SIGNAL_BENCHMARKS,
    SIGNAL_GRID,
    chargino_ctau_cm,
    signal_xsec_pb,
)


# --- Object selection (docs/physics.md sec. 2) -------------------------------------------------
class ObjectCuts(ConfigModel):
    jet_pt: float = 30.0
    jet_eta: float = 2.4
    jet_eta_wide: float = 5.0
    jet_pt_rs: float = 15.0
    muon_pt: float = 10.0
    muon_eta: float = 2.4
    electron_pt: float = 10.0
    electron_eta: float = 2.5
    photon_pt: float = 15.0
    photon_eta: float = 2.5
    rel_iso: float = 0.2
    tau_pt: float = 20.0
    tau_eta: float = 2.3
    track_pt_max: float = 20.0
    track_eta: float = 2.4
    track_dz_max: float = 1.0  # cm
    track_jet_dr: float = 0.4
    #: loose working point of the b-tag score (DeepCSV loose)
    btag_loose: float = 0.2217


class BaselineCuts(ConfigModel):
    met: float = 300.0
    leading_jet_pt: float = 100.0
    mht: float = 300.0
    min_dphi: float = 0.5
    n_dphi_jets: int = 4
    max_jets: int = 5  # fewer than this many jets
    ht5_over_ht: float = 2.0


OBJECT_CUTS = ObjectCuts()
BASELINE_CUTS = BaselineCuts()

#: HEM 15/16 failure (2018 only): jets in this (eta, phi) window near H_T^miss veto the event.
HEM_DPHI = 0.5



# --- Cleaned Drell-Yan control region (docs/physics.md sec. 5) ---------------------------------
class DrellYanCuts(ConfigModel):
    muon_pt: float = 30.0
    rel_iso: float = 0.2
    mass_low: float = 75.0
    mass_high: float = 105.0
    ptz: float = 200.0
    muon_cleaning_dr: float = 0.05
    jet_cleaning_dr: float = 0.4
    ptz_weight_met: float = 200.0


DY_CUTS = DrellYanCuts()

# --- Classifier and signal regions (docs/physics.md sec. 4) ------------------------------------
CLASSIFIER_DMS: tuple[float, ...] = (0.3, 0.6, 1.0)
TRACK_CLASSES: tuple[str, ...] = ("signal", "pv_prompt", "pv_secondary", "spurious", "tau")
LOGIT_EPSILON = 1e-6
N_SR_BINS_PER_CATEGORY = 4

#: Signal-region lower edges of the 4 max-logit bins per Delta m category (the last bin is
#: open). Provisional until derived with ``run.py sr-edges`` (Asimov significance with 20%
#: background uncertainty, flat-S binning, tightest bin split in two; docs/physics.md sec. 4). They
#: start at the upper edge of the sideband of the sideband scale factors
#: (SIDEBAND_LOGIT_RANGE), as every SR of summary Table 2 lies above its 5-7 sideband.
SR_LOGIT_EDGES: dict[float, tuple[float, ...]] = {0.3: (7.0, 8.0, 9.0, 10.0), 0.6: (7.0, 8.0, 9.0, 10.0),
                                                  1.0: (7.0, 8.0, 9.0, 10.0)}
N_SIGNAL_REGIONS = len(CLASSIFIER_DMS) * N_SR_BINS_PER_CATEGORY

# --- Systematic variations (docs/physics.md sec. 6) ---------------------------------------------
#: flat relative jet energy scale uncertainty of the up/down variations
JES_UNCERTAINTY = 0.03

# --- Rebalance and Smear (docs/physics.md sec. 8) ----------------------------------------------
#: the method's settings (binning, fit, smoothing, replicas, ...) are in analysis.rs.defaults;
#: these are the soft-track analysis' choices. Seed-004 baseline: hard MHT > 250 GeV.
RS_BASELINE_MHT = 250.0


#: --- R&S processors and closure (issue 7; seed 004 sec. 2.2, 3.2, 4) ---
#: processes whose events are R&S seeds: simulated QCD (closure) and the jet-HT pseudo-data
RS_SEED_PROCESSES: tuple[str, ...] = ("qcd", "data_jetht")
#: global seed of the smearing and bootstrap random streams of the prediction
RS_PREDICTION_SEED = 4004
#: seed 004 sec. 3.2.1 pre-selection: hard MHT > 120 GeV, >= 1 jet (pT > 30, |eta| < 2.4),
#: no b-tagged jet, no electron or muon, HT > hard MHT; sec. 3.2.2 baseline adds hard MHT > 250
RS_PRESELECTION_MHT = 120.0
RS_PRESELECTION_MIN_JETS = 1
#: closure binning (seed 004 Fig. 4): hard MHT (GeV), min DeltaPhi, N_jets, H_T (GeV)
RS_CLOSURE_BINS: dict[str, tuple[float, ...]] = {
    "mht": (250.0, 300.0, 350.0, 400.0, 500.0, 700.0, 1500.0),
    "min_dphi": (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 3.2),
    "n_jets": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 12.0),
    "ht": (0.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 2000.0, 4000.0),
}
#: closure acceptance (issue 7): |prediction / simulation - 1| within this in the baseline
RS_CLOSURE_TOLERANCE = 0.20
#: seed 004 Fig. 2 check: seed events with hard MHT above this and >= 2 jets; response bins
RS_FIG2_MHT = 200.0
RS_FIG2_RESPONSE_EDGES: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 2.0, 81))
#: "well measured" window of the Fig. 2 numbers: |response - 1| below this
RS_FIG2_CORE_WINDOW = 0.1
#: closure command defaults: QCD events per part (templates, prediction), era
RS_CLOSURE_EVENTS = 40_000
RS_CLOSURE_ERA = "2018"

# --- Statistics -------------------------------------------------------------------------
#: the method constants of the statistics (CLs level, test statistic, workspace names,
#: normalization uncertainties, the flat-S binning of the signal regions) are
#: analysis.stats.defaults'


# --- Models (docs/physics.md sec. 4 and 7; thesis ch. 4 and Part I; models/) --------------------
#: soft-track classifier architecture (thesis Table 4.3): hidden layers, activation slope,
#: dropout; batch-norm momentum 0.7 in the Keras convention = 0.3 in the torch convention
CLASSIFIER_HIDDEN_LAYERS: tuple[int, ...] = (256, 256, 256)
CLASSIFIER_LEAKY_SLOPE = 0.1
CLASSIFIER_DROPOUT = 0.2
CLASSIFIER_BN_MOMENTUM = 0.3
CLASSIFIER_BN_EPS = 1.0e-3
#: extra classifier inputs after the track features: Delta m (GeV) and the one-hot era
CLASSIFIER_DM_INPUT = "dm"
CLASSIFIER_ERA_INPUTS: tuple[str, ...] = tuple(f"era_{era}" for era in ERAS)
#: refined track variables (docs/physics.md sec. 7): branch names of the data contract; the refiner
#: works on log10 of each (thesis sec. 6.2.2 refines log10 pT, log10 dxyErr, log10 dzErr)
REFINER_VARIABLES: tuple[str, ...] = ("pt", "dxyErr", "dzErr")
#: refiner architecture (thesis Table 6.2 uses 5 blocks of 512; smaller default for CPU)
REFINER_BLOCKS = 3
REFINER_HIDDEN = 64
REFINER_LEAKY_SLOPE = 0.01
REFINER_ENSEMBLE = 5


# --- Corrections (docs/physics.md sec. 5, 6; thesis sec. 6.1-6.2; summary sec. 4; corrections/) ---
#: one gzipped correctionlib CorrectionSet for all eras ("era" is the first input of every
#: correction); written by ``run.py corrections`` and shipped under corrections/
CORRECTIONS_FILENAME = "softtrack_corrections.json.gz"
#: version of every Correction in the set (bump when a derivation changes)
CORRECTIONS_VERSION = 1
#: systematic labels of the corrections that carry an uncertainty
CORRECTION_SYSTEMATICS: tuple[str, ...] = ("nominal", "up", "down")
#: track classes of the normalization scale factors -> generator origin of the simulated
#: tracks (Track_genOrigin, analysis.contract.TRACK_ORIGINS); pileup tracks are the third
#: template of the fit, normalized by the pileup reweighting (thesis sec. 6.2.1)
TRACK_SF_CLASSES: dict[str, str] = {"pv": "primary", "spurious": "spurious"}
#: the corrections the region processors weight simulation with (the sideband scale factors
#: and the residual shape act on the signal-region histograms instead)
EVENT_WEIGHT_CORRECTIONS: tuple[str, ...] = ("pileup_weight", "ptz_weight", "met_weight", "track_class_sf")
TRACK_SF_PILEUP_ORIGIN = "pileup"
#: coarse log10(|dz| / cm) regions of the template fit: PV region below the first edge,
#: spurious region above the last one (dz > 0.63 cm, thesis eq. 6.3). The PV region is
#: |dz| < 0.1 cm rather than the thesis' 0.001 cm (eq. 6.2): the fraction of PV tracks below
#: 0.001 cm scales with 1/sigma(dz), so a dz-resolution mis-modelling (injected: 6%) biases
#: a ratio taken there; below 0.1 cm the PV class is contained whatever its resolution.
TRACK_SF_LOG10DZ_EDGES: tuple[float, ...] = (-1.0, -0.2)
#: the thesis' single-bin regions (eqs. 6.2, 6.3), reported as a diagnostic
TRACK_SF_THESIS_PV_LOG10DZ = -3.0
TRACK_SF_THESIS_SPURIOUS_LOG10DZ = -0.2
#: pT(Z) weights (docs/physics.md sec. 5): adjacent 20 GeV bins of generator pT(Z) are merged until
#: the relative statistical uncertainty of the weight is below this
PTZ_WEIGHT_MAX_REL_UNC = 0.10
#: p_T^miss reweighting (thesis sec. 6.2.3): line fit range (GeV), frozen outside
MET_WEIGHT_FIT_RANGE: tuple[float, float] = (300.0, 1000.0)
#: line fits (p_T^miss, residual shape): adjacent bins are merged until each has this many
#: effective simulated entries (sum w)^2 / sum w^2
LINE_FIT_MIN_EFFECTIVE_ENTRIES = 5.0
#: sideband of the max-logit observables (thesis sec. 6.2.1, Table 6.1)
SIDEBAND_LOGIT_RANGE: tuple[float, float] = (5.0, 7.0)
#: residual-shape line fits above these max logits (thesis sec. 6.2.2, Tables 6.3, 6.4):
#: nominal from the loose fit, systematic = difference to the tight fit
RESIDUAL_SHAPE_FIT_MIN: tuple[float, float] = (5.0, 7.0)
#: an era and category get a residual shape only if its statistical uncertainty at every
#: signal region's lower edge stays below this fraction of the weight
RESIDUAL_SHAPE_MAX_REL_UNC = 0.25



# --- The configuration as validated data (analysis.configuration) ------------------------
class HemVeto(ConfigModel):
    """HEM 15/16 failure: jets in this (eta, phi) window near H_T^miss veto the event."""

    eta: tuple[float, float] = HEM_ETA
    phi: tuple[float, float] = HEM_PHI
    dphi: float = HEM_DPHI
    eras: tuple[str, ...] = HEM_ERAS


def _check_bin_edges(edges: tuple[float, ...], *, first: str) -> tuple[float, ...]:
    """``edges`` if they are >= 2 finite, strictly increasing bin edges whose first edge
    satisfies ``first`` ("zero" or "positive"); a ValueError saying what is wrong otherwise."""
    arr = np.asarray(edges, dtype=np.float64)
    if arr.size < 2:
        raise ValueError(f"need at least 2 bin edges, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("bin edges must be finite")
    if np.any(np.diff(arr) <= 0):
        raise ValueError("bin edges must be strictly increasing")
    if first == "zero" and arr[0] != 0.0:
        raise ValueError(f"the first |eta| edge must be 0, got {arr[0]}")
    if first == "positive" and not arr[0] > 0.0:
        raise ValueError(f"the first pT edge must be positive (GeV), got {arr[0]}")
    return tuple(float(x) for x in arr)


class RebalanceSmear(ConfigModel):
    """Rebalance and Smear settings of the analysis (docs/physics.md sec. 8).

    Attributes
    ----------
    template_pt_edges : gen-jet pT edges (GeV) of the jet response templates; gen jets below
        the first edge do not enter the templates, those above the last one the last bin.
    template_abseta_edges : gen-jet |eta| edges of the templates, starting at 0; jets beyond
        the last edge use the last bin. An |eta| bin without any matched jet takes the pdfs of
        the nearest populated |eta| bin (counted in the build's summary and in the file).
    fit_jet_directions : true (default): the templates carry the jet azimuth resolution and
        the priors the true hard MHT in the gen directions, so that the rebalancing fits each
        jet's azimuth with its pT and the smearing draws both (docs/physics.md sec. 8, "Jet
        directions"; without it the search baseline is under-predicted); false: the seed
        paper's method, directions kept (eq. 2.1) and a prior along the measured directions.

    The templates file carries its edges and whether it has a direction resolution: the
    prediction (``rs`` processor) follows the file, whatever this configuration says.
    """

    template_pt_edges: tuple[float, ...] = RS_TEMPLATE_PT_EDGES
    template_abseta_edges: tuple[float, ...] = RS_TEMPLATE_ABSETA_EDGES
    fit_jet_directions: bool = True

    @field_validator("template_pt_edges")
    @classmethod
    def _pt_edges(cls, v):
        return _check_bin_edges(v, first="positive")

    @field_validator("template_abseta_edges")
    @classmethod
    def _abseta_edges(cls, v):
        return _check_bin_edges(v, first="zero")


class SoftTrackConfig(AnalysisConfig):
    """The soft-track search's configuration (docs/physics.md sec. 2, 4, 5): the defaults are
    the constants of this module; ``--config FILE`` overrides any key.

    Attributes
    ----------
    objects, baseline, dy : object, baseline and cleaned Drell-Yan cuts.
    hem : the 2018 HEM veto window.
    sr_edges : Delta m category -> lower max-logit edges of its 4 signal regions.
    jes_uncertainty : relative jet-energy-scale shift of the jesUp/jesDown variations.
    rs : Rebalance and Smear settings (the binning of the jet response templates).
    optional_corrections : correction -> eras for which a corrections file (``--corrections``)
        may lack it: simulation of those eras is then not weighted by it, and the output's
        notices say so. Any other correction the processor applies must cover the era of
        every simulated dataset it reads, or the run stops before processing (e.g.
        ``optional_corrections = {met_weight = ["2016"]}``).
    """

    metadata_keys: dict[str, str] = Field(default_factory=lambda: {"m_chargino": "float", "dm_chargino": "float"})
    objects: ObjectCuts = OBJECT_CUTS
    baseline: BaselineCuts = BASELINE_CUTS
    dy: DrellYanCuts = DY_CUTS
    hem: HemVeto = HemVeto()
    sr_edges: dict[float, tuple[float, ...]] = Field(default_factory=lambda: dict(SR_LOGIT_EDGES))
    jes_uncertainty: float = JES_UNCERTAINTY
    rs: RebalanceSmear = RebalanceSmear()
    optional_corrections: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_optional_corrections(self):
        unknown = sorted(set(self.optional_corrections) - set(EVENT_WEIGHT_CORRECTIONS))
        if unknown:
            raise ValueError(f"optional_corrections names {unknown}: the corrections applied as event weights "
                             f"are {', '.join(EVENT_WEIGHT_CORRECTIONS)}")
        eras = {e for v in self.optional_corrections.values() for e in v} - set(self.eras)
        if eras:
            raise ValueError(f"optional_corrections names eras {sorted(eras)} not among the eras {list(self.eras)}")
        return self
