"""The soft-track search's histograms, declared as data (processors.histograms).

Event observables (filled by the base for every systematic), track-level histograms by
generator origin, the cleaned-DY inputs of the corrections, and, with a scorer, the maximum
logit per Delta m and the 12 signal regions (docs/physics.md sec. 4).
"""

from __future__ import annotations

import hist

from analysis.softtrack.config import (
    CLASSIFIER_DMS,
    N_SIGNAL_REGIONS,
    TRACK_SF_LOG10DZ_EDGES,
    TRACK_SF_THESIS_PV_LOG10DZ,
    TRACK_SF_THESIS_SPURIOUS_LOG10DZ,
)
from processors.histograms import HistogramSpec

DM = hist.axis.StrCategory([f"{dm:g}" for dm in CLASSIFIER_DMS], name="dm", label="Delta m category (GeV)")
MET = hist.axis.Regular(60, 0, 1500, name="met", label=r"$p_T^{miss}$ [GeV]")
PTZ = hist.axis.Regular(50, 0, 1000, name="ptz", label=r"generator $p_T(Z)$ [GeV]")
LOG10_DZ = hist.axis.Regular(60, -5, 1, name="track_log10_dz", label=r"$\log_{10}|d_z|$ [cm]")
MAX_LOGIT = hist.axis.Regular(64, -16, 16, name="max_logit", label="max logit")
N_TRUE_INT = hist.axis.Regular(100, 0, 100, name="n_true_int", label="true interactions")
#: the track-class fit's regions of log10|dz| (and the thesis' single-bin ones) as the coarse
#: axis of its pileup-binned input
LOG10_DZ_FIT = hist.axis.Variable(sorted({-5.0, 1.0, *TRACK_SF_LOG10DZ_EDGES, TRACK_SF_THESIS_PV_LOG10DZ,
                                          TRACK_SF_THESIS_SPURIOUS_LOG10DZ}),
                                  name="track_log10_dz", label=r"$\log_{10}|d_z|$ [cm]")

#: per-event observables of the region processors, one histogram each (dataset, systematic)
EVENT_HISTOGRAMS: tuple[HistogramSpec, ...] = (
    HistogramSpec("met", (MET,)),
    HistogramSpec("mht", (hist.axis.Regular(60, 0, 1500, name="mht", label=r"$H_T^{miss}$ [GeV]"),)),
    HistogramSpec("ht", (hist.axis.Regular(60, 0, 3000, name="ht", label=r"$H_T$ [GeV]"),)),
    HistogramSpec("n_jets", (hist.axis.Integer(0, 12, name="n_jets", label=r"$N_{jets}$"),)),
    HistogramSpec("leading_jet_pt", (hist.axis.Regular(60, 0, 1500, name="leading_jet_pt",
                                                        label="leading jet $p_T$ [GeV]"),)),
    HistogramSpec("min_dphi", (hist.axis.Regular(32, 0, 3.2, name="min_dphi",
                                                  label=r"min $\Delta\phi(p_T^{miss}, j_{1-4})$"),)),
    HistogramSpec("n_candidates", (hist.axis.Integer(0, 40, name="n_candidates", label="candidate tracks"),)),
    HistogramSpec("n_pv", (hist.axis.Integer(0, 100, name="n_pv", label="reconstructed vertices"),)),
)
#: candidate tracks of the selected events, by generator origin (filled by the fill hook)
TRACK_HISTOGRAMS: tuple[HistogramSpec, ...] = tuple(
    HistogramSpec(name, (axis,), categories=("dataset", "origin"), fill=None) for name, axis in (
        ("track_pt", hist.axis.Regular(40, 0, 20, name="track_pt", label="track $p_T$ [GeV]")),
        ("track_log10_dz", LOG10_DZ),
        ("track_log10_dxy", hist.axis.Regular(60, -5, 1, name="track_log10_dxy", label=r"$\log_{10}|d_{xy}|$ [cm]")),
        ("track_log10_dxyerr", hist.axis.Regular(60, -4, 0, name="track_log10_dxyerr",
                                                 label=r"$\log_{10}\sigma(d_{xy})$")),
        ("track_log10_dzerr", hist.axis.Regular(60, -4, 0, name="track_log10_dzerr", label=r"$\log_{10}\sigma(d_z)$")),
        ("track_log10_iso", hist.axis.Regular(50, -2, 3, name="track_log10_iso", label=r"$\log_{10}$ PF iso [GeV]")),
    )
)
#: inputs of the corrections: generator pT(Z), candidate-track log10|dz| and the event count
#: after the region's preselection (before the baseline), pT(Z) against p_T^miss, pileup; in
#: simulation the same tracks and events by true interactions too (in the fit's coarse |dz|
#: regions), so that the track-class fit weights them with the pileup weights it is given
CORRECTION_INPUT_HISTOGRAMS: tuple[HistogramSpec, ...] = (
    HistogramSpec("ptz_gen", (PTZ,), fill=None),
    HistogramSpec("track_log10_dz_presel", (LOG10_DZ,), categories=("dataset", "origin"), fill=None),
    HistogramSpec("n_events_presel", (MET,), fill=None),
    HistogramSpec("track_log10_dz_presel_pileup", (N_TRUE_INT, LOG10_DZ_FIT), categories=("dataset", "origin"),
                  fill=None),
    HistogramSpec("n_events_presel_pileup", (N_TRUE_INT,), categories=("dataset",), fill=None),
    HistogramSpec("ptz_met", (PTZ, MET), categories=("dataset",), fill=None),
    HistogramSpec("n_true_int", (N_TRUE_INT,), categories=("dataset",), fill=None),
)
#: track scores: max logit per Delta m, the category's max logit in fine bins (nominal; the
#: input of the signal-region boundaries) and the signal regions
SCORE_HISTOGRAMS: tuple[HistogramSpec, ...] = (
    HistogramSpec("max_logit", (DM, MAX_LOGIT), fill=None),
    HistogramSpec("max_logit_category", (DM, hist.axis.Regular(320, -16, 16, name="max_logit", label="max logit")),
                  categories=("dataset",), fill=None),
    HistogramSpec("sr", (hist.axis.Integer(0, N_SIGNAL_REGIONS, name="sr", label="signal region"),), fill=None),
    # by the background class of the event's highest-scoring track (analysis.softtrack.labels
    # BACKGROUND_CLASSES; "data" for data, "signal"/"unknown" where it applies): the
    # workspace's backgrounds and the stacked plots
    HistogramSpec("sr_class", (hist.axis.Integer(0, N_SIGNAL_REGIONS, name="sr", label="signal region"),),
                  categories=("dataset", "systematic", "track_class"), fill=None),
    HistogramSpec("max_logit_class", (DM, MAX_LOGIT), categories=("dataset", "track_class"), fill=None),
)
#: candidate-track log10|dz| by background class (the cleaned-DY plot stacked by class)
TRACK_CLASS_HISTOGRAMS: tuple[HistogramSpec, ...] = (
    HistogramSpec("track_log10_dz_class", (LOG10_DZ,), categories=("dataset", "track_class"), fill=None),
)
REGION_HISTOGRAMS = EVENT_HISTOGRAMS + TRACK_HISTOGRAMS + CORRECTION_INPUT_HISTOGRAMS + TRACK_CLASS_HISTOGRAMS
