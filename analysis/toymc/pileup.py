"""The generator's true pileup profiles: the probabilities of the true number of
interactions (Pileup_nTrueInt) in unit bins of simulation and of pseudo-data, per era, that
the toy truth (:class:`~analysis.toymc.truth.PileupModel`, :data:`~analysis.toymc.truth.PSEUDO_DATA`)
draws from. They are the input of the pileup weights
(:class:`corrections.softtrack.derive.PileupProfiles`, ``PileupProfiles(**truth_profiles(eras))``),
which the commands pass in (the corrections know no generator).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from .. import constants as cfg
from .truth import PSEUDO_DATA, DataModel, PileupModel

#: the systematic labels of the data profile: nominal, and the profile scale times 1 +- unc
SYSTEMATICS = ("nominal", "up", "down")


def gamma_profile(era: str, model: PileupModel, scale: float, n_max: int) -> np.ndarray:
    """Probabilities of n_true in unit bins [k, k+1), k < n_max: the generator draws
    n_true ~ Gamma(mean m, width s) clipped at ``model.max_true``
    (:meth:`PileupModel.sample_true`), here with m and s times ``scale``; the clipped tail is
    put in the bin of max_true."""
    if era not in model.mean:
        raise ValueError(f"no pileup profile for era {era!r}: the generator has {sorted(model.mean)}")
    edges = np.arange(n_max + 1, dtype=np.float64)
    m, s = model.mean[era] * scale, model.sd[era] * scale
    k = (m / s) ** 2
    cdf = stats.gamma.cdf(edges, k, scale=m / k)
    p = np.diff(cdf)
    clip_bin = min(int(model.max_true), n_max - 1)
    p[clip_bin] += stats.gamma.sf(model.max_true, k, scale=m / k)
    p[clip_bin + 1:] = 0.0
    return p / p.sum()


def truth_profiles(eras: Sequence[str] = cfg.ERAS, model: PileupModel | None = None,
                   data_model: DataModel = PSEUDO_DATA, scale_unc: float = cfg.PILEUP_SCALE_UNCERTAINTY,
                   n_max: int = cfg.PILEUP_NTRUE_MAX) -> dict:
    """The keyword arguments of :class:`corrections.softtrack.derive.PileupProfiles` for ``eras``:
    unit-bin ``edges`` 0..n_max, the ``simulation`` profile of the generator's
    :class:`PileupModel`, the pseudo-data profile (mean and width times
    ``data_model.pileup_scale``) as ``data["nominal"]`` and with that scale times
    1 +- ``scale_unc`` (minimum-bias cross section uncertainty) as ``data["up"/"down"]``, and
    their ``description``."""
    model = model or PileupModel()
    factors = dict(zip(SYSTEMATICS, (1.0, 1.0 + scale_unc, 1.0 - scale_unc), strict=True))
    return {
        "edges": np.arange(n_max + 1, dtype=np.float64),
        "simulation": {era: gamma_profile(era, model, 1.0, n_max) for era in eras},
        "data": {era: {syst: gamma_profile(era, model, data_model.pileup_scale * f, n_max)
                       for syst, f in factors.items()} for era in eras},
        "description": ("Simulation: the toy generator's Gamma profiles (PileupModel); pseudo-data: mean and width "
                        f"scaled by {data_model.pileup_scale:g}; up/down: that scale times 1 +- {scale_unc:g}."),
    }
