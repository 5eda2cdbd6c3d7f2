"""Random variates drawn inside the generator's numba kernels, inlined into them.

The kernels draw several hundred variates per event, one at a time. Through numba's support
of ``numpy.random.Generator`` every draw is a call through the bit generator's function
pointer that cannot be inlined (~7 ns a uniform, ~11 ns a normal, ~30 ns a gamma variate).
Here a kernel carries its own xoshiro256++ stream (Blackman and Vigna, 2019), four uint64
words seeded from the sample's Generator (:func:`stream`), so a sample stays reproducible
from its seed; the draws compile into the kernel (~1.5 ns a uniform). Normal variates come
from a 256-layer ziggurat (Marsaglia and Tsang, 2000, in the 52-bit form NumPy uses), gamma
variates from the Marsaglia-Tsang squeeze, Poisson variates of larger means from Hörmann's
transformed rejection (PTRS, as NumPy). ``benchmarks/bench_generate.py`` measures them
against the Generator's; ``tests/test_toymc_rand.py`` tests their distributions.

Only the common paths are inlined (``inline="always"``: the uniform, the ziggurat's rectangle
test, the gamma squeeze); the rare ones are called. numba types inlined code again at every
call site, and inlining every draw with its helpers made the first compile of the generator
3-4x slower (26 s -> 95 s); as it is, ~30 s. An inlined normal draw costs ~5 ns where a call
costs ~9 ns (array arguments are passed as structs), as much as the Generator's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_U1, _U8, _U9, _U11, _U17, _U19, _U23, _U41, _U45 = (np.uint64(k) for k in (1, 8, 9, 11, 17, 19, 23, 41, 45))
_MASK8, _MASK52 = np.uint64(0xFF), np.uint64((1 << 52) - 1)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


def stream(rng: np.random.Generator) -> np.ndarray:
    """A new xoshiro256++ state (uint64[4]) from four raw outputs of ``rng``'s bit generator."""
    state = rng.bit_generator.random_raw(4).astype(np.uint64)
    if not state.any():  # the one state xoshiro cannot leave (probability 2**-256)
        state[0] = 1
    return state


@njit(cache=True, inline="always")
def next_u64(st):
    """The next 64 random bits of the stream ``st`` (xoshiro256++)."""
    # the rotations are written out: a helper inlined at every draw costs compile time
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    x = s0 + s3
    result = ((x << _U23) | (x >> _U41)) + s0
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    st[0], st[1], st[2], st[3] = s0, s1, s2, (s3 << _U45) | (s3 >> _U19)
    return result


@njit(cache=True, inline="always")
def uniform(st):
    """Uniform in [0, 1), a multiple of 2**-53."""
    return np.int64(next_u64(st) >> _U11) * _TO_UNIT  # via int64: a fast conversion


# --- normal: ziggurat of 256 layers --------------------------------------------------------
ZIG_R = 3.6541528853610088  # start of the tail


def _ziggurat_tables(r=ZIG_R, n=256):
    """(k, w, f) of the 256-layer ziggurat of exp(-x^2/2) with base-strip edge r: layer i spans
    x in [0, x_i]; a 52-bit u is accepted at once if u < k_i, i.e. u x_i < x_(i+1)."""
    f = lambda x: math.exp(-0.5 * x * x)  # noqa: E731
    area = r * f(r) + math.sqrt(0.5 * math.pi) * math.erfc(r / math.sqrt(2.0))  # of every layer
    x = np.zeros(n + 1)
    x[0], x[1] = area / f(r), r
    for i in range(1, n - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(f(x[i]) + area / x[i]))
    # the top layer closes on the curve's maximum: x_(n-1) (1 - f(x_(n-1))) equals the layer area
    assert abs(x[n - 1] * (1.0 - f(x[n - 1])) / area - 1.0) < 1e-6
    scale = float(1 << 52)
    k = np.floor(x[1:] / x[:-1] * scale).astype(np.int64)
    return k, x[:-1] / scale, np.array([f(v) for v in x[:-1]] + [1.0])


ZIG_K, ZIG_W, ZIG_F = _ziggurat_tables()
_ZIG_INV_R = 1.0 / ZIG_R


@njit(cache=True, inline="always")
def normal(st):
    """Standard normal variate."""
    r = next_u64(st)
    idx = np.int64(r & _MASK8)
    sign = 1.0 - 2.0 * np.int64((r >> _U8) & _U1)  # no branch: the sign is a coin flip
    bits = np.int64((r >> _U9) & _MASK52)
    if bits < ZIG_K[idx]:  # inside the layer's rectangle: ~99% of draws
        return sign * (bits * ZIG_W[idx])
    return _normal_rest(st, idx, sign, bits)


@njit(cache=True)
def _normal_rest(st, idx, sign, bits):
    """:func:`normal` after its first draw fell outside the rectangle of layer ``idx`` (not
    inlined: the kernels inline only the common path)."""
    while True:
        x = bits * ZIG_W[idx]
        if bits < ZIG_K[idx]:
            return sign * x
        if idx == 0:  # the tail beyond ZIG_R (Marsaglia 1964)
            while True:
                xx = -_ZIG_INV_R * math.log1p(-uniform(st))
                yy = -math.log1p(-uniform(st))
                if yy + yy > xx * xx:
                    return sign * (ZIG_R + xx)
        if ZIG_F[idx] + (ZIG_F[idx + 1] - ZIG_F[idx]) * uniform(st) < math.exp(-0.5 * x * x):
            return sign * x
        r = next_u64(st)
        idx = np.int64(r & _MASK8)
        sign = 1.0 - 2.0 * np.int64((r >> _U8) & _U1)
        bits = np.int64((r >> _U9) & _MASK52)


# --- other distributions -------------------------------------------------------------------
@njit(cache=True)
def exponential(st):
    """Standard exponential variate."""
    return -math.log(1.0 - uniform(st))  # 1 - u is exact: u is a multiple of 2**-53


@njit(cache=True, inline="always")
def gamma(st, shape):
    """Gamma variate of unit scale (Marsaglia and Tsang, 2000; shape < 1 by Stuart's u^(1/shape))."""
    if not shape >= 1.0:  # below 1, and NaN (rejected there)
        return _gamma_small(st, shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = normal(st)
        v = 1.0 + c * x
        if v > 0.0:
            v = v * v * v
            u = uniform(st)
            x2 = x * x
            # the squeeze spares the logarithms for ~98% of draws
            if u < 1.0 - 0.0331 * x2 * x2 or math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
                return d * v


@njit(cache=True)
def _gamma_small(st, shape):
    if not shape > 0.0:  # also NaN: the squeeze would never accept
        raise ValueError("gamma: the shape must be positive")
    boost = math.exp(math.log(1.0 - uniform(st)) / shape)  # u^(1/shape), u in (0, 1]
    return boost * gamma(st, shape + 1.0)


@njit(cache=True)
def laplace(st):
    """Laplace variate of unit scale around zero."""
    while True:
        u = uniform(st)
        if u >= 0.5:
            return -math.log(2.0 - 2.0 * u)
        if u > 0.0:
            return math.log(2.0 * u)


@njit(cache=True)
def pareto(st, index):
    """Lomax (Pareto II) variate as NumPy's ``pareto``: P(X > x) = (1 + x)^-index."""
    return math.expm1(exponential(st) / index)


@njit(cache=True)
def poisson(st, lam):
    """Poisson variate of mean ``lam`` >= 0: inversion below 10, else transformed rejection
    (Hörmann 1993, PTRS)."""
    if lam == 0.0:
        return 0
    if not (lam > 0.0 and lam < 1e10):  # also NaN: the rejection loop would never accept
        raise ValueError("poisson: the mean must be non-negative and finite (below 1e10)")
    if lam < 10.0:
        p = math.exp(-lam)
        total, u, k = p, uniform(st), 0
        while u > total and p > 0.0:
            k += 1
            p *= lam / k
            total += p
        return k
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = uniform(st) - 0.5
        v = uniform(st)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return int(k)
        if k < 0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1.0)):
            return int(k)
