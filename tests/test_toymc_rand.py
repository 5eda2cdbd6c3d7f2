"""The generator's in-kernel random numbers (analysis.toymc.rand) against scipy's distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from scipy import stats

from analysis.toymc import rand

N = 200_000
P_MIN = 1e-3  # smallest accepted p-value of a goodness-of-fit test


@njit(cache=True)
def _draw(s, kind, a, b, n):
    out = np.empty(n)
    for i in range(n):
        if kind == 0:
            out[i] = rand.uniform(s, a, b)
        elif kind == 1:
            out[i] = rand.normal(s, a, b)
        elif kind == 2:
            out[i] = rand.gamma(s, a, b)
        elif kind == 3:
            out[i] = rand.exponential(s, a)
        elif kind == 4:
            out[i] = rand.laplace(s, a, b)
        elif kind == 5:
            out[i] = rand.pareto(s, a)
        elif kind == 6:
            out[i] = rand.poisson(s, a)
        else:
            out[i] = rand.sign(s)
    return out


def draw(kind, a=0.0, b=1.0, n=N, seed=1):
    return _draw(rand.state_from(np.random.default_rng(seed)), kind, a, b, n)


@pytest.mark.parametrize(("kind", "a", "b", "dist"), [
    (0, -2.0, 3.0, stats.uniform(-2.0, 5.0)),
    (1, 0.0, 1.0, stats.norm()),
    (1, 5.0, 0.3, stats.norm(5.0, 0.3)),
    (2, 0.4, 2.0, stats.gamma(0.4, scale=2.0)),
    (2, 1.6, 0.45, stats.gamma(1.6, scale=0.45)),
    (2, 5.0, 0.2, stats.gamma(5.0, scale=0.2)),
    (3, 0.6, 0.0, stats.expon(scale=0.6)),
    (4, 1.0, 0.15, stats.laplace(1.0, 0.15)),
    (5, 2.5, 0.0, stats.lomax(2.5)),
], ids=["uniform", "normal", "normal-shifted", "gamma-0.4", "gamma-1.6", "gamma-5", "exponential", "laplace",
        "pareto"])
def test_continuous_distributions(kind, a, b, dist):
    x = draw(kind, a, b)
    assert stats.kstest(x, dist.cdf).pvalue > P_MIN
    assert x.mean() == pytest.approx(dist.mean(), abs=5 * dist.std() / math.sqrt(N))


def test_normal_tails_and_moments():
    """The ziggurat's tail beyond R = 3.65 and its wedges: tail fractions and the fourth moment."""
    x = draw(1, n=4_000_000, seed=3)
    for cut in (1.0, 2.5, rand._ZIG_R, 4.5):
        p = 2 * stats.norm.sf(cut)
        assert (np.abs(x) > cut).mean() == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / x.size))
    assert x.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / x.size))
    assert (x**4).mean() == pytest.approx(3.0, abs=5 * math.sqrt(96 / x.size))
    assert abs((x > 0).mean() - 0.5) < 5 * 0.5 / math.sqrt(x.size)


@pytest.mark.parametrize("lam", [0.6, 2.0, 6.0, 16.0, 75.0])
def test_poisson(lam):
    x = draw(6, lam).astype(np.int64)
    k = np.arange(int(lam + 10 * math.sqrt(lam) + 15))
    expected = stats.poisson.pmf(k, lam) * x.size
    observed = np.bincount(x, minlength=k.size)[: k.size]
    ok = expected > 10
    chi2 = (((observed - expected) ** 2 / expected)[ok]).sum()
    assert stats.chi2.sf(chi2, ok.sum() - 1) > P_MIN
    assert x.mean() == pytest.approx(lam, abs=5 * math.sqrt(lam / x.size))
    assert draw(6, 0.0, n=10).sum() == 0


def test_sign_and_bits():
    x = draw(7)
    assert set(np.unique(x)) == {-1.0, 1.0}
    assert abs(x.mean()) < 5 / math.sqrt(N)
    u = draw(0, 0.0, 1.0, n=1_000_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    # successive draws are uncorrelated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / math.sqrt(u.size)


def test_streams_are_reproducible_and_distinct():
    assert np.array_equal(draw(1, seed=7, n=1000), draw(1, seed=7, n=1000))
    assert not np.array_equal(draw(1, seed=7, n=1000), draw(1, seed=8, n=1000))
    s = rand.state_from(np.random.default_rng(0))
    assert s.dtype == np.uint64 and s.shape == (4,) and s.any()
    before = s.copy()
    _draw(s, 0, 0.0, 1.0, 5)
    assert not np.array_equal(s, before)  # the state advances in place
