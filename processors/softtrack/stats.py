"""The soft-track search's choices for the generic statistics of analysis.stats: the Delta m
categories and provisional edges of the signal regions, the sideband below them, which
systematics enter the limits, the luminosity of the limits and the signal-region
corrections (docs/physics.md sec. 4, 9).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from analysis.softtrack import config as cfg
from analysis.stats.from_histograms import OutputWorkspaces, workspaces_from_output
from analysis.stats.sr_edges import sr_edges_from_histogram

#: the systematic entries of the signal-region histogram in the main job's limits: the
#: processors' JES variations (their pileup variations and the diagnostic nocorr stay out),
#: and whatever pairs the signal-region corrections add
LIMIT_SYSTEMATICS: tuple[str, ...] = ("nominal", "jesUp", "jesDown")
#: fine max-logit histogram per Delta m category that the SR edges are derived from
SR_EDGES_HISTOGRAM = "max_logit_category"
#: signal datasets are named signal_m<M>_dm<DM>_<era>
SIGNAL_PREFIX = "signal_"


def sr_edges(signal_output: Mapping[str, Any]) -> dict:
    """Signal-region boundaries per Delta m category (docs/physics.md sec. 4): Asimov
    significance with 20% background uncertainty, flat-S bins, tightest split in two, from
    the category's max logit of simulated background and of the signal points whose Delta m
    is nearest to the category's, above the sideband of the sideband scale factors
    (config.SIDEBAND_LOGIT_RANGE); a category whose inputs cannot support the binning keeps
    the edges of config (config.SR_LOGIT_EDGES) with a note
    (:func:`analysis.stats.sr_edges.sr_edges_from_histogram`)."""
    return sr_edges_from_histogram(signal_output["histograms"][SR_EDGES_HISTOGRAM], signal_output["datasets"],
                                   cfg.CLASSIFIER_DMS, min_edge=cfg.SIDEBAND_LOGIT_RANGE[1],
                                   fallback=cfg.SR_LOGIT_EDGES)


def sr_corrector(corrections):
    """``correct(output, key)`` of :func:`analysis.stats.from_histograms.workspaces_from_output`:
    the sideband scale factors and residual shape of ``corrections``
    (corrections.softtrack.apply.SoftTrackCorrections) applied to the simulated background of the
    signal regions, for the edges the output was filled with (corrections.softtrack.signal_regions)."""
    from corrections.softtrack.signal_regions import correct_output_sr

    def correct(output, key):
        return correct_output_sr(output, corrections, key)

    return correct


#: the histogram of the signal regions by background class (processors.softtrack.histograms)
SR_CLASS_HISTOGRAM = "sr_class"
#: fit background of each class of the event's highest-scoring track (thesis Table 7.3):
#: PV-associated, spurious (fakes and pileup) and tau; events whose class is unknown
#: (simulation without the truth) are a background of their own
CLASS_BACKGROUNDS: dict[str, str] = {"pv": "pv", "spurious": "spurious", "tau": "tau", "none": "unclassified",
                                     "unknown": "unclassified", "signal": "unclassified"}
#: separates a background dataset's name from its class in the split histogram
CLASS_SEPARATOR = "__"


def split_by_class(output: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The output with its ``sr`` histogram replaced by one whose simulated-background
    datasets are split by class (``zjets_nunu_2016`` -> ``zjets_nunu__pv_2016``, ... from
    ``sr_class``; signal and data summed over the class), their metadata copied; and the
    process map {``zjets_nunu__pv``: ``pv``, ...} of :func:`analysis.stats.from_histograms.
    workspaces_from_output`. Outputs without ``sr_class`` are returned as they are (map None)."""
    import hist

    hs = output["histograms"]
    if SR_CLASS_HISTOGRAM not in hs:
        return dict(output), None
    h = hs[SR_CLASS_HISTOGRAM]
    datasets = output["datasets"]
    names, meta, process_map = [], {}, {}
    sources: list[tuple[str, str | None]] = []
    for ds in h.axes["dataset"]:
        m = datasets[ds]
        if m["is_data"] or str(m["process"]).startswith("signal"):
            names.append(ds)
            meta[ds] = m
            sources.append((ds, None))
            continue
        era = str(m["era"])
        stem = ds[: -len(era) - 1] if ds.endswith(f"_{era}") else ds
        for cls in h.axes["track_class"]:
            if not np.any(h[{"dataset": ds, "track_class": cls}].view(flow=True)["value"]):
                continue  # a class without events in this dataset (e.g. "data" in simulation)
            name = f"{stem}{CLASS_SEPARATOR}{cls}_{era}"
            names.append(name)
            meta[name] = m
            sources.append((ds, cls))
            process_map[f"{stem}{CLASS_SEPARATOR}{cls}"] = CLASS_BACKGROUNDS.get(cls, "unclassified")
    out = hist.Hist(hist.axis.StrCategory(names, name="dataset"), h.axes["systematic"], h.axes["sr"],
                    storage=hist.storage.Weight())
    view = out.view(flow=True)
    for i, (ds, cls) in enumerate(sources):
        sel = {"dataset": ds, "track_class": sum if cls is None else cls}
        src = h[sel].view(flow=True)
        view["value"][i], view["variance"][i] = src["value"], src["variance"]
    split = dict(output)
    split["histograms"] = dict(hs) | {"sr": out}
    split["datasets"] = dict(datasets) | meta
    return split, process_map


def limit_workspaces(signal_output: Mapping[str, Any], corrections=None, **kwargs) -> OutputWorkspaces:
    """The workspaces of the main job's expected limits: the 12 signal regions of the signal
    output, blinded, simulation scaled to the full Run-2 luminosity (config.LUMI_FB) from the
    pseudo-data luminosity it was normalized to, LIMIT_SYSTEMATICS, with ``corrections``
    applied to the background first when given. The background is split by the class of
    the event's highest-scoring track (:func:`split_by_class`: PV-associated, spurious, tau,
    with their normalization uncertainties of analysis.stats.defaults.STATS_BACKGROUND_NORM_UNC)
    where the output has ``sr_class``. ``run.py limits --histograms OUT --blind --full-lumi
    --systematics nominal,jesUp,jesDown [--corrections FILE]`` builds the same."""
    output, process_map = split_by_class(signal_output)
    options = {"correct": sr_corrector(corrections) if corrections is not None else None, "blind": True,
               "signal_prefix": SIGNAL_PREFIX, "systematics": LIMIT_SYSTEMATICS, "target_lumi_fb": cfg.LUMI_FB,
               "process_map": process_map}
    return workspaces_from_output(output, **(options | kwargs))
