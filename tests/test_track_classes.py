"""Backgrounds by the class of the event's highest-scoring track (thesis sec. 7, Table 7.3):
PV-associated, spurious (fakes and pileup) and tau; the ``sr_class`` histogram, the
workspace's three backgrounds with their normalization uncertainties, the stacked plots."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.contract import TRACK_ORIGINS
from analysis.softtrack.labels import (
    CLASS_PV_PROMPT,
    CLASS_PV_SECONDARY,
    CLASS_SIGNAL,
    CLASS_SPURIOUS,
    CLASS_TAU,
    background_class_names,
)
from analysis.stats.defaults import STATS_BACKGROUND_NORM_UNC
from models.softtrack.inference import DEFAULT_CLASSIFIER
from processors.runner import RunOptions

OPTS = RunOptions(executor="iterative", chunksize=50_000, status=False)


def test_background_class_names():
    """Pileup tracks are spurious (thesis sec. 4.1: "spurious tracks including pileup and
    fakes"); tau-decay tracks are tau even when produced at the PV; the rest of the primary
    interaction is PV-associated."""
    labels = np.array([CLASS_PV_PROMPT, CLASS_PV_SECONDARY, CLASS_SPURIOUS, CLASS_SPURIOUS, CLASS_TAU, CLASS_SIGNAL])
    origins = np.array([TRACK_ORIGINS[o] for o in ("primary", "primary", "pileup", "spurious", "primary", "primary")])
    assert list(background_class_names(labels, origins)) == ["pv", "pv", "spurious", "spurious", "tau", "signal"]
    # without stored origins: unmatched tracks are spurious
    assert list(background_class_names(labels[:3], None)) == ["pv", "pv", "spurious"]


@pytest.fixture(scope="module")
def signal_output(small_sample):
    if not DEFAULT_CLASSIFIER.is_file():
        pytest.skip("no shipped classifier")
    from processors.fileset import load_fileset
    from processors.softtrack.run import run_region
    from processors.softtrack.scoring import TrackScorer

    out, _ = small_sample
    fs = {k: v for k, v in load_fileset(out / "fileset.json").items()
          if v["metadata"]["process"] in ("zjets_nunu", "wjets_lnu", "ttjets", "signal", "data_met")}
    return run_region("signal", fs, OPTS, None, scorer=TrackScorer.from_directory(None))


def test_sr_class_sums_to_sr(signal_output):
    """Summed over the class axis, ``sr_class`` is ``sr`` bin by bin for every dataset and
    systematic; simulation fills only the background classes (and signal tracks), data only
    "data"; W+jets has tau events."""
    h = signal_output["histograms"]
    sr, by_class = h["sr"], h["sr_class"]
    meta = signal_output["datasets"]
    for ds in sr.axes["dataset"]:
        for syst in sr.axes["systematic"]:
            a = sr[{"dataset": ds, "systematic": syst}].view(flow=True)
            b = by_class[{"dataset": ds, "systematic": syst, "track_class": sum}].view(flow=True)
            np.testing.assert_allclose(b["value"], a["value"], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(b["variance"], a["variance"], rtol=1e-12, atol=1e-12)
        filled = {c for c in by_class.axes["track_class"]
                  if by_class[{"dataset": ds, "systematic": "nominal", "track_class": c}].sum(flow=True).value != 0}
        if meta[ds]["is_data"]:
            assert filled <= {"data"}
        else:
            assert filled <= {"pv", "spurious", "tau", "signal", "none"}
    w = by_class[{"dataset": "wjets_lnu_2018", "systematic": "nominal"}]
    assert w[{"track_class": "tau"}].sum(flow=True).value > 0
    assert by_class[{"dataset": "zjets_nunu_2018", "systematic": "nominal", "track_class": "tau"}].sum(
        flow=True).value == 0  # no tau in Z -> nu nu


def test_workspace_has_the_three_backgrounds(signal_output):
    """The limits' workspaces: backgrounds pv, spurious, tau with log-normal normsys of
    5%, 9%, 10% (thesis Table 7.3), their yields summing to the total background, and a
    model that fits."""
    import pyhf

    from processors.softtrack.stats import limit_workspaces

    built = limit_workspaces(signal_output)
    spec = next(iter(built.specs.values()))
    samples = {s["name"]: s for s in spec["channels"][0]["samples"]}
    assert {"pv", "spurious", "tau"} <= set(samples)
    for name, unc in (("pv", 0.05), ("spurious", 0.09), ("tau", 0.10)):
        assert STATS_BACKGROUND_NORM_UNC[name] == unc
        (mod,) = [m for m in samples[name]["modifiers"] if m["name"] == f"norm_{name}"]
        assert mod["type"] == "normsys" and mod["data"]["hi"] == pytest.approx(1 + unc)
        assert mod["data"]["lo"] == pytest.approx(1 / (1 + unc))
    # the classes add up to the background of the per-process workspace
    from analysis.softtrack import config as cfg
    from analysis.stats.from_histograms import workspaces_from_output

    plain = workspaces_from_output(signal_output, blind=True, signal_prefix="signal_", target_lumi_fb=cfg.LUMI_FB,
                                   systematics=("nominal",))
    plain_spec = next(iter(plain.specs.values()))
    total = sum(np.sum(s["data"]) for s in plain_spec["channels"][0]["samples"] if not s["name"].startswith("signal"))
    split = sum(np.sum(s["data"]) for n, s in samples.items() if n != "signal" and not n.startswith("signal"))
    assert split == pytest.approx(total, rel=1e-9)
    model = pyhf.Workspace(spec).model()
    data = pyhf.Workspace(spec).data(model)
    pars = pyhf.infer.mle.fit(data, model)
    assert np.all(np.isfinite(pars))


def test_plots_stacked_by_class(signal_output, tmp_path):
    """The SR, max-logit and candidate-track |dz| plots stacked by class are drawn."""
    from analysis.plotting import draw_plots
    from analysis.softtrack.plots import plot_jobs

    jobs = [j for j in plot_jobs(signal_output, tmp_path) if "by_class" in j[0][2].name]
    names = sorted(j[0][2].name for j in jobs)
    assert names == ["max_logit_dm0.3_by_class.png", "max_logit_dm0.6_by_class.png", "max_logit_dm1_by_class.png",
                     "signal_regions_by_class.png", "track_log10_dz_by_class.png"]
    paths = draw_plots(jobs[:2], 1)
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
