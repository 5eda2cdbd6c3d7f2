"""Object helpers against straightforward awkward implementations."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from analysis import objects as obj


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


def test_far_from_rejects_mismatched_events():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="events"):
        obj.far_from(_random_collection(rng, 10, 3), _random_collection(rng, 11, 3), 0.4)
