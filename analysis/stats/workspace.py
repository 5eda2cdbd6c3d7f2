"""HistFactory workspaces of the signal-region fit (docs/physics.md sec. 9; summary sec. 5).

One channel, ``STATS_CHANNEL``, whose bins are the signal regions (the 12 SRs of summary
Table 2, in order). Samples and modifiers:

- each background ``B``: normsys ``norm_B`` (log-normal normalization uncertainty), the
  shared staterror ``staterror_<channel>`` (MC statistics, Barlow-Beeston lite), normsys
  ``lumi``, and a histosys per shape systematic given;
- the signal: normfactor ``mu`` (the POI), normsys ``signal_norm``, ``lumi``, staterror,
  histosys per shape systematic.

Log-normal convention: a relative uncertainty ``u`` is a normsys with ``hi = 1 + u`` and
``lo = 1 / (1 + u)``. pyhf's default normsys interpolation (code4: exponential beyond
|alpha| = 1, a smooth polynomial inside) then scales the yield by ``(1 + u) ** alpha``
(exactly for |alpha| >= 1, to ~1e-9 relative inside for u <~ 0.2), with alpha ~ N(0, 1):
a log-normal with median 1 and width ln(1 + u), symmetric in ln(yield) (the thesis sec.
7.2 prescription).
The luminosity uncertainty (1.6%, ``LUMI_UNCERTAINTY``) is a normsys of the same kind on
signal and all backgrounds (the backgrounds are corrected simulation, summary sec. 4),
not pyhf's Gaussian ``lumi`` modifier, so that every normalization in the fit is
log-normal.

One workspace per signal point (measurement ``STATS_MEASUREMENT``, POI ``mu``): the
models stay small (pyhf keeps fixed parameters in the fit as equality constraints), and
``pyhf cls WS.json`` works on each file as it is.

The yields-file format is validated here (:func:`validate_yields`); the histogram layout
of the processors is documented in :func:`workspace_from_histograms`.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyhf

from analysis.constants import LUMI_UNCERTAINTY
from analysis.errors import ConfigError, YieldsError
from analysis.stats.defaults import (
    STATS_BACKGROUND_NORM_UNC,
    STATS_CHANNEL,
    STATS_DEFAULT_NORM_UNC,
    STATS_MEASUREMENT,
    STATS_POI,
    STATS_POI_MIN_UPPER,
    STATS_POI_UPPER_SIGMAS,
    STATS_SIGNAL_PREFIX,
    STATS_SIGNAL_UNCERTAINTY,
)

#: keys of a yields file: required and optional (``source`` is free-text provenance)
YIELDS_REQUIRED_KEYS = frozenset({"regions", "observed", "backgrounds", "signals"})
YIELDS_OPTIONAL_KEYS = frozenset({"lumi_unc", "signal_unc", "source"})
BACKGROUND_REQUIRED_KEYS = frozenset({"yields", "stat", "norm_unc"})
SIGNAL_REQUIRED_KEYS = frozenset({"yields", "stat"})
#: optional per-sample shape systematics: {"shapes": {NAME: {"up": [...], "down": [...]}}}
SAMPLE_OPTIONAL_KEYS = frozenset({"shapes"})
SHAPE_KEYS = frozenset({"up", "down"})

LUMI_MODIFIER = "lumi"
SIGNAL_NORM_MODIFIER = "signal_norm"
SIGNAL_SAMPLE = "signal"
NOMINAL = "nominal"
_SIGNAL_POINT = re.compile(r"^m(?P<m>\d+(?:p\d+)?)_dm(?P<dm>\d+(?:p\d+)?)$")


def lognormal_normsys(name: str, rel_unc: float) -> dict[str, Any]:
    """A normsys modifier for a log-normal relative uncertainty: hi = 1+u, lo = 1/(1+u)."""
    return {"name": name, "type": "normsys", "data": {"hi": 1.0 + rel_unc, "lo": 1.0 / (1.0 + rel_unc)}}


def parse_signal_point(name: str, prefix: str = STATS_SIGNAL_PREFIX) -> tuple[float, float]:
    """(m(chargino), Delta m) in GeV from a signal dataset name ``{prefix}m{M}_dm{DM}``.

    ``p`` stands for the decimal point: ``signal_m115_dm0p27`` -> (115.0, 0.27).

    Raises
    ------
    ConfigError
        If the name does not follow the convention.
    """
    rest = name[len(prefix) :] if name.startswith(prefix) else None
    match = _SIGNAL_POINT.match(rest) if rest is not None else None
    if match is None:
        raise ConfigError(
            f"signal name {name!r} is not of the form '{prefix}m<M>_dm<DM>' "
            f"(e.g. '{prefix}m115_dm0p27'); rename it or set the signal prefix"
        )
    return float(match["m"].replace("p", ".")), float(match["dm"].replace("p", "."))


def signal_point_name(m_chargino: float, dm: float, prefix: str = STATS_SIGNAL_PREFIX) -> str:
    """Inverse of :func:`parse_signal_point`: (115, 0.27) -> ``signal_m115_dm0p27``."""
    return f"{prefix}m{m_chargino:g}_dm{dm:g}".replace(".", "p")


# --- validation ------------------------------------------------------------------------
def _check_keys(where: str, entry: Any, required: frozenset, optional: frozenset) -> None:
    if not isinstance(entry, Mapping):
        raise YieldsError(f"{where} must be a JSON object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - required - optional)
    if unknown:
        raise YieldsError(
            f"unknown key(s) {unknown} in {where}; allowed: {sorted(required | optional)}"
        )
    missing = sorted(required - set(entry))
    if missing:
        raise YieldsError(f"missing key(s) {missing} in {where}")


def _array(where: str, values: Any, n: int, *, allow_zero_length: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise YieldsError(f"{where} must be a list of numbers: {err}") from None
    if arr.ndim != 1 or arr.size != n:
        raise YieldsError(
            f"{where} has {arr.size if arr.ndim == 1 else arr.shape} entries, expected {n} "
            f"(one per region)"
        )
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
    if bad.size:
        i = int(bad[0])
        raise YieldsError(f"{where}[{i}] = {float(arr[i])!r} is negative or not finite; yields, "
                          "counts and uncertainties must be >= 0")
    return arr


def _fraction(where: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise YieldsError(f"{where} = {value!r} must be a non-negative number (relative uncertainty)")
    return float(value)


def _validate_sample(where: str, entry: Any, required: frozenset, n: int) -> dict[str, Any]:
    _check_keys(where, entry, required, SAMPLE_OPTIONAL_KEYS)
    out: dict[str, Any] = {
        "yields": _array(f"{where}.yields", entry["yields"], n),
        "stat": _array(f"{where}.stat", entry["stat"], n),
    }
    if "norm_unc" in required:
        out["norm_unc"] = _fraction(f"{where}.norm_unc", entry["norm_unc"])
    shapes = entry.get("shapes", {})
    if not isinstance(shapes, Mapping):
        raise YieldsError(f"{where}.shapes must be an object {{NAME: {{'up': [...], 'down': [...]}}}}")
    out["shapes"] = {}
    for name, shape in shapes.items():
        _check_keys(f"{where}.shapes.{name}", shape, SHAPE_KEYS, frozenset())
        out["shapes"][name] = {
            k: _array(f"{where}.shapes.{name}.{k}", shape[k], n) for k in ("up", "down")
        }
    return out


def validate_yields(yields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a yields structure and return it with numpy arrays and defaults filled in.

    The format (relative uncertainties log-normal; ``stat`` absolute MC statistical
    uncertainty per region)::

        {"regions": ["SR1", ...], "observed": [n1, ...],
         "backgrounds": {NAME: {"yields": [...], "stat": [...], "norm_unc": 0.05}, ...},
         "signals": {NAME: {"yields": [...], "stat": [...]}, ...},
         "lumi_unc": 0.016, "signal_unc": 0.10}

    ``lumi_unc`` and ``signal_unc`` default to ``LUMI_UNCERTAINTY`` and
    ``STATS_SIGNAL_UNCERTAINTY``; an optional ``source`` string records provenance; each
    sample may carry ``"shapes": {NAME: {"up": [...], "down": [...]}}`` (histosys).

    Raises
    ------
    YieldsError
        Naming the key, for unknown or missing keys, lengths that differ from
        ``regions``, negative or non-finite numbers, or an empty sample list.
    """
    _check_keys("the yields file", yields, YIELDS_REQUIRED_KEYS, YIELDS_OPTIONAL_KEYS)
    regions = yields["regions"]
    if (
        not isinstance(regions, Sequence)
        or isinstance(regions, str)
        or not regions
        or not all(isinstance(r, str) for r in regions)
    ):
        raise YieldsError("regions must be a non-empty list of region names")
    if len(set(regions)) != len(regions):
        raise YieldsError(f"regions contains duplicate names: {list(regions)}")
    n = len(regions)
    out: dict[str, Any] = {
        "regions": list(regions),
        "observed": _array("observed", yields["observed"], n),
        "lumi_unc": _fraction("lumi_unc", yields.get("lumi_unc", LUMI_UNCERTAINTY)),
        "signal_unc": _fraction("signal_unc", yields.get("signal_unc", STATS_SIGNAL_UNCERTAINTY)),
        "source": yields.get("source", ""),
    }
    for group, required in (("backgrounds", BACKGROUND_REQUIRED_KEYS), ("signals", SIGNAL_REQUIRED_KEYS)):
        entries = yields[group]
        if not isinstance(entries, Mapping) or not entries:
            raise YieldsError(f"{group} must be a non-empty object {{NAME: {{...}}}}")
        out[group] = {
            str(name): _validate_sample(f"{group}.{name}", entry, required, n)
            for name, entry in entries.items()
        }
    total = sum(b["yields"] for b in out["backgrounds"].values())
    empty = np.flatnonzero(total <= 0)
    if empty.size:
        raise YieldsError(
            f"total background is zero in region {regions[int(empty[0])]!r}; the likelihood "
            "needs a positive background in every region (merge or drop the region)"
        )
    return out


# --- workspace construction ------------------------------------------------------------
def _sample_spec(
    name: str, yields: np.ndarray, stat: np.ndarray, modifiers: list[dict], shapes: Mapping
) -> dict[str, Any]:
    mods = list(modifiers)
    mods.append({"name": f"staterror_{STATS_CHANNEL}", "type": "staterror", "data": stat.tolist()})
    for shape, variations in sorted(shapes.items()):
        mods.append({
            "name": shape,
            "type": "histosys",
            "data": {"hi_data": np.asarray(variations["up"]).tolist(),
                     "lo_data": np.asarray(variations["down"]).tolist()},
        })
    return {"name": name, "data": yields.tolist(), "modifiers": mods}


def poi_upper_bound(signal: np.ndarray, background: np.ndarray) -> float:
    """Upper bound of mu: generous multiple of the Asimov width 1/sqrt(sum s^2/b)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        info = float(np.sum(np.where(background > 0, signal**2 / background, 0.0)))
    if info <= 0:
        raise YieldsError("the signal is zero in every region: no limit can be set on it")
    return max(STATS_POI_MIN_UPPER, STATS_POI_UPPER_SIGMAS / math.sqrt(info))


def with_poi_upper_bound(spec: Mapping[str, Any], upper: float, measurement: str | None = None) -> dict[str, Any]:
    """A copy of ``spec`` whose POI upper bound is ``upper`` (lower bound and init kept) in
    ``measurement`` (default: the first, as pyhf takes it); the POI gets a parameter entry
    if it has none (pyhf's default bounds of a normfactor are [0, 10])."""
    out = copy.deepcopy(dict(spec))
    measurements = out["measurements"]
    chosen = next((m for m in measurements if m["name"] == measurement), measurements[0])
    config = chosen["config"]
    poi = config["poi"]
    parameters = config.setdefault("parameters", [])
    entry = next((p for p in parameters if p["name"] == poi), None)
    if entry is None:
        entry = {"name": poi, "bounds": [[0.0, float(upper)]]}
        parameters.append(entry)
    lower = entry.get("bounds", [[0.0, None]])[0][0]
    entry["bounds"] = [[lower, float(upper)]]
    return out


def vanishing_variations(spec: Mapping[str, Any]) -> list[str]:
    """``"sample: modifier up|down"`` for each histosys of the spec whose variation empties a
    sample that is not empty: the likelihood then has a second minimum where that nuisance
    parameter removes the sample (for the signal: the limits of the fast fits may miss it,
    or none may exist)."""
    out = []
    for channel in spec["channels"]:
        for sample in channel["samples"]:
            if not any(sample["data"]):
                continue
            for mod in sample["modifiers"]:
                if mod["type"] != "histosys":
                    continue
                for key, side in (("hi_data", "up"), ("lo_data", "down")):
                    if not any(mod["data"][key]):
                        out.append(f"{sample['name']}: {mod['name']} {side}")
    return out


def build_workspace(
    observed: np.ndarray,
    backgrounds: Mapping[str, Mapping[str, Any]],
    signal: Mapping[str, Any],
    *,
    lumi_unc: float = LUMI_UNCERTAINTY,
    signal_unc: float = STATS_SIGNAL_UNCERTAINTY,
) -> dict[str, Any]:
    """The pyhf workspace spec of one signal hypothesis (layout in the module docstring).

    Parameters
    ----------
    observed : array (n_regions,)
        Observed counts.
    backgrounds : {name: {"yields", "stat", "norm_unc", "shapes"}}
        As returned by :func:`validate_yields` (arrays of length n_regions).
    signal : {"yields", "stat", "shapes"}
        The signal sample at mu = 1.
    lumi_unc, signal_unc : float
        Relative, log-normal.

    Returns
    -------
    dict
        A workspace spec that passes ``pyhf.Workspace(spec)`` (schema-validated there).
    """
    lumi = [lognormal_normsys(LUMI_MODIFIER, lumi_unc)] if lumi_unc > 0 else []
    samples = []
    for name, bkg in backgrounds.items():
        norm = [lognormal_normsys(f"norm_{name}", bkg["norm_unc"])] if bkg["norm_unc"] > 0 else []
        samples.append(_sample_spec(name, bkg["yields"], bkg["stat"], norm + lumi, bkg.get("shapes", {})))
    sig_mods = [{"name": STATS_POI, "type": "normfactor", "data": None}]
    if signal_unc > 0:
        sig_mods.append(lognormal_normsys(SIGNAL_NORM_MODIFIER, signal_unc))
    samples.append(
        _sample_spec(SIGNAL_SAMPLE, signal["yields"], signal["stat"], sig_mods + lumi, signal.get("shapes", {}))
    )
    total_bkg = sum(np.asarray(b["yields"]) for b in backgrounds.values())
    upper = poi_upper_bound(np.asarray(signal["yields"]), total_bkg)
    return {
        "version": "1.0.0",
        "channels": [{"name": STATS_CHANNEL, "samples": samples}],
        "observations": [{"name": STATS_CHANNEL, "data": np.asarray(observed, dtype=float).tolist()}],
        "measurements": [{
            "name": STATS_MEASUREMENT,
            "config": {
                "poi": STATS_POI,
                "parameters": [{"name": STATS_POI, "bounds": [[0.0, upper]], "inits": [1.0]}],
            },
        }],
    }


def workspaces_from_yields(yields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One validated workspace spec per signal of a yields structure (see :func:`validate_yields`)."""
    y = validate_yields(yields)
    out = {}
    for name, sig in y["signals"].items():
        spec = build_workspace(
            y["observed"], y["backgrounds"], sig, lumi_unc=y["lumi_unc"], signal_unc=y["signal_unc"]
        )
        pyhf.Workspace(spec)  # schema validation
        out[name] = spec
    return out


# --- from the processors' histograms ---------------------------------------------------
def _process_axis(h) -> str:
    names = [ax.name for ax in h.axes]
    for candidate in ("dataset", "process"):
        if candidate in names:
            return candidate
    raise ConfigError(f"histogram has axes {names}; expected a StrCat axis 'dataset' or 'process'")


def sum_over_eras(hist_sr, datasets: Mapping[str, Mapping], *, systematics: Sequence[str] | None = None,
                  scale=None, with_data: bool = True, data_name: str | None = None):
    """The 'sr' histogram (dataset, systematic, sr) with the datasets of one process summed
    over eras: "zjets_nunu_2016", "zjets_nunu_2017", ... become "zjets_nunu" (the name less
    its last "_<era>"), so a signal point and each background appear once.

    ``datasets`` holds each dataset's metadata (``era``, ``is_data``); ``systematics``
    (default all) are the entries kept; ``scale(meta)`` multiplies a simulated dataset
    (e.g. to another luminosity; default 1); ``with_data=False`` leaves data out, and
    ``data_name`` names the sum of all data datasets (default: per stream, e.g. "data_met").
    """
    import hist

    members: dict[str, list[str]] = {}
    for ds in hist_sr.axes["dataset"]:
        meta = datasets.get(ds)
        if meta is None or "era" not in meta:
            raise ConfigError(f"dataset {ds!r} has no era in the output's metadata: cannot sum it over eras")
        if meta["is_data"] and not with_data:
            continue
        suffix = f"_{meta['era']}"
        key = data_name if (meta["is_data"] and data_name) else (ds[: -len(suffix)] if ds.endswith(suffix) else ds)
        members.setdefault(key, []).append(ds)
    systs = [x for x in (systematics or list(hist_sr.axes["systematic"])) if x in hist_sr.axes["systematic"]]
    out = hist.Hist(hist.axis.StrCategory(sorted(members), name="dataset"),
                    hist.axis.StrCategory(systs, name="systematic"), hist_sr.axes["sr"], storage=hist.storage.Weight())
    view = out.view(flow=True)
    for key, names in members.items():
        i = out.axes["dataset"].index(key)
        for ds in names:
            meta = datasets[ds]
            f = 1.0 if (scale is None or meta["is_data"]) else float(scale(meta))
            src = hist_sr[{"dataset": ds}].view(flow=True)
            for j, syst in enumerate(systs):
                k = hist_sr.axes["systematic"].index(syst)
                view["value"][i, j] += f * src["value"][k]
                view["variance"][i, j] += f * f * src["variance"][k]
    return out


def usable_regions(hist_sr, *, signal_prefix: str = STATS_SIGNAL_PREFIX, data: str | None = None):
    """The 'sr' histogram made fit-ready, and what was done: simulated bins made negative by
    negative generator weights hold no events and are set to zero; signal regions without
    background are left out (the likelihood needs b > 0 in every region) and the kept ones
    renumbered. Returns (histogram with axes (process, systematic, sr), kept region indices,
    number of clipped bins)."""
    import hist

    process_axis = _process_axis(hist_sr)
    h = hist_sr.project(process_axis, "systematic", "sr")
    names = list(h.axes[process_axis])
    values, variances = h.values(flow=False).copy(), h.variances(flow=False)
    if variances is None:
        raise ConfigError("signal-region histogram needs Weight() storage (variances for staterror)")
    simulated = np.array([n != data for n in names])
    negative = (values < 0) & simulated[:, None, None]
    values[negative] = 0.0
    if "nominal" not in h.axes["systematic"]:
        raise ConfigError(f"signal-region histogram has no 'nominal' systematic: {list(h.axes['systematic'])}")
    background = [i for i, n in enumerate(names) if n != data and not n.startswith(signal_prefix)]
    total = values[background, h.axes["systematic"].index("nominal"), :].sum(axis=0)
    kept = np.nonzero(total > 0)[0]
    out = hist.Hist(h.axes[process_axis], h.axes["systematic"], hist.axis.Integer(0, len(kept), name="sr"),
                    storage=hist.storage.Weight())
    view = out.view()
    view["value"], view["variance"] = values[:, :, kept], variances[:, :, kept]
    return out, [int(k) for k in kept], int(negative.sum())


def _histogram_samples(
    hist_sr, process_axis: str
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """{category: {systematic: (values, variances)}} of the 'sr' histogram."""
    names = [ax.name for ax in hist_sr.axes]
    if sorted(names) != sorted([process_axis, "systematic", "sr"]):
        raise ConfigError(
            f"signal-region histogram has axes {names}; expected exactly "
            f"[{process_axis!r}, 'systematic', 'sr']"
        )
    h = hist_sr.project(process_axis, "systematic", "sr")
    values = h.values(flow=False)
    variances = h.variances(flow=False)
    if variances is None:
        raise ConfigError("signal-region histogram needs Weight() storage (variances for staterror)")
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for i, proc in enumerate(h.axes[process_axis]):
        out[proc] = {
            syst: (values[i, j].astype(np.float64), variances[i, j].astype(np.float64))
            for j, syst in enumerate(h.axes["systematic"])
        }
    return out


def _shapes(category: str, systs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    if NOMINAL not in systs:
        raise ConfigError(f"category {category!r} has no 'nominal' entry on the systematic axis")
    shapes: dict[str, dict] = {}
    for syst in systs:
        if syst == NOMINAL:
            continue
        for suffix, key in (("Up", "up"), ("Down", "down")):
            if syst.endswith(suffix):
                shapes.setdefault(syst[: -len(suffix)], {})[key] = systs[syst][0]
                break
        else:
            raise ConfigError(
                f"systematic {syst!r} of {category!r} is neither 'nominal' nor '<name>Up' / '<name>Down'"
            )
    for name, pair in shapes.items():
        if set(pair) != {"up", "down"}:
            raise ConfigError(f"systematic {name!r} of {category!r} has only its {sorted(pair)} variation")
    return shapes


def workspace_from_histograms(
    hist_sr,
    signal: str,
    *,
    process_map: Mapping[str, str] | None = None,
    data: str | None = None,
    signal_prefix: str = STATS_SIGNAL_PREFIX,
    norm_unc: Mapping[str, float] | None = None,
    lumi_unc: float = LUMI_UNCERTAINTY,
    signal_unc: float = STATS_SIGNAL_UNCERTAINTY,
) -> dict[str, Any]:
    """The workspace spec of one signal from the processors' signal-region histogram.

    Expected layout of ``hist_sr`` (a :class:`hist.Hist`, ``Weight()`` storage):

    - StrCat axis ``"dataset"`` (or ``"process"``): data, signal and background categories;
      signals are named ``{signal_prefix}m{M}_dm{DM}``;
    - StrCat axis ``"systematic"``: ``"nominal"`` and pairs ``"<name>Up"``/``"<name>Down"``;
      each pair becomes a histosys ``<name>`` (normalization and shape) on every sample;
    - Integer axis ``"sr"`` 0..11: the signal-region index (summary Table 2 order).

    Background categories are mapped to fit backgrounds by ``process_map`` (category ->
    background name; several categories may map to one background, summed with their
    variances); ``None`` maps every non-signal, non-data category to itself. A category
    that is neither data, signal nor in the map is an error. MC statistical uncertainties
    are sqrt(sum w^2) of the nominal entry.

    Parameters
    ----------
    hist_sr : hist.Hist
        The histogram described above.
    signal : str
        The signal category to build the workspace for.
    process_map : {category: background}, optional
    data : str, optional
        The data category; ``None`` uses the background-only Asimov counts (blinded).
    norm_unc : {background: relative uncertainty}, optional
        Defaults to ``STATS_BACKGROUND_NORM_UNC``, else ``STATS_DEFAULT_NORM_UNC``.
    """
    process_axis = _process_axis(hist_sr)
    cats = _histogram_samples(hist_sr, process_axis)
    if signal not in cats:
        raise ConfigError(f"signal {signal!r} not in the histogram's {process_axis} axis {sorted(cats)}")
    if data is not None and data not in cats:
        raise ConfigError(f"data category {data!r} not in the histogram's {process_axis} axis {sorted(cats)}")
    norm_unc = dict(STATS_BACKGROUND_NORM_UNC if norm_unc is None else norm_unc)
    backgrounds: dict[str, dict[str, Any]] = {}
    for cat, systs in cats.items():
        if cat == data or cat.startswith(signal_prefix):
            continue
        if process_map is None:
            target = cat
        elif cat in process_map:
            target = process_map[cat]
        else:
            raise ConfigError(
                f"category {cat!r} is neither data, a signal ({signal_prefix}*) nor in the "
                f"process map {dict(process_map)}; add it to the map"
            )
        shapes = _shapes(cat, systs)  # checks that the nominal entry exists
        nominal, variance = systs[NOMINAL]
        bkg = backgrounds.setdefault(target, {
            "yields": np.zeros_like(nominal), "var": np.zeros_like(nominal), "shapes": {},
            "norm_unc": float(norm_unc.get(target, STATS_DEFAULT_NORM_UNC)),
        })
        bkg["yields"] = bkg["yields"] + nominal
        bkg["var"] = bkg["var"] + variance
        for name, pair in shapes.items():
            acc = bkg["shapes"].setdefault(name, {"up": 0.0, "down": 0.0})
            acc["up"] = acc["up"] + pair["up"]
            acc["down"] = acc["down"] + pair["down"]
    if not backgrounds:
        raise ConfigError(f"no background categories in the histogram's {process_axis} axis")
    for bkg in backgrounds.values():
        # categories of a background without a given systematic contribute their nominal
        for shape in bkg["shapes"].values():
            for key in ("up", "down"):
                shape[key] = np.broadcast_to(shape[key], bkg["yields"].shape) + 0.0
        bkg["stat"] = np.sqrt(bkg.pop("var"))
    _fill_missing_shape_parts(cats, backgrounds, process_map, data, signal_prefix)
    sig_shapes = _shapes(signal, cats[signal])
    sig_nom, sig_var = cats[signal][NOMINAL]
    sig = {"yields": sig_nom, "stat": np.sqrt(sig_var), "shapes": sig_shapes}
    total = sum(b["yields"] for b in backgrounds.values())
    if data is not None and NOMINAL not in cats[data]:
        raise ConfigError(f"data category {data!r} has no 'nominal' entry on the systematic axis")
    observed = cats[data][NOMINAL][0] if data is not None else total
    yields = {
        "regions": [f"SR{i + 1}" for i in range(total.size)],
        "observed": observed.tolist(),
        "backgrounds": {
            k: {"yields": v["yields"].tolist(), "stat": v["stat"].tolist(), "norm_unc": v["norm_unc"],
                "shapes": {s: {"up": p["up"].tolist(), "down": p["down"].tolist()} for s, p in v["shapes"].items()}}
            for k, v in backgrounds.items()
        },
        "signals": {signal: {"yields": sig["yields"].tolist(), "stat": sig["stat"].tolist(),
                             "shapes": {s: {"up": p["up"].tolist(), "down": p["down"].tolist()}
                                        for s, p in sig["shapes"].items()}}},
        "lumi_unc": lumi_unc,
        "signal_unc": signal_unc,
    }
    return workspaces_from_yields(yields)[signal]


def _fill_missing_shape_parts(cats, backgrounds, process_map, data, signal_prefix) -> None:
    """A background summed from several categories, of which only some carry a systematic:
    the others enter its up/down variation with their nominal (already added above as 0)."""
    for cat, systs in cats.items():
        if cat == data or cat.startswith(signal_prefix):
            continue
        target = cat if process_map is None else process_map[cat]
        shapes = _shapes(cat, systs)
        for name, pair in backgrounds[target]["shapes"].items():
            if name not in shapes:
                pair["up"] = pair["up"] + systs[NOMINAL][0]
                pair["down"] = pair["down"] + systs[NOMINAL][0]
