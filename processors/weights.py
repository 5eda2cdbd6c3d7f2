"""Event weights with named variations: coffea's ``Weights``, with exact variations.

coffea's :class:`coffea.analysis_tools.Weights` stores a variation as the ratio of the varied
to the nominal factor and multiplies the total weight by it. That ratio is undefined where a
nominal factor is zero (a pileup weight in an empty bin gives NaN weights) and differs from
the product of the factors in the last bits. :class:`EventWeights` keeps coffea's API
(``add``, ``weight(modifier)``, ``variations``, ``weightStatistics``) and computes every
weight as the ordered product of its factors, with the varied factor in place of the
nominal one: the same numbers on every executor and NaN-free wherever the factors are.
"""

from __future__ import annotations

import numpy as np
from coffea.analysis_tools import Weights


class EventWeights(Weights):
    """Per-event weights as an ordered product of named factors (numpy, eager mode).

    Parameters
    ----------
    size : number of events.
    """

    def __init__(self, size: int):
        super().__init__(size, storeIndividual=True)
        self._factors: dict[str, dict[str, np.ndarray]] = {}

    def add(self, name, weight, weightUp=None, weightDown=None, shift=False):  # noqa: N803 - coffea's names
        """Multiply the weight by the factor ``name`` (with optional up/down variants)."""
        if shift:
            raise ValueError("EventWeights takes varied factors, not shifts")
        weight = np.asarray(weight, dtype=np.float64)
        factors = {"nominal": weight}
        if weightUp is not None:
            factors["Up"] = np.asarray(weightUp, dtype=np.float64)
        if weightDown is not None:
            factors["Down"] = np.asarray(weightDown, dtype=np.float64)
        super().add(name, weight, None if weightUp is None else factors["Up"].copy(),
                    None if weightDown is None else factors["Down"].copy())
        self._factors[name] = factors

    def product(self, include=None, replace: tuple[str, str] | None = None, exclude=()) -> np.ndarray:
        """The ordered product of the factors in ``include`` (default: all) but those in
        ``exclude``, with factor ``replace[0]`` taken in its variant ``replace[1]`` ("Up" or "Down")."""
        names = [n for n in self._factors if (include is None or n in include) and n not in exclude]
        w = np.ones(self._weight.size)
        for name in names:
            which = replace[1] if replace is not None and replace[0] == name else "nominal"
            w = w * self._factors[name][which]
        return w

    def weight(self, modifier=None):
        """The nominal weight, or the weight with one factor varied (``"<name>Up"``/``Down``)."""
        if modifier is None:
            return self.product()
        for suffix in ("Up", "Down"):
            if modifier.endswith(suffix) and modifier[: -len(suffix)] in self._factors:
                name = modifier[: -len(suffix)]
                if suffix not in self._factors[name]:
                    raise ValueError(f"weight {name!r} has no {suffix} variation")
                return self.product(replace=(name, suffix))
        raise ValueError(f"unknown weight variation {modifier!r}: known {sorted(self.variations)}")
