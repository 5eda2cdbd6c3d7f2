"""Shared fixtures: small generated samples (session scope, fixed seeds) and the real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory) -> tuple[Path, dict]:
    """Every process and stream of 2018, 1500 events each (seed 7), with its fileset."""
    from analysis.toymc.writer import generate_samples

    out = tmp_path_factory.mktemp("toy")
    procs = ["zjets_nunu", "wjets_lnu", "ttjets", "dy_mumu", "qcd", "signal", "data_met", "data_singlemuon", "data_jetht"]
    generate_samples(out, ["2018"], procs, [(115.0, 0.27)], 1500, 7)
    return out, json.loads((out / "fileset.json").read_text())


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real NanoAOD files not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def smuon_sample(tmp_path_factory) -> tuple[Path, dict]:
    """The smuon search's processes (analysis/toymc/smuon.py): 3000 kept events per background,
    400 per signal point, seed 5."""
    from analysis.toymc.writer import generate_samples

    out = tmp_path_factory.mktemp("smuon")
    points = [(200.0, 0.0), (300.0, 0.0), (500.0, 0.0), (300.0, 250.0)]
    generate_samples(out, ["run2"], ["smuon", "ttbar_mumu", "ww_mumu", "diboson_mumu"], points, 3000, 5,
                     signal_events=400)
    return out, json.loads((out / "fileset.json").read_text())
