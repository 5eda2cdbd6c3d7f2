"""The smuon search's main job end to end on a small sample (commands/smuon.py; docs/smuon.md sec. 7)."""

from __future__ import annotations

import json

from analysis.toymc.smuon import BENCHMARKS, grid_points


def test_main_job_writes_the_comparison_and_the_plot(tmp_path):
    from commands.smuon import default_args, main

    args = default_args()
    args.data, args.out = tmp_path / "data", tmp_path / "out"
    args.events, args.signal_events, args.quiet, args.executor = 3000, 80, True, "iterative"
    assert main(args) == 0
    summary = json.loads((args.out / "comparison.json").read_text())
    assert [(r["m_smuon"], r["m_neutralino"]) for r in summary["comparison"]] == list(BENCHMARKS)
    for row in summary["comparison"]:
        assert {"nn", "static", "dynamic"} <= set(row)
        assert row["static"]["b"] > 0
    assert set(summary["reach"]) == {"139", "300", "3000"}
    sens = json.loads((args.out / "sensitivity.json").read_text())
    assert len(sens["points"]) == len(grid_points())
    assert (args.out / "exclusion.png").stat().st_size > 10_000
    cutflow = json.loads((args.out / "cutflow.json").read_text())
    assert list(cutflow["ttbar_mumu_run2"])[-1] == "lepton_veto"
