"""The soft-track search's choices for the generic statistics of analysis.stats: the Delta m
categories and provisional edges of the signal regions, the sideband below them, which
systematics enter the limits, the luminosity of the limits and the signal-region
corrections (docs/physics.md sec. 4, 9).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def limit_workspaces(signal_output: Mapping[str, Any], corrections=None, **kwargs) -> OutputWorkspaces:
    """The workspaces of the main job's expected limits: the 12 signal regions of the signal
    output, blinded, simulation scaled to the full Run-2 luminosity (config.LUMI_FB) from the
    pseudo-data luminosity it was normalized to, LIMIT_SYSTEMATICS, with ``corrections``
    applied to the background first when given. ``run.py limits --histograms OUT --blind
    --full-lumi --systematics nominal,jesUp,jesDown [--corrections FILE]`` builds the same."""
    options = {"correct": sr_corrector(corrections) if corrections is not None else None, "blind": True,
               "signal_prefix": SIGNAL_PREFIX, "systematics": LIMIT_SYSTEMATICS, "target_lumi_fb": cfg.LUMI_FB}
    return workspaces_from_output(signal_output, **(options | kwargs))
