"""The main job's report against truth: every quantity it derives next to the value the
sample was made with, and the pull (docs/physics.md sec. 5-9).

The injected values come from whoever made the sample (for the toy generator the main job
passes :data:`analysis.toymc.truth.PSEUDO_DATA`'s numbers; a real sample has none, and the
rows then carry only the derived values). Each row is a dict::

    {"quantity", "era", "derived", "uncertainty", "injected", "pull", "note"}

with ``pull = (derived - injected) / uncertainty`` where both exist. Rows without an
injected value (signal-region MC statistics, expected limits, refiner distances) say in
``note`` what they are compared with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.signal_models import SIGNAL_BENCHMARKS
from analysis.stats.workspace import parse_signal_point

#: the relative MC statistical uncertainty a signal region's background should not exceed
SR_MC_STAT_TARGET = 0.30


@dataclass(frozen=True)
class Injected:
    """What the sample was made with (None: unknown, e.g. real data)."""

    pv_track_sf: float | None = None
    spurious_track_sf: float | None = None
    #: data/simulation p_T^miss ratio 1 + slope (MET - pivot) above ``met_slope_pivot`` (GeV)
    met_slope_per_gev: float | None = None
    met_slope_pivot: float | None = None
    #: R&S predicts QCD: predicted / simulated is 1 by construction of the closure test
    rs_closure: float = 1.0


def _row(quantity: str, era: str | None, derived, uncertainty=None, injected=None, note: str = "") -> dict:
    derived = None if derived is None else float(derived)
    uncertainty = None if uncertainty is None else float(uncertainty)
    pull = None
    if derived is not None and injected is not None and uncertainty:
        pull = (derived - injected) / uncertainty
    return {"quantity": quantity, "era": era, "derived": derived, "uncertainty": uncertainty,
            "injected": injected, "pull": pull, "note": note}


def track_class_rows(track_class_sf: Mapping[str, Mapping[str, Any]], injected: Injected) -> list[dict]:
    """Track-class scale factors per era (cleaned Drell-Yan fit) against the injected rates."""
    truth = {"pv": injected.pv_track_sf, "spurious": injected.spurious_track_sf}
    return [_row(f"track-class SF {cls}", era, *track_class_sf[era][cls], injected=truth[cls])
            for era in sorted(track_class_sf) for cls in ("pv", "spurious")]


def met_weight_rows(met_fits: Mapping[str, Any], injected: Injected) -> list[dict]:
    """met_weight line fits per era: slope (per GeV) and the ratio at the fit's pivot, against
    the injected slope and the injected ratio there (the fitted ratio also absorbs the overall
    data/simulation normalization of the region, which the injected line does not know)."""
    rows = []
    for era in sorted(met_fits):
        fit = met_fits[era]
        rows.append(_row("met_weight slope /GeV", era, fit.p1, fit.err_p1, injected.met_slope_per_gev))
        at_pivot = None
        if injected.met_slope_per_gev is not None and injected.met_slope_pivot is not None:
            at_pivot = 1.0 + injected.met_slope_per_gev * max(fit.pivot - injected.met_slope_pivot, 0.0)
        rows.append(_row(f"met_weight at {fit.pivot:.0f} GeV", era, fit.p0, fit.err_p0, at_pivot,
                         "incl. the region's normalization"))
    return rows


def pileup_rows(output: dict) -> list[dict]:
    """Mean number of reconstructed vertices, data / pileup-weighted simulation, per era (the
    ``n_pv`` histogram of a corrected output): 1 if the pileup weights are right (the
    generator's true profiles weight simulation to the pseudo-data's, thesis sec. 6.2.1)."""
    h = output["histograms"].get("n_pv")
    if h is None:
        return []
    meta = output["datasets"]
    centres = np.asarray(h.axes["n_pv"].centers)
    rows = []
    for era in sorted({str(m["era"]) for d, m in meta.items() if d in h.axes["dataset"]}):
        means = {}
        for is_data in (True, False):
            ds = [d for d in h.axes["dataset"] if d in meta and str(meta[d]["era"]) == era
                  and bool(meta[d]["is_data"]) == is_data and meta[d]["process"] != "signal"]
            if not ds:
                break
            v = sum(h[{"dataset": d, "systematic": "nominal"}].values() for d in ds)
            w2 = sum(h[{"dataset": d, "systematic": "nominal"}].variances() for d in ds)
            if v.sum() <= 0:
                break
            mean = float(v @ centres / v.sum())
            # variance of a weighted mean: sum w^2 (x - mean)^2 / (sum w)^2
            means[is_data] = (mean, float(np.sqrt(w2 @ (centres - mean) ** 2) / v.sum()))
        if len(means) == 2:
            (md, ud), (ms, us) = means[True], means[False]
            r = md / ms
            rows.append(_row("<n_pv> data / pileup-weighted MC", era, r, r * np.hypot(ud / md, us / ms), 1.0,
                             f"data {md:.2f}, MC {ms:.2f}"))
    return rows


def ptz_rows(ptz_fits: Mapping[str, Any]) -> list[dict]:
    """pT(Z) weights per era and bin. No injected value: they are the ratio of two simulated
    generator spectra (Z -> nu nu over Drell-Yan) after their selections, which the toy does
    not mis-model; listed with their uncertainties for the record."""
    rows = []
    for era in sorted(ptz_fits):
        f = ptz_fits[era]
        for lo, hi, w, u in zip(f.edges[:-1], f.edges[1:], f.weights, f.unc, strict=True):
            rows.append(_row(f"pT(Z) weight [{lo:g}, {hi:g}) GeV", era, w, u, note="Z->nunu / DY simulation"))
    return rows


def rs_rows(closure: Mapping[str, Mapping[str, Any]], baseline: str, injected: Injected) -> list[dict]:
    """R&S predicted / simulated QCD per era in a baseline."""
    rows = []
    for dataset in sorted(closure):
        c = closure[dataset]
        era = dataset.rsplit("_", 1)[-1]
        note = c.get("error", "")
        if not note:
            split = c.get("uncertainty_split")
            note = ("uncertainty: seed bootstrap, simulated QCD statistics and "
                    f"{split['n_template_replicas']} template replicas" if split else
                    "uncertainty: seed bootstrap and simulated QCD statistics (no template replicas)")
        rows.append(_row(f"R&S closure, {baseline}", era, c.get("ratio"), c.get("uncertainty"),
                         injected.rs_closure, note))
    return rows


def sr_mc_stat_rows(signal_output: dict, target: float = SR_MC_STAT_TARGET) -> list[dict]:
    """Relative MC statistical uncertainty sqrt(sum w^2) / sum w of the simulated background
    in each signal region (nominal), summed over eras and processes."""
    h = signal_output["histograms"].get("sr")
    if h is None:
        return []
    meta = signal_output["datasets"]
    background = [d for d in h.axes["dataset"]
                  if d in meta and not meta[d]["is_data"] and meta[d]["process"] != "signal"]
    values = np.zeros(h.axes["sr"].size)
    variances = np.zeros_like(values)
    for d in background:
        sel = h[{"dataset": d, "systematic": "nominal"}]
        values += sel.values()
        variances += sel.variances()
    rows = []
    for i, (v, w2) in enumerate(zip(values, variances, strict=True)):
        rel = float(np.sqrt(w2) / v) if v > 0 else None
        ok = rel is not None and rel <= target
        rows.append(_row(f"SR {i} bkg MC stat. (rel.)", None, rel,
                         note=f"bkg {v:.3g} ev.; <= {target:g} {'met' if ok else 'NOT met'}"))
    return rows


def limit_rows(limits: Mapping[str, Any] | None) -> list[dict]:
    """Expected median mu_up at the benchmark points (no injected value: the sample is blinded)."""
    if not limits:
        return []
    points = {}
    for name in limits["signals"]:
        try:
            points[parse_signal_point(name, "signal_")] = name
        except Exception:  # noqa: BLE001,S112 - not a signal point name: not a benchmark
            continue
    rows = []
    for m, dm in SIGNAL_BENCHMARKS:
        name = next((n for (pm, pdm), n in points.items() if np.isclose(pm, m) and np.isclose(pdm, dm)), None)
        if name is not None:
            e = limits["signals"][name]["expected"]
            rows.append(_row(f"exp. mu_up m{m:g} dm{dm:g}", None, e[2], note=f"-1s {e[1]:.3g}, +1s {e[3]:.3g}"))
    return rows


def refiner_rows(refiner_metrics: Mapping[str, Any] | None) -> list[dict]:
    """Held-out 1D Wasserstein distances (log10) of the shipped refiner, before and after."""
    if not refiner_metrics or "wasserstein_log10" not in refiner_metrics:
        return []
    rows = []
    for var, w in refiner_metrics["wasserstein_log10"].items():
        better = w["refined"] < w["simulation"]
        rows.append(_row(f"refiner W1 log10 {var}", None, w["refined"],
                         note=f"unrefined {w['simulation']:.3g}: {'lower' if better else 'NOT lower'}"))
    return rows


def truth_table(*, track_class_sf, met_fits, rs_closure: Mapping[str, Mapping[str, Any]], signal_output: dict,
                limits, refiner_metrics, injected: Injected, ptz_fits=None, pileup_output: dict | None = None) -> list[dict]:
    """All rows of the report (``rs_closure``: baseline name -> dataset -> closure;
    ``pileup_output``: a corrected output with ``n_pv``, e.g. the cleaned Drell-Yan one)."""
    rows = track_class_rows(track_class_sf, injected) + met_weight_rows(met_fits, injected)
    rows += ptz_rows(ptz_fits or {}) + (pileup_rows(pileup_output) if pileup_output is not None else [])
    for baseline, closure in rs_closure.items():
        rows += rs_rows(closure, baseline, injected)
    return rows + sr_mc_stat_rows(signal_output) + limit_rows(limits) + refiner_rows(refiner_metrics)
