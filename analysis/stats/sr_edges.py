"""Signal-region edges per category from classifier scores (docs/physics.md sec. 4): Asimov
significance with a relative background uncertainty, flat-S bins, tightest bin split in two
(:func:`analysis.stats.significance.flat_s_edges`), from

- score files (:func:`load_scores`, :func:`sr_edges_from_scores`): per-event scores,
  weights and category indices of signal and background, as ``run.py sr-edges`` reads them;
- a processor output's fine max-score histogram per category
  (:func:`sr_edges_from_histogram`), as the main job derives them.

The categories (e.g. the Delta m categories of a search), the lowest allowed edge and the
edges kept where a category cannot support the binning are the caller's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from analysis.errors import InputFileError, SoftTrackError, YieldsError
from analysis.stats.defaults import SR_BACKGROUND_REL_UNC
from analysis.stats.significance import flat_s_edges, sr_edges_by_category

#: arrays per sample of a score file: ``<sample>_<key>``
KEYS = ("score", "weight", "category")
SAMPLES = ("signal", "background")


def load_scores(path: Path, n_categories: int) -> dict[str, dict[str, np.ndarray]]:
    """{"signal": {"score", "weight", "category"}, "background": {...}} from an NPZ
    (numpy.savez) or JSON file with the six arrays ``signal_score``, ..., ``background_category``
    (category: an index 0..n_categories-1)."""
    if not path.is_file():
        raise InputFileError(f"score file {path} does not exist")
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            with np.load(path) as f:
                raw = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise InputFileError(f"cannot read score file {path}: {err}") from None
    expected = {f"{s}_{k}" for s in SAMPLES for k in KEYS}
    unknown, missing = sorted(set(raw) - expected), sorted(expected - set(raw))
    if unknown or missing:
        raise YieldsError(f"score file {path}: unknown keys {unknown}, missing keys {missing}; "
                          f"expected exactly {sorted(expected)}")
    out = {}
    for s in SAMPLES:
        arrays = {k: np.asarray(raw[f"{s}_{k}"]) for k in KEYS}
        sizes = {f"{s}_{k}": a.size for k, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise YieldsError(f"score file {path}: arrays of different lengths {sizes}")
        bad = sorted(set(np.unique(arrays["category"]).tolist()) - set(range(n_categories)))
        if bad:
            raise YieldsError(f"{s}_category holds {bad}; expected indices 0..{n_categories - 1}")
        out[s] = arrays
    return out


def sr_edges_from_scores(scores: Mapping[str, Mapping[str, np.ndarray]], categories: Sequence[float], *,
                         rel_unc: float = SR_BACKGROUND_REL_UNC, min_edge: float | None = None) -> dict:
    """The edges of every category from loaded scores (:func:`load_scores`):
    {"categories": [...], "edges": {"<c>": [lower edges]}, "z_asimov": {"<c>": Z},
    "background_rel_unc", "min_edge"} (min_edge None when unlimited)."""
    result = sr_edges_by_category(scores["signal"], scores["background"], tuple(categories),
                                  rel_unc=rel_unc, min_edge=min_edge)
    return {
        "categories": list(categories),
        "edges": {f"{c:g}": edges.tolist() for c, (edges, _) in result.items()},
        "z_asimov": {f"{c:g}": z for c, (_, z) in result.items()},
        "background_rel_unc": rel_unc,
        "min_edge": min_edge if min_edge is not None and np.isfinite(min_edge) else None,
    }


def _pseudo_events(items: list[tuple[np.ndarray, np.ndarray]], centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histogram bins as pseudo-events: each bin contributes its effective number of entries
    (sum w)^2 / sum w^2 at its centre, sharing its sum of weights."""
    scores, weights = [], []
    for value, var in items:
        ok = (value > 0) & (var > 0)
        neff = np.maximum(np.round(value[ok] ** 2 / var[ok]).astype(int), 1)
        scores.append(np.repeat(centres[ok], neff))
        weights.append(np.repeat(value[ok] / neff, neff))
    return (np.concatenate(scores) if scores else np.zeros(0),
            np.concatenate(weights) if weights else np.zeros(0))


def sr_edges_from_histogram(h, datasets: Mapping[str, Mapping], categories: Sequence[float], *,
                            min_edge: float | None, fallback: Mapping[float, Sequence[float]],
                            category_axis: str = "dm", score_axis: str = "max_logit",
                            signal_process: str = "signal", signal_parameter: str = "dm_chargino",
                            **flat_s_kwargs) -> dict:
    """Edges per category from a fine score histogram (axes dataset, ``category_axis`` with
    the categories as "<c:g>" labels, ``score_axis``; Weight storage) of a processor output.

    Background: every simulated dataset that is not ``signal_process``; signal: the signal
    datasets whose ``signal_parameter`` (metadata) is nearest to the category's value. The
    fine histogram is turned into pseudo-events: each bin contributes its effective number
    of entries (sum w)^2 / sum w^2 at its centre, so the minimum-entries requirement counts
    simulated events, not bins. A category whose inputs cannot support the binning keeps
    ``fallback[c]``, with a note. Returns {"edges": {c: [lower edges]}, "notes": [...]}.
    """
    centres = h.axes[score_axis].centers
    result, notes = {}, []
    for c in categories:
        label = f"{c:g}"
        parts: dict[str, list] = {"signal": [], "background": []}
        for ds in h.axes["dataset"]:
            meta = datasets[ds]
            if meta["is_data"]:
                continue
            if meta["process"] == signal_process:
                nearest = min(categories, key=lambda x, d=meta[signal_parameter]: abs(x - d))
                if nearest != c:
                    continue
                kind = "signal"
            else:
                kind = "background"
            view = h[{"dataset": ds, category_axis: label}].view()
            parts[kind].append((view["value"], view["variance"]))
        arrays = {kind: _pseudo_events(items, centres) for kind, items in parts.items()}
        try:
            edges, z = flat_s_edges(*arrays["signal"], *arrays["background"], min_edge=min_edge, **flat_s_kwargs)
            result[c] = [float(e) for e in edges]
            notes.append(f"dm {label}: edges {', '.join(f'{e:.2f}' for e in edges)}, Z_A = {z:.2f}")
        except SoftTrackError as err:
            result[c] = list(fallback[c])
            notes.append(f"dm {label}: kept the config edges ({err})")
    return {"edges": result, "notes": notes}
