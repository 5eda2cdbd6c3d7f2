"""``run.py compare`` and processors.compare: are two runs' outputs the same?"""

from __future__ import annotations

import json

import hist
import numpy as np
import pytest
from coffea.util import save

import run
from analysis.errors import InputFileError
from processors.compare import (
    DIFFERENT,
    IDENTICAL,
    INFO_ONLY,
    MISSING,
    SKIPPED,
    WITHIN_TOLERANCE,
    compare_outputs,
)

DATASETS = ("ttjets_2018", "zjets_nunu_2018")
SYSTEMATICS = ("nominal", "jes_up")


def make_hist(datasets=DATASETS, systematics=SYSTEMATICS, fill=DATASETS) -> hist.Hist:
    h = hist.Hist(
        hist.axis.StrCategory(list(datasets), name="dataset", growth=True),
        hist.axis.StrCategory(list(systematics), name="systematic", growth=True),
        hist.axis.Regular(6, 0.0, 12.0, name="max_logit"),
        storage=hist.storage.Weight(),
    )
    for i, d in enumerate(fill):
        for j, s in enumerate(SYSTEMATICS):
            x = np.linspace(0.5, 11.5, 12) + 0.1 * j
            h.fill(dataset=d, systematic=s, max_logit=x, weight=np.full(x.size, 1.25 + i + 0.5 * j))
    return h


def make_output(h=None, **extra) -> dict:
    out = {
        "histograms": {"sr": make_hist() if h is None else h,
                       "met": hist.Hist(hist.axis.Variable([300, 500, 1000], name="met")).fill([350, 700])},
        "cutflow": {d: {"all": {"events": 100, "weighted": 12.5}, "baseline": {"events": 7, "weighted": 0.875}}
                    for d in DATASETS},
        "chunks": {"processed": [{"dataset": d, "file": "f.root", "entrystart": 0} for d in DATASETS],
                   "skipped": []},
        "provenance": {"time": "2026-01-01T00:00:00", "versions": {"coffea": "x"}},
        "notices": [],
        "datasets": {d: {"era": "2018"} for d in DATASETS},
    }
    out.update(extra)
    return out


def write_run(path, output=None, summary=None):
    path.mkdir(parents=True, exist_ok=True)
    save(make_output() if output is None else output, str(path / "signal.coffea"))
    (path / "signal.histograms.json.gz").write_bytes(b"not looked at")
    (path / "summary.json").write_text(json.dumps(
        summary if summary is not None else
        {"limits": {"115_0.27": [0.5, 0.75, 1.0]}, "elapsed": 1.0, "process_s": 3.0,
         "out": str(path / "limits.json")}))
    (path / "plot.png").write_bytes(b"png" + path.name.encode())
    return path


def status(report, name):
    return next(f for f in report.files if f.name == name)


def test_identical_runs(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", summary={"limits": {"115_0.27": [0.5, 0.75, 1.0]}, "elapsed": 9.0,
                                            "process_s": 7.0, "out": str(tmp_path / "b" / "limits.json")})
    report = compare_outputs(a, b)
    assert report.ok, report.format()
    assert status(report, "signal.coffea").status == IDENTICAL
    assert status(report, "summary.json").status == IDENTICAL  # times and root paths ignored
    assert status(report, "signal.histograms.json.gz").status == SKIPPED
    assert status(report, "plot.png").status == INFO_ONLY  # bytes differ: information only


def test_one_bin_changed_relative_1e9(tmp_path):
    h = make_hist()
    view = h.view(flow=False)
    old = float(view.value[0, 0, 3])
    view.value[0, 0, 3] = old * (1 + 1e-9)
    a, b = write_run(tmp_path / "a"), write_run(tmp_path / "b", make_output(h))
    strict = compare_outputs(a, b)
    assert not strict.ok
    result = status(strict, "signal.coffea")
    assert result.status == DIFFERENT and result.n_differences == 1
    assert result.differences[0].startswith(
        "signal.coffea: histograms/sr[dataset=ttjets_2018, systematic=nominal] bin 3: ")
    assert f"{old!r} vs" in result.differences[0]
    loose = compare_outputs(a, b, rtol=1e-6)
    assert loose.ok
    result = status(loose, "signal.coffea")
    assert result.status == WITHIN_TOLERANCE
    assert result.max_rel_diff == pytest.approx(1e-9, rel=1e-3)


def test_variance_difference_is_named(tmp_path):
    h = make_hist()
    h.view(flow=False).variance[1, 1, 0] += 1.0
    report = compare_outputs(write_run(tmp_path / "a"), write_run(tmp_path / "b", make_output(h)))
    (diff,) = status(report, "signal.coffea").differences
    assert "sr[dataset=zjets_nunu_2018, systematic=jes_up] bin 0 (variance)" in diff


def test_category_order_does_not_matter(tmp_path):
    swapped = make_hist(datasets=DATASETS[::-1], systematics=SYSTEMATICS[::-1])
    assert list(swapped.axes["dataset"]) != list(make_hist().axes["dataset"])
    report = compare_outputs(write_run(tmp_path / "a"), write_run(tmp_path / "b", make_output(swapped)))
    assert status(report, "signal.coffea").status == IDENTICAL, report.format()


def test_missing_histogram_category_and_file(tmp_path):
    out = make_output()
    del out["histograms"]["met"]
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", out)
    (a / "extra.json").write_text("{}")
    report = compare_outputs(a, b)
    assert not report.ok
    assert "histograms/met: only in A" in status(report, "signal.coffea").differences[0]
    assert status(report, "extra.json").status == MISSING

    fewer = make_hist(datasets=DATASETS[:1], fill=DATASETS[:1])
    fewer.fill(dataset="other", systematic="nominal", max_logit=[1.0])
    report = compare_outputs(a / "signal.coffea", write_run(tmp_path / "c", make_output(fewer)) / "signal.coffea")
    assert "categories only in A ['zjets_nunu_2018'], only in B ['other']" in report.files[0].differences[0]


def test_cutflow_and_info_entries(tmp_path):
    out = make_output(notices=["ttjets_2018: no Track extension"])
    out["cutflow"]["ttjets_2018"]["baseline"]["weighted"] = 0.875 * (1 + 1e-12)
    out["provenance"]["versions"]["coffea"] = "y"
    report = compare_outputs(write_run(tmp_path / "a"), write_run(tmp_path / "b", out), rtol=1e-9)
    result = status(report, "signal.coffea")
    assert result.status == WITHIN_TOLERANCE and any(i.startswith("notices differ") for i in result.info)

    out["cutflow"]["ttjets_2018"]["baseline"]["events"] = 8
    report = compare_outputs(tmp_path / "a", write_run(tmp_path / "c", out), rtol=1e-9)
    assert "signal.coffea: cutflow/ttjets_2018/baseline events: 7 vs 8" in status(report, "signal.coffea").differences

    out = make_output()
    out["cutflow"]["ttjets_2018"] = dict(reversed(list(out["cutflow"]["ttjets_2018"].items())))
    report = compare_outputs(tmp_path / "a", write_run(tmp_path / "d", out))
    assert "steps ['all', 'baseline'] vs ['baseline', 'all']" in status(report, "signal.coffea").differences[0]


def test_json_numbers(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", summary={"limits": {"115_0.27": [0.5, 0.75 + 1e-7, 1.0]}, "elapsed": 2.0,
                                            "out": str(tmp_path / "b" / "limits.json")})
    report = compare_outputs(a, b)
    assert not report.ok
    result = status(report, "summary.json")
    assert result.differences == ["summary.json/limits/115_0.27[1]: 0.75 vs 0.7500001"]
    assert "summary.json/process_s" not in " ".join(result.differences)  # *_s keys are ignored
    assert compare_outputs(a, b, atol=1e-6).ok
    assert compare_outputs(a / "summary.json", b / "summary.json", rtol=1e-6).ok


def test_cli_exit_codes(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b")
    assert run.main(["compare", str(a), str(b)]) == 0
    assert "the same" in capsys.readouterr().out
    h = make_hist()
    h.view(flow=False).value[0, 0, 3] *= 1 + 1e-9
    c = write_run(tmp_path / "c", make_output(h))
    assert run.main(["compare", str(a), str(c)]) == 1
    assert "DIFFERENT" in capsys.readouterr().out
    assert run.main(["compare", str(a), str(c), "--rtol", "1e-6"]) == 0
    capsys.readouterr()
    assert run.main(["compare", str(a), str(tmp_path / "nowhere")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    with pytest.raises(InputFileError):
        compare_outputs(a, a / "summary.json")
