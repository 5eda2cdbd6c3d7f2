"""The semi-visible-jet search's plug-in description, registered through the entry point
``svj = "processors.svj:ANALYSIS"`` of pyproject.toml (docs/svj.md)."""

from __future__ import annotations

from processors.registry import Analysis

ANALYSIS = Analysis(
    name="svj",
    description="semi-visible jets: LundNet jet tagging and decorrelated (DisCo) ABCD, seed 003",
    config="analysis.svj.config:SVJConfig",
    processors={"svj": "processors.svj.processor:SVJProcessor"},
    default_processor="svj",
    commands=("commands.svj", "commands.svj_train"),
    process_options="processors.svj.options",
    # the toy samples of analysis.toymc.svj: QCD multijet, ttbar, W(mu nu) + jets, Z(nu nu) + jets, signal
    processes=("qcd", "ttbar", "wjets", "zjets", "svj"),
)
