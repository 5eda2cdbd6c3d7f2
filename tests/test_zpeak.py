"""The example analysis zpeak (ARCHITECTURE.md "How to add an analysis"): registered through its
entry point, run with ``run.py process --analysis zpeak`` on the real NanoAOD files and on
generated Drell-Yan, its cutflow equal to an independent count, the same on every executor."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from coffea.util import load

import run
from analysis.zpeak.config import ZPeakConfig
from processors.registry import analyses, get


def _independent_cutflow(path, cfg: ZPeakConfig) -> dict[str, int]:
    """The zpeak steps counted with uproot and numpy, event by event (no framework code)."""
    import uproot

    t = uproot.open(path)["Events"]
    b = t.arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge", "Muon_pfRelIso03_all", "Muon_mediumId"],
                 library="np")
    counts = dict.fromkeys(("all", "finite_inputs", "two_muons", "leading_pt", "opposite_charge", "mass_window"), 0)
    m = 0.1056583755
    for i in range(t.num_entries):
        counts["all"] += 1
        if not all(np.isfinite(b[k][i]).all() for k in ("Muon_pt", "Muon_eta", "Muon_phi", "Muon_pfRelIso03_all")):
            continue
        ok = [(b["Muon_pt"][i][j] > cfg.muons.pt and abs(b["Muon_eta"][i][j]) < cfg.muons.eta
               and b["Muon_pfRelIso03_all"][i][j] < cfg.muons.rel_iso and bool(b["Muon_mediumId"][i][j]))
              for j in range(len(b["Muon_pt"][i]))]
        mu = [j for j, good in enumerate(ok) if good]
        counts["finite_inputs"] += 1
        if len(mu) < 2:
            continue
        counts["two_muons"] += 1
        a, c = mu[0], mu[1]
        if not b["Muon_pt"][i][a] > cfg.muons.leading_pt:
            continue
        counts["leading_pt"] += 1
        if not b["Muon_charge"][i][a] * b["Muon_charge"][i][c] < 0:
            continue
        counts["opposite_charge"] += 1
        p = []
        for j in (a, c):
            pt, eta, phi = (float(b[k][i][j]) for k in ("Muon_pt", "Muon_eta", "Muon_phi"))
            p.append((pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + m * m)))
        px, py, pz, e = (p[0][k] + p[1][k] for k in range(4))
        mass = np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
        if cfg.mass_low < mass < cfg.mass_high:
            counts["mass_window"] += 1
    return counts


def _fileset(tmp_path, files: dict[str, tuple[str, dict]]):
    fs = {name: {"files": {path: "Events"}, "metadata": meta} for name, (path, meta) in files.items()}
    p = tmp_path / "fileset.json"
    p.write_text(json.dumps(fs))
    return p


def test_registered():
    assert {"softtrack", "zpeak"} <= set(analyses())
    assert get("zpeak").default_processor == "zpeak"


@pytest.mark.parametrize("executor", ["iterative", "futures", "dask"])
def test_real_dimuon_cutflow(real_data, tmp_path, executor):
    src = real_data / "nano_dimuon.root"
    fs = _fileset(tmp_path, {"dimuon": (str(src), {"process": "data_singlemuon", "era": "2018", "is_data": True})})
    out = tmp_path / "zpeak.coffea"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old real files lack NanoAOD branches the schema knows
        rc = run.main(["process", "--analysis", "zpeak", "--fileset", str(fs), "--out", str(out),
                       "--executor", executor, "--workers", "2", "--chunksize", "15", "--quiet"])
    assert rc == 0
    result = load(str(out))
    flow = result["cutflow"]["dimuon"]
    expected = _independent_cutflow(src, ZPeakConfig())
    assert {k: v["events"] for k, v in flow.items()} == expected
    assert expected["mass_window"] > 0  # the check selects something
    h = result["histograms"]["mass"][{"dataset": "dimuon", "systematic": "nominal"}]
    assert h.values().sum() == expected["mass_window"]


def test_real_dy_and_config_override(real_data, tmp_path):
    src = real_data / "nano_dy.root"
    meta = {"process": "dy", "era": "2018", "is_data": False, "xsec_pb": 6000.0, "sum_genweight": 40.0}
    fs = _fileset(tmp_path, {"dy": (str(src), meta)})
    cfg_file = tmp_path / "zpeak.toml"
    cfg_file.write_text("mass_low = 80.0\nmass_high = 100.0\n[muons]\nrel_iso = 0.25\n")
    outs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tag, extra in (("default", []), ("override", ["--config", str(cfg_file)])):
            out = tmp_path / f"{tag}.coffea"
            assert run.main(["process", "--analysis", "zpeak", "--fileset", str(fs), "--out", str(out),
                             "--executor", "iterative", "--quiet", *extra]) == 0
            outs[tag] = load(str(out))
    override = ZPeakConfig(mass_low=80.0, mass_high=100.0, muons={"rel_iso": 0.25})
    for tag, cfg in (("default", ZPeakConfig()), ("override", override)):
        flow = outs[tag]["cutflow"]["dy"]
        assert {k: v["events"] for k, v in flow.items()} == _independent_cutflow(src, cfg)
    assert outs["default"]["provenance"]["config_hash"] != outs["override"]["provenance"]["config_hash"]


def test_bad_config_key(real_data, tmp_path, capsys):
    src = real_data / "nano_dy.root"
    fs = _fileset(tmp_path, {"dy": (str(src), {"process": "dy", "era": "2018", "is_data": True})})
    cfg_file = tmp_path / "bad.toml"
    cfg_file.write_text("[muons]\nrel_isolation = 0.25\n")
    rc = run.main(["process", "--analysis", "zpeak", "--fileset", str(fs), "--out", str(tmp_path / "o.coffea"),
                   "--config", str(cfg_file), "--executor", "iterative", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "muons.rel_isolation" in err and err.count("\n") == 1


def test_generated_dy(small_sample, tmp_path):
    out_dir, _ = small_sample
    fileset = json.loads((out_dir / "fileset.json").read_text())
    keep = {k: v for k, v in fileset.items() if v["metadata"]["process"] in ("dy_mumu", "data_singlemuon")}
    for v in keep.values():
        v["files"] = {str(out_dir / f) if not f.startswith("/") else f: t for f, t in v["files"].items()}
    p = tmp_path / "fileset.json"
    p.write_text(json.dumps(keep))
    out = tmp_path / "zpeak.coffea"
    assert run.main(["process", "--analysis", "zpeak", "--fileset", str(p), "--out", str(out),
                     "--executor", "futures", "--quiet"]) == 0
    result = load(str(out))
    for name in keep:
        flow = result["cutflow"][name]
        assert 0 < flow["mass_window"]["events"] <= flow["opposite_charge"]["events"] <= flow["all"]["events"]
    h = result["histograms"]["mass"]
    centers = h.axes["mass"].centers
    dy = [d for d in keep if keep[d]["metadata"]["process"] == "dy_mumu"][0]
    values = h[{"dataset": dy, "systematic": "nominal"}].values()
    mean = float((centers * values).sum() / values.sum())
    assert 88.0 < mean < 94.0  # the peak is at m_Z
