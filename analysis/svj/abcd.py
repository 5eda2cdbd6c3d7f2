"""The binned ABCD of the semi-visible-jet search: templates, the working-point grid scan with
its five metrics, the validation (closure on pseudo-data, boundary stability, signal
contamination) and the combined S+B workspace with per-bin non-closure systematics
(SVJ talk, "(Binned) ABCD Strategy", "Boundary Optimization - Grid Scan", "FOM Details",
"Applying the Working Point", "Statistical Inference: Expected Limits"; docs/svj.md).

Regions (analysis.stats.abcd's convention): A = X > x0 and Y > y0 (the signal region), B = X
pass / Y fail, C = X fail / Y pass, D = both fail; per M_T bin i, n_hat_A,i = n_B,i n_C,i / n_D,i.
The background-only ABCD fit to the control regions of an Asimov data set saturates them (three
free parameters per bin for three counts, :func:`analysis.stats.abcd.abcd_workspace`), so its
prediction of A is n_B n_C / n_D with the control regions' uncertainties propagated
(:func:`analysis.stats.abcd.abcd_predict`): the scan uses that closed form at each of its 33 x 33
points; ``tests/test_svj_abcd.py`` checks it against the pyhf fit.

Metrics at a point (SVJ talk, "FOM Details"), from the background MC in the signal plane:

* non-closure delta = sum_i n_hat_A,i / sum_i n_A,i - 1;
* |pull| = |n_hat_A - n_A| / sqrt(sigma^2(n_hat_A) + sigma^2(n_A)) (normalization);
* the SR chi^2 = sum_i (n_hat_A,i - n_A,i)^2 / (sigma^2_hat,i + sigma^2_i), its p-value with
  n_bins degrees of freedom;
* <Z> = mean over the signal points k of Z_k = sqrt(sum_i Z_A(s_k,i, b_i, sigma_b,i)^2),
  Cowan's Asimov significance with b = n_hat_A, sigma_b^2 = sigma^2(n_hat_A) + (delta b)^2 (the
  "modified" significance: the non-closure as a background uncertainty);
* r_max = max over k and the control regions R of (s_R / b_R) / (s_A / b_A).

The working point: the largest <Z> among the points with p >= 90% whose neighbours also have p
>= 90% (the plateau), |delta| <= 5%, |pull| <= 2 and r_max <= 0.35. If no point is on a plateau
but some pass every other rule with p >= 90% at the point itself, the largest <Z> among those
is offered as the relaxed choice (:func:`choose_point`); no other rule is relaxed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2 as chi2_dist

from analysis.stats.abcd import REGIONS, abcd_predict, abcd_workspace
from analysis.stats.significance import asimov_significance

from .config import Statistics, WorkingPoint


@dataclass
class Templates:
    """Weighted M_T templates per region: sum of weights and of their squares, (4, n_bins)."""

    values: np.ndarray
    variances: np.ndarray

    def region(self, r: str) -> np.ndarray:
        return self.values[REGIONS.index(r)]

    def variance(self, r: str) -> np.ndarray:
        return self.variances[REGIONS.index(r)]

    def as_dict(self) -> dict[str, list[float]]:
        return {r: self.region(r).tolist() for r in REGIONS}


def region_index(x: np.ndarray, y: np.ndarray, x0: float, y0: float) -> np.ndarray:
    """0..3 for A, B, C, D (module docstring)."""
    xp, yp = np.asarray(x) > x0, np.asarray(y) > y0
    return np.where(xp & yp, 0, np.where(xp, 1, np.where(yp, 2, 3)))


def templates(x, y, mt, weight, x0: float, y0: float, edges) -> Templates:
    """M_T templates of the events in each region (below the first edge dropped, above the last
    in the last bin)."""
    edges = np.asarray(edges, np.float64)
    b = np.minimum(np.digitize(mt, edges) - 1, edges.size - 2)
    ok = (b >= 0) & (b < edges.size - 1)
    key = region_index(x, y, x0, y0)[ok] * (edges.size - 1) + b[ok]
    n = 4 * (edges.size - 1)
    w = np.asarray(weight, np.float64)[ok]
    vals = np.bincount(key, w, minlength=n).reshape(4, -1)
    var = np.bincount(key, w * w, minlength=n).reshape(4, -1)
    return Templates(vals, var)


@dataclass
class PointMetrics:
    """The metrics of one working point (module docstring)."""

    x: float
    y: float
    z_mean: float
    pvalue: float
    nonclosure: float
    pull: float
    r_max: float
    plateau: bool = False
    passes: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def point_metrics(bkg: Templates, signals: list[Templates], x0: float, y0: float) -> PointMetrics:
    """The metrics at (x0, y0) from the background and the signal templates."""
    nan = PointMetrics(x0, y0, np.nan, np.nan, np.nan, np.nan, np.nan)
    b_, c_, d_ = bkg.region("B"), bkg.region("C"), bkg.region("D")
    if np.any(d_ <= 0) or np.any(b_ <= 0) or np.any(c_ <= 0):
        return nan
    pred = abcd_predict(b_, c_, d_, bkg.variance("B"), bkg.variance("C"), bkg.variance("D"))
    obs, obs_var = bkg.region("A"), bkg.variance("A")
    if obs.sum() <= 0:
        return nan
    delta = pred.value.sum() / obs.sum() - 1.0
    pull = abs(pred.value.sum() - obs.sum()) / np.sqrt(np.sum(pred.uncertainty**2) + obs_var.sum())
    denom = pred.uncertainty**2 + obs_var
    ok = denom > 0
    chi2 = float(np.sum((pred.value[ok] - obs[ok]) ** 2 / denom[ok]))
    pvalue = float(chi2_dist.sf(chi2, int(ok.sum())))
    sigma_b = np.sqrt(pred.uncertainty**2 + (delta * pred.value) ** 2)
    zs, r_max = [], 0.0
    b_pos = np.maximum(pred.value, 1e-9)
    for s in signals:
        z = asimov_significance(s.region("A"), b_pos, np.maximum(sigma_b, 1e-9))
        zs.append(float(np.sqrt(np.sum(np.asarray(z) ** 2))))
        sa, ba = s.region("A").sum(), obs.sum()
        if sa > 0:
            purity_a = sa / ba
            for r in ("B", "C", "D"):
                r_max = max(r_max, (s.region(r).sum() / bkg.region(r).sum()) / purity_a)
        else:
            r_max = np.inf
    return PointMetrics(x0, y0, float(np.mean(zs)) if zs else np.nan, pvalue, float(delta), float(pull), float(r_max))


@dataclass
class ScanResult:
    """The grid scan: the metrics at every point, the chosen working point (or None) and, if
    no point passes every rule, the rules no point passes and, when the plateau is the only
    such rule, ``relaxed``: the largest <Z> among the points that pass every other rule and
    the p-value rule at the point itself (:func:`choose_point`)."""

    grid: np.ndarray
    points: list[PointMetrics]
    chosen: PointMetrics | None
    failing_rules: list[str]
    relaxed: PointMetrics | None = None

    def table(self, name: str) -> np.ndarray:
        n = self.grid.size
        return np.array([getattr(p, name) for p in self.points], dtype=np.float64).reshape(n, n)

    def as_dict(self) -> dict[str, Any]:
        return {"grid": self.grid.tolist(), "chosen": self.chosen.as_dict() if self.chosen else None,
                "failing_rules": self.failing_rules,
                "relaxed": self.relaxed.as_dict() if self.relaxed else None,
                "n_pass": int(sum(all(p.passes.values()) for p in self.points))}


def grid_scan(x, y, mt, weight, is_signal, signal_id, wp: WorkingPoint, stats: Statistics) -> ScanResult:
    """The 33 x 33 scan of (x0, y0) in [0.1, 0.9]^2 on the signal-plane events given (module
    docstring). ``signal_id``: the signal point of each signal event (-1 for background)."""
    grid = np.linspace(wp.grid_low, wp.grid_high, wp.grid_points)
    bkg = ~np.asarray(is_signal, bool)
    ids = sorted(set(np.asarray(signal_id)[~bkg].tolist()))
    points = []
    for x0 in grid:
        for y0 in grid:
            tb = templates(x[bkg], y[bkg], mt[bkg], weight[bkg], x0, y0, stats.mt_edges)
            ts = [templates(x[signal_id == k], y[signal_id == k], mt[signal_id == k], weight[signal_id == k], x0, y0,
                            stats.mt_edges) for k in ids]
            points.append(point_metrics(tb, ts, float(x0), float(y0)))
    n = grid.size
    pv = np.array([p.pvalue for p in points]).reshape(n, n)
    good_p = np.nan_to_num(pv, nan=0.0) >= wp.min_chi2_pvalue
    for i in range(n):
        for j in range(n):
            p = points[i * n + j]
            nb = good_p[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
            p.plateau = bool(good_p[i, j] and nb.sum() - 1 >= min(wp.plateau_neighbours, nb.size - 1))
            p.passes = {
                "pvalue_plateau": p.plateau,
                "nonclosure": bool(abs(p.nonclosure) <= wp.max_nonclosure),
                "pull": bool(p.pull <= wp.max_pull),
                "signal_contamination": bool(p.r_max <= wp.max_signal_contamination),
                "finite": bool(np.isfinite(p.z_mean)),
            }
    return ScanResult(grid, points, *choose_point(points, wp))


def choose_point(points: list[PointMetrics], wp: WorkingPoint
                 ) -> tuple[PointMetrics | None, list[str], PointMetrics | None]:
    """(chosen, failing rules, relaxed) from points whose ``passes`` are set: the largest <Z>
    passing every rule; if none, the rules no point passes, and when that is the p-value
    plateau alone, the largest <Z> among the points passing every other rule with the p-value
    rule at the point itself (the plateau asks that the closure hold in the neighbourhood too;
    with the MC statistics of a small sample no 3 x 3 block may reach it while single points
    do; ``wp.relax_plateau`` False turns this off). No other rule is ever relaxed."""
    passing = [p for p in points if all(p.passes.values())]
    if passing:
        return max(passing, key=lambda p: p.z_mean), [], None
    failing = [r for r in points[0].passes if not any(p.passes[r] for p in points)] if points else []
    if not failing:
        return None, ["no point passes all rules at once (each rule alone is passed somewhere)"], None
    relaxed = None
    if failing == ["pvalue_plateau"] and wp.relax_plateau:
        pointwise = [p for p in points if np.nan_to_num(p.pvalue, nan=0.0) >= wp.min_chi2_pvalue
                     and all(v for r, v in p.passes.items() if r != "pvalue_plateau")]
        relaxed = max(pointwise, key=lambda p: p.z_mean) if pointwise else None
    return None, failing, relaxed


def closure(obs: Templates) -> dict[str, Any]:
    """Per-bin and total non-closure n_hat_A / n_A - 1 of templates with its statistical
    uncertainty (the control regions' and A's variances); bins with an empty control region
    have no prediction (NaN) and are left out of the total."""
    b, c, d = obs.region("B"), obs.region("C"), obs.region("D")
    ok = (b > 0) & (c > 0) & (d > 0)
    pred_v = np.full(b.size, np.nan)
    pred_u = np.full(b.size, np.nan)
    if ok.any():
        pred = abcd_predict(b[ok], c[ok], d[ok], obs.variance("B")[ok], obs.variance("C")[ok], obs.variance("D")[ok])
        pred_v[ok], pred_u[ok] = pred.value, pred.uncertainty
    a, va = obs.region("A"), obs.variance("A")
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = pred_v / a - 1.0
        unc = (pred_v / a) * np.sqrt((pred_u / pred_v) ** 2 + va / a**2)
        ok_a = ok & (a > 0)
        total = pred_v[ok_a].sum() / a[ok_a].sum() - 1.0
        total_unc = (pred_v[ok_a].sum() / a[ok_a].sum()) * np.sqrt(
            np.sum(pred_u[ok_a] ** 2) / pred_v[ok_a].sum() ** 2 + va[ok_a].sum() / a[ok_a].sum() ** 2)
    return {"delta": delta.tolist(), "delta_unc": unc.tolist(), "total": float(total), "total_unc": float(total_unc),
            "predicted": np.nan_to_num(pred_v).tolist(), "predicted_unc": np.nan_to_num(pred_u).tolist(),
            "observed": a.tolist()}


def pseudo_data(t: Templates, rng: np.random.Generator) -> Templates:
    """Poisson pseudo-data of the expected yields (variance = the counts)."""
    n = rng.poisson(t.values).astype(np.float64)
    return Templates(n, n.copy())


def nonclosure_systematics(sp_closure: dict[str, Any], vp_closure: dict[str, Any], floor: float) -> np.ndarray:
    """Relative per-bin non-closure uncertainty of the A background (docs/svj.md): the signal
    plane's MC closure per bin, max(|delta_i|, its statistical uncertainty, floor) (a bin
    without a prediction takes the plane's total), and, if the validation plane's total
    non-closure is significant (beyond twice its uncertainty), that added in quadrature."""
    d = np.asarray(sp_closure["delta"], np.float64)
    u = np.asarray(sp_closure["delta_unc"], np.float64)
    total = max(abs(sp_closure["total"]), sp_closure["total_unc"])
    per_bin = np.maximum(np.abs(d), u)
    per_bin = np.maximum(np.where(np.isfinite(per_bin), per_bin, total), floor)
    vp, vp_unc = vp_closure["total"], vp_closure["total_unc"]
    if np.isfinite(vp) and np.isfinite(vp_unc) and abs(vp) > 2.0 * vp_unc:
        per_bin = np.hypot(per_bin, vp)
    return per_bin


def limit_workspace(bkg: Templates, signal: Templates, nonclosure: np.ndarray) -> dict[str, Any]:
    """The combined S+B ABCD workspace of the signal plane: background-only Asimov data (the
    background MC) in A, B, C, D, the signal in all four regions with one mu, per-bin
    non-closure on the A background (:func:`analysis.stats.abcd.abcd_workspace`)."""
    return abcd_workspace(bkg.as_dict(), signal.as_dict(), nonclosure=nonclosure)
