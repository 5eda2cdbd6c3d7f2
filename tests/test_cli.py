"""run.py: help texts, generate end to end, and one clear message for bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import uproot

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True)


def test_help():
    r = run("--help")
    assert r.returncode == 0 and "generate" in r.stdout
    r = run("generate", "--help")
    assert r.returncode == 0 and "--events-per-sample" in r.stdout and "--signal-points" in r.stdout


def test_generate_end_to_end(tmp_path):
    r = run("generate", "--out", str(tmp_path), "--events-per-sample", "200", "--eras", "2016",
            "--processes", "zjets_nunu,signal,data_met", "--signal-points", "200:1.0", "--quiet")
    assert r.returncode == 0, r.stderr
    fileset = json.loads((tmp_path / "fileset.json").read_text())
    assert set(fileset) == {"zjets_nunu_2016", "signal_m200_dm1_2016", "data_met_2016"}
    for entry in fileset.values():
        (path,) = entry["files"]
        assert uproot.open(path)["Events"].num_entries == entry["metadata"]["n_events"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--processes", "zjets,qcd"], ["unknown process", "zjets"]),
        (["--events-per-sample", "-5"], ["must be positive"]),
        (["--workers", "0"], ["--workers must be positive"]),
        (["--eras", "2019"], ["unknown era", "2019"]),
        (["--processes", "signal", "--signal-points", "115-0.3"], ["bad signal point"]),
    ],
)
def test_generate_bad_arguments(tmp_path, args, words):
    r = run("generate", "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    for w in words:
        assert w in lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_generate_unwritable_dir_as_user(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    r = run("generate", "--out", str(ro / "x"), "--events-per-sample", "10")
    assert r.returncode == 2 and "cannot write" in r.stderr


def test_generate_unwritable_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run("generate", "--out", str(blocker / "sub"), "--events-per-sample", "10")
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def _dimuon_fileset(tmp_path) -> Path:
    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "nano_dimuon.root"
    if not real.is_file():
        pytest.skip(f"real NanoAOD files not found at {real.parent}")
    p = tmp_path / "fileset.json"
    p.write_text(json.dumps({"dimuon": {"files": {str(real): "Events"},
                                        "metadata": {"process": "data_jetht", "era": "2018", "is_data": True}}}))
    return p


@pytest.mark.parametrize(("argv", "words"), [
    (["--processor", "rs"], ["--rs-templates", "rs-templates"]),  # was a raw TypeError
    (["--processor", "nosuch"], ["no processor", "nosuch", "signal"]),
    (["--analysis", "zpeak", "--processor", "signal"], ["zpeak", "no processor", "signal"]),
])
def test_process_bad_processor(tmp_path, capsys, argv, words):
    import run

    rc = run.main(["process", "--fileset", str(_dimuon_fileset(tmp_path)), "--out", str(tmp_path / "o.coffea"),
                   "--executor", "iterative", "--quiet", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert all(w in err for w in words), err
    assert not (tmp_path / "o.coffea").exists()


def test_help_lists_analyses():
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--help"], capture_output=True, text=True, check=True)
    assert "softtrack" in r.stdout and "zpeak" in r.stdout


@pytest.mark.parametrize(("config", "words"), [
    ("bogus_key = 1\n", ["unknown key 'bogus_key'", "value 1"]),
    ("[baseline]\nmet = 'high'\n", ["baseline.met", "high"]),
])
def test_main_job_config_is_checked_before_anything_runs(tmp_path, capsys, config, words):
    """main-job --config: a bad key or value is one line before any sample is generated or
    output written."""
    import run

    path = tmp_path / "bad.toml"
    path.write_text(config)
    out, data = tmp_path / "out", tmp_path / "data"
    rc = run.main(["main-job", "--config", str(path), "--out", str(out), "--data", str(data), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    assert not out.exists() and not data.exists()
