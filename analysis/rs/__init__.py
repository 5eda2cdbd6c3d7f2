"""Rebalance and Smear (R&S): the QCD multijet background from data (docs/physics.md sec. 8).

The method of the seed paper "Rebalance and Smear for Multi-jet Background Estimation"
(Bein & Sander, JINST; "seed 004" in the docstrings, which cite its sections and equations),
reusable by every analysis of the framework. Everything works on flat float64 arrays plus
per-event ``offsets`` (length ``n_events + 1``, ``offsets[0] == 0``), the layout of
``ak.flatten`` / ``ak.num``; the heavy loops are numba kernels (``@njit(cache=True)``), no
Python call per event. An analysis passes its own jet thresholds (the R&S jet pT, the jets
of the hard MHT, the b tag); the method's settings are in :mod:`analysis.rs.defaults`.

Steps, with the seed-004 equations they implement:

1. **Templates** (sec. 2.4, :mod:`~analysis.rs.templates`): :func:`select_template_jets`
   (matching eq. 2.3, isolation eq. 2.4), :func:`build_response_templates` (response pdfs per
   (pT_gen, |eta|) bin, smoothed, linear interpolation in pT, sec. 2.4.1 and 2.5); isolated
   gen jets without any reco jet are part of the response, below the reco threshold
   (:func:`lost_jet_responses`; a hard jet lost this way is a leading source of fake hard MHT).
2. **Priors** (sec. 2.4.2, eqs. 2.5-2.6, :mod:`~analysis.rs.priors`): :func:`build_priors`,
   the true hard MHT by H_T and b-jet multiplicity and DeltaPhi(hard MHT, leading jet) by
   b-jet multiplicity, in the fit's own parametrization, gen pT along the measured directions
   (:func:`prior_jets`), which grows with H_T through the jet direction resolution. Templates
   and priors serialize to correctionlib (:mod:`~analysis.rs.serialization`).
3. **Rebalance** (sec. 2.5, :mod:`~analysis.rs.fit`, :mod:`~analysis.rs.optimizer`):
   :func:`rebalance` maximizes the posterior of eq. 2.9 for each seed event, starting from
   eq. 2.10, and drops non-converged events and events whose rebalanced hard MHT stays above
   max(100 GeV, the prior's 0.999 quantile at the event's H_T).
4. **Smear** (sec. 2, 2.2, :mod:`~analysis.rs.smear`): :func:`smear` draws every rebalanced
   jet's response n times from the templates, weight 1/n, reproducible from (seed, file,
   entry) (:mod:`~analysis.rs.rng`); response systematics (sec. 4 item 2) with
   :func:`vary_response` (:mod:`~analysis.rs.systematics`).
5. **Bootstrap** (sec. 2.2, sec. 4 item 1, :mod:`~analysis.rs.bootstrap`):
   :func:`bootstrap_weights`, :func:`bootstrap_histograms` and :func:`bootstrap_mean_std`.

Conventions. The fit parameter of jet i is its *scale factor* ``c_i = pT_true,i / pT_reco,i``
(the rebalanced jet has ``pT = c_i * pT_reco``); the response is ``r_i = 1 / c_i`` (seed eq. 2.1
writes the response as c_i; we follow the issue's convention). Jet directions are kept (eq. 2.1)
unless the templates carry an azimuth resolution: the rebalancing then fits each jet's azimuth
too and the smearing draws it (docs/physics.md sec. 8, "Jet directions").
Leptons and photons are not changed by rebalancing or smearing (seed sec. 2.6): the caller
keeps them as they are and only passes the R&S jets (pT above its R&S jet threshold) here.
"""

from __future__ import annotations

from analysis.rs.bootstrap import bootstrap_histograms, bootstrap_mean_std, bootstrap_weights
from analysis.rs.fit import RebalanceResult, neg_log_posterior, rebalance, rebalance_scipy
from analysis.rs.mht import hard_mht
from analysis.rs.observables import (
    bjet_count,
    closure_bins,
    met_after_smearing,
    response_summary,
    rs_jet_mask,
)
from analysis.rs.optimizer import (
    STATUS_CONVERGED,
    STATUS_LINE_SEARCH_FAILED,
    STATUS_MAX_ITER,
    STATUS_NAN_INPUT,
    STATUS_TOO_FEW_JETS,
)
from analysis.rs.priors import (
    RebalancePriors,
    build_priors,
    prior_event_values,
    prior_jets,
    prior_sums,
    priors_from_histograms,
    priors_from_sums,
)
from analysis.rs.rng import file_key
from analysis.rs.serialization import (
    CORRECTION_PHI_RESOLUTION,
    CORRECTION_PRIOR_DPHI,
    CORRECTION_PRIOR_MHT,
    CORRECTION_RESPONSE,
    from_correctionset,
    read_correctionset,
    to_correctionset,
    write_correctionset,
)
from analysis.rs.smear import SmearedBatch, SmearResult, smear, smear_skimmed
from analysis.rs.systematics import vary_response
from analysis.rs.templates import (
    JetResponseTemplates,
    build_response_templates,
    direction_resolution,
    lost_jet_responses,
    select_template_jets,
    templates_from_histogram,
)

__all__ = [
    "STATUS_CONVERGED",
    "STATUS_MAX_ITER",
    "STATUS_LINE_SEARCH_FAILED",
    "STATUS_TOO_FEW_JETS",
    "STATUS_NAN_INPUT",
    "CORRECTION_RESPONSE",
    "CORRECTION_PRIOR_MHT",
    "CORRECTION_PRIOR_DPHI",
    "CORRECTION_PHI_RESOLUTION",
    "JetResponseTemplates",
    "RebalancePriors",
    "RebalanceResult",
    "SmearResult",
    "SmearedBatch",
    "select_template_jets",
    "lost_jet_responses",
    "build_response_templates",
    "direction_resolution",
    "templates_from_histogram",
    "build_priors",
    "prior_jets",
    "prior_event_values",
    "prior_sums",
    "priors_from_sums",
    "priors_from_histograms",
    "vary_response",
    "hard_mht",
    "to_correctionset",
    "from_correctionset",
    "write_correctionset",
    "read_correctionset",
    "rebalance",
    "rebalance_scipy",
    "neg_log_posterior",
    "smear",
    "smear_skimmed",
    "file_key",
    "bootstrap_weights",
    "bootstrap_histograms",
    "bootstrap_mean_std",
    "rs_jet_mask",
    "bjet_count",
    "met_after_smearing",
    "closure_bins",
    "response_summary",
]
