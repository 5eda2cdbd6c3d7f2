"""The soft-track higgsino search's processors and its plug-in description (:data:`ANALYSIS`).

Registered through the ``softtrack.analyses`` entry point of pyproject.toml.
"""

from __future__ import annotations

from processors.registry import Analysis

ANALYSIS = Analysis(
    name="softtrack",
    description="compressed higgsinos with a soft, displaced, isolated track (ML refinement, R&S)",
    config="analysis.softtrack.config:SoftTrackConfig",
    processors={
        "signal": "processors.softtrack.signal:SignalProcessor",
        "dy": "processors.softtrack.dy:DrellYanProcessor",
        "single_lepton": "processors.softtrack.signal:SingleLeptonProcessor",
        "rs": "processors.softtrack.rs:RSPredictionProcessor",
        "rs_templates": "processors.softtrack.rs:RSTemplatesProcessor",
    },
    commands=("commands.corrections", "commands.train", "commands.sr_edges", "commands.rs_templates",
              "commands.rs_predict", "commands.rs_closure", "commands.main_job"),
    main_job="commands.main_job:main",
    default_processor="signal",
    process_options="processors.softtrack.options",
    # the toy generator's processes and pseudo-data streams (README "Samples and filesets")
    processes=("zjets_nunu", "wjets_lnu", "ttjets", "dy_mumu", "qcd", "signal",
               "data_met", "data_singlemuon", "data_jetht"),
)
