"""The NanoEvents schema opens our files with cross-references, and real NanoAOD unchanged."""

from __future__ import annotations

import warnings

import awkward as ak
import pytest
from coffea.nanoevents import NanoEventsFactory

from processors.schema import SoftTrackSchema


def _open(path):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=SoftTrackSchema, mode="eager").events()


def test_generated_file_cross_references(small_sample):
    out, _ = small_sample
    ev = _open(out / "dy_mumu_2018.root")
    assert {"Track", "PFCand", "OtherPV", "SV", "GenPart", "PV"} <= set(ev.fields)
    charged = ev.PFCand[ev.PFCand.trkIdx >= 0]
    # PFCand pT is stored with a 12-bit mantissa (analysis/toymc/writer.py MANTISSA_BITS)
    assert ak.all(abs(charged.matched_track.pt / charged.pt - 1) < 1e-3)
    with_sv = ev.Track[ev.Track.svIdx >= 0]
    assert ak.all(with_sv.matched_sv.x == ev.SV.x[with_sv.svIdx])
    assert ak.all(abs(ev.Track.mass - 0.13957) < 1e-5)
    truth = ev.Track[ev.Track.genPartIdx >= 0]
    assert ak.all(truth.matched_gen.pt == ev.GenPart.pt[truth.genPartIdx])


@pytest.mark.parametrize("name", ["nano_dy.root", "nano_dimuon.root", "pfnano.root",
                                  "nanoAOD_2015_CMS_Open_Data_ttbar.root", "nano_tree.root"])
def test_real_nanoaod_opens(real_data, name):
    with warnings.catch_warnings():
        # old real files lack some NanoAOD branches the schema knows (UserWarning/RuntimeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        ev = _open(real_data / name)
        assert len(ev) > 0
        assert ak.all(ev.Jet.pt >= 0)
        assert "Track" not in ev.fields


def test_file_without_tau_charge_runs_with_a_notice(tmp_path):
    """coffea's Tau behaviour needs Tau_charge: a file without it gets zeros (nothing here
    reads the tau charge), the processors say so once and fill exactly what they fill with
    the branch; a file with the branch keeps its values."""
    import json

    import uproot

    from analysis.toymc.writer import generate_samples
    from processors.runner import RunOptions
    from processors.schema import filled_branches
    from processors.softtrack.run import run_region

    fileset = generate_samples(tmp_path, ["2018"], ["wjets_lnu"], [], 400, 3)
    (name, entry), = fileset.items()
    src = next(iter(entry["files"]))
    with uproot.open(src) as f:
        tree = f["Events"]
        assert "Tau_charge" in tree.keys()
        arrays = tree.arrays([k for k in tree.keys() if k != "Tau_charge"])
    groups: dict = {}
    flat = {}
    for field in arrays.fields:
        coll, _, sub = field.partition("_")
        if sub and f"n{coll}" in arrays.fields:
            groups.setdefault(coll, {})[sub] = arrays[field]
        elif not (field.startswith("n") and field[1:] in {k.partition("_")[0] for k in arrays.fields if "_" in k}):
            flat[field] = arrays[field]
    branches = {**flat, **{coll: ak.zip(fields) for coll, fields in groups.items()}}
    lacking = tmp_path / "no_tau_charge.root"
    with uproot.recreate(lacking) as f:
        f.mktree("Events", {k: v.type for k, v in branches.items()}, counter_name=lambda c: "n" + c,
                 field_name=lambda outer, inner: f"{outer}_{inner}")
        f["Events"].extend(branches)
    ev = _open(lacking)
    assert filled_branches(ev) == ["Tau_charge"]
    assert ak.sum(ak.num(ev.Tau)) > 0 and ak.all(ak.flatten(ev.Tau.charge) == 0)
    assert ak.all(ev.Tau.pt == _open(src).Tau.pt)
    assert filled_branches(_open(src)) == [] and ak.any(ak.flatten(_open(src).Tau.charge) != 0)

    opts = RunOptions(executor="iterative", status=False, systematics=False)
    outs = []
    for path in (src, lacking):
        fs = json.loads(json.dumps(fileset))
        fs[name]["files"] = {str(path): "Events"}
        outs.append(run_region("single_lepton", fs, opts))
    assert outs[0]["cutflow"] == outs[1]["cutflow"]
    assert outs[0]["histograms"].keys() == outs[1]["histograms"].keys()
    for key, h in outs[0]["histograms"].items():
        assert h == outs[1]["histograms"][key], key
    notice = [n for n in outs[1]["notices"] if "Tau_charge" in n]
    assert len(notice) == 1 and "filled with 0" in notice[0]
    assert not any("Tau_charge" in n for n in outs[0]["notices"])
