"""The fileset (processors/fileset.py, issue 20): remote URLs kept verbatim, local paths made
absolute, the normalization metadata checked, processes declared by the analyses, no file
counted twice. Each refusal is one FilesetError line; the CLI cases are in test_hostile.py."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from analysis.errors import FilesetError
from processors import fileset as fs_module
from processors.fileset import file_identity, load_fileset, refuse_same_uuid, validate_fileset
from processors.registry import known_processes

SIM = {"process": "zjets_nunu", "era": "2018", "is_data": False, "xsec_pb": 2.0, "sum_genweight": 10.0}
PSEUDO = {"process": "data_met", "era": "2018", "is_data": True, "lumi_fb": 0.5, "seed": 1,
          "generator_version": "7", "processes": ["zjets_nunu"]}


def _write(path: Path, datasets: dict) -> Path:
    path.write_text(json.dumps(datasets))
    return path


def _one(files: dict, meta: dict = SIM) -> dict:
    return {"d": {"files": files, "metadata": dict(meta)}}


def _error(tmp_path, datasets) -> str:
    with pytest.raises(FilesetError) as info:
        load_fileset(_write(tmp_path / "fileset.json", datasets))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_urls_verbatim_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.setattr(fs_module, "_xrootd_available", lambda: True)
    sub = tmp_path / "sets"
    sub.mkdir()
    urls = ["root://eos.example.org//store/mc/f.root", "https://host.example/a/b.root?x=1",
            "http://127.0.0.1:8080/c.root", "roots://host//d.root"]
    files = {u: "Events" for u in urls} | {"rel/e.root": "Events", "/abs/f.root": "Events",
                                           f"file://{tmp_path}/g.root": "Events"}
    _write(sub / "fileset.json", _one(files))
    monkeypatch.chdir(tmp_path)  # a relative fileset path: the files still come out absolute
    out = load_fileset(Path("sets") / "fileset.json")["d"]["files"]
    assert list(out) == [*urls, str(sub / "rel" / "e.root"), "/abs/f.root", str(tmp_path / "g.root")]
    assert all(u in out for u in urls)
    assert all(Path(p).is_absolute() for p in out if "://" not in p)


def test_xrootd_needs_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(fs_module, "_xrootd_available", lambda: False)
    msg = _error(tmp_path, _one({"root://host//store/f.root": "Events"}))
    assert "root://host//store/f.root" in msg and "[xrootd]" in msg and "pip install" in msg


def test_unknown_scheme(tmp_path):
    msg = _error(tmp_path, _one({"rooot://host//f.root": "Events"}))
    assert "'rooot'" in msg and "dataset 'd'" in msg and "root://" in msg


@pytest.mark.parametrize("key, value", [("xsec_pb", -1.0), ("xsec_pb", math.nan), ("sum_genweight", 0.0),
                                        ("sum_genweight", math.inf), ("lumi_fb", -0.5)])
def test_normalization_positive_finite(tmp_path, key, value):
    meta = (PSEUDO if key == "lumi_fb" else SIM) | {key: value}
    msg = _error(tmp_path, _one({"a.root": "Events"}, meta))
    assert f"metadata.{key} = {value!r}" in msg and "positive finite" in msg and "dataset 'd'" in msg


def test_simulation_needs_normalization(tmp_path):
    meta = {k: v for k, v in SIM.items() if k != "sum_genweight"}
    msg = _error(tmp_path, _one({"a.root": "Events"}, meta))
    assert "metadata.sum_genweight" in msg and "is_data" in msg


def test_pseudo_data_needs_lumi(tmp_path):
    meta = {k: v for k, v in PSEUDO.items() if k != "lumi_fb"}
    msg = _error(tmp_path, _one({"a.root": "Events"}, meta))
    assert "pseudo-data" in msg and "dataset 'd'" in msg and "add lumi_fb" in msg
    # real data (no generator keys) is normalized to the configuration's luminosity, as documented
    real = {"process": "data_met", "era": "2018", "is_data": True}
    assert load_fileset(_write(tmp_path / "real.json", _one({"a.root": "Events"}, real)))


def test_unknown_process(tmp_path):
    msg = _error(tmp_path, _one({"a.root": "Events"}, SIM | {"process": "zjets_nunnu"}))
    assert "'zjets_nunnu'" in msg and "did you mean 'zjets_nunu'" in msg and "processes=" in msg
    with pytest.raises(FilesetError, match="'mine'"):
        validate_fileset(_one({"a.root": "Events"}, SIM | {"process": "mine"}), tmp_path, "f", processes={"x"})
    assert validate_fileset(_one({"a.root": "Events"}, SIM | {"process": "mine"}), tmp_path, "f",
                            processes={"mine"})


def test_the_analyses_declare_the_generators_processes():
    from analysis.toymc.processes import DATA_STREAMS, PROCESSES

    assert set(PROCESSES) | set(DATA_STREAMS) | {"signal"} <= known_processes()


def test_same_file_twice(tmp_path):
    real = tmp_path / "a.root"
    real.write_bytes(b"x")
    (tmp_path / "link.root").symlink_to(real)
    (tmp_path / "sub").mkdir()
    for other in ("link.root", "sub/../a.root", str(real)):
        datasets = {"one": {"files": {"a.root": "Events"}, "metadata": SIM},
                    "two": {"files": {other: "Events"}, "metadata": SIM}}
        msg = _error(tmp_path, datasets)
        assert "dataset 'one'" in msg and "dataset 'two'" in msg and "same file" in msg and "list it once" in msg
    # within one dataset, and two spellings of one URL
    msg = _error(tmp_path, _one({"a.root": "Events", "./sub/../a.root": "Events"}))
    assert "same file" in msg
    msg = _error(tmp_path, _one({"https://Host.example//a/b.root": "Events", "https://host.example/a/./b.root": "Events"}))
    assert "https://Host.example//a/b.root" in msg and "https://host.example/a/./b.root" in msg


def test_file_identity():
    assert file_identity("root://H:1094//store/../store/f.root") == "root://h:1094/store/f.root"
    assert file_identity("root://h//a") == file_identity("root://h/a")
    assert file_identity("https://h/a?x=1") != file_identity("https://h/a?x=2")
    assert file_identity(os.path.join("/tmp", "..", "tmp", "f")) == os.path.realpath("/tmp/f")


def test_same_uuid():
    uuid = b"\x01" * 16
    fileset = {"a": {"file_info": {"/x/a.root": {"uuid": uuid}}},
               "b": {"file_info": {"root://h//y/a.root": {"uuid": uuid}, "/x/b.root": {"uuid": b"\x02" * 16}}}}
    with pytest.raises(FilesetError) as info:
        refuse_same_uuid(fileset)
    msg = str(info.value)
    assert "/x/a.root" in msg and "root://h//y/a.root" in msg and "UUID 01010101-" in msg
    del fileset["b"]["file_info"]["root://h//y/a.root"]
    refuse_same_uuid(fileset)


def test_empty_files(tmp_path):
    msg = _error(tmp_path, _one({}))
    assert "dataset 'd'" in msg and "files is empty" in msg


def _lumi_fileset(*entries):
    return {f"d{i}": {"files": {}, "metadata": {"process": proc, "era": era, "is_data": True, "lumi_fb": lumi}}
            for i, (proc, era, lumi) in enumerate(entries)}


def test_normalization_lumi_adds_run_periods_and_refuses_ambiguous_streams():
    """Two datasets of one stream and era (run periods) add up; other streams do not count for a
    processor reading one; a processor naming no stream refuses streams of different luminosity."""
    from analysis.errors import ConfigError
    from processors.runner import normalization_lumi

    fs = _lumi_fileset(("data_met", "2018", 10.0), ("data_met", "2018", 5.0), ("data_singlemuon", "2018", 2.0),
                       ("data_met", "2017", 7.0))
    default = {"2016": 36.3, "2017": 41.5, "2018": 59.8}
    assert normalization_lumi(fs, "met", default) == {"2016": 36.3, "2017": 7.0, "2018": 15.0}
    assert normalization_lumi(fs, "singlemuon", default) == {"2016": 36.3, "2017": 41.5, "2018": 2.0}
    with pytest.raises(ConfigError, match=r"era 2018: .*data_met 15 fb\^-1, data_singlemuon 2 fb\^-1.*`stream`"):
        normalization_lumi(fs, None, default)
    same = _lumi_fileset(("data_met", "2018", 3.0), ("data_singlemuon", "2018", 3.0))
    assert normalization_lumi(same, None, default)["2018"] == 3.0
