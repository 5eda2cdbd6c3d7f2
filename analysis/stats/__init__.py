"""Statistics of the searches (docs/physics.md sec. 9): one concept per module. Nothing
here knows the search: its choices (Delta m categories, signal naming, background grouping)
come as parameters, their method defaults from :mod:`~analysis.stats.defaults`, and the
search's own values from :mod:`processors.softtrack.stats`.

- :mod:`~analysis.stats.workspace`: yields validation, HistFactory workspaces (pyhf JSON)
- :mod:`~analysis.stats.likelihood`: fast evaluator of the pyhf likelihood with gradients
- :mod:`~analysis.stats.limits`: asymptotic CLs and upper limits on mu, over the grid
- :mod:`~analysis.stats.contour`: the exclusion contour and its plot
- :mod:`~analysis.stats.significance`: Asimov significance and the flat-S SR binning
- :mod:`~analysis.stats.abcd`: binned ABCD estimate, closure, contamination, ABCD fit
- :mod:`~analysis.stats.from_histograms`: a processor output -> its workspaces (the one path
  of the main job and ``run.py limits --histograms``)
- :mod:`~analysis.stats.sr_edges`: signal-region edges from score files or histograms
- :mod:`~analysis.stats.defaults`: the method constants (CLs level, names, uncertainties)
"""

from __future__ import annotations

from analysis.stats.abcd import (
    abcd_closure,
    abcd_fit_prediction,
    abcd_predict,
    abcd_workspace,
    signal_contamination,
)
from analysis.stats.contour import exclusion_lines, plot_exclusion
from analysis.stats.from_histograms import workspaces_from_output
from analysis.stats.limits import AsymptoticCLs, cls_pyhf, upper_limit, upper_limits_grid
from analysis.stats.significance import (
    asimov_significance,
    combined_asimov_significance,
    flat_s_edges,
    sr_edges_by_category,
)
from analysis.stats.workspace import (
    build_workspace,
    parse_signal_point,
    signal_point_name,
    validate_yields,
    workspace_from_histograms,
    workspaces_from_yields,
)

__all__ = [
    "AsymptoticCLs",
    "abcd_closure",
    "abcd_fit_prediction",
    "abcd_predict",
    "abcd_workspace",
    "asimov_significance",
    "build_workspace",
    "cls_pyhf",
    "combined_asimov_significance",
    "exclusion_lines",
    "flat_s_edges",
    "parse_signal_point",
    "plot_exclusion",
    "signal_contamination",
    "signal_point_name",
    "sr_edges_by_category",
    "upper_limit",
    "upper_limits_grid",
    "validate_yields",
    "workspace_from_histograms",
    "workspaces_from_output",
    "workspaces_from_yields",
]
