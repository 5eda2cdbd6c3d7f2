"""The max-logit corrections of simulated background in the 12 signal regions (thesis sec.
6.2.1, 6.2.2 and 7; summary sec. 4.2).

Two corrections act on the signal-region yields of simulated background, not on events:

- the sideband scale factor of a Delta m category (data/simulation in 5 < max logit < 7,
  derived *after* the track-class scale factors, i.e. from the corrected signal-region
  output) multiplies the background of that category's four signal regions; its
  statistical uncertainty becomes a shape systematic ``sideband_dm<X>_<era>`` (the eras'
  factors come from independent data, so each has its own nuisance parameter);
- the residual shape (line fits to cleaned Drell-Yan data/simulation, evaluated at each
  signal region's lower edge relative to the sideband centre) multiplies each signal region
  by its nominal value; the
  difference to the tight fit becomes a shape systematic ``residual_shape_dm<X>``, one for
  all eras (the choice between the two fits is the same method uncertainty in each).

Both are constant within a signal region, so they are applied to the ``sr`` histogram
(dataset, systematic, sr) exactly, without re-running the processors.

A sideband scale factor is only applied to a category whose signal regions lie above the
sideband (lowest edge >= the sideband's upper edge): otherwise the factor would be taken
from data inside the signal regions (unblinding them, and counting their content twice).
A residual-shape correction is only applied if it was derived for the signal-region edges
in use (checked by evaluating it across every region). Whatever is not applied is said in
the returned notes, never skipped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import hist
import numpy as np

from analysis.errors import ConfigError
from analysis.softtrack import config as cfg

#: an open last signal region is probed this far above its lower edge
_OPEN_BIN_PROBE = 1e3


def category_tag(dm: float) -> str:
    """"dm0p3" for 0.3: a Delta m category in a systematic's name."""
    return "dm" + f"{dm:g}".replace(".", "p")


@dataclass
class BackgroundFactors:
    """Per-signal-region factors of simulated background of one era.

    nominal : (N_SIGNAL_REGIONS,) multiplicative factor.
    variations : name -> (up, down), each (N_SIGNAL_REGIONS,) and relative to ``nominal``.
    notes : what was applied, and what was not and why.
    """

    nominal: np.ndarray
    variations: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def background_factors(corrections, era: str, sr_edges: Mapping[float, Sequence[float]],
                       window: tuple[float, float] = cfg.SIDEBAND_LOGIT_RANGE) -> BackgroundFactors:
    """The sideband scale factors and residual shape of ``corrections`` (a
    :class:`~corrections.softtrack.apply.SoftTrackCorrections`) as factors on the background of each
    signal region of ``era`` for the signal regions ``sr_edges`` (dm -> 4 lower edges)."""
    nbin = cfg.N_SR_BINS_PER_CATEGORY
    out = BackgroundFactors(np.ones(len(cfg.CLASSIFIER_DMS) * nbin))
    for k, dm in enumerate(cfg.CLASSIFIER_DMS):
        key, tag, sl = f"{dm:g}", category_tag(dm), slice(k * nbin, (k + 1) * nbin)
        edges = np.asarray(sr_edges[dm], dtype=np.float64)
        if not corrections.provides("sideband_sf", era=era, category=key):
            out.notes.append(f"{era} dm {key}: no sideband_sf in the corrections")
        elif edges[0] < window[1] - 1e-9:
            out.notes.append(f"{era} dm {key}: sideband_sf not applied: the lowest signal region starts at "
                             f"{edges[0]:g}, inside or below the sideband {window[0]:g}-{window[1]:g}")
        else:
            sf = corrections.sideband_sf(era, key)
            if not sf > 0:
                out.notes.append(f"{era} dm {key}: sideband_sf not applied: it is {sf:g}")
            else:
                up, down = corrections.sideband_sf(era, key, "up"), corrections.sideband_sf(era, key, "down")
                out.nominal[sl] *= sf
                out.variations[f"sideband_{tag}_{era}"] = (_in(sl, up / sf), _in(sl, max(down, 0.0) / sf))
                out.notes.append(f"{era} dm {key}: sideband_sf {sf:.3f} (up {up:.3f}, down {down:.3f}) applied")
        if not corrections.provides("residual_shape", era=era, category=key):
            out.notes.append(f"{era} dm {key}: no residual_shape in the corrections (not derived, or not "
                             "constrained by the cleaned-DY tail: see the corrections' notes)")
            continue
        factors = _residual_per_region(corrections, era, key, edges)
        if factors is None:
            out.notes.append(f"{era} dm {key}: residual_shape not applied: it was derived for other signal-region "
                             f"edges than {', '.join(f'{e:g}' for e in edges)}")
            continue
        nominal, up, down = factors
        if not np.all(nominal > 0):
            out.notes.append(f"{era} dm {key}: residual_shape not applied: non-positive weights {nominal.tolist()}")
            continue
        out.nominal[sl] *= nominal
        out.variations[f"residual_shape_{tag}"] = (_in(sl, up / nominal), _in(sl, np.maximum(down, 0.0) / nominal))
        out.notes.append(f"{era} dm {key}: residual_shape {', '.join(f'{x:.3f}' for x in nominal)} applied")
    return out


def _in(regions: slice, factor) -> np.ndarray:
    """``factor`` in ``regions`` of the signal regions, 1 elsewhere."""
    out = np.ones(len(cfg.CLASSIFIER_DMS) * cfg.N_SR_BINS_PER_CATEGORY)
    out[regions] = factor
    return out


def _residual_per_region(corrections, era: str, key: str, edges: np.ndarray):
    """(nominal, up, down) of the residual shape in each signal region, or None if it is not
    constant within every region (derived for other edges)."""
    upper = np.append(edges[1:], edges[-1] + _OPEN_BIN_PROBE)
    # just above the lower edge, the middle and just below the upper edge of every region
    # (not on an edge: correctionlib's JSON parser may read a decimal edge such as
    # 10.149999999999999 one ulp off, which puts a value exactly on it in the bin below)
    eps = 1e-6 * np.maximum(1.0, np.abs(upper))
    probes = np.stack([edges + eps, 0.5 * (edges + upper), upper - eps])
    values = []
    for syst in cfg.CORRECTION_SYSTEMATICS:
        v = np.asarray(corrections.residual_shape(era, key, probes.ravel(), syst), dtype=np.float64).reshape(probes.shape)
        if not np.allclose(v, v[0], rtol=1e-12, atol=0.0):
            return None
        values.append(v[0])
    return tuple(values)


def sr_edges_of(output: Mapping) -> dict[float, tuple[float, ...]] | None:
    """The signal-region edges a processor output was filled with (its provenance), or None."""
    edges = output.get("provenance", {}).get("sr_edges")
    if not edges:
        return None
    return {float(k): tuple(float(e) for e in v) for k, v in edges.items()}


def correct_output_sr(output: Mapping, corrections, key: str = "sr") -> tuple[hist.Hist, list[str]]:
    """:func:`correct_sr_histogram` of the histogram ``key`` of a signal-region processor
    output, for the edges in its provenance (config.SR_LOGIT_EDGES, with a note, for an
    output that does not record them)."""
    datasets = output.get("datasets")
    if not isinstance(datasets, Mapping):
        raise ConfigError("the processor output has no 'datasets' metadata (era, is_data, process per dataset): "
                          "the signal-region corrections need it")
    h = output["histograms"][key]
    missing = sorted(set(h.axes["dataset"]) - set(datasets))
    if missing:
        raise ConfigError(f"datasets {missing} of histogram {key!r} have no metadata in the output")
    edges = sr_edges_of(output)
    notes = [] if edges else ["the output does not record its signal-region edges: assumed config.SR_LOGIT_EDGES"]
    h, more = correct_sr_histogram(h, datasets, corrections, edges or cfg.SR_LOGIT_EDGES)
    return h, notes + more


def correct_sr_histogram(h: hist.Hist, datasets: Mapping[str, Mapping], corrections,
                         sr_edges: Mapping[float, Sequence[float]]) -> tuple[hist.Hist, list[str]]:
    """The ``sr`` histogram (dataset, systematic, sr) with the background factors of
    :func:`background_factors` applied to simulated background (every systematic), and one
    ``<name>Up``/``<name>Down`` pair per variation added (signal and data keep their
    nominal there). Returns the new histogram and the notes of every era."""
    factors = {era: background_factors(corrections, era, sr_edges)
               for era in sorted({str(datasets[d]["era"]) for d in h.axes["dataset"]})}
    pairs = [(n, d) for n in sorted({n for f in factors.values() for n in f.variations}) for d in ("Up", "Down")]
    systs = list(h.axes["systematic"])
    out = hist.Hist(h.axes["dataset"], hist.axis.StrCategory(systs + [n + d for n, d in pairs], name="systematic"),
                    h.axes["sr"], storage=hist.storage.Weight())
    src, dst = h.view(flow=True), out.view(flow=True)
    nominal = systs.index("nominal")
    first = 1 if h.axes["sr"].traits.underflow else 0
    regions = slice(first, first + h.axes["sr"].size)
    for i, ds in enumerate(h.axes["dataset"]):
        meta = datasets[ds]
        background = not meta["is_data"] and meta["process"] != "signal"
        f = factors[str(meta["era"])]
        scale = np.ones(src.shape[-1])
        if background:
            scale[regions] = f.nominal
        for field_name, power in (("value", 1), ("variance", 2)):
            dst[field_name][i, :len(systs)] = src[field_name][i, :len(systs)] * scale**power
            for j, (name, direction) in enumerate(pairs):
                rel = np.ones(src.shape[-1])
                if background and name in f.variations:
                    rel[regions] = f.variations[name][0 if direction == "Up" else 1]
                dst[field_name][i, len(systs) + j] = src[field_name][i, nominal] * (scale * rel) ** power
    return out, [note for f in factors.values() for note in f.notes]
