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


def test_experiment_label_sits_above_the_axes_in_one_line():
    """The CMS label: "CMS", the experiment label after it (not overlapping), the right label
    at the right edge, all above the axes and inside the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.plotting import experiment_text

    fig, ax = plt.subplots(figsize=(9, 9))
    fig.subplots_adjust(left=0.14, right=0.96, top=0.94, bottom=0.1)
    experiment_text(ax, "Toy", "13 TeV")
    renderer = fig.canvas.get_renderer()
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    assert set(boxes) == {"CMS", "Toy", "13 TeV"}
    frame, page = ax.get_window_extent(renderer), fig.bbox
    cms, toy, right = boxes["CMS"], boxes["Toy"], boxes["13 TeV"]
    assert cms.x0 == frame.x0 and cms.x1 < toy.x0 < cms.x1 + 20 and toy.x1 < right.x0
    assert abs(right.x1 - frame.x1) < 1
    for b in boxes.values():
        assert frame.y1 <= b.y0 and b.y1 <= page.y1
    plt.close(fig)


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


def _data_vs_mc(scale: float, seed: int):
    """A falling p_T^miss spectrum: MC of 20 simulated events per expected event, data Poisson
    of scale x MC."""
    import hist

    rng = np.random.default_rng(seed)
    h = hist.Hist(hist.axis.StrCategory([], growth=True, name="dataset"),
                  hist.axis.StrCategory([], growth=True, name="systematic"),
                  hist.axis.Regular(60, 0, 1500, name="met"), storage=hist.storage.Weight())
    expected = 2000 * np.exp(-np.asarray(h.axes["met"].centers) / 150.0)
    centres = np.asarray(h.axes["met"].centers)
    mc_counts = rng.poisson(20 * expected)  # simulated events of weight 1/20
    h.fill(dataset="zjets_nunu_2018", systematic="nominal", met=np.repeat(centres, mc_counts),
           weight=np.full(mc_counts.sum(), 0.05))
    h.fill(dataset="data_met_2018", systematic="nominal", met=np.repeat(centres, rng.poisson(scale * expected)))
    datasets = {"zjets_nunu_2018": {"process": "zjets_nunu", "era": "2018", "is_data": False},
                "data_met_2018": {"process": "data_met", "era": "2018", "is_data": True}}
    return h, datasets


def test_data_mc_agreement_chi2_follows_its_distribution_in_the_tail():
    """Data drawn from the MC prediction: chi2 within its spread over ndf bins, with the
    tail's empty data bins under MC of a few events included (a Neyman chi2 gives several
    times ndf there); data 20% above MC: far outside."""
    from analysis.plotting import data_mc_agreement

    chi2 = []
    for seed in range(20):
        a = data_mc_agreement(*_data_vs_mc(1.0, seed))
        assert a["ndf"] > 15
        chi2.append(a["chi2"] / a["ndf"])
    assert 0.75 < np.mean(chi2) < 1.35
    off = data_mc_agreement(*_data_vs_mc(1.2, 99))
    assert off["chi2"] > off["ndf"] + 5 * np.sqrt(2 * off["ndf"])
    assert abs(off["ratio"] - 1.2) < 0.05
