"""Response systematics of seed 004 sec. 4 item 2: templates with a widened Gaussian core
and/or scaled non-Gaussian tails (defaults ``RS_SYST_*`` in :mod:`analysis.rs.defaults`)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from analysis.errors import ConfigError
from analysis.rs.defaults import RS_CORE_WINDOW_NSIGMA
from analysis.rs.templates import JetResponseTemplates, _normalize_last


def vary_response(
    templates: JetResponseTemplates,
    core_width_scale: float = 1.0,
    tail_fraction_scale: float = 1.0,
    *,
    window_nsigma: float = RS_CORE_WINDOW_NSIGMA,
) -> JetResponseTemplates:
    """Response templates with a widened Gaussian core and/or scaled tails (seed 004 sec. 4).

    Per (pT, |eta|) bin the pdf is split into a Gaussian core G(mu, sigma) and a non-Gaussian
    remainder: mu and sigma come from the truncated mean and RMS within +-``window_nsigma``
    sigma (iterated, corrected for the truncation); the core is
    ``min(pdf, A * G(mu, sigma))`` with the amplitude A matched at the peak, the tail is the rest.
    The varied pdf is ``f_core' * core_k + t * tail`` where ``core_k(r) = core(mu + (r - mu) / k) / k``
    is the core stretched by ``k = core_width_scale`` around mu, ``t = tail_fraction_scale``
    and ``f_core' = 1 - t * f_tail`` (the total stays normalized; t is capped so that
    f_core' >= 0). No variation (k = t = 1) returns the template. Typical one-sigma variations
    are in ``analysis.rs.defaults.RS_SYST_CORE_WIDTH_SCALE`` and ``RS_SYST_TAIL_FRACTION_SCALE``.
    """
    if core_width_scale <= 0 or tail_fraction_scale < 0:
        raise ConfigError(
            f"core_width_scale must be > 0 and tail_fraction_scale >= 0, got "
            f"{core_width_scale}, {tail_fraction_scale}"
        )
    rc = templates.response_centers
    w = templates.response_edges[1] - templates.response_edges[0]
    out = templates.pdf.copy()
    z = window_nsigma
    phi_z = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    trunc_var = 1.0 - 2.0 * z * phi_z / math.erf(z / math.sqrt(2.0))
    for i in range(out.shape[0]):
        for k in range(out.shape[1]):
            p = templates.pdf[i, k]
            mu = rc[np.argmax(p)]
            sigma = math.sqrt(max((p * w * (rc - mu) ** 2).sum(), w * w))
            for _ in range(10):
                sel = np.abs(rc - mu) < z * sigma
                m = (p[sel] * w).sum()
                if m <= 0:
                    break
                mu = (p[sel] * w * rc[sel]).sum() / m
                sigma = max(math.sqrt((p[sel] * w * (rc[sel] - mu) ** 2).sum() / m / trunc_var), w)
            g = np.exp(-0.5 * ((rc - mu) / sigma) ** 2)
            peak = np.abs(rc - mu) < sigma
            amp = (p[peak] / g[peak]).min() if np.any(peak) else 0.0
            core = np.minimum(p, amp * g)
            tail = p - core
            f_tail = (tail * w).sum()
            t = min(tail_fraction_scale, 1.0 / f_tail) if f_tail > 0 else tail_fraction_scale
            # the core stretched by k around mu (exactly the core for k = 1)
            core_k = np.interp(mu + (rc - mu) / core_width_scale, rc, core, left=0.0, right=0.0)
            m_core = (core_k * w).sum()
            if m_core > 0:
                core_k *= (1.0 - f_tail) / m_core
            out[i, k] = (1.0 - t * f_tail) / max(1.0 - f_tail, 1e-12) * core_k + t * tail
    return replace(templates, pdf=_normalize_last(np.clip(out, 0.0, None), w))
