"""The stages of the soft-track main job over the outputs of its processors (docs/physics.md
sec. 4-9): signal-region boundaries, the signal-region corrections derived from the corrected
outputs, R&S templates and prediction, and the expected limits with the exclusion contour.
Each writes what it derives under the output directory (atomically) and returns a summary;
``python run.py`` (commands/main_job.py) calls them in order.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from analysis.io import atomic_output, write_atomic
from analysis.softtrack import config as cfg


def derive_sr_edges(signal_output: dict, out: Path) -> dict:
    """Signal-region boundaries per Delta m category (processors.softtrack.stats.sr_edges),
    written to OUT/sr_edges.json."""
    from .stats import sr_edges

    result = sr_edges(signal_output)
    write_atomic(out / "sr_edges.json", json.dumps({"edges": {f"{k:g}": v for k, v in result["edges"].items()},
                                                    "notes": result["notes"]}, indent=1))
    return result


def limits_stage(signal_output: dict, out: Path, workers: int, corrections=None) -> dict:
    """Expected limits from the 12 signal regions (processors.softtrack.stats.limit_workspaces);
    with ``corrections``, the sideband scale factors and the residual shape are applied to the
    background of the signal regions first (for the edges the output was filled with), with
    their uncertainties as shape systematics (corrections.softtrack.signal_regions)."""
    from analysis.stats.contour import plot_exclusion
    from analysis.stats.defaults import STATS_MEASUREMENT
    from analysis.stats.limits import upper_limits_grid
    from analysis.stats.workspace import parse_signal_point, with_poi_upper_bound

    from .stats import limit_workspaces

    built = limit_workspaces(signal_output, corrections)
    specs = built.specs
    ws_dir = out / "workspaces"
    t = time.perf_counter()
    results = upper_limits_grid(specs, workers=workers)
    seconds = time.perf_counter() - t
    table = {}
    for s, r in results.items():  # the workspaces as fit: with the POI bound the limits used
        spec = with_poi_upper_bound(specs[s], r.poi_upper_bound, STATS_MEASUREMENT) if r.poi_bound_widened else specs[s]
        table[s] = {"expected": list(r.expected), "observed": r.observed,
                    "workspace": str(write_atomic(ws_dir / f"{s}.json", json.dumps(spec, indent=1)))}
        if r.poi_bound_widened:
            table[s]["poi_upper_bound"] = r.poi_upper_bound
    points = [parse_signal_point(s, "signal_") for s in results]
    files = []
    if len(points) >= 3:
        m = np.array([p[0] for p in points])
        dm = np.array([p[1] for p in points])
        exp = np.array([results[s].expected for s in results])
        obs = np.array([results[s].observed for s in results])  # blinded: Asimov "observation"
        files = plot_exclusion(list(zip(m, dm, strict=True)), obs, exp, out / "exclusion")
    summary = {"signals": table, "workspace": str(ws_dir), "seconds": seconds, "luminosity_fb": sum(cfg.LUMI_FB.values()),
               "blinded": True, "signal_regions_used": built.kept_regions, "plots": [str(f) for f in files],
               "background_corrections": built.correction_notes}
    write_atomic(out / "limits.json", json.dumps(summary, indent=1))
    return summary


def corrections_notes(build: list[str], signal_regions: list[str], rederived: bool) -> list[str]:
    """The notes of the corrections build, those about sideband_sf and residual_shape replaced
    by the notes of their derivation from the corrected outputs when that ran."""
    if not rederived:
        return list(build)
    return [n for n in build if not n.startswith(("sideband_sf", "residual_shape"))] + list(signal_regions)


def sr_corrections_stage(cset, sig: dict, dy: dict, path: Path):
    """Derive the sideband scale factors from the corrected signal region and the residual
    shape from the corrected cleaned Drell-Yan for the signal regions of ``sig``, and write
    the corrections file again with them (it then holds what the limits apply)."""
    from corrections.softtrack.apply import SoftTrackCorrections
    from corrections.softtrack.build import with_signal_region_corrections, write_correction_set
    from corrections.softtrack.signal_regions import sr_edges_of

    cset, notes = with_signal_region_corrections(cset, sig, dy, sr_edges_of(sig))
    return SoftTrackCorrections(write_correction_set(cset, path)), notes


def rs_stage(fileset: dict, out: Path, opts, config=None, template_replicas: int = 0) -> dict:
    """R&S templates from simulated QCD and the prediction of QCD; the closure (predicted /
    simulated) per era in the seed-004 baseline and in the search baseline (``config``: the
    soft-track configuration of both processors, default the code's). With
    ``template_replicas`` >= 2 the prediction is also made (nominal response, in the same
    pass) with that many Poisson-bootstrap replicas of the templates and priors, and their
    spread, the templates' statistical uncertainty, is added to the closure's (the rest: the
    seed bootstrap and the simulated QCD's statistics)."""
    from coffea.util import save

    from analysis.errors import ConfigError

    from .rs import RSPredictionProcessor
    from .rs_closure import add_template_uncertainty, predicted_yields, summarize
    from .run import build_rs_templates as build
    from .run import predict_rs as predict

    if template_replicas < 0 or template_replicas == 1:
        raise ConfigError(f"R&S template replicas must be 0 or >= 2 (a spread), got {template_replicas}")
    qcd = {k: v for k, v in fileset.items() if v["metadata"]["process"] == "qcd"}
    templates = out / "rs_templates.json.gz"
    info = build(qcd, templates, opts, config=config, replicas=template_replicas)
    # the replicas in the same pass: the events read and selected once
    pred = predict(qcd, opts, config=config, rs_templates=str(templates), rs_template_replicas=info["replica_files"])
    with atomic_output(out / "rs_prediction.coffea") as tmp:
        save(pred, str(tmp))
    replicas = [RSPredictionProcessor.REPLICA.format(k) for k in range(1, len(info["replica_files"]) + 1)]
    closure: dict[str, dict] = {"seed004": {}, "baseline": {}}
    for region, table in closure.items():
        for ds in sorted(qcd):
            try:
                result = summarize(pred, ds, region)
                if replicas:
                    add_template_uncertainty(result, [predicted_yields(pred, ds, region, r) for r in replicas])
                    result["baseline"]["uncertainty_split"] = dict(result["uncertainty_split"]["baseline"],
                                                                   simulated=result["baseline_details"]["simulated_unc"],
                                                                   n_template_replicas=len(replicas))
                table[ds] = result["baseline"]
            except Exception as err:  # noqa: BLE001 - a sparse era: say why instead of failing the job
                table[ds] = {"error": f"{type(err).__name__}: {err}"}
    return {"templates": info["file"], "template_replicas": len(replicas),
            "baseline_closure": closure["seed004"], "search_closure": closure["baseline"]}
