"""Histogram definitions shared by the processors (hist, Weight storage, named axes)."""

from __future__ import annotations

import hist

from analysis.config import CLASSIFIER_DMS, N_SIGNAL_REGIONS

DATASET = hist.axis.StrCategory([], name="dataset", growth=True)
SYSTEMATIC = hist.axis.StrCategory([], name="systematic", growth=True)
ORIGIN = hist.axis.StrCategory([], name="origin", label="track origin (generator truth)", growth=True)
DM = hist.axis.StrCategory([f"{dm:g}" for dm in CLASSIFIER_DMS], name="dm", label="Delta m category (GeV)")

EVENT_AXES = {
    "met": hist.axis.Regular(60, 0, 1500, name="met", label=r"$p_T^{miss}$ [GeV]"),
    "mht": hist.axis.Regular(60, 0, 1500, name="mht", label=r"$H_T^{miss}$ [GeV]"),
    "ht": hist.axis.Regular(60, 0, 3000, name="ht", label=r"$H_T$ [GeV]"),
    "n_jets": hist.axis.Integer(0, 12, name="n_jets", label=r"$N_{jets}$"),
    "leading_jet_pt": hist.axis.Regular(60, 0, 1500, name="leading_jet_pt", label="leading jet $p_T$ [GeV]"),
    "min_dphi": hist.axis.Regular(32, 0, 3.2, name="min_dphi", label=r"min $\Delta\phi(p_T^{miss}, j_{1-4})$"),
    "n_candidates": hist.axis.Integer(0, 40, name="n_candidates", label="candidate tracks"),
    "n_pv": hist.axis.Integer(0, 100, name="n_pv", label="reconstructed vertices"),
}
TRACK_AXES = {
    "track_pt": hist.axis.Regular(40, 0, 20, name="track_pt", label="track $p_T$ [GeV]"),
    "track_log10_dz": hist.axis.Regular(60, -5, 1, name="track_log10_dz", label=r"$\log_{10}|d_z|$ [cm]"),
    "track_log10_dxy": hist.axis.Regular(60, -5, 1, name="track_log10_dxy", label=r"$\log_{10}|d_{xy}|$ [cm]"),
    "track_log10_dxyerr": hist.axis.Regular(60, -4, 0, name="track_log10_dxyerr", label=r"$\log_{10}\sigma(d_{xy})$"),
    "track_log10_dzerr": hist.axis.Regular(60, -4, 0, name="track_log10_dzerr", label=r"$\log_{10}\sigma(d_z)$"),
    "track_log10_iso": hist.axis.Regular(50, -2, 3, name="track_log10_iso", label=r"$\log_{10}$ PF iso [GeV]"),
}


def new_histograms(with_scores: bool) -> dict[str, hist.Hist]:
    h = {name: hist.Hist(DATASET, SYSTEMATIC, ax, storage=hist.storage.Weight()) for name, ax in EVENT_AXES.items()}
    for name, ax in TRACK_AXES.items():
        h[name] = hist.Hist(DATASET, ORIGIN, ax, storage=hist.storage.Weight())
    h["ptz_gen"] = hist.Hist(DATASET, SYSTEMATIC, hist.axis.Regular(50, 0, 1000, name="ptz", label=r"generator $p_T(Z)$ [GeV]"),
                             storage=hist.storage.Weight())
    # cleaned-DY inputs of the corrections: candidate tracks after the region preselection
    # (before the baseline), its event count, and generator pT(Z) against p_T^miss
    h["track_log10_dz_presel"] = hist.Hist(DATASET, ORIGIN, TRACK_AXES["track_log10_dz"], storage=hist.storage.Weight())
    h["n_events_presel"] = hist.Hist(DATASET, SYSTEMATIC, EVENT_AXES["met"], storage=hist.storage.Weight())
    h["ptz_met"] = hist.Hist(DATASET, hist.axis.Regular(50, 0, 1000, name="ptz", label=r"generator $p_T(Z)$ [GeV]"),
                             EVENT_AXES["met"], storage=hist.storage.Weight())
    h["n_true_int"] = hist.Hist(DATASET, hist.axis.Regular(100, 0, 100, name="n_true_int", label="true interactions"),
                                storage=hist.storage.Weight())
    if with_scores:
        h["max_logit"] = hist.Hist(DATASET, SYSTEMATIC, DM, hist.axis.Regular(64, -16, 16, name="max_logit", label="max logit"),
                                   storage=hist.storage.Weight())
        # the category's max logit in fine bins (nominal): the input of the SR boundaries
        h["max_logit_category"] = hist.Hist(DATASET, DM, hist.axis.Regular(320, -16, 16, name="max_logit", label="max logit"),
                                            storage=hist.storage.Weight())
        h["sr"] = hist.Hist(DATASET, SYSTEMATIC, hist.axis.Integer(0, N_SIGNAL_REGIONS, name="sr", label="signal region"),
                            storage=hist.storage.Weight())
    return h
