"""The smuon search with a neural-network final cut (seed 002; docs/smuon.md): its processor
and plug-in description (:data:`ANALYSIS`), registered through the ``softtrack.analyses``
entry point of pyproject.toml."""

from __future__ import annotations

from processors.registry import Analysis

ANALYSIS = Analysis(
    name="smuon",
    description="right-handed smuons -> mu + neutralino: two muons + p_T^miss, a neural network as the final cut",
    config="analysis.smuon.config:SmuonConfig",
    processors={"smuon": "processors.smuon.processor:SmuonProcessor"},
    commands=("commands.smuon", "commands.smuon_train"),
    main_job="commands.smuon:main",
    default_processor="smuon",
    process_options="processors.smuon.options",
    # the toy generator's smuon-search processes (analysis/toymc/smuon.py)
    processes=("smuon", "ttbar_mumu", "ww_mumu", "diboson_mumu"),
)
