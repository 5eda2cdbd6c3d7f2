"""Object helpers against straightforward awkward implementations."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from analysis.softtrack import objects as obj


def _random_collection(rng, n_events, mean):
    counts = rng.poisson(mean, n_events)
    k = counts.sum()
    eta = rng.uniform(-2.5, 2.5, k).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, k).astype(np.float32)
    phi[: k // 10] = np.float32(np.pi) - rng.uniform(0, 0.05, k // 10).astype(np.float32)  # near the wrap
    return ak.unflatten(ak.zip({"eta": eta, "phi": phi}), counts)


@pytest.mark.parametrize("dr", [0.05, 0.4])
def test_far_from_equals_cartesian(dr):
    rng = np.random.default_rng(5)
    a, b = _random_collection(rng, 3000, 12), _random_collection(rng, 3000, 2)
    pairs = ak.cartesian({"a": a, "b": b}, nested=True)
    ref = obj.delta_r(pairs.a.eta, pairs.a.phi, pairs.b.eta, pairs.b.phi)
    expected = ak.fill_none(ak.min(ref, axis=2), np.inf) > dr
    got = obj.far_from(a, b, dr)
    assert ak.all(ak.num(got) == ak.num(a))
    # float32 inputs: the cartesian reference rounds; allow disagreement only at the boundary
    flat_min = ak.flatten(ak.fill_none(ak.min(ref, axis=2), np.inf)).to_numpy()
    disagree = ak.flatten(got != expected).to_numpy()
    assert np.all(np.abs(flat_min[disagree] - dr) < 1e-5)
    assert (~ak.flatten(got)).to_numpy().sum() > 100  # the test sees objects near the references
    # events without references keep everything; events without objects stay empty
    none = ak.num(b) == 0
    assert ak.all(ak.all(got[none], axis=1))


def test_far_from_nan():
    a = ak.Array([[{"eta": np.nan, "phi": 0.0}, {"eta": 0.0, "phi": 0.0}, {"eta": 2.0, "phi": 0.0}]])
    b = ak.Array([[{"eta": 0.1, "phi": 0.0}, {"eta": np.nan, "phi": 1.0}]])
    assert obj.far_from(a, b, 0.4).tolist() == [[False, False, True]]


def test_far_from_rejects_mismatched_events():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="events"):
        obj.far_from(_random_collection(rng, 10, 3), _random_collection(rng, 11, 3), 0.4)


def _reference_jet_observables(jets, met_phi, era):
    """The awkward formulation of analysis.softtrack.selection's jet observables (objects.py helpers)."""
    from analysis.softtrack.config import BASELINE_CUTS, HEM_DPHI, HEM_ERAS, HEM_ETA, HEM_PHI

    good = obj.selected_jets(jets)
    wide = jets[(jets.pt > 30.0) & (abs(jets.eta) < 5.0)]
    mht, mht_phi = obj.hard_mht(jets)
    lead = ak.firsts(good)
    out = {
        "mht": mht, "mht_phi": mht_phi, "ht": obj.ht(jets), "ht5": obj.ht(jets, eta_max=5.0),
        "n_jets": ak.num(good), "n_btags": ak.sum(obj.btagged(good), axis=1), "leading_jet_pt": lead.pt,
        "leading_jet_eta": lead.eta, "leading_jet_phi": lead.phi,
        "min_dphi": obj.min_dphi(good, met_phi, BASELINE_CUTS.n_dphi_jets),
    }
    hem = np.zeros(len(jets), bool)
    if era in HEM_ERAS:
        in_window = (wide.eta > HEM_ETA[0]) & (wide.eta < HEM_ETA[1]) & (wide.phi > HEM_PHI[0]) & (wide.phi < HEM_PHI[1])
        hem = ak.to_numpy(ak.any(in_window & (abs(obj.delta_phi(wide.phi, mht_phi)) < HEM_DPHI), axis=1))
    out = {k: ak.to_numpy(ak.fill_none(v, 0)).astype(np.float64) for k, v in out.items()}
    return out, hem


def _compare_event_observables(small_sample, sample) -> int:
    """Kernel vs awkward formulation on a generated file, for a HEM era and another; returns
    the number of HEM-vetoed events seen."""
    from coffea.nanoevents import NanoEventsFactory

    from analysis.softtrack.selection import event_observables
    from processors.schema import SoftTrackSchema

    out, _ = small_sample
    ev = NanoEventsFactory.from_root({str(out / sample): "Events"}, schemaclass=SoftTrackSchema,
                                     mode="eager").events()
    jets = ev.Jet[ak.argsort(ev.Jet.pt, ascending=False)]
    vetoed = 0
    for era in ("2018", "2017"):
        got = event_observables(jets, ev.Muon, ev.Electron, ev.Photon, ev.Tau, ev.MET.pt, ev.MET.phi, era)
        ref, hem = _reference_jet_observables(jets, ev.MET.phi, era)
        assert np.array_equal(got.hem_veto, hem)
        vetoed += hem.sum()
        for key, value in ref.items():
            g = np.asarray(getattr(got, key), dtype=np.float64)
            if key == "mht_phi":  # undefined direction of a vanishing H_T^miss
                sel = ref["mht"] > 1e-3
                g, value = g[sel], value[sel]
                d = np.abs((g - value + np.pi) % (2 * np.pi) - np.pi)
                assert d.max() < 1e-4, key
            else:
                assert g == pytest.approx(value, rel=1e-5, abs=1e-3), key
    assert ak.sum(ak.num(jets)) > 1000
    return vetoed


def test_event_observables_kernel_equals_awkward(small_sample):
    vetoed = sum(_compare_event_observables(small_sample, s)
                 for s in ("qcd_2018.root", "ttjets_2018.root", "data_met_2018.root"))
    assert vetoed > 0  # the HEM veto is exercised


def test_event_observables_nan_fails_cuts():
    """NaN directions give NaN observables (every cut on them fails), never a pass."""
    from analysis.softtrack.selection import event_observables

    jet = {"pt": 300.0, "eta": 0.1, "phi": 0.5, "jetId": 6, "btagDeepB": 0.1}
    jets = ak.Array([[jet, {**jet, "pt": 100.0, "phi": np.nan}], [jet], [{**jet, "pt": np.nan}]])
    lep = ak.Array([[{"pt": 1.0, "eta": 0.0, "pfRelIso03_all": 1.0}], [], []])
    taus = ak.Array([[{"pt": 1.0, "eta": 0.0}], [], []])
    o = event_observables(jets, lep, lep, lep, taus, np.full(3, 300.0), np.array([3.0, np.nan, 3.0]), "2018")
    assert np.isnan(o.min_dphi[:2]).all() and np.isnan(o.mht[0])
    assert not (o.min_dphi[:2] > 0.5).any()
    assert o.n_jets.tolist() == [2, 1, 0] and o.min_dphi[2] == 10.0
