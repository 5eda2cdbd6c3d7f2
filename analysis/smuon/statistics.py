"""Sensitivity of the smuon search (seed 002 sec. IV; docs/smuon.md sec. 6): expected CLs
limits of one-bin counting experiments, per strategy, luminosity and background
uncertainty, and the exclusion contours in the (m_smuon, m_neutralino) plane.

Each strategy's signal region is one bin with the background ``b`` (the sum of the
simulated backgrounds) and the signal ``mu s``. Without a signal uncertainty (the seed has
none) the expected upper limit on the signal yield, ``S95 = mu_up s``, depends on ``b`` and
the background uncertainty only, so one pyhf fit per (strategy, luminosity, uncertainty)
gives every point's ``mu_up = S95 / s`` exactly (tests/test_smuon_stats.py checks it against
the fit of a point's own workspace). The background uncertainty is a log-normal
normalization (normsys) of 0 (optimistic) or 20% (pessimistic). Yields scale linearly with
the luminosity (seed 002: "we considered higher luminosities at 13 TeV").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.stats.limits import upper_limit
from analysis.stats.significance import asimov_significance
from analysis.stats.workspace import lognormal_normsys

CHANNEL = "sr"
MEASUREMENT = "smuon"
POI = "mu"


def counting_workspace(signal: float, background: float, background_unc: float) -> dict[str, Any]:
    """The pyhf spec of one bin: ``mu signal`` + ``background`` with a log-normal
    normalization uncertainty ``background_unc`` (none if 0); data = background (Asimov)."""
    bkg_mods = [lognormal_normsys("norm_background", background_unc)] if background_unc > 0 else []
    upper = max(10.0, 50.0 * (np.sqrt(background) + background_unc * background + 3.0) / max(signal, 1e-12))
    return {
        "version": "1.0.0",
        "channels": [{"name": CHANNEL, "samples": [
            {"name": "signal", "data": [float(signal)], "modifiers": [{"name": POI, "type": "normfactor", "data": None}]},
            {"name": "background", "data": [float(background)], "modifiers": bkg_mods},
        ]}],
        "observations": [{"name": CHANNEL, "data": [float(background)]}],
        "measurements": [{"name": MEASUREMENT, "config": {
            "poi": POI, "parameters": [{"name": POI, "bounds": [[0.0, float(upper)]], "inits": [1.0]}]}}],
    }


def expected_s95(background: float, background_unc: float, level: float = 0.05) -> dict[str, float]:
    """Expected 95% CL upper limits on the signal yield (median and +-1, 2 sigma) of a bin with
    ``background`` events (pyhf, asymptotic CLs, qtilde)."""
    # a reference signal of the order of the limit keeps mu = 1 on the scale of the fits
    unit = max(1.0, float(np.sqrt(background)) + background_unc * background)
    result = upper_limit(counting_workspace(unit, background, background_unc), level, MEASUREMENT)
    e = [unit * x for x in result.expected]
    return {"median": e[2], "minus1": e[1], "plus1": e[3], "minus2": e[0], "plus2": e[4]}


def significance(s: float, b: float, background_unc: float) -> float:
    """Median expected discovery significance (Asimov, Cowan et al.) with an absolute
    background uncertainty ``background_unc * b``."""
    return float(asimov_significance(s, b, background_unc * b))


def exclusion_contour(m: np.ndarray, m_chi: np.ndarray, mu_up: np.ndarray) -> list[np.ndarray]:
    """Polylines ((n, 2) arrays of (m_smuon, m_neutralino)) where the interpolated expected
    mu_up = 1; log(mu_up) is interpolated linearly on a Delaunay triangulation of the points
    (a point without signal counts as mu_up = 1e3)."""
    import matplotlib.tri as mtri
    from matplotlib.figure import Figure

    m, m_chi, mu = (np.asarray(a, np.float64) for a in (m, m_chi, mu_up))
    mu = np.where(np.isfinite(mu) & (mu > 0), mu, 1e3)
    if m.size < 3 or not ((mu < 1).any() and (mu > 1).any()):
        return []
    tri = mtri.Triangulation(m, m_chi)
    fig = Figure()
    cs = fig.add_subplot().tricontour(tri, np.log(np.clip(mu, 1e-3, 1e3)), levels=[0.0])
    return [poly for path in cs.get_paths() for poly in path.to_polygons(closed_only=False) if len(poly) > 1]


#: line styles of the strategies in the plots
STYLES = {"nn": ("tab:red", "-"), "dynamic": ("tab:blue", "--"), "static": ("tab:green", ":")}
LABELS = {"nn": "neural network (0.7)", "dynamic": "dynamic jet veto (best)", "static": "static jet veto"}


def plot_exclusion(points: Sequence[tuple[float, float]], mu_up: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
                   path: Path) -> Path:
    """One panel per luminosity: the expected exclusion contour of each strategy family, solid
    (optimistic) and thin (pessimistic) lines; ``mu_up[lumi][unc][family]`` per point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.io import atomic_output

    pts = np.asarray(points, np.float64)
    lumis = list(mu_up)
    fig, axes = plt.subplots(1, len(lumis), figsize=(6.0 * len(lumis), 5.2), squeeze=False)
    for ax, lumi in zip(axes[0], lumis, strict=True):
        ax.scatter(pts[:, 0], pts[:, 1], s=6, c="0.75", zorder=1, label="grid points")
        for k, (unc, families) in enumerate(mu_up[lumi].items()):
            for family, values in families.items():
                color, style = STYLES[family]
                lines = exclusion_contour(pts[:, 0], pts[:, 1], values)
                if not lines:  # say so in the legend rather than draw nothing
                    state = "every point excluded" if np.all(np.asarray(values) < 1) else "no point excluded"
                    ax.plot([], [], color=color, ls=style, lw=2.2 if k == 0 else 1.0,
                            label=f"{LABELS[family]}, {unc}: {state}")
                for i, line in enumerate(lines):
                    ax.plot(line[:, 0], line[:, 1], color=color, ls=style, lw=2.2 if k == 0 else 1.0,
                            label=f"{LABELS[family]}, {unc}" if i == 0 else None)
        ax.plot([pts[:, 0].min(), pts[:, 0].max()], [pts[:, 0].min(), pts[:, 0].max()], color="0.5", lw=0.8)
        ax.set_xlabel(r"$m_{\tilde\mu_R}$ [GeV]")
        ax.set_ylabel(r"$m_{\tilde\chi^0_1}$ [GeV]")
        ax.set_title(f"expected 95% CL exclusion, {lumi} fb$^{{-1}}$, 13 TeV")
        ax.set_xlim(pts[:, 0].min(), pts[:, 0].max())
        ax.set_ylim(0.0, pts[:, 1].max() * 1.05)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with atomic_output(Path(path)) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return Path(path)
