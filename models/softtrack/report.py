"""Figures of the training reports: the refinement before/after on held-out tracks
(docs/physics.md sec. 7) and the classifier's calibration (sec. 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.io import atomic_output

#: plot binning (log10 units) of the before/after figure
PLOT_BINS = 60


def plot_refinement(path: Path, sim: np.ndarray, refined: np.ndarray, data: np.ndarray,
                    variables: tuple[str, ...], sim_weight: np.ndarray | None = None) -> None:
    """Before/after distributions of log10 of each refined variable on held-out tracks, with
    the data/simulation ratios (simulation, refined simulation, pseudo-data); the simulation
    weighted by ``sim_weight`` when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(variables), figsize=(5 * len(variables), 6),
                             gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    for i, v in enumerate(variables):
        ls, lr, ld = (np.log10(a[:, i]) for a in (sim, refined, data))
        lo, hi = np.percentile(np.concatenate([ls, ld]), [0.1, 99.9])
        edges = np.linspace(lo, hi, PLOT_BINS + 1)
        hs, _ = np.histogram(ls, edges, weights=sim_weight, density=True)
        hr, _ = np.histogram(lr, edges, weights=sim_weight, density=True)
        hd, _ = np.histogram(ld, edges, density=True)
        nd, _ = np.histogram(ld, edges)
        centres = 0.5 * (edges[1:] + edges[:-1])
        top, bottom = axes[0, i], axes[1, i]
        top.stairs(hs, edges, label="simulation", color="tab:blue")
        top.stairs(hr, edges, label="refined simulation", color="tab:red")
        err = np.where(nd > 0, hd / np.sqrt(np.maximum(nd, 1)), 0.0)
        top.errorbar(centres, hd, yerr=err, fmt="k.", ms=3, label="pseudo-data")
        top.set_ylabel("density")
        top.legend(fontsize=8)
        with np.errstate(divide="ignore", invalid="ignore"):
            bottom.plot(centres, hd / hs, "-", color="tab:blue", label="data / sim")
            bottom.plot(centres, hd / hr, "-", color="tab:red", label="data / refined")
        bottom.axhline(1.0, color="grey", lw=0.8)
        bottom.set_ylim(0.5, 1.5)
        bottom.set_xlabel(f"log10 Track_{v}")
        bottom.set_ylabel("ratio")
    fig.suptitle("Refinement on held-out tracks (Z -> mu mu events)")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_calibration(path: Path, calibration: dict[str, dict]) -> None:
    """Reliability curves (mean predicted probability vs observed weighted fraction) per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for cls, curve in calibration.items():
        ax.plot(curve["mean_predicted"], curve["fraction_positive"], "o-", ms=3, label=cls)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraction (weighted)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
