"""The Z -> mu mu example's plug-in description, registered through the entry point
``zpeak = "processors.zpeak:ANALYSIS"`` of pyproject.toml."""

from __future__ import annotations

from processors.registry import Analysis

ANALYSIS = Analysis(
    name="zpeak",
    description="example: Z -> mu mu mass peak (two opposite-sign isolated muons)",
    config="analysis.zpeak.config:ZPeakConfig",
    processors={"zpeak": "processors.zpeak.processor:ZPeakProcessor"},
    default_processor="zpeak",
    # Drell-Yan simulation and the single-muon data it is compared with
    processes=("dy", "dy_mumu", "data_singlemuon"),
)
