"""From the smuon processor's output to the sensitivity (docs/smuon.md sec. 6): yields per
strategy, expected limits per point, luminosity and background uncertainty, contours, the
plot, the reach at m_chi = 0 and the benchmark comparison table.

Strategy families: ``nn`` (the better of the low- and high-mass networks' regions at each
point, by expected limit: two signal regions, as seed 002 sec. IV), ``static`` (the static
jet veto) and ``dynamic`` (the best of the six dynamic vetoes at each point).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.io import write_atomic
from analysis.smuon.config import SmuonConfig
from analysis.smuon.selection import dynamic_veto_names
from analysis.smuon.statistics import expected_s95, plot_exclusion, significance

FAMILIES = ("nn", "static", "dynamic")


def _points(datasets: Mapping[str, Mapping]) -> dict[str, tuple[float, float]]:
    return {ds: (float(m["m_smuon"]), float(m["m_neutralino"])) for ds, m in datasets.items()
            if m.get("process") == "smuon"}


def region_yields(output: Mapping) -> dict[str, dict[str, tuple[float, float]]]:
    """dataset -> region -> (sum of weights, sqrt of the sum of squared weights)."""
    h = output["histograms"]["sr_mt2"]
    filled = set(h.axes["dataset"])
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for ds in output["datasets"]:  # a dataset without a selected event is not on the axis
        out[ds] = {}
        for region in h.axes["region"]:
            v = h[{"dataset": ds, "region": region}].sum(flow=True) if ds in filled else None
            out[ds][region] = (0.0, 0.0) if v is None else (float(v.value), float(np.sqrt(v.variance)))
    return out


def families_of(config: SmuonConfig, regions) -> dict[str, list[str]]:
    return {"nn": [r for r in regions if r.startswith("nn_")], "static": ["static_veto"],
            "dynamic": [r for r in dynamic_veto_names(config.vetoes) if r in regions]}


def sensitivity(output: Mapping, config: SmuonConfig, out: Path, workers: int = 1) -> dict[str, Any]:
    """Expected limits for every point, strategy, luminosity and uncertainty; writes
    sensitivity.json and exclusion.png into ``out``; returns what it wrote plus the reach."""
    datasets = output["datasets"]
    points = _points(datasets)
    yields = region_yields(output)
    regions = list(next(iter(yields.values())))
    backgrounds = [ds for ds in yields if ds not in points]
    ref_lumi = config.lumi_fb[next(iter(config.lumi_fb))]
    sens = config.sensitivity
    b_ref = {r: sum(yields[ds][r][0] for ds in backgrounds) for r in regions}
    b_stat = {r: float(np.sqrt(sum(yields[ds][r][1] ** 2 for ds in backgrounds))) for r in regions}
    # the smallest simulated background weight bounds an empty region from above (one event)
    floor = min((yields[ds][r][1] for ds in backgrounds for r in regions if yields[ds][r][1] > 0), default=1e-3)
    s95: dict[str, dict[str, dict[str, float]]] = {}
    for lumi in sens.luminosities_fb:
        scale = lumi / ref_lumi
        s95[f"{lumi:g}"] = {}
        for unc in sens.background_uncertainties:
            s95[f"{lumi:g}"][f"{unc:g}"] = {r: expected_s95(max(b_ref[r], floor) * scale, unc, sens.cls_level)["median"]
                                             for r in regions}
    fams = families_of(config, regions)
    names = sorted(points, key=lambda d: points[d])
    mu_up: dict[str, dict[str, dict[str, dict]]] = {}
    for lumi_key, by_unc in s95.items():
        scale = float(lumi_key) / ref_lumi
        mu_up[lumi_key] = {}
        for unc_key, limits in by_unc.items():
            per_family = {}
            for fam, regs in fams.items():
                if not regs:
                    continue
                best, which = [], []
                for ds in names:
                    cands = {r: limits[r] / (yields[ds][r][0] * scale) if yields[ds][r][0] > 0 else np.inf for r in regs}
                    r = min(cands, key=cands.get)
                    best.append(cands[r])
                    which.append(r)
                per_family[fam] = {"mu_up": best, "region": which}
            mu_up[lumi_key][unc_key] = per_family
    pts = [points[d] for d in names]
    reach = {lk: {_unc_label(uk): {f: _reach(pts, v[f]["mu_up"]) if f in v else None for f in FAMILIES}
                  for uk, v in by.items()} for lk, by in mu_up.items()}
    result = {"points": {d: list(points[d]) for d in names}, "regions": regions,
              "background": {r: [b_ref[r], b_stat[r]] for r in regions},
              "backgrounds": {ds: {r: yields[ds][r][0] for r in regions} for ds in backgrounds},
              "signal": {d: {r: yields[d][r][0] for r in regions} for d in names},
              "s95": s95, "mu_up": mu_up, "reach": reach, "reference_lumi_fb": ref_lumi,
              "method": "one-bin counting experiment per region; expected CLs (pyhf asymptotic, qtilde); "
                        "mu_up = S95 / s (docs/smuon.md sec. 6)"}
    write_atomic(out / "sensitivity.json", json.dumps(result, indent=1, default=float))
    plot_data = {f"{lk}": {_unc_label(uk): {f: np.asarray(v[f]["mu_up"]) for f in v} for uk, v in by.items()}
                 for lk, by in mu_up.items()}
    plot_exclusion(pts, plot_data, out / "exclusion.png")
    return result


def _unc_label(unc_key: str) -> str:
    return "optimistic" if float(unc_key) == 0 else f"pessimistic ({float(unc_key):.0%})"


def _reach(points, mu_up) -> float | None:
    """The largest m_smuon excluded (mu_up < 1) at m_chi = 0: the last crossing from excluded to
    not excluded along the m_chi = 0 line, log(mu_up) interpolated linearly between its points;
    the line's last mass if that is still excluded (a lower bound); None if no point is."""
    line = sorted((m, mu) for (m, x), mu in zip(points, mu_up, strict=True) if x == 0.0)
    if not line:
        return None
    ms = np.array([m for m, _ in line])
    lmu = np.log(np.clip(np.array([mu for _, mu in line], np.float64), 1e-6, 1e6))
    excluded = np.nonzero(lmu < 0)[0]
    if excluded.size == 0:
        return None
    i = int(excluded[-1])
    if i == ms.size - 1:
        return float(ms[-1])
    return float(ms[i] + (ms[i + 1] - ms[i]) * (0 - lmu[i]) / (lmu[i + 1] - lmu[i]))


def comparison_rows(result: Mapping, benchmarks, background_unc: float | None = None) -> list[dict[str, Any]]:
    """Per benchmark point (``benchmarks``: (m_smuon, m_neutralino) pairs) at the reference luminosity: s, b (with its MC statistical
    uncertainty) and the expected significance (optimistic and pessimistic) of the best region
    of each family (by optimistic expected limit), and which family has the best limit."""
    points = {tuple(v): d for d, v in result["points"].items()}
    ref = f"{result['reference_lumi_fb']:g}"
    by_unc = result["mu_up"][ref]
    opt = next(iter(by_unc))
    pess = list(by_unc)[-1]
    unc = float(pess) if background_unc is None else float(background_unc)
    rows = []
    names = list(result["points"])
    for point in benchmarks:
        point = tuple(float(x) for x in point)
        ds = points.get(point)
        if ds is None:
            continue
        i = names.index(ds)
        row: dict[str, Any] = {"m_smuon": point[0], "m_neutralino": point[1], "dataset": ds}
        best = {}
        for fam in FAMILIES:
            if fam not in by_unc[opt]:
                row[fam] = {"s": 0.0, "b": float("nan"), "z": 0.0, "z_pessimistic": 0.0, "mu_up": None, "region": None}
                continue
            region = by_unc[opt][fam]["region"][i]
            s = result["signal"][ds][region]
            b, b_stat = result["background"][region]
            bb = max(b, 1e-3)
            row[fam] = {"region": region, "s": s, "b": b, "b_mc_stat": b_stat, "z": significance(s, bb, 0.0),
                        "z_pessimistic": significance(s, bb, unc), "mu_up": by_unc[opt][fam]["mu_up"][i],
                        "mu_up_pessimistic": by_unc[pess][fam]["mu_up"][i]}
            best[fam] = by_unc[opt][fam]["mu_up"][i]
        row["best"] = min(best, key=best.get) if best else ""
        rows.append(row)
    return rows


def cutflow_table(output: Mapping) -> dict[str, dict[str, list[float]]]:
    """dataset -> step -> [events, weighted] (the preselection's cutflow at the reference luminosity)."""
    return {ds: {k: [v["events"], v["weighted"]] for k, v in flow.items()} for ds, flow in output["cutflow"].items()}
