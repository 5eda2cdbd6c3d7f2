"""A fast evaluator of the HistFactory likelihood of a pyhf model, with analytic gradient.

pyhf's numpy backend has no automatic differentiation, so its scipy fits take numerical
gradients: ~500 likelihood evaluations of ~0.4 ms per fit, about 1 s per CLs point and
30 s per upper limit of our 12-bin model. The upper limits over the 81-point signal
grid (docs/physics.md sec. 9) need thousands of fits, so this module evaluates the *same*
likelihood, -2 ln L(theta) of :meth:`pyhf.pdf.Model.logpdf`, in a few vectorised numpy
operations together with its exact gradient, and minimises it with scipy's truncated Newton (TNC).

The parameter layout, bounds, initial values, fixed flags and constraint widths are taken
from the pyhf model itself (``model.config``), so the parameter vector is pyhf's and
``twice_nll(pars, data)`` equals ``-2 * model.logpdf(pars, data)`` to rounding
(tests/test_stats.py pins this). Supported modifiers, with pyhf's default interpolation
codes (``pyhf.pdf._ModelConfig``: normsys code4, histosys code4p, as ``pyhf cls`` uses):
``normfactor``, ``lumi``, ``normsys``, ``histosys``, ``staterror``, ``shapesys``,
``shapefactor``.
A workspace with anything else raises :class:`UnsupportedModel`; callers then fall back
to pyhf's own fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pyhf
from scipy.optimize import minimize
from scipy.special import gammaln

SUPPORTED_MODIFIERS = frozenset(
    {"normfactor", "lumi", "normsys", "histosys", "staterror", "shapesys", "shapefactor"}
)
#: Truncated-Newton (TNC) stopping: change of -2 ln L and projected gradient. -2 ln L ends
#: ~1e-11 from its minimum, far below what a CLs value at the 1e-6 level needs. TNC is
#: used instead of L-BFGS-B because it calls no BLAS: OpenBLAS threading on these tiny
#: problems made L-BFGS-B 50x slower on a loaded machine.
FIT_FTOL = 1e-12
FIT_GTOL = 1e-7
FIT_MAXFUN = 5000
TNC_MAXFUN_STATUS = 3
#: TNC can stop with "linear search failed" (status 4) far from the minimum (seen where a
#: histosys drives a sample's rate to zero): a projected gradient of -2 ln L above this there
#: (converged fits end below ~3e-4) makes the fit continue with L-BFGS-B, whose result is
#: taken if it is lower by more than FIT_FALLBACK_MIN_GAIN (badly scaled, flat likelihoods
#: also stop there, at their minimum: their fits stay as they were)
TNC_LINESEARCH_FAILED_STATUS = 4
FIT_FALLBACK_PGTOL = 1e-2
FIT_FALLBACK_MIN_GAIN = 1e-6
_LOG_2PI = float(np.log(2.0 * np.pi))
#: pyhf's code4 (normsys) polynomial: coefficients = _CODE4_AINV @ b for alpha0 = 1, with
#: b = [hi - 1, lo - 1, hi ln hi, -lo ln lo, hi ln^2 hi, lo ln^2 lo] (pyhf/interpolators/code4.py)
_CODE4_AINV = np.array([
    [15 / 16, -15 / 16, -7 / 16, -7 / 16, 1 / 16, -1 / 16],
    [3 / 2, 3 / 2, -9 / 16, 9 / 16, 1 / 16, 1 / 16],
    [-5 / 8, 5 / 8, 5 / 8, 5 / 8, -1 / 8, 1 / 8],
    [-3 / 2, -3 / 2, 7 / 8, -7 / 8, -1 / 8, -1 / 8],
    [3 / 16, -3 / 16, -3 / 16, -3 / 16, 1 / 16, -1 / 16],
    [1 / 2, 1 / 2, -5 / 16, 5 / 16, 1 / 16, 1 / 16],
])


def code4_coefficients(hi: float, lo: float) -> np.ndarray:
    """The 6 polynomial coefficients of pyhf's normsys code4 for |alpha| < 1 (alpha0 = 1)."""
    lh, ll = np.log(hi), np.log(lo)
    b = np.array([hi - 1.0, lo - 1.0, lh * hi, -ll * lo, lh * lh * hi, ll * ll * lo])
    return _CODE4_AINV @ b


class UnsupportedModel(ValueError):
    """The model uses a modifier or interpolation code this evaluator does not implement."""


@dataclass(frozen=True)
class FitResult:
    """Result of a maximum-likelihood fit: best-fit parameters and -2 ln L there."""

    pars: np.ndarray
    twice_nll: float
    success: bool


@dataclass
class _Sample:
    """One sample of one channel, as read from the spec (before vectorisation)."""

    bins: slice  # position in the concatenated main-data vector
    nominal: np.ndarray
    scalars: list[int]  # parameter indices of normfactor / lumi modifiers
    normsys: list[tuple[int, float, float]]  # (parameter index, hi, lo)
    binwise: list[np.ndarray]  # per-bin parameter indices (staterror, shapesys, shapefactor)
    histosys: list[tuple[int, np.ndarray, np.ndarray]]  # (par index, hi - nom, nom - lo)


class HistFactoryLikelihood:
    """-2 ln L of a pyhf model and its gradient, evaluated in numpy.

    Parameters
    ----------
    model : pyhf.pdf.Model
        The model, built with pyhf's default interpolation codes (as ``pyhf cls`` does).

    Raises
    ------
    UnsupportedModel
        If the model uses a modifier type outside :data:`SUPPORTED_MODIFIERS`.
    """

    def __init__(self, model: pyhf.pdf.Model) -> None:
        config = model.config
        self.model = model
        self.n_pars = config.npars
        self.poi_index = config.poi_index
        self.init = np.asarray(config.suggested_init(), dtype=np.float64)
        self.bounds = [tuple(map(float, b)) for b in config.suggested_bounds()]
        self.fixed = np.asarray(config.suggested_fixed(), dtype=bool)
        self.n_main = int(sum(config.channel_nbins[c] for c in config.channels))
        samples: list[_Sample] = []
        channel_specs = {c["name"]: c for c in model.spec["channels"]}
        for channel in config.channels:
            bins = config.channel_slices[channel]
            for sample in channel_specs[channel]["samples"]:
                samples.append(self._compile_sample(config, bins, sample))
        self._vectorise(samples)
        self._compile_constraints(config)
        self._arrays = (
            self._idx, self._nominal, self._hs_par, self._hs_up, self._hs_dn,
            self._ns_par, self._ns_loghi, self._ns_loglo, self._ns_coef,
            self._normal_idx, self._normal_sigma, self._normal_aux,
            self._poisson_idx, self._poisson_factor, self._poisson_aux,
        )

    # --- construction --------------------------------------------------------------------
    @staticmethod
    def _compile_sample(config, bins: slice, sample: dict) -> _Sample:
        nominal = np.asarray(sample["data"], dtype=np.float64)
        out = _Sample(bins, nominal, [], [], [], [])
        for modifier in sample["modifiers"]:
            kind, name = modifier["type"], modifier["name"]
            if kind not in SUPPORTED_MODIFIERS:
                raise UnsupportedModel(f"modifier type {kind!r} ({name}) is not implemented")
            sl = config.par_slice(name)
            if kind in ("normfactor", "lumi"):
                out.scalars.append(sl.start)
            elif kind == "normsys":
                data = modifier["data"]
                out.normsys.append((sl.start, float(data["hi"]), float(data["lo"])))
            elif kind == "histosys":
                data = modifier["data"]
                hi = np.asarray(data["hi_data"], dtype=np.float64)
                lo = np.asarray(data["lo_data"], dtype=np.float64)
                out.histosys.append((sl.start, hi - nominal, nominal - lo))
            else:  # staterror, shapesys, shapefactor: one parameter per bin of the channel
                out.binwise.append(np.arange(sl.start, sl.stop))
        return out

    def _vectorise(self, samples: list[_Sample]) -> None:
        """Lay the samples out as dense (sample, factor, bin) index arrays.

        Every multiplicative modifier becomes a row of indices into an extended vector
        ``[pars..., normsys factors..., 1.0]``; rows are padded with the index of the 1.0.
        The rate is then ``sum_s base_s * prod_k ext[idx[s, k]]`` in three numpy calls.
        """
        n_s = len(samples)
        normsys = sorted({(i, hi, lo) for s in samples for (i, hi, lo) in s.normsys})
        self._ns_par = np.asarray([i for i, _, _ in normsys], dtype=np.intp)
        self._ns_loghi = np.log(np.asarray([hi for _, hi, _ in normsys], dtype=np.float64))
        self._ns_loglo = np.log(np.asarray([lo for _, _, lo in normsys], dtype=np.float64))
        self._ns_coef = np.asarray(
            [code4_coefficients(hi, lo) for _, hi, lo in normsys], dtype=np.float64
        ).reshape(len(normsys), 6)
        ns_slot = {key: self.n_pars + j for j, key in enumerate(normsys)}
        self._one = self.n_pars + len(normsys)
        rows_per_sample = [
            len(s.scalars) + len(s.normsys) + len(s.binwise) for s in samples
        ]
        n_k = max([1, *rows_per_sample])
        idx = np.full((n_s, n_k, self.n_main), self._one, dtype=np.intp)
        base = np.zeros((n_s, self.n_main))
        hs = sorted({i for s in samples for (i, _, _) in s.histosys})
        hs_pos = {i: j for j, i in enumerate(hs)}
        self._hs_par = np.asarray(hs, dtype=np.intp)
        self._hs_up = np.zeros((len(hs), n_s, self.n_main))
        self._hs_dn = np.zeros((len(hs), n_s, self.n_main))
        for s_i, s in enumerate(samples):
            base[s_i, s.bins] = s.nominal
            k = 0
            for par in s.scalars:
                idx[s_i, k, s.bins] = par
                k += 1
            for key in s.normsys:
                idx[s_i, k, s.bins] = ns_slot[key]
                k += 1
            for pars in s.binwise:
                idx[s_i, k, s.bins] = pars
                k += 1
            for par, dhi, dlo in s.histosys:
                self._hs_up[hs_pos[par], s_i, s.bins] += dhi
                self._hs_dn[hs_pos[par], s_i, s.bins] += dlo
        self._idx = idx
        self._nominal = base

    def _compile_constraints(self, config) -> None:
        normal_idx, normal_sigma, poisson_idx, poisson_factor = [], [], [], []
        aux_pos = 0
        normal_aux, poisson_aux = [], []
        for name in config.auxdata_order:
            ps = config.param_set(name)
            sl = config.par_slice(name)
            idx = list(range(sl.start, sl.stop))
            n = len(idx)
            kind = type(ps).__name__
            if kind == "constrained_by_normal":
                normal_idx += idx
                normal_sigma += list(np.asarray(ps.width(), dtype=np.float64).ravel())
                normal_aux += list(range(aux_pos, aux_pos + n))
            elif kind == "constrained_by_poisson":
                poisson_idx += idx
                poisson_factor += list(np.asarray(ps.factors, dtype=np.float64).ravel())
                poisson_aux += list(range(aux_pos, aux_pos + n))
            else:
                raise UnsupportedModel(f"constraint type {kind} of {name} is not implemented")
            aux_pos += n
        self.n_aux = aux_pos
        self._normal_idx = np.asarray(normal_idx, dtype=np.intp)
        self._normal_sigma = np.asarray(normal_sigma, dtype=np.float64)
        self._normal_aux = self.n_main + np.asarray(normal_aux, dtype=np.intp)
        self._poisson_idx = np.asarray(poisson_idx, dtype=np.intp)
        self._poisson_factor = np.asarray(poisson_factor, dtype=np.float64)
        self._poisson_aux = self.n_main + np.asarray(poisson_aux, dtype=np.intp)

    # --- evaluation ----------------------------------------------------------------------
    def expected_data(self, pars: np.ndarray) -> np.ndarray:
        """Main expected counts followed by the expected auxiliary data (pyhf's order)."""
        aux = np.empty(self.n_aux)
        aux[self._normal_aux - self.n_main] = pars[self._normal_idx]
        aux[self._poisson_aux - self.n_main] = pars[self._poisson_idx] * self._poisson_factor
        return np.concatenate([self.expected_main(pars), aux])

    def expected_main(self, pars: np.ndarray) -> np.ndarray:
        """Expected event counts in the main bins (pyhf's ``expected_actualdata``)."""
        pars = np.asarray(pars, dtype=np.float64)
        lam = np.empty(self.n_main)
        _kernel(pars, np.zeros(self.n_main), 0.0, self._arrays, lam, np.empty(self.n_pars), False)
        return lam

    def twice_nll(self, pars: np.ndarray, data: np.ndarray) -> float:
        """-2 ln L(pars | data), identical to ``-2 * model.logpdf(pars, data)``."""
        return self.value_and_grad(pars, data)[0]

    def value_and_grad(self, pars: np.ndarray, data: np.ndarray) -> tuple[float, np.ndarray]:
        """-2 ln L(pars | data) and its gradient with respect to ``pars``."""
        data = np.asarray(data, dtype=np.float64)
        grad = np.empty(self.n_pars)
        value = _kernel(
            np.asarray(pars, dtype=np.float64), data, self._data_constant(data),
            self._arrays, np.empty(self.n_main), grad, True,
        )
        return value, grad

    def _data_constant(self, data: np.ndarray) -> float:
        """The parameter-independent part of -2 ln L (normalisations of the Poisson and
        Gaussian terms), computed once per data set."""
        aux_p = data[self._poisson_aux]
        return -2.0 * float(
            -np.sum(gammaln(data[: self.n_main] + 1.0))
            - np.sum(np.log(self._normal_sigma) + 0.5 * _LOG_2PI)
            - np.sum(gammaln(aux_p + 1.0))
        )

    # --- fits ----------------------------------------------------------------------------
    def fit(
        self,
        data: np.ndarray,
        fixed_poi: float | None = None,
        init: np.ndarray | None = None,
    ) -> FitResult:
        """Minimise -2 ln L over the free parameters (the POI fixed if ``fixed_poi`` given).

        Bounds and fixed parameters are pyhf's suggested ones, as in
        :func:`pyhf.infer.mle.fit` / :func:`pyhf.infer.mle.fixed_poi_fit`; fixed
        parameters are removed from the minimisation instead of constrained.
        """
        data = np.asarray(data, dtype=np.float64)
        start = (self.init if init is None else np.asarray(init, dtype=np.float64)).copy()
        fixed = self.fixed.copy()
        start[self.fixed] = self.init[self.fixed]
        if fixed_poi is not None:
            fixed[self.poi_index] = True
            start[self.poi_index] = fixed_poi
        free = np.flatnonzero(~fixed)
        bounds = [self.bounds[i] for i in free]
        x0 = np.clip(start[free], [b[0] for b in bounds], [b[1] for b in bounds])
        full = start.copy()

        constant = self._data_constant(data)
        lam = np.empty(self.n_main)
        grad = np.empty(self.n_pars)
        arrays = self._arrays

        def objective(x: np.ndarray):
            full[free] = x
            value = _kernel(full, data, constant, arrays, lam, grad, True)
            return value, grad[free]

        if free.size == 0:  # nothing to fit (the POI fixed in a model without nuisance parameters)
            return FitResult(start.copy(), float(objective(x0)[0]), True)
        res = minimize(
            objective, x0, jac=True, method="TNC", bounds=bounds,
            options={"ftol": FIT_FTOL, "gtol": FIT_GTOL, "maxfun": FIT_MAXFUN},
        )
        # TNC status 4 ("linear search failed") means no further decrease was found: at the
        # minimum to numerical precision, unless the projected gradient says otherwise;
        # running out of evaluations is a failure.
        x, value, success = res.x, float(res.fun), res.status != TNC_MAXFUN_STATUS
        if (res.status == TNC_LINESEARCH_FAILED_STATUS
                and _projected_gradient(objective, x, bounds) > FIT_FALLBACK_PGTOL):
            alt = minimize(
                objective, x, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"ftol": FIT_FTOL, "gtol": FIT_GTOL, "maxfun": FIT_MAXFUN},
            )
            if alt.fun < value - FIT_FALLBACK_MIN_GAIN:
                x, value = alt.x, float(alt.fun)
                success = _projected_gradient(objective, x, bounds) <= FIT_FALLBACK_PGTOL
        pars = start.copy()
        pars[free] = x
        return FitResult(pars, value, success)


def _projected_gradient(objective, x: np.ndarray, bounds: list[tuple[float, float]]) -> float:
    """Largest gradient component of ``objective`` at ``x`` that the bounds do not block."""
    if x.size == 0:
        return 0.0
    grad = np.asarray(objective(x)[1], dtype=np.float64)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    blocked = ((x <= lo) & (grad > 0)) | ((x >= hi) & (grad < 0))
    return float(np.max(np.abs(np.where(blocked, 0.0, grad))))


@numba.njit(cache=True)
def _kernel(pars, data, constant, arrays, lam, grad, want_grad):
    """-2 ln L and (if ``want_grad``) its gradient into ``grad``; expected counts into ``lam``.

    ``arrays`` is the dense layout of :meth:`HistFactoryLikelihood._vectorise`: rate of bin
    i = sum_s (nominal[s, i] + sum_h delta_h[s, i](alpha_h)) * prod_k ext[idx[s, k, i]],
    with ``ext = [pars, normsys factors, 1]``. pyhf's default interpolations: normsys
    code4 (hi**a for a >= 1, lo**(-a) for a <= -1, a 6th-order polynomial between);
    histosys code4p (a (hi - nom) for a > 1, a (nom - lo) for a < -1, a S + a^2 (a^2
    (3 a^2 - 10) + 15) A between, S and A the half sum and a sixteenth of the difference).
    """
    (idx, nominal, hs_par, hs_up, hs_dn, ns_par, ns_loghi, ns_loglo, ns_coef,
     normal_idx, normal_sigma, normal_aux, pois_idx, pois_factor, pois_aux) = arrays
    n_pars = pars.shape[0]
    n_s, n_k, n_main = idx.shape
    n_ns = ns_par.shape[0]
    ext = np.empty(n_pars + n_ns + 1)
    ext[:n_pars] = pars
    ns_deriv = np.empty(n_ns)
    for m in range(n_ns):
        a = pars[ns_par[m]]
        if a >= 1.0:
            ext[n_pars + m] = np.exp(a * ns_loghi[m])
            ns_deriv[m] = ext[n_pars + m] * ns_loghi[m]
        elif a <= -1.0:
            ext[n_pars + m] = np.exp(-a * ns_loglo[m])
            ns_deriv[m] = -ext[n_pars + m] * ns_loglo[m]
        else:
            value, deriv, power = 1.0, 0.0, 1.0
            for p in range(6):  # 1 + sum_p c_p a^(p+1)
                deriv += (p + 1) * ns_coef[m, p] * power
                power *= a
                value += ns_coef[m, p] * power
            ext[n_pars + m] = value
            ns_deriv[m] = deriv
    ext[n_pars + n_ns] = 1.0
    base = nominal.copy()
    n_hs = hs_par.shape[0]
    hs_deriv = np.empty((n_hs, n_s, n_main))
    for h in range(n_hs):
        a = pars[hs_par[h]]
        a2 = a * a
        for s in range(n_s):
            for i in range(n_main):
                up, dn = hs_up[h, s, i], hs_dn[h, s, i]
                if a > 1.0:
                    base[s, i] += a * up
                    hs_deriv[h, s, i] = up
                elif a < -1.0:
                    base[s, i] += a * dn
                    hs_deriv[h, s, i] = dn
                else:  # code4p: a S + a^2 (a^2 (3 a^2 - 10) + 15) A
                    sym, asym = 0.5 * (up + dn), 0.0625 * (up - dn)
                    base[s, i] += a * sym + a2 * (a2 * (3.0 * a2 - 10.0) + 15.0) * asym
                    hs_deriv[h, s, i] = sym + a * (a2 * (18.0 * a2 - 40.0) + 30.0) * asym
    total = np.ones((n_s, n_main))
    for s in range(n_s):
        for k in range(n_k):
            for i in range(n_main):
                total[s, i] *= ext[idx[s, k, i]]
    value = constant
    for i in range(n_main):
        acc = 0.0
        for s in range(n_s):
            acc += base[s, i] * total[s, i]
        lam[i] = acc
        n = data[i]
        value += 2.0 * acc
        if n != 0.0:
            value -= 2.0 * n * np.log(acc)
    for j in range(normal_idx.shape[0]):
        x = (data[normal_aux[j]] - pars[normal_idx[j]]) / normal_sigma[j]
        value += x * x
    for j in range(pois_idx.shape[0]):
        rate = pars[pois_idx[j]] * pois_factor[j]
        aux = data[pois_aux[j]]
        value += 2.0 * rate
        if aux != 0.0:
            value -= 2.0 * aux * np.log(rate)
    if not want_grad:
        return value
    grad_ext = np.zeros(n_pars + n_ns + 1)
    for i in range(n_main):
        r = 2.0 - 2.0 * data[i] / lam[i] if lam[i] > 0 else 2.0
        for s in range(n_s):
            rb = r * base[s, i]
            if rb == 0.0:
                continue
            for k in range(n_k):
                others = 1.0
                for k2 in range(n_k):
                    if k2 != k:
                        others *= ext[idx[s, k2, i]]
                grad_ext[idx[s, k, i]] += rb * others
    grad[:] = grad_ext[:n_pars]
    for m in range(n_ns):
        grad[ns_par[m]] += grad_ext[n_pars + m] * ns_deriv[m]
    for h in range(n_hs):
        acc = 0.0
        for i in range(n_main):
            r = 2.0 - 2.0 * data[i] / lam[i] if lam[i] > 0 else 2.0
            for s in range(n_s):
                acc += r * total[s, i] * hs_deriv[h, s, i]
        grad[hs_par[h]] += acc
    for j in range(normal_idx.shape[0]):
        grad[normal_idx[j]] -= 2.0 * (data[normal_aux[j]] - pars[normal_idx[j]]) / normal_sigma[j] ** 2
    for j in range(pois_idx.shape[0]):
        rate = pars[pois_idx[j]] * pois_factor[j]
        grad[pois_idx[j]] -= 2.0 * (data[pois_aux[j]] / rate - 1.0) * pois_factor[j] if rate > 0 else 0.0
    return value
