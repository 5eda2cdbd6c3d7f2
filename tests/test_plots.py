"""Plots of processor outputs: drawn in several processes they are the same pictures."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from analysis.plotting import draw_plots
from analysis.softtrack.plots import plot_jobs, standard_plots
from processors.histograms import book
from processors.softtrack.histograms import REGION_HISTOGRAMS


def _output():
    rng = np.random.default_rng(3)
    h = book(REGION_HISTOGRAMS)
    datasets = {
        "zjets_nunu_2018": {"process": "zjets_nunu", "era": "2018", "is_data": False},
        "data_met_2018": {"process": "data_met", "era": "2018", "is_data": True},
    }
    for name, meta in datasets.items():
        h["met"].fill(dataset=name, systematic="nominal", met=rng.exponential(150, 500) + 250,
                      weight=np.full(500, 1.0 if meta["is_data"] else 0.9))
        h["track_pt"].fill(dataset=name, origin="pv_prompt" if not meta["is_data"] else "data",
                           track_pt=rng.exponential(2.0, 800))
    keep = {"met", "track_pt"}
    return {"histograms": {k: v for k, v in h.items() if k in keep}, "datasets": datasets,
            "cutflow": {k: {"all": {"events": 500, "weighted": 450.0}} for k in datasets}}


def test_plots_do_not_depend_on_the_number_of_workers(tmp_path):
    output = _output()
    serial = draw_plots(plot_jobs(output, tmp_path / "one"), workers=1)
    parallel = draw_plots(plot_jobs(output, tmp_path / "two"), workers=2)
    assert [p.name for p in serial] == [p.name for p in parallel] == ["met.png", "track_pt.png"]
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(mpimg.imread(a), mpimg.imread(b))
    paths = standard_plots(output, tmp_path / "std", prefix="x_")
    assert [p.name for p in paths] == ["x_met.png", "x_track_pt.png"]
    assert "| all |" in (tmp_path / "std" / "x_cutflow.md").read_text()


def test_plots_cli_rejects_bad_workers(tmp_path, capsys):
    import run

    (tmp_path / "o.coffea").write_bytes(b"")
    assert run.main(["plots", str(tmp_path / "o.coffea"), "--out", str(tmp_path), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_signal_benchmark_names_are_the_generated_datasets():
    from analysis.softtrack.config import SIGNAL_BENCHMARKS
    from analysis.softtrack.plots import signal_name, style
    from analysis.toymc.processes import signal_dataset_name

    assert set(style()["signals"]) == {signal_dataset_name(m, dm) for m, dm in SIGNAL_BENCHMARKS}
    assert all(signal_name(m, dm) == signal_dataset_name(m, dm) for m, dm in SIGNAL_BENCHMARKS)
