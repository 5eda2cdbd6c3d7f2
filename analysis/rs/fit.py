"""Rebalancing (seed 004 sec. 2.5): the maximum of the posterior of eq. 2.9 per seed event.

:func:`rebalance` fits every event in one numba pass (projected L-BFGS from the starts of
eq. 2.10, :mod:`analysis.rs.optimizer`) and drops non-converged events and events whose
rebalanced hard MHT stays above max(100 GeV, the prior's 0.999 quantile at the event's H_T);
:func:`rebalance_scipy` is the per-event scipy reference, :func:`neg_log_posterior` the
posterior of one event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from analysis.errors import ConfigError
from analysis.rs.arrays import _as_f8, _as_offsets
from analysis.rs.defaults import (
    RS_DIRECTION_MAX_PULL,
    RS_FIT_FTOL,
    RS_FIT_GTOL,
    RS_FIT_MAX_ITER,
    RS_FIT_MEMORY,
    RS_INIT_HT_FRACTION,
    RS_INIT_MAX_RESPONSE_SHIFT,
    RS_INIT_MHT_MAX,
    RS_INIT_MHT_MIN,
    RS_JET_ETA_MAX,
    RS_MAX_REBALANCED_MHT,
    RS_REJECT_PRIOR_QUANTILE,
)
from analysis.rs.optimizer import (
    STATUS_CONVERGED,
    STATUS_LINE_SEARCH_FAILED,
    STATUS_MAX_ITER,
    STATUS_NAN_INPUT,
    STATUS_TOO_FEW_JETS,
    _initial_log_scales,
    _lbfgs,
    _objective,
)
from analysis.rs.priors import RebalancePriors, _bjet_category
from analysis.rs.tables import _find_bin
from analysis.rs.templates import JetResponseTemplates


@nb.njit(cache=True)
def _rebalance_kernel(pt, eta, phi, offsets, fit_mask, nbcat, eta_edges, pt_lo, pt_hi, tabs,
                      lo, hi, max_iter, gtol, ftol, m_mem, init_pars, sphi_all, fit_dir, max_pull):
    n_ev = offsets.shape[0] - 1
    scale = np.ones(pt.shape[0])
    phi_out = phi.copy()
    mht = np.full(n_ev, np.nan)
    mht_phi = np.full(n_ev, np.nan)
    nll = np.full(n_ev, np.nan)
    status = np.zeros(n_ev, dtype=np.int8)
    n_iter = np.zeros(n_ev, dtype=np.int32)
    # counters: pt below / above template, |eta| beyond template, jets ending at a bound
    counts = np.zeros(4, dtype=np.int64)
    for e in range(n_ev):
        a = offsets[e]
        b = offsets[e + 1]
        bad = False
        nfit = 0
        for j in range(a, b):
            if not (np.isfinite(pt[j]) and np.isfinite(eta[j]) and np.isfinite(phi[j])):
                bad = True
            elif fit_mask[j]:
                nfit += 1
        if bad:
            status[e] = STATUS_NAN_INPUT
            continue
        if nfit < 2:
            status[e] = STATUS_TOO_FEW_JETS
            continue
        idx = np.empty(nfit, dtype=np.int64)
        p = np.empty(nfit)
        qx = np.empty(nfit)
        qy = np.empty(nfit)
        eb = np.empty(nfit, dtype=np.int64)
        q = 0
        # int64, not the literal 0: typing _lbfgs with Literal[int](0) first compiled it twice
        lead = np.int64(0)
        for j in range(a, b):
            if fit_mask[j]:
                idx[q] = j
                p[q] = pt[j]
                qx[q] = pt[j] * math.cos(phi[j])
                qy[q] = pt[j] * math.sin(phi[j])
                ae = abs(eta[j])
                eb[q] = _find_bin(eta_edges, ae)
                if ae >= eta_edges[eta_edges.shape[0] - 1]:
                    counts[2] += 1
                if pt[j] < pt_lo:
                    counts[0] += 1
                elif pt[j] > pt_hi:
                    counts[1] += 1
                if p[q] > p[lead]:
                    lead = q
                q += 1
        starts = _initial_log_scales(p, qx, qy, lo, hi, init_pars[0], init_pars[1],
                                     init_pars[2], init_pars[3])
        npar = nfit * 2 if fit_dir else nfit
        sp = np.empty(nfit if fit_dir else 0)
        lo_v = np.full(npar, lo)
        hi_v = np.full(npar, hi)
        if fit_dir:
            for q in range(nfit):
                sp[q] = sphi_all[idx[q]]
                lo_v[nfit + q] = -max_pull
                hi_v[nfit + q] = max_pull
        x = np.zeros(npar)
        for q in range(nfit):  # element by element: a slice assignment compiles numba's shape-error path (~5 s)
            x[q] = starts[0, q]
        st, it, fv = _lbfgs(x, lo_v, hi_v, p, qx, qy, eb, lead, nbcat[e], tabs, max_iter, gtol,
                            ftol, m_mem, sp)
        for s in range(1, starts.shape[0]):
            xs = np.zeros(npar)
            for q in range(nfit):
                xs[q] = starts[s, q]
            st_s, it_s, fv_s = _lbfgs(xs, lo_v, hi_v, p, qx, qy, eb, lead, nbcat[e], tabs,
                                      max_iter, gtol, ftol, m_mem, sp)
            it += it_s
            if st_s == STATUS_CONVERGED and (st != STATUS_CONVERGED or fv_s < fv):
                x = xs
                st = st_s
                fv = fv_s
        status[e] = st
        n_iter[e] = it
        nll[e] = fv
        mx = 0.0
        my = 0.0
        for q in range(nfit):
            c = math.exp(x[q])
            scale[idx[q]] = c
            f = phi[idx[q]]
            if fit_dir:
                a = x[nfit + q] * sp[q]
                f = math.atan2(math.sin(f + a), math.cos(f + a))
                phi_out[idx[q]] = f
            mx -= c * p[q] * math.cos(f)
            my -= c * p[q] * math.sin(f)
            if x[q] <= lo or x[q] >= hi:
                counts[3] += 1
        mht[e] = math.sqrt(mx * mx + my * my)
        mht_phi[e] = math.atan2(my, mx)
    return scale, phi_out, mht, mht_phi, status, n_iter, nll, counts


@dataclass(frozen=True, eq=False)
class RebalanceResult:
    """Output of :func:`rebalance` (flat jets in the input layout, per-event arrays).

    Attributes
    ----------
    pt : ndarray
        Rebalanced jet pT (GeV) = ``scale * pT_reco``; jets not fitted keep their pT.
    phi : ndarray
        Rebalanced jet azimuth (rad): the fitted one when the templates have a direction
        resolution, else (and for jets not fitted) the measured one (eq. 2.1).
    scale : ndarray
        Best-fit scale factor c_i per jet (1 for jets not fitted).
    mht, mht_phi : ndarray
        Rebalanced hard MHT (GeV) of the fitted jets and its azimuth, per event (NaN if no fit).
    status : ndarray of int8
        ``STATUS_*`` code per event.
    n_iter : ndarray of int32
        Optimizer iterations per event.
    neg_log_posterior : ndarray
        -log of the posterior (eq. 2.9) at the optimum, per event.
    keep : ndarray of bool
        Converged and rebalanced hard MHT below the threshold: the events to smear.
    summary : dict[str, int]
        Counters: events, converged, max_iter, line_search_failed, too_few_jets, nan_input,
        mht_too_large, kept; jets_fitted, jets_pt_below_template, jets_pt_above_template,
        jets_eta_beyond_template (all clamped to the edge bins), jets_at_scale_bound.
    """

    pt: np.ndarray
    phi: np.ndarray
    scale: np.ndarray
    mht: np.ndarray
    mht_phi: np.ndarray
    status: np.ndarray
    n_iter: np.ndarray
    neg_log_posterior: np.ndarray
    keep: np.ndarray
    summary: dict[str, int]


def _scale_bounds(templates: JetResponseTemplates) -> tuple[float, float]:
    """Box for x = log c: the response 1/c stays within the template's first/last bin centers."""
    rc = templates.response_centers
    r_lo = max(float(rc[0]), 1e-3)
    return -math.log(float(rc[-1])), -math.log(r_lo)


def _fit_directions(templates: JetResponseTemplates, fit_directions: bool | None) -> bool:
    if fit_directions is None:
        return templates.phi_resolution is not None
    if fit_directions and templates.phi_resolution is None:
        raise ConfigError("fit_directions needs templates with a jet phi resolution (built by "
                          "python run.py rs-templates from GenJet-matched QCD)")
    return bool(fit_directions)


def _kernel_tabs(templates: JetResponseTemplates, priors: RebalancePriors) -> tuple:
    return templates.kernel_tables() + priors.kernel_tables()


def _fit_inputs(pt, eta, phi, offsets, n_bjets, priors, pt_min, eta_max):
    p = _as_f8("pt", pt)
    e = _as_f8("eta", eta)
    f = _as_f8("phi", phi)
    if not p.shape == e.shape == f.shape or p.ndim != 1:
        raise ConfigError(f"pt, eta, phi must be flat arrays of one shape, got {p.shape}, "
                          f"{e.shape}, {f.shape}")
    off = _as_offsets("offsets", offsets, p.size)
    cat = _bjet_category(n_bjets, off.size - 1, priors.n_bjet_categories)
    with np.errstate(invalid="ignore"):
        fit = (p > pt_min) & (np.abs(e) < eta_max)
    return p, e, f, off, cat, np.ascontiguousarray(fit)


def rebalance(
    pt, eta, phi, offsets, n_bjets,
    templates: JetResponseTemplates,
    priors: RebalancePriors,
    *,
    max_rebalanced_mht: float = RS_MAX_REBALANCED_MHT,
    reject_quantile: float = RS_REJECT_PRIOR_QUANTILE,
    pt_min: float,
    eta_max: float = RS_JET_ETA_MAX,
    max_iter: int = RS_FIT_MAX_ITER,
    gtol: float = RS_FIT_GTOL,
    ftol: float = RS_FIT_FTOL,
    memory: int = RS_FIT_MEMORY,
    fit_directions: bool | None = None,
    max_direction_pull: float = RS_DIRECTION_MAX_PULL,
) -> RebalanceResult:
    """Rebalance seed events: maximize the posterior of seed 004 eq. 2.9 over the jet scale factors.

    For every event the jets with pT > ``pt_min`` and |eta| < ``eta_max`` are fitted (the others
    are passed through unchanged and do not enter the hard MHT). The posterior is

        prod_i p_r(1/c_i; c_i pT_i, |eta_i|) / (c_i pT_i) * P(MHT_reb; nb) * P(dphi | MHT_reb; nb)

    with MHT_reb = |-sum_i c_i pT_i| (eq. 2.6 at the R&S threshold), dphi the angle between it
    and the leading seed jet, the response pdf interpolated linearly in pT (sec. 2.5) and
    cubically in the response. It is maximized by a projected L-BFGS in x_i = log c_i within the
    template's response range, started from eq. 2.10 (:func:`_initial_log_scales`). Events
    with fewer than two fitted jets or non-finite jet inputs are not fitted (status codes);
    jets outside the template's pT or |eta| range use the edge bins and are counted.
    Leptons and photons are not touched (seed sec. 2.6): the caller keeps them.

    With ``fit_directions`` (default: when the templates have a ``phi_resolution``) each
    fitted jet's azimuth is a parameter as well, phi_i + a_i with a Gaussian likelihood
    N(a_i; 0, sigma_phi(pT_reco,i, |eta_i|)) and |a_i| <= ``max_direction_pull`` sigma: the
    imbalance a jet-direction mis-measurement makes (perpendicular to the jets, not
    removable by rescaling them) is then removed as the pT mis-measurement is, and the
    smearing puts it back with the right size (docs/physics.md sec. 8). The prior must then
    describe the true hard MHT in the gen directions (:func:`analysis.rs.prior_jets` with
    ``directions="gen"``).

    Parameters
    ----------
    pt, eta, phi : array_like
        Flat reco jets (GeV, rad) of the seed events.
    offsets : array_like of int
        Event offsets into the flat jets (length n_events + 1).
    n_bjets : array_like of int
        b-tagged jets per event (prior category 0, 1, >= 2).
    templates, priors : JetResponseTemplates, RebalancePriors
    pt_min, eta_max : float
        The fitted jets: pT (GeV) above the analysis' R&S jet threshold, |eta| below.
    max_rebalanced_mht, reject_quantile : float
        Events whose rebalanced hard MHT (GeV) stays above max(``max_rebalanced_mht``, the
        ``reject_quantile`` of the true hard MHT prior at the event's H_T and b-jet count) are
        dropped (``keep`` False; seed 004 sec. 2.5 uses a fixed 100 GeV, which at multi-TeV H_T
        would drop ordinary QCD seeds whose imbalance comes from the jet directions).

    Returns
    -------
    RebalanceResult
    """
    p, e, f, off, cat, fit = _fit_inputs(pt, eta, phi, offsets, n_bjets, priors, pt_min, eta_max)
    fit_dir = _fit_directions(templates, fit_directions)
    lo, hi = _scale_bounds(templates)
    init = np.array([RS_INIT_MHT_MIN, RS_INIT_MHT_MAX, RS_INIT_HT_FRACTION,
                     RS_INIT_MAX_RESPONSE_SHIFT])
    sphi = templates.phi_sigma(p, e) if fit_dir else np.zeros(p.size)
    scale, phi_reb, mht, mphi, status, n_iter, nll, counts = _rebalance_kernel(
        p, e, f, off, fit, cat, templates.eta_edges, float(templates.pt_edges[0]),
        float(templates.pt_edges[-1]), _kernel_tabs(templates, priors), lo, hi, int(max_iter),
        float(gtol), float(ftol), int(memory), init, np.ascontiguousarray(sphi), fit_dir,
        float(max_direction_pull),
    )
    converged = status == STATUS_CONVERGED
    ev = np.repeat(np.arange(off.size - 1), np.diff(off))
    ht = np.bincount(ev[fit], p[fit], off.size - 1)
    threshold = priors.rejection_threshold(ht, cat, reject_quantile, max_rebalanced_mht)
    with np.errstate(invalid="ignore"):
        small = mht <= threshold
    keep = converged & small
    summary = {
        "events": int(status.size),
        "converged": int(converged.sum()),
        "max_iter": int((status == STATUS_MAX_ITER).sum()),
        "line_search_failed": int((status == STATUS_LINE_SEARCH_FAILED).sum()),
        "too_few_jets": int((status == STATUS_TOO_FEW_JETS).sum()),
        "nan_input": int((status == STATUS_NAN_INPUT).sum()),
        "mht_too_large": int((converged & ~small).sum()),
        "kept": int(keep.sum()),
        "jets_fitted": int(fit.sum()),
        "jets_pt_below_template": int(counts[0]),
        "jets_pt_above_template": int(counts[1]),
        "jets_eta_beyond_template": int(counts[2]),
        "jets_at_scale_bound": int(counts[3]),
    }
    return RebalanceResult(p * scale, phi_reb, scale, mht, mphi, status, n_iter, nll, keep, summary)


def neg_log_posterior(
    log_scale, pt, phi, abseta, n_bjets: int,
    templates: JetResponseTemplates, priors: RebalancePriors,
) -> tuple[float, np.ndarray]:
    """-log posterior (seed 004 eq. 2.9) of one event and its gradient in x = log c.

    ``pt``, ``phi``, ``abseta`` are the fitted jets of the event (leading jet = highest pT);
    for validation and the per-event reference implementation :func:`rebalance_scipy`.
    With twice as many parameters as jets, the second half are the azimuth shifts of the
    direction fit in units of the jets' resolutions (:func:`rebalance` with ``fit_directions``; the templates need a
    ``phi_resolution``).
    """
    x = _as_f8("log_scale", log_scale).copy()
    p = _as_f8("pt", pt)
    ph = _as_f8("phi", phi)
    ae = np.abs(_as_f8("abseta", abseta))
    etab = np.clip(np.searchsorted(templates.eta_edges, ae, side="right") - 1, 0, templates.eta_edges.size - 2)
    if x.size not in (p.size, 2 * p.size):
        raise ConfigError(f"log_scale must have one (or, with directions, two) entries per jet, got {x.size} "
                          f"for {p.size} jets")
    sphi = templates.phi_sigma(p, ae) if x.size == 2 * p.size else np.zeros(0)
    if x.size == 2 * p.size and templates.phi_resolution is None:
        raise ConfigError("azimuth parameters need templates with a jet phi resolution")
    grad = np.empty_like(x)
    cat = min(int(n_bjets), priors.n_bjet_categories - 1)
    val = _objective(x, p, p * np.cos(ph), p * np.sin(ph), etab.astype(np.int64),
                     int(np.argmax(p)), cat, _kernel_tabs(templates, priors), grad, np.ascontiguousarray(sphi))
    return float(val), grad


def rebalance_scipy(
    pt, eta, phi, offsets, n_bjets,
    templates: JetResponseTemplates,
    priors: RebalancePriors,
    *,
    pt_min: float,
    eta_max: float = RS_JET_ETA_MAX,
    fit_directions: bool | None = None,
    max_direction_pull: float = RS_DIRECTION_MAX_PULL,
) -> dict[str, np.ndarray]:
    """Reference: the same posterior maximized per event by ``scipy.optimize.minimize``
    (L-BFGS-B, analytic gradient, same bounds and eq. 2.10 start). Slow (Python per event);
    for validation and the benchmark only.

    Returns a dict with per-jet ``scale`` and ``phi`` and per-event ``neg_log_posterior``,
    ``success``.
    """
    from scipy.optimize import minimize

    p, e, f, off, cat, fit = _fit_inputs(pt, eta, phi, offsets, n_bjets, priors, pt_min, eta_max)
    fit_dir = _fit_directions(templates, fit_directions)
    sphi_all = templates.phi_sigma(p, e)
    lo, hi = _scale_bounds(templates)
    tabs = _kernel_tabs(templates, priors)
    scale = np.ones_like(p)
    phi_out = f.copy()
    nll = np.full(off.size - 1, np.nan)
    success = np.zeros(off.size - 1, dtype=bool)
    etab_all = np.clip(np.searchsorted(templates.eta_edges, np.abs(e), side="right") - 1, 0,
                       templates.eta_edges.size - 2).astype(np.int64)
    for ev in range(off.size - 1):
        idx = np.arange(off[ev], off[ev + 1])[fit[off[ev]:off[ev + 1]]]
        sl = slice(off[ev], off[ev + 1])
        if idx.size < 2 or not np.all(np.isfinite(np.r_[p[sl], e[sl], f[sl]])):
            continue
        pj = p[idx]
        px = pj * np.cos(f[idx])
        py = pj * np.sin(f[idx])
        lead = int(np.argmax(pj))
        eb = etab_all[idx]
        sp = np.ascontiguousarray(sphi_all[idx]) if fit_dir else np.zeros(0)
        grad = np.empty(idx.size * (2 if fit_dir else 1))

        def fun(x, pj=pj, px=px, py=py, lead=lead, eb=eb, c=int(cat[ev]), grad=grad, sp=sp):
            val = _objective(np.ascontiguousarray(x), pj, px, py, eb, lead, c, tabs, grad, sp)
            return val, grad.copy()

        starts = _initial_log_scales(pj, px, py, lo, hi, RS_INIT_MHT_MIN, RS_INIT_MHT_MAX,
                                     RS_INIT_HT_FRACTION, RS_INIT_MAX_RESPONSE_SHIFT)
        bounds = [(lo, hi)] * idx.size + [(-max_direction_pull, max_direction_pull)] * sp.size
        best = None
        for x0 in starts:
            res = minimize(fun, np.r_[x0, np.zeros(sp.size)], jac=True, method="L-BFGS-B", bounds=bounds)
            if best is None or (res.success and (not best.success or res.fun < best.fun)):
                best = res
        scale[idx] = np.exp(best.x[:idx.size])
        if fit_dir:
            phi_out[idx] = np.angle(np.exp(1j * (f[idx] + best.x[idx.size:] * sp)))
        nll[ev] = best.fun
        success[ev] = bool(best.success)
    return {"scale": scale, "phi": phi_out, "neg_log_posterior": nll, "success": success}
