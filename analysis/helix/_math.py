"""Scalar numba cores of the helix kernels: angles, sin/cos, atan, tan(lambda), the radius.

fdlibm-style sin, cos and atan (~1 ulp, faster than the libm calls numba makes), the angle
wrapping into [-pi, pi), tan(lambda) = sinh(eta) with |eta| clipped at :data:`ETA_CLIP`,
the pT floor of the helix radius and the radius of a pT = 1 GeV track in a given field.
The kernels of :mod:`analysis.helix` call them and LLVM inlines the calls; numba's own
inlining (``inline="always"``) cost seconds of compilation per kernel, for the same code.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from analysis.constants import BFIELD_TESLA, R1_CM

# --- Numerical settings -----------------------------------------------------------------
#: |eta| beyond this is clipped (sinh(50) = 2.6e21: a line parallel to the beam)
ETA_CLIP = 50.0
#: smallest pT (GeV) used in the helix radius; 0 or negative pT is raised to it
PT_FLOOR_GEV = 1.0e-9

_PI = np.pi
_TWO_PI = 2.0 * np.pi


def radius_constant_cm(bfield: float = BFIELD_TESLA) -> float:
    """Radius (cm) of a pT = 1 GeV, |q| = 1 track in a field ``bfield`` (T): R1 * 3.8 T / B."""
    if not bfield > 0.0:
        raise ValueError(f"bfield must be positive (tesla), got {bfield!r}")
    return R1_CM * BFIELD_TESLA / bfield


@nb.njit(cache=True)
def _wrap_angle(a: float) -> float:
    """Angle wrapped into [-pi, pi)."""
    return a - _TWO_PI * np.floor((a + _PI) / _TWO_PI)


# Cody-Waite reduction by pi/2 and the minimax kernels of fdlibm (k_sin.c, k_cos.c):
# sin and cos to ~1 ulp, several times faster than the libm calls numba makes.
_TWO_OVER_PI = 6.36619772367581382433e-01
_PIO2_1 = 1.57079632673412561417e00
_PIO2_1T = 6.07710050650619224932e-11
_SINCOS_REDUCTION_MAX = 1.0e5
_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11


@nb.njit(cache=True)
def _sincos(x):
    """(sin x, cos x); libm beyond |x| = 1e5 rad, where the two-term reduction ends."""
    if not abs(x) < _SINCOS_REDUCTION_MAX:
        return np.sin(x), np.cos(x)
    n = np.floor(x * _TWO_OVER_PI + 0.5)
    r = (x - n * _PIO2_1) - n * _PIO2_1T
    z = r * r
    sr = r + r * z * (_S1 + z * (_S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))))
    hz = 0.5 * z
    w = 1.0 - hz
    cr = w + (((1.0 - w) - hz) + z * z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6))))))
    quadrant = int(n) & 3
    if quadrant == 0:
        return sr, cr
    if quadrant == 1:
        return cr, -sr
    if quadrant == 2:
        return -sr, -cr
    return -cr, sr


# fdlibm s_atan.c: atan to ~1 ulp from a reduction into three intervals of |x| <= 1
_ATAN_HI = (4.63647609000806093515e-01, 7.85398163397448278999e-01)
_ATAN_LO = (2.26987774529616870924e-17, 3.06161699786838301793e-17)
_AT0 = 3.33333333333329318027e-01
_AT1 = -1.99999999998764832476e-01
_AT2 = 1.42857142725034663711e-01
_AT3 = -1.11111104054623557880e-01
_AT4 = 9.09088713343650656196e-02
_AT5 = -7.69187620504482999495e-02
_AT6 = 6.66107313738753120669e-02
_AT7 = -5.83357013379057348645e-02
_AT8 = 4.97687799461593236017e-02
_AT9 = -3.65315727442169155270e-02
_AT10 = 1.62858201153657823623e-02
_ATAN_SMALL = 0.4375
_ATAN_MID = 0.6875
_PIO2 = 0.5 * np.pi


@nb.njit(cache=True)
def _atan_unit(x):
    """atan(x) for |x| <= 1."""
    ax = abs(x)
    if ax < _ATAN_SMALL:
        z = x * x
        w = z * z
        s1 = z * (_AT0 + w * (_AT2 + w * (_AT4 + w * (_AT6 + w * (_AT8 + w * _AT10)))))
        s2 = w * (_AT1 + w * (_AT3 + w * (_AT5 + w * (_AT7 + w * _AT9))))
        return x - x * (s1 + s2)
    if ax < _ATAN_MID:
        r = (2.0 * ax - 1.0) / (2.0 + ax)
        hi = _ATAN_HI[0]
        lo = _ATAN_LO[0]
    else:
        r = (ax - 1.0) / (ax + 1.0)
        hi = _ATAN_HI[1]
        lo = _ATAN_LO[1]
    z = r * r
    w = z * z
    s1 = z * (_AT0 + w * (_AT2 + w * (_AT4 + w * (_AT6 + w * (_AT8 + w * _AT10)))))
    s2 = w * (_AT1 + w * (_AT3 + w * (_AT5 + w * (_AT7 + w * _AT9))))
    res = hi - ((r * (s1 + s2) - lo) - r)
    return res if x >= 0.0 else -res


@nb.njit(cache=True)
def _atan2(y, x):
    """atan2(y, x) in (-pi, pi] for finite, not both zero, arguments."""
    if abs(y) <= abs(x):
        a = _atan_unit(y / x)
        if x > 0.0:
            return a
        return a + _PI if y >= 0.0 else a - _PI
    a = _atan_unit(x / y)
    return _PIO2 - a if y > 0.0 else -_PIO2 - a


@nb.njit(cache=True)
def _tan_lambda(eta):
    """tan(lambda) = sinh(eta) with |eta| clipped at ETA_CLIP; via one exp (absolute error
    ~1e-16 near eta = 0, which is all the helix needs)."""
    e = np.exp(min(max(eta, -ETA_CLIP), ETA_CLIP))
    return 0.5 * (e - 1.0 / e)
