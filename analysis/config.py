"""Analysis constants: one source of truth for cuts, eras, cross sections and the signal grid.

Everything that is a number of the physics (SPEC.md sec. 2, 4, 8, 9, 10) lives here; the
branch names of the data contract live in :mod:`analysis.contract`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.constants import (  # noqa: F401  (re-exported: the analysis' defaults)
    BFIELD_TESLA,
    ERAS,
    LUMI_FB,
    LUMI_UNCERTAINTY,
    PION_MASS,
    R1_CM,
    TAU_MASS,
    TOP_MASS,
    W_MASS,
    W_WIDTH,
    Z_MASS,
    Z_WIDTH,
)
from analysis.signal_models import (  # noqa: F401
    CHARGINO_CTAU_REF_CM,
    CHARGINO_DM_REF,
    SIGNAL_BENCHMARKS,
    SIGNAL_GRID,
    chargino_ctau_cm,
    signal_xsec_pb,
)


# --- Object selection (SPEC.md sec. 2) -------------------------------------------------
@dataclass(frozen=True)
class ObjectCuts:
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


@dataclass(frozen=True)
class BaselineCuts:
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
HEM_ETA = (-3.2, -1.2)
HEM_PHI = (-1.77, -0.67)
HEM_DPHI = 0.5
HEM_ERAS = ("2018",)

#: Noise filters (Flag_ branches); ecalBadCalib is not used in 2016.
NOISE_FILTERS = (
    "globalSuperTightHalo2016Filter",
    "EcalDeadCellTriggerPrimitiveFilter",
    "BadPFMuonDzFilter",
    "ecalBadCalibFilter",
)
NOISE_FILTERS_SKIP = {"2016": ("ecalBadCalibFilter",)}


# --- Cleaned Drell-Yan control region (SPEC.md sec. 5) ---------------------------------
@dataclass(frozen=True)
class DrellYanCuts:
    muon_pt: float = 30.0
    rel_iso: float = 0.2
    mass_low: float = 75.0
    mass_high: float = 105.0
    ptz: float = 200.0
    muon_cleaning_dr: float = 0.05
    jet_cleaning_dr: float = 0.4
    ptz_weight_met: float = 200.0


DY_CUTS = DrellYanCuts()

# --- Classifier and signal regions (SPEC.md sec. 4) ------------------------------------
CLASSIFIER_DMS: tuple[float, ...] = (0.3, 0.6, 1.0)
TRACK_CLASSES: tuple[str, ...] = ("signal", "pv_prompt", "pv_secondary", "spurious", "tau")
LOGIT_EPSILON = 1e-6
N_SR_BINS_PER_CATEGORY = 4

#: Signal-region lower edges of the 4 max-logit bins per Delta m category (the last bin is
#: open). Provisional until derived with ``run.py sr-edges`` (Asimov significance with 20%
#: background uncertainty, flat-S binning, tightest bin split in two; SPEC.md sec. 4). They
#: start at the upper edge of the sideband of the sideband scale factors
#: (SIDEBAND_LOGIT_RANGE), as every SR of summary Table 2 lies above its 5-7 sideband.
SR_LOGIT_EDGES: dict[float, tuple[float, ...]] = {0.3: (7.0, 8.0, 9.0, 10.0), 0.6: (7.0, 8.0, 9.0, 10.0),
                                                  1.0: (7.0, 8.0, 9.0, 10.0)}
N_SIGNAL_REGIONS = len(CLASSIFIER_DMS) * N_SR_BINS_PER_CATEGORY

# --- Systematic variations (SPEC.md sec. 6) ---------------------------------------------
#: flat relative jet energy scale uncertainty of the up/down variations
JES_UNCERTAINTY = 0.03

# --- Rebalance and Smear (SPEC.md sec. 8) ----------------------------------------------
RS_N_SMEAR = 100
RS_N_BOOTSTRAP = 10
RS_MAX_REBALANCED_MHT = 100.0
RS_BASELINE_MHT = 250.0
#: Jet response templates P(pT_reco / pT_gen) (seed 004 sec. 2.4.1): binning in gen-jet pT (GeV),
#: gen-jet |eta| and response. The response binning must be uniform (fast kernel lookup). The
#: pT/|eta| bins must resolve where the detector's response changes: the toy detector's
#: response is constant in (pT_gen, |eta|) cells with edges 30, 50, 100, 200, 400, 800 GeV and
#: |eta| 1.3, 2.5 (analysis/toymc/truth.py), and a template bin straddling one of them (the
#: former 300-500, 500-1000 GeV and |eta| 0.8-1.5 bins) mixes two responses: smearing the gen
#: jets with such templates over-predicted the seed-004 baseline by 2% (1.021 vs 1.001).
RS_TEMPLATE_PT_EDGES: tuple[float, ...] = (
    15.0, 20.0, 30.0, 40.0, 50.0, 70.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0, 800.0, 1200.0, 3000.0
)
RS_TEMPLATE_ABSETA_EDGES: tuple[float, ...] = (0.0, 0.8, 1.3, 1.9, 2.5, 3.0, 5.0)
RS_RESPONSE_EDGES: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 3.0, 301))
#: width (response units) of the Gaussian kernel that smooths the templates (seed 004 App. A,
#: "articulateSplines"): far below the 5-20% core width, mass-preserving, so tails survive.
RS_TEMPLATE_SMOOTH_SIGMA = 0.01
#: template matching and isolation (seed 004 eqs. 2.3-2.4): DeltaR(reco, gen) < 0.4 and
#: sum pT of the other jets within DeltaR < 0.5 below 1% of the jet pT (gen and reco side).
RS_MATCH_DR = 0.4
RS_ISOLATION_DR = 0.5
RS_ISOLATION_PT_FRACTION = 0.01
#: reco jets are stored above this pT (GeV, NanoAOD): an isolated gen jet inside the reco
#: acceptance (|eta| < RS_LOST_JET_ETA_MAX, the 4.7 of the jet collection minus a margin for
#: the direction resolution) without any reco jet within RS_MATCH_DR has r < RS_RECO_JET_PT_MIN
#: / pT_gen ("lost" jet); it enters the templates spread uniformly over that range as
#: RS_LOST_JET_POINTS responses (analysis.rebalance_smear.lost_jet_responses)
RS_RECO_JET_PT_MIN = 15.0
RS_LOST_JET_ETA_MAX = 4.5
RS_LOST_JET_POINTS = 8
#: pdf floor, relative to the maximum of each table, keeping log-likelihoods finite.
RS_PDF_FLOOR_REL = 1.0e-6
#: priors (seed 004 sec. 2.4.2): true hard MHT (GeV) and DeltaPhi(hard MHT, leading jet),
#: the latter conditional on coarse hard-MHT bins; b-jet categories 0, 1, >= 2.
RS_PRIOR_MHT_EDGES: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 300.0, 61))
RS_PRIOR_DPHI_EDGES: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, np.pi, 33))
RS_PRIOR_DPHI_MHT_EDGES: tuple[float, ...] = (0.0, 15.0, 30.0, 50.0, 80.0, 300.0)
RS_N_BJET_CATEGORIES = 3
#: the hard-MHT prior is binned in the H_T of the fitted jets (seed 004 sec. 2.5, interpolated
#: between bin centres): the true hard MHT in the fit's parametrization grows with the jet pT
#: (direction resolution); a (H_T, nb) cell with fewer events takes the b-inclusive H_T bin
RS_PRIOR_HT_EDGES: tuple[float, ...] = (0.0, 600.0, 1000.0, 1600.0, 2500.0, 4000.0, 6500.0, 10000.0, 20000.0)
RS_PRIOR_MIN_EVENTS = 100
#: a rebalanced event is dropped when its hard MHT stays above max(RS_MAX_REBALANCED_MHT,
#: this quantile of the true hard MHT at its H_T and b-jet count): no QCD configuration
RS_REJECT_PRIOR_QUANTILE = 0.999
#: Poisson bootstrap replicas of the template sample (templates and priors) whose spread of
#: the prediction is the templates' statistical uncertainty (rs-closure), and their seed
RS_N_TEMPLATE_REPLICAS = 4
RS_TEMPLATE_BOOTSTRAP_SEED = 7007
#: jets entering the R&S fit and the prior's hard MHT: pT > OBJECT_CUTS.jet_pt_rs, |eta| < 5.
RS_JET_ETA_MAX = 5.0
#: initialization (seed 004 eq. 2.10): target hard MHT = max(30, min(90, HT / 3)) GeV by
#: rescaling one jet with |c_init - 1| < 0.8.
RS_INIT_MHT_MIN = 30.0
RS_INIT_MHT_MAX = 90.0
RS_INIT_HT_FRACTION = 1.0 / 3.0
RS_INIT_MAX_RESPONSE_SHIFT = 0.8
#: rebalancing optimizer (projected L-BFGS on log of the jet scale factors)
RS_FIT_MAX_ITER = 500
RS_FIT_GTOL = 1.0e-4  # max |d(-log posterior) / d log(c)| at convergence
RS_FIT_FTOL = 1.0e-10  # relative change of -log posterior at convergence
RS_FIT_MEMORY = 6
#: response systematics (seed 004 sec. 4 item 2): one-sigma widening of the Gaussian core
#: and scaling of the non-Gaussian tail fraction (placeholders until measured in data).
RS_SYST_CORE_WIDTH_SCALE = 1.10
RS_SYST_TAIL_FRACTION_SCALE = 1.50
#: half-width (in core sigmas) of the window in which the Gaussian core is estimated
RS_CORE_WINDOW_NSIGMA = 2.0
#: above this quantile of the true hard MHT the prior follows a fitted exponential tail
RS_PRIOR_TAIL_QUANTILE = 0.99
#: the likelihood's pdf floor falls as exp(-slope * |r - r_peak|) away from the peak (1/response)
RS_PDF_FLOOR_SLOPE = 10.0
#: the likelihood (not the smearing) smooths each template further by this fraction of its
#: 68% half-width, against spurious local maxima from statistical wiggles in the tails
RS_LIKELIHOOD_SMOOTH_FRACTION = 0.3


#: --- R&S processors and closure (issue 7; seed 004 sec. 2.2, 3.2, 4) ---
#: processes whose events are R&S seeds: simulated QCD (closure) and the jet-HT pseudo-data
RS_SEED_PROCESSES: tuple[str, ...] = ("qcd", "data_jetht")
#: global seed of the smearing and bootstrap random streams of the prediction
RS_PREDICTION_SEED = 4004
#: smeared events are skimmed on their hard MHT (GeV, eq. 2.6) before the awkward selection:
#: every selection filled requires hard MHT above this (the seed-004 baseline 250 GeV, the
#: SPEC baseline 300 GeV), so the skim is exact for the filled histograms
RS_PREDICTION_SKIM_MHT = 200.0
#: seed events smeared per batch (memory: batch x n_smear x jets)
RS_SMEAR_BATCH_EVENTS = 4000
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


# --- Models (SPEC.md sec. 4 and 7; thesis ch. 4 and Part I; models/) --------------------
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
#: refined track variables (SPEC.md sec. 7): branch names of the data contract; the refiner
#: works on log10 of each (thesis sec. 6.2.2 refines log10 pT, log10 dxyErr, log10 dzErr)
REFINER_VARIABLES: tuple[str, ...] = ("pt", "dxyErr", "dzErr")
#: refiner architecture (thesis Table 6.2 uses 5 blocks of 512; smaller default for CPU)
REFINER_BLOCKS = 3
REFINER_HIDDEN = 64
REFINER_LEAKY_SLOPE = 0.01
REFINER_ENSEMBLE = 5
#: ONNX export and evaluation (DESIGN.md practical notes): opset, rows per onnxruntime call
ONNX_OPSET = 17
ONNX_BATCH_ROWS = 10_000


# --- Corrections (SPEC.md sec. 5, 6; thesis sec. 6.1-6.2; summary sec. 4; corrections/) ---
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
#: pT(Z) weights (SPEC.md sec. 5): adjacent 20 GeV bins of generator pT(Z) are merged until
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
#: pileup weights: true-interaction bins (width 1) and the relative up/down variation of
#: the pseudo-data profile scale (the CMS minimum-bias cross section uncertainty, 4.6%)
PILEUP_NTRUE_MAX = 100
PILEUP_SCALE_UNCERTAINTY = 0.046
