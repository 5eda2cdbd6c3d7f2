"""The stages of the semi-visible-jet job over a processor output (docs/svj.md, "The job"):
the working-point scan, the closure and validation, the expected limits and the plots.

Everything uses the test split (the networks never saw it), its weights scaled by
1 / (test fraction) to the full luminosity, and the signal plane for the scan and the limits;
the validation plane checks the closure and gives the per-bin non-closure systematics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import YieldsError
from analysis.stats.abcd import signal_contamination
from analysis.svj.abcd import (
    Templates,
    closure,
    grid_scan,
    limit_workspace,
    nonclosure_systematics,
    pseudo_data,
    templates,
)
from analysis.svj.config import SVJConfig

#: boundary variations of the stability check (SVJ talk, "Applying the Working Point")
BOUNDARY_SHIFTS = (-0.05, -0.025, 0.025, 0.05)
#: pseudo-data replicas of the closure test
PSEUDO_DATA_REPLICAS = 200


def test_events(output: Mapping[str, Any], cfg: SVJConfig) -> dict[str, np.ndarray]:
    """The preselected test-split events of every dataset: X, Y, M_T, weight (scaled to the full
    luminosity), plane, signal flag, signal-point index (-1: background), dataset."""
    split = cfg.split
    scale = split.modulus / len(split.test)
    metas = output["datasets"]
    signals = sorted(d for d in output["columns"] if metas[d].get("process") == "svj")
    parts = []
    for d, chunks in sorted(output["columns"].items()):
        for c in chunks:
            m = c["preselected"] & np.isin(c["split"], split.test)
            if not m.any():
                continue
            sid = signals.index(d) if d in signals else -1
            parts.append({"x": c["x"][m], "y": c["y"][m], "mt": c["mt"][m], "weight": c["weight"][m] * scale,
                          "sp": c["signal_plane"][m], "signal": np.full(m.sum(), sid >= 0),
                          "signal_id": np.full(m.sum(), sid), "dataset": np.full(m.sum(), d)})
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["signal_names"] = np.array(signals)
    return out


def _templates(ev: dict, mask: np.ndarray, x0: float, y0: float, cfg: SVJConfig) -> Templates:
    return templates(ev["x"][mask], ev["y"][mask], ev["mt"][mask], ev["weight"][mask], x0, y0,
                     cfg.statistics.mt_edges)


def lundnet_auc(output: Mapping[str, Any], cfg: SVJConfig) -> dict[str, float]:
    """LundNet's ROC AUC per signal point from the processor's ONNX scores: the two leading jets
    of the test-split events with two AK8 jets and the trigger, against the QCD jets, unweighted."""
    from models.metrics import roc_auc

    metas = output["datasets"]

    def jets(d):
        return np.concatenate([np.concatenate([c["lundnet_j0"][np.isin(c["split"], cfg.split.test)],
                                               c["lundnet_j1"][np.isin(c["split"], cfg.split.test)]])
                               for c in output["columns"][d]])

    b = np.concatenate([jets(d) for d in output["columns"] if metas[d].get("process") == "qcd"])
    out = {}
    for d in sorted(output["columns"]):
        if metas[d].get("process") == "svj":
            s = jets(d)
            out[d] = roc_auc(np.concatenate([s, b]), np.concatenate([np.ones(s.size, bool), np.zeros(b.size, bool)]))
    return out


def point_label(metas: Mapping[str, Mapping], name: str) -> str:
    m = metas[name]
    return f"m_Zprime={m['m_zprime']:g} GeV, r_inv={m['r_inv']:g}"


def analyze(output: Mapping[str, Any], cfg: SVJConfig | None = None, seed: int = 1, limits: bool = True,
            log=print) -> dict[str, Any]:
    """Scan, working point, closure in SP and VP (MC and pseudo-data), stability, signal
    contamination and expected limits (module docstring). Returns the summary dict."""
    cfg = cfg or SVJConfig()
    ev = test_events(output, cfg)
    metas = output["datasets"]
    sp, bkg = ev["sp"], ~ev["signal"]
    scan = grid_scan(ev["x"][sp], ev["y"][sp], ev["mt"][sp], ev["weight"][sp], ev["signal"][sp],
                     ev["signal_id"][sp], cfg.working_point, cfg.statistics)
    if scan.chosen is not None:
        x0, y0, source = scan.chosen.x, scan.chosen.y, "scan"
    elif scan.relaxed is not None:
        # only the plateau fails everywhere: the best point passing the rest, said as such
        x0, y0, source = scan.relaxed.x, scan.relaxed.y, "scan without the plateau rule"
        log(f"no working point passes every rule (failing everywhere: {scan.failing_rules}); using "
            f"({x0:.3f}, {y0:.3f}), the largest <Z> passing every other rule with p >= "
            f"{cfg.working_point.min_chi2_pvalue:g} at the point itself")
    else:
        # no point passes every rule: the configured working point, and the note says why
        x0, y0, source = cfg.working_point.x, cfg.working_point.y, "configured"
        log(f"no working point passes every rule (failing: {scan.failing_rules}); using the configured "
            f"({x0}, {y0})")
    summary: dict[str, Any] = {"scan": scan.as_dict(), "working_point": {"x": x0, "y": y0, "source": source},
                               "mt_edges": list(cfg.statistics.mt_edges)}
    n = scan.grid.size
    at = scan.points[int(np.argmin(np.abs(scan.grid - x0))) * n + int(np.argmin(np.abs(scan.grid - y0)))]
    summary["wp_metrics"] = at.as_dict()
    # closure on the background MC and on Poisson pseudo-data, SP and VP
    rng = np.random.default_rng(seed)
    planes = {}
    for plane, pm in (("SP", sp), ("VP", ~sp)):
        t = _templates(ev, bkg & pm, x0, y0, cfg)
        mc = closure(t)
        replicas = np.array([closure(pseudo_data(t, rng))["total"] for _ in range(PSEUDO_DATA_REPLICAS)])
        finite = replicas[np.isfinite(replicas)]  # a replica with an empty control region has none
        planes[plane] = {"mc": mc, "templates": t.as_dict(),
                         "pseudo_data_total_mean": float(finite.mean()) if finite.size else np.nan,
                         "pseudo_data_total_std": float(finite.std()) if finite.size else np.nan,
                         "pseudo_data_replicas_with_prediction": int(finite.size)}
    summary["closure"] = planes
    # the SP closure of each background alone (a cancellation between them shows here)
    summary["closure_by_process"] = {}
    for proc in sorted({metas[d]["process"] for d in set(ev["dataset"][bkg].tolist())}):
        m = sp & bkg & np.isin(ev["dataset"], [d for d in metas if metas[d]["process"] == proc])
        c = closure(_templates(ev, m, x0, y0, cfg))
        summary["closure_by_process"][proc] = {"total": c["total"], "total_unc": c["total_unc"]}
    # stability under boundary variations (SP, background MC)
    summary["stability"] = {
        f"{axis}{shift:+.3f}": closure(_templates(ev, bkg & sp, x0 + (shift if axis == "x" else 0.0),
                                                  y0 + (shift if axis == "y" else 0.0), cfg))["total"]
        for axis in ("x", "y") for shift in BOUNDARY_SHIFTS}
    # signal contamination: the bias of the prediction of A with each signal injected at mu = 1
    t_sp = _templates(ev, bkg & sp, x0, y0, cfg)
    contamination = {}
    signal_templates = {}
    for k, name in enumerate(ev["signal_names"]):
        ts = _templates(ev, sp & (ev["signal_id"] == k), x0, y0, cfg)
        signal_templates[name] = ts
        c = signal_contamination(ts.as_dict(), t_sp.as_dict())
        sig_a, bkg_a = ts.region("A").sum(), t_sp.region("A").sum()
        total_bias = ((t_sp.region("B").sum() + ts.region("B").sum()) * (t_sp.region("C").sum() + ts.region("C").sum())
                      / (t_sp.region("D").sum() + ts.region("D").sum())) / (
            t_sp.region("B").sum() * t_sp.region("C").sum() / t_sp.region("D").sum()) - 1.0
        contamination[name] = {"s_A": float(sig_a), "b_A": float(bkg_a), "prediction_bias": float(total_bias),
                                "bias_per_bin": np.nan_to_num(c["bias"]).tolist()}
    summary["signal_contamination"] = contamination
    syst = nonclosure_systematics(planes["SP"]["mc"], planes["VP"]["mc"], cfg.statistics.nonclosure_floor)
    summary["nonclosure_systematic"] = syst.tolist()
    if limits:
        from analysis.stats.limits import upper_limit

        out = {}
        for name, ts in signal_templates.items():
            spec = limit_workspace(t_sp, ts, syst)
            m = metas[name]
            try:
                res = upper_limit(spec, level=cfg.statistics.cls_level)
            except (YieldsError, ValueError) as err:  # no limit (e.g. far too little signal)
                out[name] = {"m_zprime": m["m_zprime"], "r_inv": m["r_inv"], "expected": [np.nan] * 5,
                             "error": str(err).splitlines()[0], "xsec_pb": m["xsec_pb"]}
                log(f"  {point_label(metas, name)}: no limit ({out[name]['error']})")
                continue
            out[name] = {"m_zprime": m["m_zprime"], "r_inv": m["r_inv"], "expected": res.expected,
                         "observed_on_mc": res.observed, "xsec_pb": m["xsec_pb"]}
            log(f"  {point_label(metas, name)}: expected mu < {res.expected[2]:.3g} "
                f"[{res.expected[1]:.3g}, {res.expected[3]:.3g}]")
        summary["limits"] = out
    summary["_events"] = ev
    summary["_scan"] = scan
    summary["_signal_templates"] = signal_templates
    summary["_background_templates"] = t_sp
    return summary


def print_summary(summary: dict[str, Any], echo=print) -> None:
    """The WP metrics, the closure and the limits as short tables."""
    wp, m = summary["working_point"], summary["wp_metrics"]
    chosen = summary["scan"]["chosen"] is not None
    echo(f"working point (X, Y) = ({wp['x']:.3f}, {wp['y']:.3f})"
         + ("" if chosen else f"  [{wp['source']}: no point passes every rule; failing everywhere: "
                               f"{summary['scan']['failing_rules']}]"))
    echo(f"  <Z> {m['z_mean']:.3g}   SR chi2 p-value {m['pvalue']:.3f} (plateau {m['plateau']})   "
         f"non-closure {100 * m['nonclosure']:+.2f}%   |pull| {m['pull']:.3f}   r_max {m['r_max']:.3f}   "
         f"points passing every rule: {summary['scan']['n_pass']}")
    for plane, c in summary["closure"].items():
        mc = c["mc"]
        echo(f"  closure {plane}: delta = {100 * mc['total']:+.2f} +- {100 * mc['total_unc']:.2f}% (MC);"
             f" pseudo-data {100 * c['pseudo_data_total_mean']:+.2f} +- {100 * c['pseudo_data_total_std']:.2f}%;"
             f" per bin " + " ".join("--" if not np.isfinite(d) else f"{100 * d:+.1f}" for d in mc["delta"]))
    echo("  SP closure by background: " + "  ".join(
        f"{p} {100 * c['total']:+.1f} +- {100 * c['total_unc']:.1f}%" for p, c in summary["closure_by_process"].items()))
    echo("  stability (SP non-closure under boundary shifts): "
         + " ".join(f"{k} {100 * v:+.2f}%" for k, v in summary["stability"].items()))
    if "limits" in summary:
        echo("  expected 95% CL limits on mu (median [-1 sigma, +1 sigma]):")
        for name, r in sorted(summary["limits"].items(), key=lambda kv: (kv[1]["r_inv"], kv[1]["m_zprime"])):
            e = r["expected"]
            echo(f"    m_Z' {r['m_zprime']:6.0f} GeV  r_inv {r['r_inv']:.1f}:  {e[2]:8.3g}  [{e[1]:.3g}, {e[3]:.3g}]"
                 f"   signal contamination bias {100 * summary['signal_contamination'][name]['prediction_bias']:+.1f}%")


def public(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without the in-memory arrays (for summary.json)."""
    return {k: v for k, v in summary.items() if not k.startswith("_")}


def plot_all(summary: dict[str, Any], out: Path) -> list[Path]:
    """Score planes (background and the signals, SP), the M_T templates per region at the
    working point (SP: A observed and predicted), the non-closure scan map and the limits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ev, wp = summary["_events"], summary["working_point"]
    paths = []
    sp = ev["sp"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (label, mask) in zip(axes, (("background", sp & ~ev["signal"]), ("signal (all points)", sp & ev["signal"])),
                                 strict=True):
        h = ax.hist2d(ev["x"][mask], ev["y"][mask], bins=40, range=[[0, 1], [0, 1]], weights=ev["weight"][mask],
                      cmap="viridis", norm=matplotlib.colors.LogNorm())
        ax.axvline(wp["x"], color="w")
        ax.axhline(wp["y"], color="w")
        ax.set(xlabel="X", ylabel="Y", title=f"SP, {label}")
        fig.colorbar(h[3], ax=ax)
    paths.append(out / "score_planes.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    t = summary["_background_templates"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    mt_edges = np.asarray(summary["mt_edges"])
    for ax, r in zip(axes, ("A", "B", "C", "D"), strict=True):
        mplhep.histplot(t.region(r), mt_edges, yerr=np.sqrt(t.variance(r)), ax=ax, label="background MC")
        if r == "A":
            pred = np.asarray(summary["closure"]["SP"]["mc"]["predicted"])
            mplhep.histplot(pred, mt_edges, yerr=np.asarray(summary["closure"]["SP"]["mc"]["predicted_unc"]), ax=ax,
                            label=r"ABCD $n_B n_C / n_D$")
        for name, ts in list(summary["_signal_templates"].items())[:3]:
            mplhep.histplot(ts.region(r), mt_edges, ax=ax, ls="--", label=name)
        ax.set(xlabel=r"$M_T$ [GeV]", ylabel="events", title=f"SP region {r}", yscale="log")
        ax.legend(fontsize=6)
    paths.append(out / "mt_templates.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    scan = summary["_scan"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    n = scan.grid.size
    passing = np.array([all(p.passes.values()) for p in scan.points], float).reshape(n, n)
    panels = (("z_mean", r"$\langle Z \rangle$", scan.table("z_mean"), None),
              ("nonclosure", r"non-closure $\delta$", scan.table("nonclosure"), (-0.3, 0.3)),
              ("passes", "passes every rule", passing, (0.0, 1.0)))
    for ax, (_, label, table, limits) in zip(axes, panels, strict=True):
        kw = {} if limits is None else {"vmin": limits[0], "vmax": limits[1]}
        im = ax.imshow(table.T, origin="lower", extent=[scan.grid[0], scan.grid[-1]] * 2, aspect="auto", **kw)
        ax.plot([wp["x"]], [wp["y"]], "r*", ms=12)
        ax.set(xlabel="X boundary", ylabel="Y boundary", title=label)
        fig.colorbar(im, ax=ax)
    paths.append(out / "wp_scan.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    if "limits" in summary:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        by_r: dict[float, list] = {}
        for r in summary["limits"].values():
            by_r.setdefault(r["r_inv"], []).append(r)
        for r_inv, rows in sorted(by_r.items()):
            rows.sort(key=lambda r: r["m_zprime"])
            m = [r["m_zprime"] for r in rows]
            med = [r["expected"][2] for r in rows]
            lo, hi = [r["expected"][1] for r in rows], [r["expected"][3] for r in rows]
            line = ax.plot(m, med, "o--", label=f"$r_{{inv}}$ = {r_inv:g} (expected)")[0]
            ax.fill_between(m, lo, hi, color=line.get_color(), alpha=0.2)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(xlabel=r"$m_{Z'}$ [GeV]", ylabel=r"95% CL upper limit on $\mu$", yscale="log")
        ax.legend()
        paths.append(out / "limits.png")
        fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths
