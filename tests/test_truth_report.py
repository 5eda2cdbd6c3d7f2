"""The main job's report against truth (processors/softtrack/truth_report.py): rows, pulls and
the signal-region MC statistics from a processor-like output."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from corrections.softtrack.derive import LineFit
from processors.softtrack.truth_report import Injected, truth_table

INJECTED = Injected(pv_track_sf=0.91, spurious_track_sf=1.18, met_slope_per_gev=-2e-4, met_slope_pivot=300.0)


def _signal_output():
    h = hist.Hist(hist.axis.StrCategory(["bkg_2018", "sig_2018", "data_2018"], name="dataset"),
                  hist.axis.StrCategory(["nominal"], name="systematic"),
                  hist.axis.Integer(0, 2, name="sr"), storage=hist.storage.Weight())
    # SR 0: 4 background events of weight 2 (rel. unc. 0.5); SR 1: 100 of weight 0.1 (0.1)
    h.fill(dataset="bkg_2018", systematic="nominal", sr=np.r_[np.zeros(4, int), np.ones(100, int)],
           weight=np.r_[np.full(4, 2.0), np.full(100, 0.1)])
    h.fill(dataset="sig_2018", systematic="nominal", sr=np.zeros(50, int), weight=np.full(50, 0.01))
    h.fill(dataset="data_2018", systematic="nominal", sr=np.zeros(7, int))
    datasets = {"bkg_2018": {"process": "zjets_nunu", "is_data": False},
                "sig_2018": {"process": "signal", "is_data": False},
                "data_2018": {"process": "data_met", "is_data": True}}
    return {"histograms": {"sr": h}, "datasets": datasets}


def test_rows_pulls_and_sr_statistics():
    limits = {"signals": {"signal_m115_dm0p27": {"expected": [1, 2, 3.5, 5, 7]}, "signal_m300_dm0p22": {"expected": [0] * 5}}}
    rows = truth_table(
        track_class_sf={"2018": {"pv": [0.95, 0.02], "spurious": [1.0, 0.09]}},
        met_fits={"2018": LineFit(p0=0.97, p1=-1.0e-4, pivot=400.0, err_p0=0.01, err_p1=5e-5, correlation=0.0,
                                  chi2=1.0, ndf=3)},
        rs_closure={"search": {"qcd_2018": {"ratio": 0.82, "uncertainty": 0.06}}},
        signal_output=_signal_output(), limits=limits,
        refiner_metrics={"wasserstein_log10": {"pt": {"simulation": 0.0039, "refined": 0.0054}}},
        injected=INJECTED)
    by = {(r["quantity"], r["era"]): r for r in rows}
    assert by[("track-class SF pv", "2018")]["pull"] == pytest.approx(2.0)
    assert by[("track-class SF spurious", "2018")]["pull"] == pytest.approx(-2.0)
    assert by[("met_weight slope /GeV", "2018")]["pull"] == pytest.approx(2.0)
    assert by[("met_weight at 400 GeV", "2018")]["injected"] == pytest.approx(0.98)
    assert by[("R&S closure, search", "2018")]["pull"] == pytest.approx(-3.0)
    sr0, sr1 = by[("SR 0 bkg MC stat. (rel.)", None)], by[("SR 1 bkg MC stat. (rel.)", None)]
    assert sr0["derived"] == pytest.approx(0.5) and "NOT met" in sr0["note"]  # signal and data left out
    assert sr1["derived"] == pytest.approx(0.1) and "met" in sr1["note"] and "NOT" not in sr1["note"]
    assert by[("exp. mu_up m115 dm0.27", None)]["derived"] == 3.5
    assert ("exp. mu_up m300 dm0.22", None) not in by  # not a benchmark
    assert "NOT lower" in by[("refiner W1 log10 pt", None)]["note"]


def test_real_sample_has_no_pulls():
    rows = truth_table(track_class_sf={"2018": {"pv": [0.95, 0.02], "spurious": [1.0, 0.09]}}, met_fits={},
                       rs_closure={}, signal_output={"histograms": {}, "datasets": {}}, limits=None,
                       refiner_metrics=None, injected=Injected(rs_closure=1.0))
    assert rows and all(r["pull"] is None for r in rows)


def test_pileup_and_ptz_rows():
    """<n_pv> data / MC per era with its uncertainty (injected 1); pT(Z) weights listed per bin."""
    from corrections.softtrack.derive import PtzWeights
    from processors.softtrack.truth_report import pileup_rows, ptz_rows

    rng = np.random.default_rng(3)
    h = hist.Hist(hist.axis.StrCategory(["mc_2018", "data_2018"], name="dataset"),
                  hist.axis.StrCategory(["nominal"], name="systematic"),
                  hist.axis.Integer(0, 100, name="n_pv"), storage=hist.storage.Weight())
    h.fill(dataset="mc_2018", systematic="nominal", n_pv=rng.poisson(25.0, 4000), weight=np.full(4000, 0.5))
    h.fill(dataset="data_2018", systematic="nominal", n_pv=rng.poisson(25.0 * 1.1, 1000))
    out = {"histograms": {"n_pv": h}, "datasets": {"mc_2018": {"process": "dy_mumu", "is_data": False, "era": "2018"},
                                                    "data_2018": {"process": "data_singlemuon", "is_data": True,
                                                                  "era": "2018"}}}
    (row,) = pileup_rows(out)
    assert row["derived"] == pytest.approx(1.1, abs=0.02)
    # sigma of a mean ratio: sqrt(25/1000)/27.5 (+) sqrt(25/4000)/25 ~ 0.0064
    assert row["uncertainty"] == pytest.approx(np.hypot(np.sqrt(27.5 / 1000) / 27.5, np.sqrt(25 / 4000) / 25), rel=0.1)
    assert row["pull"] == pytest.approx(0.1 / row["uncertainty"], rel=0.3)
    rows = ptz_rows({"2018": PtzWeights("2018", [200.0, 300.0, 1000.0], [1.1, 0.9], [0.05, 0.1], 10.0, 20.0)})
    assert [r["quantity"] for r in rows] == ["pT(Z) weight [200, 300) GeV", "pT(Z) weight [300, 1000) GeV"]
    assert rows[1]["derived"] == 0.9 and rows[1]["uncertainty"] == 0.1 and rows[1]["injected"] is None
