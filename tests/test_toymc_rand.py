"""The random variates of the generator's kernels (analysis.toymc.rand) against their
distributions: xoshiro256++ against a plain-Python reference, the samplers by KS and chi2 tests
at fixed seeds (a p-value below 1e-3 fails)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from scipy import stats

from analysis.toymc import rand

MASK = (1 << 64) - 1


def _xoshiro_reference(state, n):
    """xoshiro256++ as published (Blackman and Vigna), in Python integers."""
    s = [int(x) for x in state]
    rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & MASK  # noqa: E731
    out = []
    for _ in range(n):
        out.append((rotl((s[0] + s[3]) & MASK, 23) + s[0]) & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


@njit(cache=True)
def _raw(st, n):
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = rand.next_u64(st)
    return out


@njit(cache=True)
def _fill(st, kind, par, n):
    out = np.empty(n)
    for i in range(n):
        if kind == 0:
            out[i] = rand.uniform(st)
        elif kind == 1:
            out[i] = rand.normal(st)
        elif kind == 2:
            out[i] = rand.gamma(st, par)
        elif kind == 3:
            out[i] = rand.exponential(st)
        elif kind == 4:
            out[i] = rand.laplace(st)
        elif kind == 5:
            out[i] = rand.pareto(st, par)
        else:
            out[i] = rand.poisson(st, par)
    return out


def test_xoshiro_matches_the_reference():
    st = rand.stream(np.random.default_rng(1))
    start = st.copy()
    assert [int(x) for x in _raw(st, 1000)] == _xoshiro_reference(start, 1000)


def test_stream_is_reproducible_and_seed_dependent():
    a, b, c = (rand.stream(np.random.default_rng(s)) for s in (5, 5, 6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    x = _fill(a, 1, 0.0, 1000)
    assert np.array_equal(x, _fill(b, 1, 0.0, 1000))
    assert not np.array_equal(x, _fill(c, 1, 0.0, 1000))
    rng = np.random.default_rng(7)  # the stream advances the Generator it came from
    assert not np.array_equal(rand.stream(rng), rand.stream(rng))


def test_stream_never_starts_all_zero():
    class Zero:
        class bit_generator:  # noqa: N801
            @staticmethod
            def random_raw(n):
                return np.zeros(n, np.uint64)

    assert rand.stream(Zero()).any()


def test_uniform_range_and_resolution():
    u = _fill(rand.stream(np.random.default_rng(2)), 0, 0.0, 1_000_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53))  # multiples of 2**-53
    assert stats.kstest(u, "uniform").pvalue > 1e-3


@pytest.mark.parametrize(("kind", "par", "dist"), [
    (1, 0.0, stats.norm()),
    (2, 0.5, stats.gamma(0.5)),
    (2, 1.6, stats.gamma(1.6)),
    (2, 5.0, stats.gamma(5.0)),
    (3, 0.0, stats.expon()),
    (4, 0.0, stats.laplace()),
    (5, 2.5, stats.lomax(2.5)),
], ids=["normal", "gamma0.5", "gamma1.6", "gamma5", "exponential", "laplace", "pareto2.5"])
def test_continuous_distributions(kind, par, dist):
    x = _fill(rand.stream(np.random.default_rng(3)), kind, par, 500_000)
    assert np.all(np.isfinite(x))
    assert stats.kstest(x, dist.cdf).pvalue > 1e-3
    assert x.mean() == pytest.approx(dist.mean(), abs=5 * dist.std() / math.sqrt(x.size))


def test_normal_tails_beyond_the_ziggurat_base():
    """The tail sampler (|x| > ZIG_R) and the wedges: tail fractions as the normal distribution's."""
    x = np.abs(_fill(rand.stream(np.random.default_rng(4)), 1, 0.0, 20_000_000))
    for t in (2.0, 3.0, rand.ZIG_R, 4.5):
        expected = 2 * stats.norm.sf(t) * x.size
        assert abs(np.count_nonzero(x > t) - expected) < 4 * math.sqrt(expected) + 1, t
    assert x.max() > rand.ZIG_R


@pytest.mark.parametrize("lam", [0.0, 0.4, 3.0, 9.99, 10.0, 15.0, 60.0, 400.0])
def test_poisson(lam):
    """Inversion below a mean of 10, transformed rejection (PTRS) above: chi2 of the counts."""
    x = _fill(rand.stream(np.random.default_rng(5)), 6, lam, 400_000)
    assert np.all(x == np.floor(x)) and x.min() >= 0
    if lam == 0.0:
        assert not x.any()
        return
    k = np.arange(int(lam + 12 * math.sqrt(lam) + 15))
    expected = stats.poisson.pmf(k, lam) * x.size
    observed = np.bincount(x.astype(np.int64), minlength=k.size)[: k.size]
    ok = expected > 10
    chi2 = (((observed - expected) ** 2 / expected)[ok]).sum()
    assert stats.chi2.sf(chi2, ok.sum() - 1) > 1e-3
    assert x.mean() == pytest.approx(lam, abs=5 * math.sqrt(lam / x.size))


@pytest.mark.parametrize(("kind", "par"), [(2, 0.0), (2, -1.0), (2, math.nan), (6, -1.0), (6, math.nan), (6, math.inf)],
                         ids=["gamma0", "gamma-1", "gamma-nan", "poisson-1", "poisson-nan", "poisson-inf"])
def test_bad_parameters_raise_instead_of_looping(kind, par):
    with pytest.raises(ValueError, match="gamma|poisson"):
        _fill(rand.stream(np.random.default_rng(6)), kind, par, 10)
