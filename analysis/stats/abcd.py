"""Binned ABCD background estimate (docs/physics.md sec. 9; seed 003 "(Binned) ABCD Strategy").

Two (ideally independent) discriminants X and Y with cuts define four regions; a third
observable is binned (seed 003: M_T), and the method is applied bin by bin:

    A: X pass, Y pass  (signal region)      B: X pass, Y fail
    C: X fail, Y pass                       D: X fail, Y fail

    n_A,i = n_B,i * n_C,i / n_D,i            (per bin i)

It closes if X and Y are statistically independent (in each bin) and the signal
contamination of B, C, D is negligible (seed 003, "Closure conditions").

The likelihood version (:func:`abcd_workspace`, seed 003 sec. IV: "combined S+B fit
across regions {A,B,C,D} per bin") cannot multiply free normfactors of different
channels into a ratio directly, so the background is parametrised multiplicatively,
which HistFactory can express: per bin i three free parameters,

    D_i = d_i * s_i,   B_i = b_i * s_i * x_i,   C_i = c_i * s_i * y_i,
    A_i = (b_i c_i / d_i) * s_i * x_i * y_i

with shapefactors ``abcd_norm`` (s, in all four regions), ``abcd_x`` (x, in A and B) and
``abcd_y`` (y, in A and C), and nominal templates b, c, d (the control-region counts) and
b c / d. Then A_i D_i = B_i C_i holds identically for any parameter values, i.e. the
background in A is always B C / D, while B, C, D are fitted freely (3 parameters for 3
counts per bin: the control regions are saturated and the A prediction is exactly
B C / D at the background-only best fit). The signal enters all four regions with the
same normfactor ``mu``, so signal contamination of the control regions is accounted for
in the fit; an optional per-bin non-closure uncertainty on A is a shapesys
(Poisson-constrained, per-bin gamma) ``abcd_nonclosure``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.errors import ConfigError
from analysis.stats.defaults import STATS_MEASUREMENT, STATS_POI

REGIONS: tuple[str, ...] = ("A", "B", "C", "D")
ABCD_NORM = "abcd_norm"
ABCD_X = "abcd_x"
ABCD_Y = "abcd_y"
ABCD_NONCLOSURE = "abcd_nonclosure"
ABCD_BACKGROUND = "background"
ABCD_SIGNAL = "signal"
#: bounds of the ABCD shapefactors (relative to the nominal templates)
ABCD_FACTOR_BOUNDS = (1e-6, 10.0)


@dataclass(frozen=True)
class ABCDPrediction:
    """Per-bin prediction of region A from B, C, D and its statistical uncertainty."""

    value: np.ndarray
    uncertainty: np.ndarray


@dataclass(frozen=True)
class ABCDClosure:
    """Per-bin closure of the prediction in A (seed 003: delta = n_hat / n - 1, pull)."""

    non_closure: np.ndarray  # observed / predicted - 1
    non_closure_unc: np.ndarray
    pull: np.ndarray  # (observed - predicted) / sqrt(sigma_obs^2 + sigma_pred^2)
    chi2: float
    ndf: int


def _as_bins(name: str, values, n: int | None = None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or (n is not None and arr.size != n):
        raise ConfigError(f"{name} must have one entry per bin ({n}), got shape {arr.shape}")
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{name} must be finite and >= 0, got {arr}")
    return arr


def abcd_predict(n_b, n_c, n_d, var_b=None, var_c=None, var_d=None) -> ABCDPrediction:
    """n_A = n_B n_C / n_D per bin with its propagated statistical uncertainty.

    Parameters
    ----------
    n_b, n_c, n_d : array_like (n_bins,)
        (Weighted) counts in the control regions.
    var_b, var_c, var_d : array_like, optional
        Their variances (sum of w^2 for weighted MC); default Poisson (the counts).

    Returns
    -------
    ABCDPrediction
        ``value`` and ``uncertainty`` with (sigma_A/n_A)^2 = sum over B, C, D of
        (sigma/n)^2 (first-order propagation of independent counts).
    """
    n_b = _as_bins("n_b", n_b)
    n = n_b.size
    n_c, n_d = _as_bins("n_c", n_c, n), _as_bins("n_d", n_d, n)
    if np.any(n_d <= 0):
        raise ConfigError(f"region D is empty in bin(s) {np.flatnonzero(n_d <= 0).tolist()}: merge bins")
    variances = [
        _as_bins(f"var_{r}", v, n) if v is not None else c
        for r, v, c in (("b", var_b, n_b), ("c", var_c, n_c), ("d", var_d, n_d))
    ]
    value = n_b * n_c / n_d
    with np.errstate(divide="ignore", invalid="ignore"):
        rel2 = sum(np.where(c > 0, v / c**2, 0.0) for v, c in zip(variances, (n_b, n_c, n_d), strict=True))
    return ABCDPrediction(value, value * np.sqrt(rel2))


def abcd_closure(observed_a, prediction: ABCDPrediction, var_a=None) -> ABCDClosure:
    """Non-closure per bin, observed/predicted - 1, with its uncertainty, pulls and chi2.

    ``var_a`` defaults to Poisson (the observed counts). Bins with a zero prediction are
    excluded from chi2 (their non-closure is NaN).
    """
    obs = _as_bins("observed_a", observed_a, prediction.value.size)
    var = _as_bins("var_a", var_a, obs.size) if var_a is not None else obs
    pred, pred_unc = prediction.value, prediction.uncertainty
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pred > 0, obs / pred, np.nan)
        rel = np.sqrt(np.where(obs > 0, var / obs**2, 0.0) + np.where(pred > 0, (pred_unc / pred) ** 2, 0.0))
        total = np.sqrt(var + pred_unc**2)
        pull = np.where(total > 0, (obs - pred) / total, 0.0)
    valid = (pred > 0) & (total > 0)
    return ABCDClosure(ratio - 1.0, ratio * rel, pull, float(np.sum(pull[valid] ** 2)), int(valid.sum()))


def signal_contamination(
    signal: dict[str, Any], background: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Signal in B, C, D relative to A, per bin (seed 003: "signal contamination in CRs").

    Parameters
    ----------
    signal : {"A": s_A, "B": s_B, "C": s_C, "D": s_D}
    background : same layout, optional

    Returns
    -------
    dict
        ``"B"``, ``"C"``, ``"D"``: s_R / s_A; with ``background`` also ``"B_norm"`` etc.:
        (s_R / b_R) / (s_A / b_A), the contamination normalised to the SR purity, and
        ``"bias"``: relative change of the prediction of A when the signal is added to the
        control regions, (B+sB)(C+sC)/(D+sD) / (B C / D) - 1.
    """
    s = {r: _as_bins(f"signal[{r}]", signal[r]) for r in REGIONS}
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for r in REGIONS[1:]:
            out[r] = np.where(s["A"] > 0, s[r] / s["A"], np.nan)
        if background is not None:
            b = {r: _as_bins(f"background[{r}]", background[r], s["A"].size) for r in REGIONS}
            purity_a = s["A"] / b["A"]
            for r in REGIONS[1:]:
                out[f"{r}_norm"] = (s[r] / b[r]) / purity_a
            out["bias"] = ((b["B"] + s["B"]) * (b["C"] + s["C"]) / (b["D"] + s["D"])) / (
                b["B"] * b["C"] / b["D"]
            ) - 1.0
    return out


def abcd_workspace(
    observed: dict[str, Any],
    signal: dict[str, Any] | None = None,
    *,
    nonclosure: Any = None,
    blind_a: bool = False,
) -> dict[str, Any]:
    """pyhf workspace of the combined ABCD fit (construction in the module docstring).

    Parameters
    ----------
    observed : {"A": n_A, "B": n_B, "C": n_C, "D": n_D}
        Observed counts per bin (n_A may be anything if ``blind_a``).
    signal : same layout, optional
        Signal at mu = 1 in each region; without it a zero signal is used in A only (the
        workspace then serves background-only fits; pyhf needs a POI).
    nonclosure : array_like (n_bins,), optional
        Relative per-bin non-closure uncertainty on the A background (shapesys).
    blind_a : bool
        Leave region A out (control-region-only fit; predict A with the same parameters).

    Returns
    -------
    dict
        Channels ``A`` (unless blinded), ``B``, ``C``, ``D``; measurement ``STATS_MEASUREMENT``.
    """
    obs = {r: _as_bins(f"observed[{r}]", observed[r]) for r in REGIONS}
    n = obs["B"].size
    for r in REGIONS:
        if obs[r].size != n:
            raise ConfigError(f"observed[{r}] has {obs[r].size} bins, region B has {n}")
    if np.any(obs["B"] <= 0) or np.any(obs["C"] <= 0) or np.any(obs["D"] <= 0):
        raise ConfigError("the ABCD fit needs non-empty B, C and D in every bin: merge bins")
    nominal = {
        "B": obs["B"], "C": obs["C"], "D": obs["D"], "A": obs["B"] * obs["C"] / obs["D"],
    }
    factors = {"A": (ABCD_NORM, ABCD_X, ABCD_Y), "B": (ABCD_NORM, ABCD_X),
               "C": (ABCD_NORM, ABCD_Y), "D": (ABCD_NORM,)}
    sig = {r: _as_bins(f"signal[{r}]", signal[r], n) for r in REGIONS} if signal is not None else None
    channels, observations = [], []
    for r in REGIONS:
        if r == "A" and blind_a:
            continue
        mods = [{"name": f, "type": "shapefactor", "data": None} for f in factors[r]]
        if r == "A" and nonclosure is not None:
            rel = _as_bins("nonclosure", nonclosure, n)
            mods.append({"name": ABCD_NONCLOSURE, "type": "shapesys", "data": (rel * nominal["A"]).tolist()})
        samples = [{"name": ABCD_BACKGROUND, "data": nominal[r].tolist(), "modifiers": mods}]
        s_r = sig[r] if sig is not None else (np.zeros(n) if r == "A" else None)
        if s_r is not None:
            samples.append({"name": ABCD_SIGNAL, "data": s_r.tolist(),
                            "modifiers": [{"name": STATS_POI, "type": "normfactor", "data": None}]})
        channels.append({"name": r, "samples": samples})
        observations.append({"name": r, "data": obs[r].tolist()})
    if sig is None and blind_a:
        # the POI must exist: attach a zero signal to D
        channels[-1]["samples"].append({"name": ABCD_SIGNAL, "data": [0.0] * n,
                                        "modifiers": [{"name": STATS_POI, "type": "normfactor", "data": None}]})
    bounds = [list(ABCD_FACTOR_BOUNDS)] * n
    return {
        "version": "1.0.0",
        "channels": channels,
        "observations": observations,
        "measurements": [{
            "name": STATS_MEASUREMENT,
            "config": {"poi": STATS_POI, "parameters": [
                {"name": name, "bounds": bounds, "inits": [1.0] * n} for name in (ABCD_NORM, ABCD_X, ABCD_Y)
            ]},
        }],
    }


def abcd_fit_prediction(spec: dict[str, Any], mu: float = 0.0) -> np.ndarray:
    """Background expected in region A after the fit of ``spec`` with mu fixed.

    For a workspace without channel A (``blind_a=True``) the A template is rebuilt from
    the B, C, D observations: the fitted A background is B C / D * s x y.
    """
    import pyhf

    from analysis.stats.likelihood import HistFactoryLikelihood

    pyhf.set_backend("numpy")
    ws = pyhf.Workspace(spec)
    model = ws.model()
    nll = HistFactoryLikelihood(model)
    fit = nll.fit(np.asarray(ws.data(model)), fixed_poi=mu)
    obs = {o["name"]: np.asarray(o["data"], dtype=np.float64) for o in spec["observations"]}
    cfg = model.config
    s, x, y = (fit.pars[cfg.par_slice(name)] for name in (ABCD_NORM, ABCD_X, ABCD_Y))
    return obs["B"] * obs["C"] / obs["D"] * s * x * y
