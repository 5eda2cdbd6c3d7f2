"""Random numbers inside the generator's numba kernels: xoshiro256** with ziggurat normals.

A kernel's stream is a ``uint64[4]`` state array, seeded from the sample's
``numpy.random.Generator`` by :func:`state_from` and advanced in place, so a sample stays
reproducible from its seed. Drawing from the NumPy ``Generator`` inside numba goes through a
function pointer per variate (4 ns a uniform, 9 ns a normal, 26 ns a gamma); these inline
draws take 1.6, 6 and 11 ns (``benchmarks/bench_generate.py`` prints both).

- bits: xoshiro256** (Blackman and Vigna 2018), 2^256 - 1 period, passes BigCrush;
  doubles from the top 53 bits.
- :func:`normal`: the Marsaglia-Tsang (2000) ziggurat, 256 layers, exact (the tail from
  Marsaglia's exponential method).
- :func:`gamma`: Marsaglia-Tsang (2000) squeeze, exact; shape < 1 by the U^(1/a) boost.
- :func:`poisson`: inversion of the CDF, exact; a large mean is split into parts below 30.
- :func:`exponential`, :func:`laplace`, :func:`pareto` (NumPy's Lomax convention) by
  inversion.

``tests/test_toymc_rand.py`` checks every distribution against scipy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

_TWO_M53 = 1.0 / 9007199254740992.0
_POISSON_SPLIT = 30.0


def state_from(rng: np.random.Generator) -> np.ndarray:
    """A fresh xoshiro256** state drawn from ``rng`` (never all zero)."""
    state = rng.integers(0, np.iinfo(np.uint64).max, size=4, dtype=np.uint64, endpoint=True)
    if not state.any():
        state[0] = 1
    return state


# --- bits ---------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(cache=True, inline="always")
def next_u64(s):
    """The next 64 random bits of state ``s`` (xoshiro256**)."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    result = _rotl(s1 * uint64(5), 7) * uint64(9)
    t = s1 << uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3
    return result


@njit(cache=True, inline="always")
def random(s):
    """Uniform in [0, 1)."""
    return (next_u64(s) >> uint64(11)) * _TWO_M53


@njit(cache=True, inline="always")
def uniform(s, low, high):
    return low + (high - low) * random(s)


@njit(cache=True, inline="always")
def sign(s):
    """+1 or -1 with equal probability."""
    return 1.0 if next_u64(s) >> uint64(63) else -1.0


# --- normal: ziggurat ---------------------------------------------------------------------
_ZIG_LAYERS = 256
_ZIG_R = 3.6541528853610088  # start of the tail for 256 layers
_ZIG_V = 0.00492867323399  # area of every layer


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray]:
    """Layer edges x[0..256] (x[0] = V / f(R) for the base strip, x[256] = 0) and f(x)."""
    x = np.zeros(_ZIG_LAYERS + 1)
    x[0], x[1] = _ZIG_V / math.exp(-0.5 * _ZIG_R**2), _ZIG_R
    for i in range(1, _ZIG_LAYERS - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(math.exp(-0.5 * x[i] ** 2) + _ZIG_V / x[i]))
    return x, np.exp(-0.5 * x * x)


_ZX, _ZF = _ziggurat_tables()


@njit(cache=True, inline="always")
def standard_normal(s):
    while True:
        bits = next_u64(s)
        i = bits & uint64(0xFF)  # layer (low bits), sign (bit 8), magnitude (top 53 bits)
        x = (bits >> uint64(11)) * _TWO_M53 * _ZX[i]
        if bits & uint64(0x100):
            x = -x
        if abs(x) < _ZX[i + 1]:  # inside the layer's rectangle under the curve
            return x
        if i == 0:  # the tail beyond R
            while True:
                a = -math.log1p(-random(s)) / _ZIG_R
                b = -math.log1p(-random(s))
                if b + b > a * a:
                    return _ZIG_R + a if x > 0 else -_ZIG_R - a
        if _ZF[i] + random(s) * (_ZF[i + 1] - _ZF[i]) < math.exp(-0.5 * x * x):
            return x


@njit(cache=True, inline="always")
def normal(s, mean, sigma):
    return mean + sigma * standard_normal(s)


# --- by inversion ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def exponential(s, scale):
    return -scale * math.log1p(-random(s))


@njit(cache=True, inline="always")
def laplace(s, loc, scale):
    return loc + sign(s) * exponential(s, scale)


@njit(cache=True, inline="always")
def pareto(s, a):
    """NumPy's ``pareto(a)``: the Lomax distribution, (1 - U)^(-1/a) - 1."""
    return math.expm1(exponential(s, 1.0) / a)


@njit(cache=True, inline="always")
def _poisson_inversion(s, lam):
    u = random(s)
    p = math.exp(-lam)
    cdf, k = p, 0
    while u > cdf and p > 0.0:
        k += 1
        p *= lam / k
        cdf += p
    return k


@njit(cache=True)
def poisson(s, lam):
    """Poisson variate of mean ``lam`` (a sum of independent parts of mean below 30)."""
    if lam <= 0.0:
        return 0
    parts = int(math.ceil(lam / _POISSON_SPLIT))
    k = 0
    for _ in range(parts):
        k += _poisson_inversion(s, lam / parts)
    return k


# --- gamma ----------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def gamma(s, shape, scale):
    """Gamma variate (Marsaglia-Tsang); ``shape`` > 0."""
    boost = 1.0
    if shape < 1.0:
        boost = random(s) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = standard_normal(s)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = random(s)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2 or math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            return d * v * scale * boost
