"""Histograms declared as data: an analysis lists :class:`HistogramSpec` entries (name, axes,
what fills them) and the processor base books and fills them.

Every histogram starts with category axes (``dataset``, usually ``systematic``) and has
``Weight`` storage unless the spec says otherwise. A spec's ``fill`` maps each of its own
axes to the name of an observable (default: the axis name); the base fills every spec whose
observables a chunk provides (:func:`fill_observables`), and an analysis' ``fill`` hook
fills the others (track-level histograms, scores) by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import hist
import numpy as np

from analysis.errors import ConfigError

#: the leading category axes a spec can ask for, by name
CATEGORY_AXES = {
    "dataset": lambda: hist.axis.StrCategory([], name="dataset", growth=True),
    "systematic": lambda: hist.axis.StrCategory([], name="systematic", growth=True),
    "origin": lambda: hist.axis.StrCategory([], name="origin", label="track origin (generator truth)", growth=True),
    "region": lambda: hist.axis.StrCategory([], name="region", growth=True),
    "track_class": lambda: hist.axis.StrCategory([], name="track_class", label="background class (track truth)",
                                                 growth=True),
}
STORAGES = {"weight": hist.storage.Weight, "double": hist.storage.Double}


@dataclass(frozen=True)
class HistogramSpec:
    """One histogram: its name, leading category axes, observable axes and filling.

    Attributes
    ----------
    name : key of the histogram in the output's ``histograms``.
    axes : the observable axes (hist axes), after the category axes.
    categories : names of the leading category axes (keys of :data:`CATEGORY_AXES`).
    fill : axis name -> observable name; axes not listed are filled from the observable of
        their own name. ``None`` (``fill=None``) means the analysis' ``fill`` hook fills it.
    storage : ``"weight"`` (sum of weights and of their squares) or ``"double"``.
    """

    name: str
    axes: tuple = ()
    categories: tuple[str, ...] = ("dataset", "systematic")
    fill: Mapping[str, str] | None = field(default_factory=dict)
    storage: str = "weight"

    def __post_init__(self):
        unknown = [c for c in self.categories if c not in CATEGORY_AXES]
        if unknown:
            raise ConfigError(f"histogram {self.name!r}: unknown category axes {unknown}; "
                              f"choose from {sorted(CATEGORY_AXES)}")
        if self.storage not in STORAGES:
            raise ConfigError(f"histogram {self.name!r}: storage {self.storage!r} not in {sorted(STORAGES)}")

    def book(self) -> hist.Hist:
        """A new, empty histogram."""
        return hist.Hist(*(CATEGORY_AXES[c]() for c in self.categories), *self.axes,
                         storage=STORAGES[self.storage]())

    @property
    def observables(self) -> dict[str, str]:
        """Axis name -> observable that fills it (empty for hook-filled specs)."""
        if self.fill is None:
            return {}
        return {ax.name: self.fill.get(ax.name, ax.name) for ax in self.axes}


def book(specs: Sequence[HistogramSpec]) -> dict[str, hist.Hist]:
    """Fresh histograms of ``specs`` by name (names must be unique)."""
    out: dict[str, hist.Hist] = {}
    for spec in specs:
        if spec.name in out:
            raise ConfigError(f"histogram {spec.name!r} declared twice")
        out[spec.name] = spec.book()
    return out


def fill_observables(hists: Mapping[str, hist.Hist], specs: Sequence[HistogramSpec],
                     observables: Mapping[str, np.ndarray], mask: np.ndarray, weight: np.ndarray,
                     **categories: str) -> None:
    """Fill every observable-filled spec whose observables are all in ``observables``, for the
    events of ``mask``, with ``weight`` (already restricted to ``mask``) and the category
    values ``categories`` (e.g. dataset=..., systematic=...)."""
    for spec in specs:
        names = spec.observables
        if not names or not all(v in observables for v in names.values()):
            continue
        values = {ax: np.asarray(observables[obs])[mask] for ax, obs in names.items()}
        cats = {c: categories[c] for c in spec.categories}
        hists[spec.name].fill(**cats, **values, weight=weight)
