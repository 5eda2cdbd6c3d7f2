"""The standard plots and tables of the soft-track search's processor outputs: which
histograms are drawn (event variables, track variables, the 12 signal regions, the max
logit per Delta m category), the stacked backgrounds with their labels and colours, the
signal benchmarks overlaid, and the cutflow table. Drawing is :mod:`analysis.plotting`'s.
"""

from __future__ import annotations

from pathlib import Path

from analysis import plotting
from analysis.softtrack.config import SIGNAL_BENCHMARKS

#: stacked backgrounds, bottom to top, their legend labels and colours
BACKGROUND_ORDER = ("qcd", "ttjets", "dy_mumu", "wjets_lnu", "zjets_nunu")
LABELS = {
    "zjets_nunu": r"Z($\nu\nu$)+jets", "wjets_lnu": r"W($\ell\nu$)+jets", "ttjets": r"$t\bar{t}$+jets",
    "dy_mumu": r"DY($\mu\mu$)+jets", "qcd": "QCD multijet",
}
COLORS = {"zjets_nunu": "#3f90da", "wjets_lnu": "#ffa90e", "ttjets": "#bd1f01", "dy_mumu": "#94a4a2", "qcd": "#832db6"}
#: the background classes of the signal regions (analysis.softtrack.labels.BACKGROUND_CLASSES),
#: stacked bottom to top, as in the summary's figures
CLASS_ORDER = ("tau", "spurious", "pv", "none", "unknown")
CLASS_LABELS = {"pv": "PV-associated", "spurious": "spurious (fakes, pileup)", "tau": r"$\tau$ tracks",
                "none": "no candidate", "unknown": "class unknown"}
CLASS_COLORS = {"pv": "#3f90da", "spurious": "#ffa90e", "tau": "#bd1f01", "none": "#94a4a2", "unknown": "#717581"}
#: name prefix of the signal datasets (signal_m<M>_dm<DM>_<era>)
SIGNAL_PREFIX = "signal_"
#: histograms drawn per systematic, and the track histograms (no systematic axis)
EVENT_HISTOGRAMS = ("met", "mht", "ht", "n_jets", "leading_jet_pt", "min_dphi", "n_candidates", "n_pv")
TRACK_HISTOGRAMS = ("track_pt", "track_log10_dz", "track_log10_dxyerr", "track_log10_dzerr")


def signal_name(m_chargino: float, dm: float) -> str:
    """Signal group of a point without era, as the datasets are named: signal_m115_dm0p27."""
    return f"{SIGNAL_PREFIX}m{m_chargino:g}_dm{dm:g}".replace(".", "p")


def style() -> dict:
    """The :func:`analysis.plotting.stack_plot` keywords of the search: stacked backgrounds,
    labels, colours, and the signal benchmarks (not the whole grid) overlaid."""
    return {"backgrounds": BACKGROUND_ORDER, "labels": LABELS, "colors": COLORS,
            "signals": tuple(sorted({signal_name(m, dm) for m, dm in SIGNAL_BENCHMARKS}))}


def class_style() -> dict:
    """:func:`style` with the background stacked by background class (the summary's figures)."""
    return style() | {"backgrounds": CLASS_ORDER, "labels": CLASS_LABELS, "colors": CLASS_COLORS,
                      "stack_axis": "track_class"}


def plot_jobs(output: dict, out: Path, systematic: str = "nominal", prefix: str = "") -> list[tuple[tuple, dict]]:
    """The standard plots of a processor output as :func:`analysis.plotting.stack_plot`
    arguments (args, kwargs): by process, and the signal regions, max logits and candidate-track
    log10|dz| also by background class."""
    h, datasets = output["histograms"], output["datasets"]
    kw = style()
    kc = class_style()
    jobs = []
    for name in EVENT_HISTOGRAMS:
        if name in h:
            jobs.append(((h[name], datasets, out / f"{prefix}{name}.png", systematic), dict(kw)))
    for name in TRACK_HISTOGRAMS:
        if name in h:
            jobs.append(((h[name], datasets, out / f"{prefix}{name}.png", None), dict(kw)))
    if "sr" in h:
        jobs.append(((h["sr"], datasets, out / f"{prefix}signal_regions.png", systematic), kw | {"title": "12 SRs"}))
    if "max_logit" in h:
        for dm in h["max_logit"].axes["dm"]:  # one Delta m each (a worker gets only its slice)
            jobs.append(((h["max_logit"][{"dm": dm}], datasets, out / f"{prefix}max_logit_dm{dm}.png", systematic),
                         kw | {"title": rf"$\Delta m$ = {dm} GeV"}))
    if "sr_class" in h:
        jobs.append(((h["sr_class"], datasets, out / f"{prefix}signal_regions_by_class.png", systematic),
                     kc | {"title": "12 SRs"}))
    if "max_logit_class" in h:
        for dm in h["max_logit_class"].axes["dm"]:
            jobs.append(((h["max_logit_class"][{"dm": dm}], datasets, out / f"{prefix}max_logit_dm{dm}_by_class.png",
                          None), kc | {"title": rf"$\Delta m$ = {dm} GeV"}))
    if "track_log10_dz_class" in h:
        jobs.append(((h["track_log10_dz_class"], datasets, out / f"{prefix}track_log10_dz_by_class.png", None),
                     dict(kc)))
    return jobs


def write_cutflow(output: dict, out: Path, prefix: str = "") -> Path:
    """OUT/<prefix>cutflow.md: the cutflow table of a processor output (backgrounds in the
    stacking order, data, the signal points)."""
    return plotting.write_cutflow(output, out, prefix, backgrounds=BACKGROUND_ORDER, signal_prefix=SIGNAL_PREFIX)


def standard_plots(output: dict, out: Path, systematic: str = "nominal", prefix: str = "", workers: int = 1) -> list[Path]:
    """The standard plots (:func:`plot_jobs`) and the cutflow table of a processor output."""
    paths = plotting.draw_plots(plot_jobs(output, out, systematic, prefix), workers)
    write_cutflow(output, out, prefix)
    return paths


def agreement(output: dict, name: str = "met", systematic: str = "nominal") -> dict:
    """chi2/ndf and data/MC yield ratio of a histogram of a processor output (bins with MC > 0;
    signals left out)."""
    return plotting.data_mc_agreement(output["histograms"][name], output["datasets"], systematic,
                                      signal_prefix=SIGNAL_PREFIX)
