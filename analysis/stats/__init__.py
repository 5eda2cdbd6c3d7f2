"""Statistics of the soft-track search (SPEC.md sec. 9): one concept per module.

- :mod:`~analysis.stats.workspace`: yields validation, HistFactory workspaces (pyhf JSON)
- :mod:`~analysis.stats.likelihood`: fast evaluator of the pyhf likelihood with gradients
- :mod:`~analysis.stats.limits`: asymptotic CLs and upper limits on mu, over the grid
- :mod:`~analysis.stats.contour`: the exclusion contour and its plot
- :mod:`~analysis.stats.significance`: Asimov significance and the flat-S SR binning
- :mod:`~analysis.stats.abcd`: binned ABCD estimate, closure, contamination, ABCD fit
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
    "workspaces_from_yields",
]
