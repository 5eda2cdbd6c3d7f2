"""Closure of Rebalance and Smear on a prediction output (docs/physics.md sec. 8; seed 004
sec. 3.2, 4, Fig. 2, 4): the closure numbers (:func:`summarize`) in the seed-004 baseline,
the templates' statistical uncertainty from replica predictions
(:func:`add_template_uncertainty`), the verdict and the closure plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.io import atomic_output
from analysis.rs import closure_bins, response_summary
from analysis.softtrack.config import RS_CLOSURE_BINS, RS_CLOSURE_TOLERANCE, RS_FIG2_CORE_WINDOW

from .rs import PREDICTION_SUFFIX

OBS_LABELS = {"mht": r"hard $H_T^{miss}$ [GeV]", "min_dphi": r"min $\Delta\phi(p_T^{miss}, j_{1-4})$",
              "n_jets": r"$N_{jets}$", "ht": r"$H_T$ [GeV]"}


def _ratio(a: float, sa: float, b: float, sb: float) -> tuple[float | None, float | None]:
    if b <= 0 or a <= 0:
        return (a / b if b > 0 else None), None
    r = a / b
    return r, r * float(np.hypot(sa / a, sb / b))


def summarize(output: dict, dataset: str, region: str = "seed004") -> dict:
    """closure.json content from the prediction output in ``region``: "seed004" (the seed-004
    baseline, the default) or "baseline" (the search baseline)."""
    h = output["histograms"]
    pred_ds = dataset + PREDICTION_SUFFIX
    result: dict = {"bins": {}}
    for obs in RS_CLOSURE_BINS:
        hh = h[f"rs_{obs}"]
        p = hh[{"dataset": pred_ds, "region": region, "systematic": "nominal"}]
        s = hh[{"dataset": dataset, "region": region, "systematic": "nominal"}]
        boot = h[f"rs_bootstrap_{obs}"][{"dataset": pred_ds, "region": region}].values(flow=True)
        edges = p.axes[0].edges
        result["bins"][obs] = closure_bins(p.values(), boot[:, 1:-1].std(0, ddof=1), s.values(),
                                           np.sqrt(s.variances()), edges)
        if obs == "mht":  # baseline: every event of the region (MHT > 250 GeV), overflow included
            pv, sv = float(p.values(flow=True).sum()), float(s.values(flow=True).sum())
            pu = float(boot.sum(1).std(ddof=1))
            su = float(np.sqrt(s.variances(flow=True).sum()))
            r, ru = _ratio(pv, pu, sv, su)
            result["baseline"] = {"ratio": r, "uncertainty": ru, "predicted": pv, "simulated": sv}
            w2 = s.variances(flow=True).sum()
            extra = {
                "predicted_unc": pu, "simulated_unc": su,
                "simulated_events": int(round(sv * sv / w2)) if w2 > 0 else 0,
                "systematics": {},
            }
            for syst in ("coreUp", "tailUp"):
                if syst in hh.axes["systematic"]:
                    v = float(hh[{"dataset": pred_ds, "region": region, "systematic": syst}].values(flow=True).sum())
                    extra["systematics"][syst] = {"predicted": v, "relative": v / pv - 1.0 if pv > 0 else None}
    result = {"baseline": result["baseline"], "bins": result["bins"]}
    resp = h["rs_response"]
    response = {}
    for jet in ("leading", "subleading"):
        for kind in ("reco", "rebalanced"):
            hr = resp[{"dataset": pred_ds, "jet": jet, "kind": kind}]
            response[f"{jet}_{kind}"] = response_summary(hr.values(), hr.axes[0].edges, RS_FIG2_CORE_WINDOW)
    counters = h["rs_counters"]
    cnt = {}
    for syst in counters.axes["systematic"]:
        c = counters[{"dataset": pred_ds, "systematic": syst}]
        cnt[syst] = {k: int(c[{"counter": k}]) for k in counters.axes["counter"]}
    result["response"] = response
    result["baseline_details"] = extra
    result["counters"] = cnt
    return result


def predicted_yields(output: dict, dataset: str, region: str = "seed004", systematic: str = "nominal") -> dict:
    """R&S prediction in ``region`` (as :func:`summarize`; default the seed-004 baseline) for
    ``systematic`` (default the nominal one; a template replica's,
    ``RSPredictionProcessor.REPLICA.format(k)``): per closure bin of each observable and the
    total (overflow included), from a prediction output."""
    h = output["histograms"]
    sel = {"dataset": dataset + PREDICTION_SUFFIX, "region": region, "systematic": systematic}
    out = {obs: h[f"rs_{obs}"][sel].values() for obs in RS_CLOSURE_BINS}
    out["baseline"] = float(h["rs_mht"][sel].values(flow=True).sum())
    return out


def add_template_uncertainty(result: dict, replicas: list[dict]) -> None:
    """Fold the templates' statistical uncertainty into ``result`` (in place).

    ``replicas`` are :func:`predicted_yields` of predictions made with Poisson-bootstrap
    replicas of the template sample (same seeds and random streams as the nominal one); their
    standard deviation is the template statistical uncertainty. It is added in quadrature to
    the seed bootstrap (``predicted_unc`` of each bin and of the baseline, and the baseline
    ratio's uncertainty); both parts are kept under ``uncertainty_split``."""
    split: dict = {"n_template_replicas": len(replicas), "bins": {}}
    for obs, bins in result["bins"].items():
        t = np.std([r[obs] for r in replicas], axis=0, ddof=1)
        split["bins"][obs] = []
        for b, tu in zip(bins, t, strict=True):
            split["bins"][obs].append({"bootstrap": b["predicted_unc"], "templates": float(tu)})
            b["predicted_unc"] = float(np.hypot(b["predicted_unc"], tu))
    base, det = result["baseline"], result["baseline_details"]
    tu = float(np.std([r["baseline"] for r in replicas], ddof=1))
    split["baseline"] = {"bootstrap": det["predicted_unc"], "templates": tu}
    det["predicted_unc"] = float(np.hypot(det["predicted_unc"], tu))
    r, ru = _ratio(base["predicted"], det["predicted_unc"], base["simulated"], det["simulated_unc"])
    base["ratio"], base["uncertainty"] = r, ru
    result["uncertainty_split"] = split


def closure_verdict(result: dict, tolerance: float = RS_CLOSURE_TOLERANCE) -> dict:
    """Issue 7 acceptance on the baseline: |ratio - 1| < tolerance and consistent with 1 within
    2 standard deviations; per bin the pull (ratio - 1) / uncertainty where defined."""
    b = result["baseline"]
    pull = (b["ratio"] - 1.0) / b["uncertainty"] if b["ratio"] is not None and b["uncertainty"] else None
    out = {"tolerance": tolerance, "baseline_pull": pull,
           "baseline_within_tolerance": b["ratio"] is not None and abs(b["ratio"] - 1.0) < tolerance,
           "baseline_consistent": pull is not None and abs(pull) < 2.0, "bin_pulls": {}}
    for obs, bins in result["bins"].items():
        pulls = []
        for e in bins:
            p, s = e["predicted"], e["simulated"]
            unc = float(np.hypot(e["predicted_unc"], e["simulated_unc"]))
            pulls.append((p - s) / unc if unc > 0 else None)
        out["bin_pulls"][obs] = pulls
    return out


def plot(result: dict, output: dict, dataset: str, out: Path) -> list[Path]:
    """Seed 004 Fig. 4-style closure plots and the Fig. 2 response plot; returns the PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    plt.style.use(hep.style.CMS)
    files = []
    for obs, bins in result["bins"].items():
        edges = np.array([b["edges"][0] for b in bins] + [bins[-1]["edges"][1]])
        p = np.array([b["predicted"] for b in bins])
        pu = np.array([b["predicted_unc"] for b in bins])
        s = np.array([b["simulated"] for b in bins])
        su = np.array([b["simulated_unc"] for b in bins])
        fig, (ax, rax) = plt.subplots(2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        hep.histplot(p, edges, ax=ax, histtype="fill", color="#3fc1c9", alpha=0.8, label="R&S prediction")
        ax.fill_between(edges, np.r_[p - pu, p[-1] - pu[-1]], np.r_[p + pu, p[-1] + pu[-1]], step="post",
                        hatch="///", facecolor="none", edgecolor="k", linewidth=0, label="stat. unc. (seeds, templates)")
        centers = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centers, s, yerr=su, fmt="o", color="k", label="QCD (simulated)")
        ax.set_yscale("log")
        ax.set_ylabel("Events")
        ax.legend(fontsize=14)
        ax.set_title(f"R&S closure, seed-004 baseline ({dataset})", fontsize=14)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(s > 0, p / s, np.nan)
            ru = r * np.hypot(np.where(p > 0, pu / p, 0), np.where(s > 0, su / s, 0))
        rax.errorbar(centers, r, yerr=ru, xerr=0.5 * np.diff(edges), fmt="o", color="k")
        rax.axhline(1.0, color="gray", ls="--")
        rax.set_ylim(0, 2)
        rax.set_ylabel("R&S / sim.")
        rax.set_xlabel(OBS_LABELS.get(obs, obs))
        path = out / f"closure_{obs}.png"
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=80, bbox_inches="tight")
        plt.close(fig)
        files.append(path)
    resp = output["histograms"]["rs_response"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    for ax, jet in zip(axes, ("leading", "subleading"), strict=True):
        for kind, color, label in (("reco", "tab:red", "reco jets"), ("rebalanced", "k", "rebalanced reco jets")):
            hr = resp[{"dataset": dataset + PREDICTION_SUFFIX, "jet": jet, "kind": kind}]
            v = hr.values()
            hep.histplot(v / max(v.sum(), 1e-30), hr.axes[0].edges, ax=ax, color=color, label=label)
        ax.set_xlabel(r"$p_T / p_T^{gen}$")
        ax.set_ylabel("normalized")
        ax.set_title(f"{jet} jet, seed hard $H_T^{{miss}}$ > 200 GeV", fontsize=14)
        ax.legend(fontsize=14)
    path = out / "response_rebalanced.png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight")
    plt.close(fig)
    files.append(path)
    return files
