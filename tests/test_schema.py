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
