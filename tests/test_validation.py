"""Trustworthy inputs (issue 20): non-finite values, what validate() checks before any chunk, and
processors whose templates and corrections travel by content (pickle, file gone, process)."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from analysis.errors import ConfigError, CorrectionError
from processors.fileset import load_fileset
from processors.runner import RunOptions, make_processor, run

OPTS = RunOptions(executor="iterative", chunksize=100_000, status=False)


@pytest.fixture(scope="module")
def fileset(small_sample):
    out, _ = small_sample
    return load_fileset(out / "fileset.json")


def _only(fileset, *names):
    return {k: v for k, v in fileset.items() if k in names}


def _same_histograms(a: dict, b: dict) -> None:
    assert set(a["histograms"]) == set(b["histograms"])
    for name, h in a["histograms"].items():
        assert h == b["histograms"][name], name
    assert a["cutflow"] == b["cutflow"]


# --- non-finite values ---------------------------------------------------------------------
def test_non_finite_scores_are_in_no_signal_region():
    from analysis.softtrack.config import SR_LOGIT_EDGES
    from processors.softtrack.scoring import signal_region

    scores = np.array([[12.0, 0.0, 0.0], [np.nan, 0.0, 0.0], [np.inf, 0.0, 0.0], [0.0, -np.inf, 11.0],
                       [0.0, np.nan, 11.0]])
    category, sr = signal_region(scores, SR_LOGIT_EDGES)
    assert sr.tolist() == [3, -1, -1, -1, -1]
    assert category[0] == 0


def test_finite_mask_and_cutflow_step():
    import awkward as ak

    from processors.base import add_finite_step, finite_mask

    events = ak.zip({"MET": ak.zip({"pt": [1.0, np.inf, 3.0, 4.0]}),
                     "Jet": ak.zip({"pt": [[1.0], [], [np.nan, 2.0], [5.0]], "jetId": [[1], [], [2, 3], [4]]}),
                     "genWeight": [1.0, 1.0, 1.0, np.nan]}, depth_limit=1)
    ok, bad = finite_mask(events, ["MET_pt", "Jet_pt", "Jet_jetId", "Jet_missing", "Photon_pt", "genWeight"])
    assert ok.tolist() == [True, False, False, False] and bad == ["MET_pt", "Jet_pt", "genWeight"]
    flow = {"all": {"events": 1, "weighted": 2.0}, "cut": {"events": 0, "weighted": 0.0}}
    assert add_finite_step(flow, 3, 1.5) == {"all": {"events": 4, "weighted": 3.5}, "finite_inputs": flow["all"],
                                             "cut": flow["cut"]}
    assert add_finite_step(flow, 0, 0.0) == {"all": flow["all"], "finite_inputs": flow["all"], "cut": flow["cut"]}


class _ConstantScorer:
    """Every selected event gets the max logit ``value`` for each Delta m (NaN: a model gone wrong)."""

    def __init__(self, value: float):
        self.value = value

    def max_logits(self, tracks, candidate, *args):
        return self.max_logits_and_best(tracks, candidate, *args)[:2]

    def max_logits_and_best(self, tracks, candidate, *args):
        none = np.full(len(tracks), -1, np.int64)
        return np.full((len(tracks), 3), self.value), none, none


@pytest.mark.parametrize("value", [12.0, np.nan, np.inf])
def test_non_finite_scores_reach_no_histogram(fileset, value):
    """Max logits of 12 put every selected event in a signal region; NaN or inf ones put none
    there nor in a score histogram, and a notice says so."""
    from processors.softtrack.signal import SignalProcessor

    fs = _only(fileset, "signal_m115_dm0p27_2018")
    out = run(make_processor(SignalProcessor, fs, scorer=_ConstantScorer(value), systematics=False), fs, OPTS)
    h = out["histograms"]
    selected = h["met"][{"systematic": "nominal"}].sum(flow=True).value
    scored = [h["sr"].sum(flow=True).value, h["max_logit"].sum(flow=True).value,
              h["max_logit_category"].sum(flow=True).value]
    notice = any("non-finite track scores" in n for n in out["notices"])
    if np.isfinite(value):
        assert selected > 0 and scored[0] == pytest.approx(selected) and scored[1] > 0 and not notice
    else:
        assert scored == [0.0, 0.0, 0.0] and notice


# --- corrections: what the file must provide -----------------------------------------------
def _without_era(tmp_path, name: str, era: str):
    """The shipped corrections with correction ``name`` lacking ``era`` (as a file derived
    without that era's trigger-efficiency events would)."""
    import gzip
    import json

    from corrections.softtrack.apply import DEFAULT_PATH, SoftTrackCorrections

    with gzip.open(DEFAULT_PATH, "rt") as f:
        doc = json.load(f)
    for corr in doc["corrections"]:
        if corr["name"] == name:
            corr["data"]["content"] = [c for c in corr["data"]["content"] if c["key"] != era]
    path = tmp_path / f"no_{name}_{era}.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(doc, f)
    return SoftTrackCorrections(path)


def test_corrections_missing_names_what_is_absent(tmp_path):
    from corrections.softtrack.apply import SoftTrackCorrections

    shipped = SoftTrackCorrections()
    assert shipped.missing("pileup_weight", era="2018", syst=("nominal", "up", "down")) is None
    assert shipped.missing("met_weight", era="2016", syst="nominal") is None
    assert _without_era(tmp_path, "met_weight", "2016").missing("met_weight", era="2016", syst="nominal")[0] == "era"
    assert shipped.missing("track_class_sf", era="2018", **{"class": ("pv", "tau")})[0] == "class"
    assert shipped.missing("residual_shape", era="2018") is None
    assert _without_era(tmp_path, "residual_shape", "2018").missing("residual_shape", era="2018")[0] == "era"
    assert shipped.missing("fake_rate", era="2018")[0] == "correction"


def test_optional_corrections_are_validated():
    from analysis.softtrack.config import SoftTrackConfig

    assert SoftTrackConfig(optional_corrections={"met_weight": ["2016"]}).optional_corrections == {"met_weight": ("2016",)}
    with pytest.raises(ValueError, match="optional_corrections names"):
        SoftTrackConfig(optional_corrections={"met": ["2016"]})
    with pytest.raises(ValueError, match="eras"):
        SoftTrackConfig(optional_corrections={"met_weight": ["2019"]})


def test_corrections_lacking_2016_met_weight_stop_unless_declared_optional(fileset, tmp_path):
    """A corrections file without a 2016 met_weight: a 2016 dataset stops the run before any
    chunk, unless the configuration declares it optional for 2016."""
    from analysis.softtrack.config import SoftTrackConfig
    from corrections.softtrack.apply import SoftTrackCorrections
    from processors.softtrack.signal import SignalProcessor

    fs = {"zjets_nunu_2016": {**fileset["zjets_nunu_2018"],
                              "metadata": {**fileset["zjets_nunu_2018"]["metadata"], "era": "2016"}}}
    lacking = _without_era(tmp_path, "met_weight", "2016")
    SignalProcessor(corrections=SoftTrackCorrections()).validate(fs)  # the shipped file has 2016
    with pytest.raises(CorrectionError, match=r"met_weight has no era '2016'.*optional_corrections"):
        SignalProcessor(corrections=lacking).validate(fs)
    SignalProcessor(SoftTrackConfig(optional_corrections={"met_weight": ["2016"]}), corrections=lacking).validate(fs)


# --- travel by content ---------------------------------------------------------------------
def test_corrections_travel_by_content(fileset, tmp_path):
    """A processor holding corrections pickles their JSON with its sha256: unpickled after the
    file is gone it gives the same output; altered bytes are refused."""
    from corrections.softtrack.apply import DEFAULT_PATH, SoftTrackCorrections
    from processors.softtrack.signal import SignalProcessor

    fs = _only(fileset, "zjets_nunu_2018")
    path = tmp_path / "c.json.gz"
    shutil.copy(DEFAULT_PATH, path)
    proc = make_processor(SignalProcessor, fs, corrections=SoftTrackCorrections(path), systematics=False)
    ref = run(proc, fs, OPTS)
    blob = pickle.dumps(proc)
    path.unlink()
    _same_histograms(run(pickle.loads(blob), fs, OPTS), ref)
    state = pickle.loads(blob).corrections.__getstate__()
    with pytest.raises(CorrectionError, match="arrived altered"):
        SoftTrackCorrections.__new__(SoftTrackCorrections).__setstate__({**state, "json": state["json"] + " "})


@pytest.fixture(scope="module")
def rs_templates(fileset, tmp_path_factory):
    from commands.rs_templates import build

    path = tmp_path_factory.mktemp("rs") / "rs_templates.json.gz"
    build(_only(fileset, "qcd_2018"), path, OPTS)
    return path


def test_rs_templates_travel_by_content(fileset, rs_templates, tmp_path):
    """The R&S processor carries the template file's bytes and sha256: pickled, the file moved
    away, unpickled (a worker elsewhere) it processes and gives the same output."""
    from processors.softtrack.rs import RSPredictionProcessor

    fs = _only(fileset, "qcd_2018")
    path = tmp_path / "templates.json.gz"
    shutil.copy(rs_templates, path)
    kw = {"rs_templates": str(path), "rs_n_smear": 2, "rs_n_bootstrap": 2}
    proc = make_processor(RSPredictionProcessor, fs, systematics=False, **kw)
    blob = pickle.dumps(proc)
    ref = run(proc, fs, OPTS)
    path.rename(tmp_path / "elsewhere.json.gz")
    clone = pickle.loads(blob)
    assert clone._inputs is None and clone.rs_templates_sha256 == proc.rs_templates_sha256
    _same_histograms(run(clone, fs, OPTS), ref)
    clone = pickle.loads(blob)
    clone._templates_bytes = clone._templates_bytes[:-1] + bytes([clone._templates_bytes[-1] ^ 0xFF])
    with pytest.raises(ConfigError, match="arrived altered"):
        clone.inputs()
