"""From a processor output to the workspaces of the signal-region fit: the one path that the
main job and ``run.py limits --histograms`` share, so that the same output and the same
choices give the same limits.

:func:`workspaces_from_output` takes the output (``{"histograms": {...}, "datasets": {...},
"provenance": {...}}``) and, in this order:

1. optionally corrects the signal-region histogram (``correct(output, key)``, e.g. the
   sideband scale factors and residual shape of a corrections file; the analysis supplies it);
2. sums each process over eras (when the output's metadata gives every dataset's era),
   optionally scaling simulation from the luminosity it was normalized to (the output's
   ``provenance["lumi_fb"]``) to a target luminosity per era, with data summed into one
   category or left out (blinded: the background-only Asimov counts are the data);
3. keeps the systematic entries asked for (default: all) that a fit can use: ``nominal``
   and complete ``<name>Up``/``<name>Down`` pairs;
4. sets simulated bins below zero to zero and leaves out signal regions without background;
5. builds one workspace per signal category (:func:`~analysis.stats.workspace.workspace_from_histograms`).

What the search chooses (signal naming, background grouping, which systematics, the
luminosity) are parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.errors import ConfigError
from analysis.stats.defaults import STATS_DATA_NAME, STATS_SIGNAL_PREFIX
from analysis.stats.workspace import (
    _process_axis,
    sum_over_eras,
    usable_regions,
    workspace_from_histograms,
)

#: key of the signal-region histogram in a processor output
SR_HISTOGRAM = "sr"


@dataclass
class OutputWorkspaces:
    """The workspaces of a processor output and what was done to get them.

    Attributes
    ----------
    specs : {signal: workspace spec}
    kept_regions : indices (in the output's ``sr`` axis) of the regions in the workspaces
    n_regions : number of signal regions of the output
    correction_notes : the notes of ``correct`` (what was applied where, what not)
    messages : what else was done (summed over eras, systematics left out, bins clipped,
        regions left out), one sentence each
    """

    specs: dict[str, dict[str, Any]]
    kept_regions: list[int]
    n_regions: int
    correction_notes: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def fit_systematics(h):
    """``h`` with only the entries of its systematic axis a fit can use: ``nominal`` and
    complete ``<name>Up``/``<name>Down`` pairs; returns (histogram, dropped entries), e.g. the
    processors' diagnostic ``nocorr`` (the weight without corrections)."""
    import hist

    names = list(h.axes["systematic"])
    keep = [s for s in names if s == "nominal" or (s.endswith("Up") and f"{s[:-2]}Down" in names)
            or (s.endswith("Down") and f"{s[:-4]}Up" in names)]
    dropped = [s for s in names if s not in keep]
    if not dropped:
        return h, []
    axes = [hist.axis.StrCategory(keep, name="systematic") if ax.name == "systematic" else ax for ax in h.axes]
    out = hist.Hist(*axes, storage=h.storage_type())
    position = [ax.name for ax in h.axes].index("systematic")
    out.view()[...] = np.take(h.view(), [names.index(s) for s in keep], axis=position)
    return out, dropped


def _has_era_metadata(h, datasets) -> bool:
    return isinstance(datasets, Mapping) and h.axes[0].name == "dataset" and all(
        isinstance(datasets.get(d), Mapping) and "era" in datasets[d] for d in h.axes["dataset"])


def workspaces_from_output(
    output: Mapping[str, Any],
    *,
    histogram: str = SR_HISTOGRAM,
    correct: Callable[[Mapping[str, Any], str], tuple[Any, list[str]]] | None = None,
    blind: bool = False,
    data_name: str = STATS_DATA_NAME,
    signal_prefix: str = STATS_SIGNAL_PREFIX,
    process_map: Mapping[str, str] | None = None,
    systematics: Sequence[str] | None = None,
    target_lumi_fb: Mapping[str, float] | None = None,
) -> OutputWorkspaces:
    """The workspaces of a processor output (module docstring for the steps).

    Parameters
    ----------
    output : the processor output: ``histograms[histogram]`` a hist.Hist with axes
        dataset (or process), systematic and sr (Weight storage); ``datasets`` the metadata
        (``era``, ``is_data``, ``process``) of each dataset.
    correct : ``correct(output, histogram) -> (corrected histogram, notes)``; the
        systematic entries it adds are kept whatever ``systematics`` says.
    blind : data left out; the background-only Asimov counts are the observation.
    data_name : the category of all data summed over eras (unblinded).
    signal_prefix : signal categories are ``{signal_prefix}m<M>_dm<DM>``.
    process_map : {category: fit background}; default: every category is a background.
    systematics : the systematic entries to use (default all); entries not fit-usable are
        left out in any case.
    target_lumi_fb : {era: luminosity}: simulation is scaled by target / the luminosity it was
        normalized to (``output["provenance"]["lumi_fb"]``, the target where that lacks the
        era); default: as filled. Needs the era metadata.

    Raises
    ------
    ConfigError
        No region with background, no signal category, the data category missing.
    """
    h = output["histograms"][histogram]
    datasets = output.get("datasets")
    result = OutputWorkspaces({}, [], 0)
    n_before = len(h.axes["systematic"])
    if correct is not None:
        h, result.correction_notes = correct(output, histogram)
    added = list(h.axes["systematic"])[n_before:]
    systs = None if systematics is None else [*systematics, *added]
    if _has_era_metadata(h, datasets):
        scale = None
        if target_lumi_fb is not None:
            filled = output.get("provenance", {}).get("lumi_fb", {})

            def scale(meta):
                return target_lumi_fb[meta["era"]] / filled.get(meta["era"], target_lumi_fb[meta["era"]])

        h = sum_over_eras(h, datasets, systematics=systs, scale=scale, with_data=not blind, data_name=data_name)
        result.messages.append("datasets summed over eras (the output's metadata gives each dataset's era)"
                               + ("; data left out (--blind)" if blind else f"; data summed into {data_name!r}"))
    elif target_lumi_fb is not None or systs is not None:
        raise ConfigError("scaling to a luminosity and choosing systematics need the datasets' era metadata")
    h, dropped = fit_systematics(h)
    if dropped:
        result.messages.append(f"not fit systematics (neither nominal nor an Up/Down pair): {', '.join(dropped)}")
    result.n_regions = n_regions = h.axes["sr"].size
    data = None if blind else data_name
    h, kept, clipped = usable_regions(h, signal_prefix=signal_prefix, data=data)
    result.kept_regions = kept
    if clipped:
        result.messages.append(f"{clipped} simulated bins below zero (negative generator weights) set to zero")
    if not kept:
        raise ConfigError("no signal region has a positive total background")
    if len(kept) < n_regions:
        result.messages.append(f"signal regions without background left out: "
                               f"{sorted(set(range(n_regions)) - set(kept))}; "
                               f"the workspaces' SR1..SR{len(kept)} are the regions {kept}")
    categories = list(h.axes[_process_axis(h)])
    signals = [c for c in categories if c.startswith(signal_prefix)]
    if not signals:
        raise ConfigError(f"no signal categories ({signal_prefix}*) in {categories}")
    if data is not None and data not in categories:
        raise ConfigError(f"data category {data!r} not in {categories}; pass --data-name or --blind")
    result.specs = {s: workspace_from_histograms(h, s, process_map=process_map, data=data, signal_prefix=signal_prefix)
                    for s in signals}
    return result
