"""Closure of Rebalance and Smear on simulated QCD (docs/physics.md sec. 8; seed 004 sec. 3.2, 4, Fig. 2, 4).

Generates two independent QCD samples with the toy generator (seed S: templates, seed S + 1:
prediction), builds the response templates and priors from the first, rebalances and smears
the second (--n-smear times, weight 1/n) and compares the prediction with the direct
simulation of the same events after the same selection code. Writes DIR/closure.json:

  {"baseline": {"ratio", "uncertainty", "predicted", "simulated"},
   "bins": {"mht" | "min_dphi" | "n_jets" | "ht": [{"edges", "predicted", "predicted_unc",
            "simulated", "simulated_unc", "ratio"}, ...]},
   "response": seed 004 Fig. 2 numbers, "systematics": coreUp/tailUp baseline predictions,
   "counters": rebalancing and smearing counters, "config": the run's settings}

for the seed-004 baseline (pre-selection of sec. 3.2.1 and hard MHT > 250 GeV, sec. 3.2.2);
the prediction's uncertainty is the bootstrap standard deviation over seed subsets (sec. 2.2,
4 item 1) added in quadrature to the templates' statistical uncertainty (the spread of the
prediction made with --template-replicas Poisson-bootstrap replicas of the template sample),
the simulation's sqrt(sum w^2); the baseline ratio's uncertainty combines both. Added keys:
"uncertainty_split" (bootstrap and template parts per bin and for the baseline), "verdict"
(issue 7 acceptance: |ratio - 1| < 20% and within 2 sigma; per-bin pulls), "baseline_details".
Plots like seed 004 Fig. 4 (closure_<obs>.png) and Fig. 2 (response_rebalanced.png) go to DIR.

Example (about 1.5 minutes on 2 cores):
  python run.py rs-closure --events 40000 --seed 1 --out outputs/rs_closure
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from analysis.io import atomic_output, write_atomic
from analysis.rs.defaults import RS_N_BOOTSTRAP, RS_N_SMEAR, RS_N_TEMPLATE_REPLICAS
from analysis.softtrack.config import (
    RS_CLOSURE_BINS,
    RS_CLOSURE_ERA,
    RS_CLOSURE_EVENTS,
    RS_CLOSURE_TOLERANCE,
    RS_FIG2_CORE_WINDOW,
)

NAME = "rs-closure"
HELP = "R&S closure on simulated QCD: templates, prediction, comparison, plots (closure.json)"
OBS_LABELS = {"mht": r"hard $H_T^{miss}$ [GeV]", "min_dphi": r"min $\Delta\phi(p_T^{miss}, j_{1-4})$",
              "n_jets": r"$N_{jets}$", "ht": r"$H_T$ [GeV]"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=RS_CLOSURE_EVENTS,
                   help=f"QCD events in each of the two parts (default {RS_CLOSURE_EVENTS})")
    p.add_argument("--seed", type=int, default=1, help="generator seed S (templates S, prediction S+1; default 1)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--era", default=RS_CLOSURE_ERA, help=f"era (default {RS_CLOSURE_ERA})")
    p.add_argument("--n-smear", type=int, default=RS_N_SMEAR, help=f"smearings per seed (default {RS_N_SMEAR})")
    p.add_argument("--n-bootstrap", type=int, default=RS_N_BOOTSTRAP, help=f"bootstrap replicas (default {RS_N_BOOTSTRAP})")
    p.add_argument("--template-replicas", type=int, default=RS_N_TEMPLATE_REPLICAS,
                   help=f"bootstrap replicas of the templates for their stat. uncertainty (0: none; "
                        f"default {RS_N_TEMPLATE_REPLICAS})")
    p.add_argument("--executor", default="futures", choices=("futures", "iterative", "dask"), help="default futures")
    p.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    p.add_argument("--chunksize", type=int, default=20_000, help="events per chunk (default 20000)")
    p.add_argument("--no-plots", action="store_true", help="write closure.json only")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _ratio(a: float, sa: float, b: float, sb: float) -> tuple[float | None, float | None]:
    if b <= 0 or a <= 0:
        return (a / b if b > 0 else None), None
    r = a / b
    return r, r * float(np.hypot(sa / a, sb / b))


def summarize(output: dict, dataset: str) -> dict:
    """closure.json content from the prediction output (seed-004 baseline region)."""
    from analysis.rs import closure_bins, response_summary
    from processors.softtrack.rs import PREDICTION_SUFFIX

    h = output["histograms"]
    pred_ds = dataset + PREDICTION_SUFFIX
    region = "seed004"
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


def predicted_yields(output: dict, dataset: str) -> dict:
    """Nominal R&S prediction in the seed-004 baseline: per closure bin of each observable and
    the total (overflow included), from a prediction output."""
    from processors.softtrack.rs import PREDICTION_SUFFIX

    h = output["histograms"]
    sel = {"dataset": dataset + PREDICTION_SUFFIX, "region": "seed004", "systematic": "nominal"}
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

    from processors.softtrack.rs import PREDICTION_SUFFIX

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


def run_closure(out: Path, events: int, seed: int, era: str = RS_CLOSURE_ERA, n_smear: int = RS_N_SMEAR,
                n_bootstrap: int = RS_N_BOOTSTRAP, opts=None, plots: bool = True, log=print,
                template_replicas: int = RS_N_TEMPLATE_REPLICAS) -> dict:
    """The whole closure; returns the closure.json content (also written to ``out``).

    With ``template_replicas`` > 0 the prediction is repeated (nominal response only) with that
    many bootstrap replicas of the templates and priors, and their spread is added to the
    prediction's uncertainty (:func:`add_template_uncertainty`)."""
    from dataclasses import replace

    from analysis.errors import ConfigError
    from analysis.toymc.writer import generate_samples
    from processors.output import save_output
    from processors.runner import RunOptions

    from .rs_predict import predict
    from .rs_templates import build

    if events <= 0:
        raise ConfigError(f"--events must be positive, got {events}")
    if template_replicas < 0 or template_replicas == 1:
        raise ConfigError(f"template replicas must be 0 or >= 2 (a spread), got {template_replicas}")
    opts = opts or RunOptions()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = {}
    for name, s in (("templates", seed), ("prediction", seed + 1)):
        parts[name] = generate_samples(out / f"sample_{name}", [era], ["qcd"], [], events, s)
        log(f"generated {events} QCD events ({name}, seed {s}) in {time.perf_counter() - t0:.0f} s")
    tfile = out / "rs_templates.json.gz"
    tsum = build(parts["templates"], tfile, opts, replicas=template_replicas)
    log(f"templates from {tsum['template_pairs']} jet pairs and {tsum['template_lost_jets']} lost jets "
        f"-> {tfile} ({time.perf_counter() - t0:.0f} s)")
    output = predict(parts["prediction"], opts, rs_templates=str(tfile), rs_seed=seed, rs_n_smear=n_smear,
                     rs_n_bootstrap=n_bootstrap, rs_direct=True)
    save_output(output, out / "prediction.coffea")
    log(f"prediction done ({time.perf_counter() - t0:.0f} s)")
    dataset = f"qcd_{era}"
    result = summarize(output, dataset)
    if tsum["replica_files"]:
        ropts = replace(opts, systematics=False)
        reps = [predicted_yields(predict(parts["prediction"], ropts, rs_templates=f, rs_seed=seed,
                                         rs_n_smear=n_smear, rs_n_bootstrap=2, rs_direct=False), dataset)
                for f in tsum["replica_files"]]
        add_template_uncertainty(result, reps)
        log(f"{len(reps)} template replicas done ({time.perf_counter() - t0:.0f} s)")
    result["verdict"] = closure_verdict(result)
    result["config"] = {"events_per_part": events, "seed": seed, "era": era, "n_smear": n_smear,
                        "n_bootstrap": n_bootstrap, "template_replicas": len(tsum["replica_files"]),
                        "template_pairs": tsum["template_pairs"], "template_lost_jets": tsum["template_lost_jets"],
                        "seconds": round(time.perf_counter() - t0, 1)}
    write_atomic(out / "closure.json", json.dumps(result, indent=1))
    if plots:
        plot(result, output, dataset, out)
    return result


def main(args) -> int:
    from processors.runner import RunOptions


    opts = RunOptions(executor=args.executor, workers=args.workers, chunksize=args.chunksize,
                      status=not args.quiet, systematics=True)
    log = (lambda *a: None) if args.quiet else print
    res = run_closure(args.out, args.events, args.seed, args.era, args.n_smear, args.n_bootstrap, opts,
                      plots=not args.no_plots, log=log, template_replicas=args.template_replicas)
    b = res["baseline"]
    d = res["baseline_details"]
    print(f"seed-004 baseline (hard MHT > 250 GeV): predicted {b['predicted']:.4g} +- {d['predicted_unc']:.2g}, "
          f"simulated {b['simulated']:.4g} +- {d['simulated_unc']:.2g} ({d['simulated_events']} events), "
          f"ratio {b['ratio']:.3f} +- {b['uncertainty']:.3f}" if b["ratio"] is not None and b["uncertainty"] is not None
          else f"seed-004 baseline: predicted {b['predicted']}, simulated {b['simulated']} (no ratio)")
    print(f"wrote {args.out / 'closure.json'}")
    return 0
