"""Plots and tables of processor outputs, for any analysis: stacked simulation vs data with a
ratio panel (mplhep, CMS style), signal overlays, data/simulation agreement and the cutflow
table.

Nothing here knows a particular analysis: which backgrounds are stacked (and in which
order), their labels and colours, which signals are overlaid and which histograms are drawn
are the caller's (for the soft-track search: :mod:`analysis.softtrack.plots`).

A processor output is the dict of the processors: ``"histograms"`` (hist.Hist with a
``dataset`` StrCat axis, optionally ``systematic`` and ``origin``), ``"datasets"`` (each
dataset's metadata: ``process``, ``is_data``) and ``"cutflow"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from analysis.io import atomic_output, write_atomic

#: process of the signal datasets; they are grouped by dataset name less its last "_<era>"
SIGNAL_PROCESS = "signal"
#: the group of every data dataset
DATA_GROUP = "data"


def group_by_process(h, datasets: dict, systematic: str | None = "nominal", signal_process: str = SIGNAL_PROCESS,
                     stack_axis: str | None = None):
    """Project a histogram per process: dict process -> (values, variances) summed over eras.
    Data streams become 'data'; datasets of ``signal_process`` keep their dataset name without
    era. With ``stack_axis`` (a category axis, e.g. a background class), simulated
    background is grouped by that axis' value instead of its process."""
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
            if ax in ("origin",) or (ax == stack_axis and (meta["is_data"] or meta["process"] == signal_process)):
                sub = sub[{ax: sum}]
        key = DATA_GROUP if meta["is_data"] else meta["process"]
        if key == signal_process:
            key = ds.rsplit("_", 1)[0]
        parts = [(key, sub)]
        if stack_axis is not None and stack_axis in sub.axes.name:
            parts = [(value, sub[{stack_axis: value}]) for value in sub.axes[stack_axis]]
        for k, part in parts:
            view = part.view(flow=False)
            out[k][0] = out[k][0] + view["value"]
            out[k][1] = out[k][1] + view["variance"]
    return {k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in out.items()}


def experiment_text(ax, label: str, rlabel: str, fontsize: float | None = None) -> None:
    """The CMS-style label above ``ax``: bold "CMS" and ``label`` in italics on the left,
    ``rlabel`` on the right, in the sizes of mplhep's ``cms.label`` (1.3 and 1/1.1 of the font
    size). ``cms.label`` draws the whole figure to place them, a third of a plot's time; here
    only the width of "CMS" is measured."""
    import matplotlib as mpl
    from matplotlib.transforms import offset_copy

    size = float(mpl.rcParams["font.size"]) if fontsize is None else fontsize
    fig = ax.figure
    cms = ax.text(0.0, 1.005, "CMS", transform=ax.transAxes, fontsize=1.3 * size, fontweight="bold",
                  ha="left", va="bottom")
    width_pt = cms.get_window_extent(fig.canvas.get_renderer()).width * 72.0 / fig.dpi
    ax.text(0.0, 1.005, label, transform=offset_copy(ax.transAxes, fig=fig, x=width_pt + 0.3 * size, units="points"),
            fontsize=size, fontstyle="italic", ha="left", va="bottom")
    ax.text(1.0, 1.005, rlabel, transform=ax.transAxes, fontsize=size / 1.1, ha="right", va="bottom")


def stack_plot(h, datasets: dict, path: Path, systematic: str = "nominal", title: str = "", logy: bool = True,
               extra_sel: dict | None = None, *, backgrounds: Sequence[str] = (),
               labels: Mapping[str, str] | None = None, colors: Mapping[str, str] | None = None,
               signals: Sequence[str] = (), experiment_label: str = "Toy", stack_axis: str | None = None) -> Path:
    """Stacked simulation (the groups of :func:`group_by_process` named in ``backgrounds``,
    in that order, with ``labels`` and ``colors``), the MC statistical band, the signal
    groups named in ``signals`` as dashed lines and data as points, with a data/MC ratio
    panel; written to ``path`` (PNG). ``stack_axis``: stack the simulated background by that
    category axis (e.g. the background class) instead of by process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    labels, colors = labels or {}, colors or {}
    if extra_sel:
        h = h[extra_sel]
    groups = group_by_process(h, datasets, systematic, stack_axis=stack_axis)
    axis = [ax for ax in h.axes if ax.name not in ("dataset", "systematic", "origin", stack_axis)][0]
    edges = axis.edges
    mplhep.style.use("CMS")
    # fixed margins (they hold the CMS style's labels) instead of a tight bounding box, which
    # costs drawing the figure once more when saving it
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(9, 9), gridspec_kw={"height_ratios": (3, 1), "hspace": 0.06},
                                  sharex=True)
    fig.subplots_adjust(left=0.14, right=0.96, top=0.94, bottom=0.1)
    experiment_text(ax, experiment_label, title or "13 TeV")
    bkgs = [b for b in backgrounds if b in groups]
    total = np.zeros(len(edges) - 1)
    total_var = np.zeros(len(edges) - 1)
    if bkgs:
        mplhep.histplot([groups[b][0] for b in bkgs], edges, stack=True, histtype="fill", ax=ax,
                        label=[labels.get(b, b) for b in bkgs], color=[colors.get(b) for b in bkgs])
        for b in bkgs:
            total += groups[b][0]
            total_var += groups[b][1]
        ax.stairs(total + np.sqrt(total_var), edges, baseline=total - np.sqrt(total_var), fill=True,
                  color="none", hatch="///", edgecolor="gray", linewidth=0, label="MC stat. unc.")
    shown = set(signals)
    for name in sorted(k for k in groups if k in shown):
        mplhep.histplot(groups[name][0], edges, ax=ax, histtype="step", linewidth=2, linestyle="--", label=name)
    if DATA_GROUP in groups:
        d, dv = groups[DATA_GROUP]
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
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def data_mc_agreement(h, datasets: dict, systematic: str = "nominal", signal_prefix: str = "signal_") -> dict:
    """chi2/ndf and data/MC yield ratio of a histogram (bins with MC > 0); MC is every group
    of :func:`group_by_process` but data and the signals (named ``signal_prefix``...).
    Empty without data.

    The chi2 is Pearson's, with the expected variance mc + var(mc) in each bin: the observed
    count as variance (Neyman) makes every empty data bin of the p_T^miss tail under a small
    prediction cost mc^2 / var(mc), tens of units for a bin of 2 expected events."""
    groups = group_by_process(h, datasets, systematic)
    if DATA_GROUP not in groups:
        return {}
    d = groups[DATA_GROUP][0]
    mc = sum(v[0] for k, v in groups.items() if k not in (DATA_GROUP,) and not k.startswith(signal_prefix))
    mcv = sum(v[1] for k, v in groups.items() if k not in (DATA_GROUP,) and not k.startswith(signal_prefix))
    ok = (mc > 0) & ((d > 0) | (mc > 0.5))
    chi2 = float((((d - mc) ** 2) / np.maximum(mc + mcv, 1e-9))[ok].sum())
    return {"data": float(d.sum()), "mc": float(mc.sum()), "ratio": float(d.sum() / max(mc.sum(), 1e-12)),
            "chi2": chi2, "ndf": int(ok.sum())}


def cutflow_table(cutflow: dict, datasets: dict, backgrounds: Sequence[str] = (),
                  signal_prefix: str = "signal_", signal_process: str = SIGNAL_PROCESS) -> str:
    """Markdown table: steps x processes (weighted yields, summed over eras); the columns are
    ``backgrounds`` (in that order), data and the signals (``signal_prefix``..., sorted)."""
    by_proc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    steps: list[str] = []
    for ds, flow in cutflow.items():
        meta = datasets.get(ds, {})
        key = DATA_GROUP if meta.get("is_data") else meta.get("process", ds)
        if key == signal_process:
            key = ds.rsplit("_", 1)[0]
        for step, v in flow.items():
            if step not in steps:
                steps.append(step)
            by_proc[key][step] += v["weighted"]
    procs = ([p for p in (*backgrounds, DATA_GROUP) if p in by_proc]
             + sorted(p for p in by_proc if p.startswith(signal_prefix)))
    lines = ["| step | " + " | ".join(procs) + " |", "|---" * (len(procs) + 1) + "|"]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{by_proc[p].get(step, 0.0):.4g}" for p in procs) + " |")
    return "\n".join(lines)


def write_cutflow(output: dict, out: Path, prefix: str = "", **table_kwargs) -> Path:
    """OUT/<prefix>cutflow.md: the cutflow table of a processor output (``table_kwargs`` go to
    :func:`cutflow_table`)."""
    path = out / f"{prefix}cutflow.md"
    write_atomic(path, cutflow_table(output["cutflow"], output["datasets"], **table_kwargs) + "\n")
    return path


def _draw(job: tuple[tuple, dict]) -> Path:
    args, kwargs = job
    return stack_plot(*args, **kwargs)


def draw_plots(jobs: list[tuple[tuple, dict]], workers: int = 1) -> list[Path]:
    """Draw plot jobs, each the (args, kwargs) of :func:`stack_plot`, in ``workers`` processes
    when more than one (a plot takes ~0.5 s, most of it matplotlib drawing the figure to save
    it); the pictures do not depend on the number of workers."""
    if workers <= 1 or len(jobs) < 2:
        return [_draw(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_draw, jobs))
