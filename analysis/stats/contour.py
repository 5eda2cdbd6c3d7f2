"""Exclusion contour in the (m(chargino), Delta m) plane (docs/physics.md sec. 9; summary Fig. 5 right).

The contour is the line mu_up = 1. log(mu_up) is interpolated linearly on a Delaunay
triangulation of the grid points in (m, log Delta m) (the grid is roughly logarithmic in
Delta m, and log mu_up varies smoothly there), and the zero level of log(mu_up) is drawn
by matplotlib's tricontour. The plot shows, as summary Fig. 5 (right), the observed
(black) and expected (red) contours with the expected +-1 sigma band (red dashed), over a
heat map of the observed upper limit on the cross section, sigma_up = mu_up * sigma_theory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from analysis.constants import LUMI_FB
from analysis.io import atomic_output
from analysis.signal_models import signal_xsec_pb

#: line styles of the contours (summary Fig. 5 right: expected red, observed black)
EXPECTED_COLOR = "tab:red"
OBSERVED_COLOR = "black"
CONTOUR_LEVEL = 0.0  # log(mu_up) = 0, i.e. mu_up = 1
FIGURE_SIZE = (11.0, 8.0)
LABEL_FONTSIZE = 20
HEAT_MAP_POINTS = 200  # interpolation grid of the heat map, per axis


def exclusion_lines(
    m: np.ndarray, dm: np.ndarray, mu_up: np.ndarray
) -> list[np.ndarray]:
    """Polylines (each an (n, 2) array of (m, Delta m)) where the interpolated mu_up = 1."""
    import matplotlib.tri as mtri
    from matplotlib.figure import Figure

    m, dm, mu = (np.asarray(a, dtype=np.float64) for a in (m, dm, mu_up))
    ok = np.isfinite(mu) & (mu > 0)
    if ok.sum() < 3:
        return []
    tri = mtri.Triangulation(m[ok], np.log(dm[ok]))
    fig = Figure()
    cs = fig.add_subplot().tricontour(tri, np.log(mu[ok]), levels=[CONTOUR_LEVEL])
    lines = []
    for path in cs.get_paths():
        for poly in path.to_polygons(closed_only=False):
            if len(poly) > 1:
                lines.append(np.column_stack([poly[:, 0], np.exp(poly[:, 1])]))
    return lines


def _interpolated_heat_map(m: np.ndarray, dm: np.ndarray, values: np.ndarray):
    """log(values) interpolated linearly on a regular (m, log dm) grid (NaN outside the hull)."""
    import matplotlib.tri as mtri

    tri = mtri.Triangulation(m, np.log(dm))
    interp = mtri.LinearTriInterpolator(tri, np.log(values))
    gm, glog = np.meshgrid(
        np.linspace(m.min(), m.max(), HEAT_MAP_POINTS),
        np.linspace(np.log(dm.min()), np.log(dm.max()), HEAT_MAP_POINTS),
    )
    return gm, np.exp(glog), np.exp(np.ma.filled(interp(gm, glog), np.nan))


def plot_exclusion(
    points: Sequence[tuple[float, float]],
    observed: Sequence[float],
    expected: Sequence[Sequence[float]],
    out_stem: str | Path,
    *,
    label: str = "Private work",
    lumi_fb: float = sum(LUMI_FB.values()),
) -> list[Path]:
    """Draw the exclusion plot like summary Fig. 5 (right); write ``out_stem``.png and .pdf.

    Parameters
    ----------
    points : [(m_chargino, dm), ...]
        Grid points (GeV).
    observed : [mu_up, ...]
        Observed upper limits on mu per point.
    expected : [[m2, m1, median, p1, p2], ...]
        Expected limits per point.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep
    from matplotlib.colors import LogNorm

    m = np.array([p[0] for p in points], dtype=np.float64)
    dm = np.array([p[1] for p in points], dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    xsec_up = obs * np.array([signal_xsec_pb(x) for x in m])

    with plt.style.context(hep.style.CMS):
        fig, ax = plt.subplots(figsize=FIGURE_SIZE)
        gm, gdm, gxs = _interpolated_heat_map(m, dm, xsec_up)
        finite = gxs[np.isfinite(gxs)]
        heat = ax.pcolormesh(gm, gdm, gxs, cmap="viridis", shading="auto", rasterized=True,
                             norm=LogNorm(vmin=finite.min(), vmax=finite.max()))
        cbar = fig.colorbar(heat, ax=ax, pad=0.02)
        cbar.set_label("95% CL upper limit on cross section [pb]")
        curves = [
            (exp[:, 2], EXPECTED_COLOR, "-", 3.0, "Expected"),
            (exp[:, 1], EXPECTED_COLOR, "--", 1.8, r"Expected $\pm 1\,\sigma_{\mathrm{experiment}}$"),
            (exp[:, 3], EXPECTED_COLOR, "--", 1.8, None),
            (obs, OBSERVED_COLOR, "-", 3.0, "Observed"),
        ]
        for mu, color, style, width, name in curves:
            for i, line in enumerate(exclusion_lines(m, dm, mu)):
                ax.plot(line[:, 0], line[:, 1], color=color, ls=style, lw=width,
                        label=name if i == 0 else None)
        ax.scatter(m, dm, s=8, c="white", edgecolors="none", alpha=0.7, label="Signal grid")
        ax.set_yscale("log")
        ax.set_xlim(m.min(), m.max())
        ax.set_ylim(dm.min(), dm.max())
        ax.set_xlabel(r"$m(\tilde{\chi}^{\pm}_{1})$ [GeV]")
        ax.set_ylabel(r"$\Delta m^{\pm}$ [GeV]")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yticks([0.2, 0.3, 0.5, 0.7, 1.0, 1.5])
        hep.cms.label(label, data=True, lumi=round(lumi_fb), com=13, ax=ax, loc=0, fontsize=LABEL_FONTSIZE)
        ax.legend(loc="upper right", fontsize="small", title=r"$pp \to \tilde{\chi}\tilde{\chi}$ (higgsino), 95% CL",
                  title_fontsize="small", frameon=True, facecolor="white", framealpha=0.85)
        out = []
        stem = Path(out_stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        for ext in ("png", "pdf"):
            path = stem.with_suffix(f".{ext}")
            with atomic_output(path) as tmp:
                fig.savefig(tmp, bbox_inches="tight", dpi=150)
            out.append(path)
        plt.close(fig)
    return out


def limits_on_grid(results: Mapping[str, Mapping], parse) -> tuple[list, list, list]:
    """(points, observed, expected) of the results whose names ``parse`` maps to (m, dm)."""
    points, observed, expected = [], [], []
    for name, res in results.items():
        points.append(parse(name))
        observed.append(res["observed"])
        expected.append(res["expected"])
    return points, observed, expected
