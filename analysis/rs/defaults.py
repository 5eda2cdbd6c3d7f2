"""Default settings of the Rebalance and Smear method (seed 004; docs/physics.md sec. 8).

Binning of the response templates and priors, template matching and isolation, lost jets,
pdf floors and smoothing, the fit's initialization and optimizer, the rejection of
rebalanced events, smearing and bootstrap replicas, response systematics and the batch and
skim sizes of the prediction. Every function of :mod:`analysis.rs` takes these as keyword
defaults; an analysis passes its own values where it chooses differently. The jet
thresholds of an analysis (the R&S jet pT threshold, the jets of the hard MHT, the b-tag
working point) are not here: the callers pass them.
"""

from __future__ import annotations

import numpy as np

#: smearing iterations per seed event (weight 1/n, seed 004 sec. 2.2) and Poisson bootstrap
#: replicas of the prediction (sec. 2.2, 4 item 1: "order 10 or larger"; the spread of 10
#: is itself uncertain by 24% and widens the closure pulls by sqrt(9/7); 40 cost no measurable
#: time in the main job, 28 s vs 27-30 s for the three eras' prediction)
RS_N_SMEAR = 100
RS_N_BOOTSTRAP = 40
#: a rebalanced event whose hard MHT (GeV) stays above this (and the prior quantile below)
#: is dropped (seed 004 sec. 2.5)
RS_MAX_REBALANCED_MHT = 100.0
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
#: RS_LOST_JET_POINTS responses (analysis.rs.templates.lost_jet_responses)
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
#: jets entering the R&S fit and the prior's hard MHT: pT above the analysis' R&S jet
#: threshold (``pt_min``, passed by the caller), |eta| < 5.
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
RS_FIT_MEMORY = 12  # pairs kept by L-BFGS (12: the 2 x n_jets parameters of the direction fit converge in half the iterations of 6)
#: fitted jet azimuths stay within this many resolutions of the measured ones (docs/physics.md sec. 8)
RS_DIRECTION_MAX_PULL = 5.0
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
#: smeared events are skimmed on their hard MHT (GeV, eq. 2.6) before the awkward selection:
#: every selection filled requires hard MHT above this (the seed-004 baseline 250 GeV, the
#: soft-track baseline 300 GeV), so the skim is exact for the filled histograms
RS_PREDICTION_SKIM_MHT = 200.0
#: seed events smeared per batch (memory: batch x n_smear x jets)
RS_SMEAR_BATCH_EVENTS = 4000
