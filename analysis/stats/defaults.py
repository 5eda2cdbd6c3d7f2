"""Method constants of the statistics (docs/physics.md sec. 9; summary sec. 5; seeds 002, 003):
the defaults of analysis.stats, which callers may override by parameter.
"""

from __future__ import annotations

#: relative (log-normal) normalization uncertainty per fit background (summary Table 2:
#: PV-associated, spurious, W->tau nu): thesis Table 7.3, PV-associated 5% and spurious 9%
#: (nominal vs alternative scale factors, thesis Table 7.1), tau tracks 10% (the tau scale
#: factor's difference to unity, Table 7.2); backgrounds not listed get STATS_DEFAULT_NORM_UNC
STATS_BACKGROUND_NORM_UNC: dict[str, float] = {"pv": 0.05, "spurious": 0.09, "tau": 0.10}
STATS_DEFAULT_NORM_UNC = 0.10
#: overall signal modeling uncertainty (summary sec. 5: tau-enriched CR, 10%)
STATS_SIGNAL_UNCERTAINTY = 0.10
STATS_CHANNEL = "signal_regions"
STATS_POI = "mu"
STATS_MEASUREMENT = "softtrack"
STATS_DATA_NAME = "data"
STATS_SIGNAL_PREFIX = "signal_"
#: CLs level of the upper limits (95% CL) and the asymptotic test statistic
STATS_CLS_LEVEL = 0.05
STATS_TEST_STAT = "qtilde"
#: POI range: [0, max(STATS_POI_MIN_UPPER, STATS_POI_UPPER_SIGMAS * sigma_mu)], sigma_mu the
#: Asimov estimate 1/sqrt(sum s^2/b); keeps the free fit unbounded in practice for weak points
STATS_POI_MIN_UPPER = 10.0
STATS_POI_UPPER_SIGMAS = 50.0
#: widening of that range (docs/physics.md sec. 9, "POI range"): while the free fit's mu-hat lies
#: above STATS_POI_FIT_INSIDE of the upper bound, the bound becomes STATS_POI_WIDEN_FACTOR times
#: mu-hat and the fits are done again (at most STATS_POI_MAX_WIDENINGS times); an upper limit
#: above the bound makes it STATS_POI_WIDEN_FACTOR times the largest limit (no new fits needed)
STATS_POI_FIT_INSIDE = 0.5
STATS_POI_WIDEN_FACTOR = 4.0
STATS_POI_MAX_WIDENINGS = 12
#: relative precision of the root finding of the upper limits on mu
STATS_LIMIT_RTOL = 1e-6
#: signal-region binning (docs/physics.md sec. 4): Asimov significance with this relative
#: background uncertainty, flat-S bins above an optimised threshold, tightest bin split
SR_BACKGROUND_REL_UNC = 0.20
SR_FLAT_S_BINS = 3  # equal-signal bins before the tightest one is split in two
SR_MIN_BACKGROUND_ENTRIES = 10  # unweighted background MC entries required in every bin
#: largest relative MC statistical uncertainty sqrt(sum w^2) / sum w of the background in a
#: signal region: bins whose background simulation cannot be trusted are not chosen
SR_MAX_BACKGROUND_REL_MC_UNC = 0.30
#: where the tightest bin may be split (signal-weighted quantiles inside it, in order of
#: preference): the median first, then moving away from it until every bin has its MC statistics
SR_SPLIT_QUANTILES = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8)
SR_THRESHOLD_SCAN_POINTS = 60  # candidate lower edges: signal-score quantiles scanned
SR_THRESHOLD_MAX_QUANTILE = 0.95  # highest signal quantile tried as the lower edge
