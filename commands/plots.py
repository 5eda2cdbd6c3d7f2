"""Plots and tables of processor outputs: stacked simulation vs pseudo-data with a ratio
panel (mplhep, CMS style), signal overlays, the 12 signal regions, max-score distributions
and the cutflow table. Used by the main job and by ``run.py plots``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

NAME = "plots"
HELP = "draw the standard plots and the cutflow table of a processor output"

BACKGROUND_ORDER = ("qcd", "ttjets", "dy_mumu", "wjets_lnu", "zjets_nunu")
LABELS = {
    "zjets_nunu": r"Z($\nu\nu$)+jets", "wjets_lnu": r"W($\ell\nu$)+jets", "ttjets": r"$t\bar{t}$+jets",
    "dy_mumu": r"DY($\mu\mu$)+jets", "qcd": "QCD multijet",
}
COLORS = {"zjets_nunu": "#3f90da", "wjets_lnu": "#ffa90e", "ttjets": "#bd1f01", "dy_mumu": "#94a4a2", "qcd": "#832db6"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", type=Path, help="processor output (.coffea)")
    p.add_argument("--out", type=Path, required=True, help="directory for the PNG files")
    p.add_argument("--systematic", default="nominal", help="systematic variation to draw (default nominal)")
    p.add_argument("--workers", type=int, default=1, help="processes drawing the plots (default 1)")


def group_by_process(h, datasets: dict, systematic: str | None = "nominal"):
    """Project a histogram per process: dict process -> (values, variances) summed over eras.
    Data streams become 'data'; signal points keep their dataset name without era."""
    out: dict[str, list[np.ndarray]] = defaultdict(lambda: [0.0, 0.0])
    for ds in h.axes["dataset"]:
        meta = datasets.get(ds)
        if meta is None:
            continue
        sel = {"dataset": ds}
        if systematic is not None and "systematic" in h.axes.name:
            if systematic not in h.axes["systematic"]:
                continue
            sel["systematic"] = systematic
        sub = h[sel]
        for ax in list(sub.axes.name):
            if ax in ("origin",):
                sub = sub[{ax: sum}]
        view = sub.view(flow=False)
        key = "data" if meta["is_data"] else meta["process"]
        if key == "signal":
            key = ds.rsplit("_", 1)[0]
        out[key][0] = out[key][0] + view["value"]
        out[key][1] = out[key][1] + view["variance"]
    return {k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in out.items()}


def stack_plot(h, datasets: dict, path: Path, systematic: str = "nominal", title: str = "", logy: bool = True,
               extra_sel: dict | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    if extra_sel:
        h = h[extra_sel]
    groups = group_by_process(h, datasets, systematic)
    axis = [ax for ax in h.axes if ax.name not in ("dataset", "systematic", "origin")][0]
    edges = axis.edges
    mplhep.style.use("CMS")
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(9, 9), gridspec_kw={"height_ratios": (3, 1)}, sharex=True)
    # first: mplhep measures the label by drawing the figure, cheap while it is still empty
    mplhep.cms.label("Toy", data=True, ax=ax, rlabel=title or "13 TeV")
    bkgs = [b for b in BACKGROUND_ORDER if b in groups]
    total = np.zeros(len(edges) - 1)
    total_var = np.zeros(len(edges) - 1)
    if bkgs:
        mplhep.histplot([groups[b][0] for b in bkgs], edges, stack=True, histtype="fill", ax=ax,
                        label=[LABELS.get(b, b) for b in bkgs], color=[COLORS.get(b) for b in bkgs])
        for b in bkgs:
            total += groups[b][0]
            total_var += groups[b][1]
        ax.stairs(total + np.sqrt(total_var), edges, baseline=total - np.sqrt(total_var), fill=True,
                  color="none", hatch="///", edgecolor="gray", linewidth=0, label="MC stat. unc.")
    from analysis.config import SIGNAL_BENCHMARKS
    from analysis.toymc.processes import signal_dataset_name

    shown = {signal_dataset_name(m, dm) for m, dm in SIGNAL_BENCHMARKS}
    for name in sorted(k for k in groups if k in shown):  # the benchmarks, not the whole grid
        mplhep.histplot(groups[name][0], edges, ax=ax, histtype="step", linewidth=2, linestyle="--", label=name)
    if "data" in groups:
        d, dv = groups["data"]
        centers = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centers, d, yerr=np.sqrt(dv), fmt="ko", markersize=4, label="Pseudo-data")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(total > 0, d / total, np.nan)
            rerr = np.where(total > 0, np.sqrt(dv) / total, np.nan)
            band = np.where(total > 0, np.sqrt(total_var) / total, 0.0)
        rax.errorbar(centers, ratio, yerr=rerr, fmt="ko", markersize=4)
        rax.stairs(1 + band, edges, baseline=1 - band, fill=True, color="gray", alpha=0.3)
    rax.axhline(1.0, color="k", linewidth=1)
    rax.set_ylim(0.0, 2.0)
    rax.set_ylabel("Data / MC")
    rax.set_xlabel(axis.label or axis.name)
    ax.set_ylabel("Events / bin")
    if logy and (total > 0).any():
        ax.set_yscale("log")
        ax.set_ylim(max(total[total > 0].min() * 0.1, 1e-3), total.max() * 100)
    ax.set_xlabel("")
    ax.legend(fontsize=13, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def cutflow_table(cutflow: dict, datasets: dict) -> str:
    """Markdown table: steps x processes (weighted yields, summed over eras)."""
    by_proc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    steps: list[str] = []
    for ds, flow in cutflow.items():
        meta = datasets.get(ds, {})
        key = "data" if meta.get("is_data") else meta.get("process", ds)
        if key == "signal":
            key = ds.rsplit("_", 1)[0]
        for step, v in flow.items():
            if step not in steps:
                steps.append(step)
            by_proc[key][step] += v["weighted"]
    procs = [p for p in (*BACKGROUND_ORDER, "data") if p in by_proc] + sorted(p for p in by_proc if p.startswith("signal_"))
    lines = ["| step | " + " | ".join(procs) + " |", "|---" * (len(procs) + 1) + "|"]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{by_proc[p].get(step, 0.0):.4g}" for p in procs) + " |")
    return "\n".join(lines)


def plot_jobs(output: dict, out: Path, systematic: str = "nominal", prefix: str = "") -> list[tuple[tuple, dict]]:
    """The standard plots of a processor output as :func:`stack_plot` arguments (args, kwargs)."""
    h, datasets = output["histograms"], output["datasets"]
    jobs = []
    for name in ("met", "mht", "ht", "n_jets", "leading_jet_pt", "min_dphi", "n_candidates", "n_pv"):
        if name in h:
            jobs.append(((h[name], datasets, out / f"{prefix}{name}.png", systematic), {}))
    for name in ("track_pt", "track_log10_dz", "track_log10_dxyerr", "track_log10_dzerr"):
        if name in h:
            jobs.append(((h[name], datasets, out / f"{prefix}{name}.png", None), {}))
    if "sr" in h:
        jobs.append(((h["sr"], datasets, out / f"{prefix}signal_regions.png", systematic), {"title": "12 SRs"}))
    if "max_logit" in h:
        for dm in h["max_logit"].axes["dm"]:  # one Delta m each (a worker gets only its slice)
            jobs.append(((h["max_logit"][{"dm": dm}], datasets, out / f"{prefix}max_logit_dm{dm}.png", systematic),
                         {"title": rf"$\Delta m$ = {dm} GeV"}))
    return jobs


def _draw(job: tuple[tuple, dict]) -> Path:
    args, kwargs = job
    return stack_plot(*args, **kwargs)


def draw_plots(jobs: list[tuple[tuple, dict]], workers: int = 1) -> list[Path]:
    """Draw plot jobs, in ``workers`` processes when more than one (a plot takes ~1 s, most of it
    matplotlib drawing the figure twice to save it with a tight bounding box); the pictures do
    not depend on the number of workers."""
    if workers <= 1 or len(jobs) < 2:
        return [_draw(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_draw, jobs))


def standard_plots(output: dict, out: Path, systematic: str = "nominal", prefix: str = "", workers: int = 1) -> list[Path]:
    """The standard plots (:func:`plot_jobs`) and the cutflow table of a processor output."""
    paths = draw_plots(plot_jobs(output, out, systematic, prefix), workers)
    write_cutflow(output, out, prefix)
    return paths


def write_cutflow(output: dict, out: Path, prefix: str = "") -> Path:
    """OUT/<prefix>cutflow.md: the cutflow table of a processor output."""
    path = out / f"{prefix}cutflow.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cutflow_table(output["cutflow"], output["datasets"]) + "\n")
    return path


def main(args) -> int:
    from coffea.util import load

    from analysis.errors import ConfigError, InputFileError

    if not args.output.is_file():
        raise InputFileError(f"processor output {args.output} not found")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    paths = standard_plots(load(str(args.output)), args.out, args.systematic, workers=args.workers)
    print(f"wrote {len(paths)} plots and cutflow.md to {args.out}")
    return 0
