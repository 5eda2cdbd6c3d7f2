"""Derivations of the corrections from processor histograms (docs/physics.md sec. 5, 6; thesis
sec. 6.1-6.2; summary sec. 4).

Every public ``*_weight`` / ``*_sf`` function takes histograms (the ``"histograms"`` dict
of a processor output, and its ``"datasets"`` metadata) and returns a
:class:`correctionlib.schemav2.Correction` whose first input is the era. The fits behind
them are separate functions returning small result dataclasses, so that tests and the
command can print and check the numbers.

Conventions
-----------
- Simulation histograms are already normalized to the luminosity of the pseudo-data
  stream of the region; "data" are the datasets with ``is_data`` true.
- Statistical uncertainties use the ``Weight`` storage variances (simulation) and the
  Poisson variance of the counts (data). Events are treated as independent; tracks of one
  event are not, so track-level uncertainties are slightly underestimated (documented in
  corrections/softtrack/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import correctionlib.schemav2 as cs
import hist
import numpy as np
from iminuit import Minuit

from analysis.errors import CorrectionError
from analysis.softtrack import config as cfg

__all__ = [
    "LineFit",
    "PileupProfiles",
    "PtzWeights",
    "TrackClassFit",
    "fit_line",
    "fit_met_line",
    "fit_ptz_weights",
    "fit_residual_shapes",
    "fit_sideband_sf",
    "fit_track_classes",
    "met_weight",
    "pileup_track_norm",
    "pileup_weight",
    "ptz_weight",
    "residual_shape",
    "sideband_sf",
    "track_class_sf",
]

SYSTS = cfg.CORRECTION_SYSTEMATICS


# --- histogram helpers -------------------------------------------------------------------
def eras_of(datasets: Mapping[str, Mapping]) -> list[str]:
    """Eras present in a processor output's dataset metadata, in config order."""
    present = {str(m["era"]) for m in datasets.values()}
    return [e for e in cfg.ERAS if e in present]


def select_datasets(datasets: Mapping[str, Mapping], era: str, *, is_data: bool,
                    processes: Sequence[str] | None = None) -> list[str]:
    """Names of the datasets of one era, data or simulated background (signal simulation is
    never part of the background a correction compares with data), optionally of given
    processes."""
    return sorted(
        name for name, m in datasets.items()
        if str(m["era"]) == era and bool(m["is_data"]) == is_data
        and (processes is None or m["process"] in processes)
        and (processes is not None or m["process"] != "signal")
    )


def summed(h: hist.Hist, names: Sequence[str], **fixed: str) -> tuple[np.ndarray, np.ndarray]:
    """Sum of ``h`` over the datasets ``names`` with the other category axes fixed.

    Returns (values, variances) of the one remaining axis, flow bins included (shape
    ``extent``). Datasets absent from the axis (nothing filled) contribute nothing.
    """
    axis_names = [ax.name for ax in h.axes]
    rest = [n for n in axis_names if n != "dataset" and n not in fixed]
    if len(rest) != 1:
        raise CorrectionError(f"histogram with axes {axis_names}: fix all but one axis besides 'dataset' "
                              f"(fixed {sorted(fixed)})")
    for key, value in fixed.items():
        if value not in h.axes[key]:
            raise CorrectionError(f"histogram axis {key!r} has no category {value!r}; has {list(h.axes[key])}")
    extent = h.axes[rest[0]].extent
    values, variances = np.zeros(extent), np.zeros(extent)
    for name in names:
        if name not in h.axes["dataset"]:
            continue
        sub = h[{"dataset": name, **fixed}]
        values += sub.values(flow=True)
        var = sub.variances(flow=True)
        variances += sub.values(flow=True) if var is None else var
    return values, variances


def _require(hists: Mapping[str, hist.Hist], name: str, what: str) -> hist.Hist:
    if name not in hists:
        raise CorrectionError(f"histogram {name!r} missing from the processor output: needed for {what}; "
                              f"has {sorted(hists)}")
    return hists[name]


def _edges_with_flow(axis) -> np.ndarray:
    """Bin edges including the under/overflow bins as +-inf (length extent + 1)."""
    edges = np.asarray(axis.edges, dtype=np.float64)
    lo = [-np.inf] if axis.traits.underflow else []
    hi = [np.inf] if axis.traits.overflow else []
    return np.concatenate([lo, edges, hi])


def _region_sums(values: np.ndarray, edges: np.ndarray, boundaries: Sequence[float]) -> np.ndarray:
    """Sum fine bins (flow included, ``edges`` from :func:`_edges_with_flow`) into regions
    separated by ``boundaries`` (which must be fine-bin edges)."""
    finite = edges[np.isfinite(edges)]
    for b in boundaries:
        if not np.any(np.isclose(finite, b)):
            raise CorrectionError(f"region boundary {b} is not a bin edge of the histogram ({finite[0]}..{finite[-1]})")
    lows = edges[:-1]
    region = np.searchsorted(np.asarray(boundaries) - 1e-9, lows, side="right")
    return np.bincount(region, weights=values, minlength=len(boundaries) + 1)


def _cat(input_name: str, items: Mapping[str, object], default: object | None = None) -> cs.Category:
    return cs.Category(nodetype="category", input=input_name,
                       content=[cs.CategoryItem(key=k, value=v) for k, v in items.items()], default=default)


def _correction(name: str, description: str, inputs: list[cs.Variable], output: cs.Variable,
                data: object) -> cs.Correction:
    return cs.Correction(name=name, description=description, version=cfg.CORRECTIONS_VERSION,
                         inputs=inputs, output=output, data=data)


ERA_INPUT = cs.Variable(name="era", type="string", description=f"data-taking era, one of {', '.join(cfg.ERAS)}")
SYST_INPUT = cs.Variable(name="syst", type="string", description="systematic variation: nominal, up or down")


# --- pileup (docs/physics.md sec. 6) ---------------------------------------------------------------
@dataclass(frozen=True)
class PileupProfiles:
    """The input of the pileup weights: probabilities of the true number of interactions
    (Pileup_nTrueInt) in the bins ``edges`` (unit bins 0..n_max), per era, of simulation and
    of data (nominal and the up/down variations of the data profile).

    The caller supplies them, e.g. the normalized ``n_true_int`` histograms of simulation and
    data, or the generator's truth profiles that the commands pass in
    (``PileupProfiles(**analysis.toymc.pileup.truth_profiles(eras))``); ``description`` says
    where they come from (it goes into the correction's description).
    """

    edges: np.ndarray
    simulation: Mapping[str, np.ndarray]
    data: Mapping[str, Mapping[str, np.ndarray]]
    description: str = ""


def pileup_weight(profiles: PileupProfiles, eras: Sequence[str] | None = None) -> cs.Correction:
    """Pileup weights w(n_true) = p_data / p_sim per era, nominal/up/down (docs/physics.md sec. 6), from
    the profiles of simulation and data (``profiles``, for ``eras``, default all it has)."""
    eras = list(profiles.simulation) if eras is None else list(eras)
    edges = np.asarray(profiles.edges, dtype=np.float64)
    per_era = {}
    for era in eras:
        if era not in profiles.simulation or era not in profiles.data:
            raise CorrectionError(f"no pileup profile for era {era!r}: the profiles have {sorted(profiles.simulation)}")
        p_sim = np.asarray(profiles.simulation[era], dtype=np.float64)
        variations = {}
        for syst in SYSTS:
            p_data = np.asarray(profiles.data[era][syst], dtype=np.float64)
            w = np.divide(p_data, p_sim, out=np.ones_like(p_sim), where=p_sim > 1e-300)
            variations[syst] = cs.Binning(nodetype="binning", input="n_true_int", edges=list(edges),
                                          content=[float(x) for x in w], flow="clamp")
        per_era[era] = _cat("syst", variations)
    desc = (
        "Pileup weights p_data(n_true)/p_sim(n_true) in unit bins (docs/physics.md sec. 6). "
        + (f"{profiles.description} " if profiles.description else "")
        + f"Clamped outside [{edges[0]:g}, {edges[-1]:g}]."
    )
    return _correction(
        "pileup_weight", desc,
        [ERA_INPUT, cs.Variable(name="n_true_int", type="real", description="Pileup_nTrueInt: true mean number of interactions"),
         SYST_INPUT],
        cs.Variable(name="weight", type="real", description="per-event pileup weight"),
        _cat("era", per_era),
    )


def pileup_track_norm(n_true_values: np.ndarray, n_true_edges: np.ndarray, weights: np.ndarray) -> float:
    """Factor by which pileup reweighting scales the number of pileup tracks per event.

    Pileup tracks per event are proportional to n_true (Poisson pileup interactions with a
    fixed mean of tracks each), so with event weights w(n) normalized to keep the event
    count, the pileup-track template scales by <w n> / (<w> <n>) over the simulated
    n_true distribution (thesis sec. 6.2.1: scale factors after pileup reweighting).
    """
    centres = 0.5 * (n_true_edges[:-1] + n_true_edges[1:])
    p = np.asarray(n_true_values, dtype=np.float64)
    if p.sum() <= 0:
        raise CorrectionError("empty n_true_int histogram: cannot normalize the pileup-track template")
    return float((w_p := weights * p).dot(centres) / w_p.sum() / (p.dot(centres) / p.sum()))


# --- track-class normalization (thesis sec. 6.2.1) ----------------------------------------
@dataclass(frozen=True)
class TrackClassFit:
    """Result of the template fit of log10|dz| in the cleaned Drell-Yan region."""

    era: str
    sf: dict[str, float]
    unc: dict[str, float]
    correlation: float
    pileup_norm: float
    event_norm: float
    chi2: float
    ndf: int
    regions: dict[str, list[float]]
    thesis_ratio: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: the simulated templates were weighted track by track with the pileup weights
    pileup_weighted: bool = False

    def pull(self, cls: str, truth: float) -> float:
        return (self.sf[cls] - truth) / self.unc[cls]


def fit_track_classes(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping], era: str,
                      pileup: cs.Correction | None = None, *, hist_name: str = "track_log10_dz",
                      events_name: str = "met", pileup_hist: str | None = None, pileup_events: str | None = None,
                      boundaries: Sequence[float] = cfg.TRACK_SF_LOG10DZ_EDGES) -> TrackClassFit:
    """Fit data = k (a PV + b spurious + c pileup) in coarse regions of log10|dz| (thesis sec. 6.2.1).

    Parameters
    ----------
    hists, datasets : processor output of the cleaned Drell-Yan region ("histograms",
        "datasets"); uses ``hist_name`` (axes dataset, origin, track_log10_dz), ``events_name``
        (the histogram of the same events: ``met`` after the baseline, ``n_events_presel``
        after the preselection) for the event yields and ``n_true_int`` for the pileup normalization.
    pileup : the pileup-weight correction; c is fixed to the pileup-track factor it
        implies (:func:`pileup_track_norm`); without it c = 1.
    pileup_hist, pileup_events : the simulated tracks (axes dataset, origin, n_true_int,
        track_log10_dz) and events (dataset, n_true_int) of ``hist_name`` and ``events_name``
        by true interactions, without pileup weights. With ``pileup`` and both present, every
        simulated template and the simulated event yield are weighted with the pileup weights
        (c = 1: the pileup template is then the reweighted one, and so are the PV tracks,
        whose rate not associated with a pileup vertex falls with the pileup);
        ``pileup_norm`` reports the factor reweighting gave the pileup template.
    boundaries : log10(|dz|/cm) region boundaries (fine-bin edges).

    The simulated tracks are normalized to the data event yield (k = N_data / N_sim events),
    so the scale factors are per-event track rates, independent of the event-level
    mis-modelling (pT(Z), p_T^miss). a and b are free, c is fixed: pileup and spurious
    tracks both populate large |dz| with nearly the same shape, so a free c would be almost
    degenerate with b. The fit minimizes a chi2 with data and template variances.
    """
    h = _require(hists, hist_name, "the track-class scale factors")
    data = select_datasets(datasets, era, is_data=True)
    sim = select_datasets(datasets, era, is_data=False)
    if not data or not sim:
        raise CorrectionError(f"era {era}: the cleaned-DY output needs data and simulation for the track-class fit")
    edges = _edges_with_flow(h.axes[-1])  # the log10|dz| axis (last)
    origin_of = {"pv": cfg.TRACK_SF_CLASSES["pv"], "spurious": cfg.TRACK_SF_CLASSES["spurious"],
                 "pileup": cfg.TRACK_SF_PILEUP_ORIGIN}
    d, vd = (_region_sums(x, edges, boundaries) for x in summed(h, data, origin="data"))
    h_met = _require(hists, events_name, "the event yields of the track-class fit")
    n_data = summed(h_met, data, systematic="nominal")[0].sum()
    weighted = pileup is not None and pileup_hist in hists and pileup_events in hists
    if weighted:
        tmpl, var, n_sim, c_reweighted, sim_dz = _pileup_weighted_templates(
            hists[pileup_hist], hists[pileup_events], sim, era, pileup, origin_of, boundaries)
    else:
        tmpl, var = {}, {}
        sim_dz = {}
        for key, origin in origin_of.items():
            v, w2 = summed(h, sim, origin=origin) if origin in h.axes["origin"] else (np.zeros(len(edges) - 1),) * 2
            tmpl[key], var[key] = _region_sums(v, edges, boundaries), _region_sums(w2, edges, boundaries)
            sim_dz[key] = (v, edges)
        n_sim = summed(h_met, sim, systematic="nominal")[0].sum()
    if n_data <= 0 or n_sim <= 0:
        raise CorrectionError(f"era {era}: no selected events in data ({n_data}) or simulation ({n_sim})")
    k = n_data / n_sim
    c = 1.0
    if pileup is not None and not weighted:
        h_pu = _require(hists, "n_true_int", "the pileup normalization of the track-class fit")
        values = summed(h_pu, sim)[0]
        ax = h_pu.axes["n_true_int"]
        inner = values[1:-1] if ax.traits.underflow else values[:-1]
        centres = np.asarray(ax.centers)
        evaluator = pileup.to_evaluator()
        w = np.asarray(evaluator.evaluate(era, centres, "nominal"))
        c = pileup_track_norm(inner[: centres.size], np.asarray(ax.edges), w)

    def chi2(a: float, b: float) -> float:
        mu = k * (a * tmpl["pv"] + b * tmpl["spurious"] + c * tmpl["pileup"])
        v = vd + k**2 * (a**2 * var["pv"] + b**2 * var["spurious"] + c**2 * var["pileup"])
        ok = v > 0
        return float(np.sum((d[ok] - mu[ok]) ** 2 / v[ok]))

    m = Minuit(chi2, a=1.0, b=1.0)
    m.errordef = Minuit.LEAST_SQUARES
    m.limits["a"] = (0.0, None)
    m.limits["b"] = (0.0, None)
    m.migrad()
    m.hesse()
    if not m.valid:
        raise CorrectionError(f"era {era}: the track-class template fit did not converge ({m.fmin})")
    cov = np.array(m.covariance)
    sf = {"pv": float(m.values["a"]), "spurious": float(m.values["b"])}
    unc = {"pv": float(np.sqrt(cov[0, 0])), "spurious": float(np.sqrt(cov[1, 1]))}
    # the thesis' single-bin data/simulation ratios (eqs. 6.2, 6.3), as a diagnostic
    thesis = {}
    for cls, bound, side in (("pv", cfg.TRACK_SF_THESIS_PV_LOG10DZ, 0), ("spurious", cfg.TRACK_SF_THESIS_SPURIOUS_LOG10DZ, 1)):
        dd = _region_sums(summed(h, data, origin="data")[0], edges, [bound])[side]
        mc = sum(_region_sums(*sim_dz[key], [bound])[side] * (c if key == "pileup" else 1.0) for key in origin_of) * k
        thesis[cls] = (float(dd / mc) if mc > 0 else float("nan"), float(np.sqrt(dd) / mc) if mc > 0 else float("nan"))
    regions = {"data": d.tolist(), **{key: (k * t).tolist() for key, t in tmpl.items()}}
    return TrackClassFit(era, sf, unc, float(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])),
                         c_reweighted if weighted else c, k, float(m.fval), int(d.size - 2), regions, thesis,
                         pileup_weighted=weighted)


def _pileup_weighted_templates(h: hist.Hist, h_events: hist.Hist, sim: Sequence[str], era: str,
                               pileup: cs.Correction, origin_of: Mapping[str, str], boundaries: Sequence[float]):
    """The track-class fit's simulated templates, their variances and the simulated event
    yield, each track and event weighted with its pileup weight (``h``: dataset, origin,
    n_true_int, track_log10_dz; ``h_events``: dataset, n_true_int; unit n_true bins, as the
    weights). Also the factor the reweighting gives the pileup template, and each class'
    weighted log10|dz| values and edges (flow included)."""
    ax = h.axes["n_true_int"]
    if list(ax.edges) != list(h_events.axes["n_true_int"].edges):
        raise CorrectionError("the pileup-binned tracks and events of the track-class fit have different "
                              "n_true_int axes: fill both from the same processor")
    # one weight per n_true bin, flow bins included (the correction clamps outside its range)
    centres = np.concatenate([[ax.edges[0] - 0.5], ax.centers, [ax.edges[-1] + 0.5]])
    w = np.asarray(pileup.to_evaluator().evaluate(era, centres, "nominal"))
    edges = _edges_with_flow(h.axes["track_log10_dz"])
    tmpl, var, raw, sim_dz = {}, {}, {}, {}
    for key, origin in origin_of.items():
        v = np.zeros((centres.size, len(edges) - 1))
        w2 = np.zeros_like(v)
        if origin in h.axes["origin"]:
            for ds in sim:
                if ds in h.axes["dataset"]:
                    sub = h[{"dataset": ds, "origin": origin}]
                    v += sub.values(flow=True)
                    w2 += sub.variances(flow=True)
        sim_dz[key] = (w @ v, edges)
        tmpl[key] = _region_sums(w @ v, edges, boundaries)
        var[key] = _region_sums(w**2 @ w2, edges, boundaries)
        raw[key] = v.sum()
    n_sim = 0.0
    for ds in sim:
        if ds in h_events.axes["dataset"]:
            n_sim += float(w @ h_events[{"dataset": ds}].values(flow=True))
    n_raw = sum(float(h_events[{"dataset": ds}].values(flow=True).sum()) for ds in sim if ds in h_events.axes["dataset"])
    # per-event pileup-track rate after / before reweighting
    factor = (tmpl["pileup"].sum() / n_sim) / (raw["pileup"] / n_raw) if raw["pileup"] > 0 and n_sim > 0 else 1.0
    return tmpl, var, n_sim, float(factor), sim_dz


def track_class_sf(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping],
                   pileup: cs.Correction | None = None,
                   fits: dict[str, TrackClassFit] | None = None) -> cs.Correction:
    """Track-class normalization scale factors (inputs era, class "pv"/"spurious", syst).

    Nominal from :func:`fit_track_classes` per era, up/down = +-1 statistical sigma
    (thesis sec. 6.2.1; summary sec. 4.2). Pass ``fits`` to reuse fits already done.
    """
    fits = fits or {era: fit_track_classes(hists, datasets, era, pileup) for era in eras_of(datasets)}
    per_era = {}
    lines = []
    for era, f in fits.items():
        per_era[era] = _cat("class", {
            cls: _cat("syst", {"nominal": f.sf[cls], "up": f.sf[cls] + f.unc[cls], "down": f.sf[cls] - f.unc[cls]})
            for cls in cfg.TRACK_SF_CLASSES
        })
        lines.append(f"{era}: pv {f.sf['pv']:.4f} +- {f.unc['pv']:.4f}, spurious {f.sf['spurious']:.4f} +- "
                     f"{f.unc['spurious']:.4f} (corr {f.correlation:+.2f}, pileup norm {f.pileup_norm:.4f}, "
                     f"chi2/ndf {f.chi2:.2f}/{f.ndf})")
    desc = (
        "Normalization scale factors of PV-associated and spurious candidate tracks (thesis sec. 6.2.1) from "
        "the cleaned Drell-Yan data/simulation comparison of log10|dz|: template fit data = k (a PV + b "
        "spurious + c pileup) in the regions split at log10(|dz|/cm) = "
        f"{', '.join(f'{b:g}' for b in cfg.TRACK_SF_LOG10DZ_EDGES)}, with k the data/simulation event ratio "
        + ("and the simulated tracks and events weighted with the pileup weights (c = 1; 'pileup norm' is the "
           "factor this gave the pileup template)" if any(f.pileup_weighted for f in fits.values()) else
           "and c fixed by the pileup reweighting")
        + ". up/down: +-1 statistical sigma. Results: " + "; ".join(lines)
    )
    return _correction(
        "track_class_sf", desc,
        [ERA_INPUT, cs.Variable(name="class", type="string", description="track class: pv (PV-associated) or spurious"),
         SYST_INPUT],
        cs.Variable(name="sf", type="real", description="per-track scale factor on the simulated track rate"),
        _cat("era", per_era),
    )


# --- pT(Z) weights (docs/physics.md sec. 5; thesis sec. 6.1) -------------------------------------
@dataclass(frozen=True)
class PtzWeights:
    era: str
    edges: list[float]
    weights: list[float]
    unc: list[float]
    n_dy: float
    n_znunu: float


def fit_ptz_weights(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping], era: str,
                    max_rel_unc: float = cfg.PTZ_WEIGHT_MAX_REL_UNC) -> PtzWeights:
    """Binned pT(Z) weights: unit-normalized Z->nunu over cleaned-DY generator pT(Z) spectra.

    Uses ``ptz_gen`` (dataset, systematic, ptz) of the dy processor: dy_mumu with a dimuon
    and cleaned p_T^miss > 200 GeV, zjets_nunu with p_T^miss > 200 GeV, no pT(Z) cut
    (docs/physics.md sec. 5). Adjacent bins are merged left to right until the weight's relative
    statistical uncertainty is below ``max_rel_unc``; the overflow joins the last bin. The
    weights keep the Drell-Yan yield (both spectra normalized to one).
    """
    h = _require(hists, "ptz_gen", "the pT(Z) weights")
    dy = select_datasets(datasets, era, is_data=False, processes=("dy_mumu",))
    zn = select_datasets(datasets, era, is_data=False, processes=("zjets_nunu",))
    if not dy or not zn:
        raise CorrectionError(f"era {era}: pT(Z) weights need dy_mumu and zjets_nunu simulation in the dy output")
    ax = h.axes["ptz"]
    (d, vd), (z, vz) = summed(h, dy, systematic="nominal"), summed(h, zn, systematic="nominal")
    u = 1 if ax.traits.underflow else 0
    fine = np.asarray(ax.edges)
    # fold the flow bins into the first and last bins
    d_in, vd_in, z_in, vz_in = (x[u: u + ax.size].copy() for x in (d, vd, z, vz))
    for inner, full in ((d_in, d), (vd_in, vd), (z_in, z), (vz_in, vz)):
        if ax.traits.overflow:
            inner[-1] += full[-1]
        if u:
            inner[0] += full[0]
    nd, nz = d_in.sum(), z_in.sum()
    if nd <= 0 or nz <= 0:
        raise CorrectionError(f"era {era}: empty pT(Z) spectrum (dy_mumu {nd}, zjets_nunu {nz})")
    groups: list[list[int]] = []
    cur: list[int] = []
    for i in range(ax.size):
        cur.append(i)
        sd, sz = d_in[cur].sum(), z_in[cur].sum()
        if sd <= 0 and sz <= 0:
            continue
        if sd > 0 and sz > 0 and vd_in[cur].sum() / sd**2 + vz_in[cur].sum() / sz**2 < max_rel_unc**2:
            groups.append(cur)
            cur = []
    if cur:
        if groups and (d_in[cur].sum() > 0 or z_in[cur].sum() > 0):
            groups[-1] += cur
        else:
            groups.append(cur)
    edges = [float(fine[g[0]]) for g in groups] + [float(fine[-1])]
    weights, unc = [], []
    for g in groups:
        sd, sz = d_in[g].sum(), z_in[g].sum()
        if sd > 0 and sz > 0:
            w = (sz / nz) / (sd / nd)
            weights.append(float(w))
            unc.append(float(w * np.sqrt(vd_in[g].sum() / sd**2 + vz_in[g].sum() / sz**2)))
        else:
            weights.append(1.0)
            unc.append(0.0)
    return PtzWeights(era, edges, weights, unc, float(nd), float(nz))


def ptz_weight(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping],
               fits: dict[str, PtzWeights] | None = None) -> cs.Correction:
    """pT(Z) weights of the simulated cleaned Drell-Yan events, per era (docs/physics.md sec. 5)."""
    fits = fits or {era: fit_ptz_weights(hists, datasets, era) for era in eras_of(datasets)}
    per_era = {era: cs.Binning(nodetype="binning", input="ptz", edges=f.edges, content=f.weights, flow="clamp")
               for era, f in fits.items()}
    desc = (
        "Generator pT(Z) weights for simulated cleaned Drell-Yan (Z->mumu) events: unit-normalized Z->nunu over "
        "Drell-Yan spectra with p_T^miss (cleaned) > 200 GeV and no pT(Z) cut (docs/physics.md sec. 5, thesis sec. 6.1). "
        f"Bins merged until the relative statistical uncertainty is below {cfg.PTZ_WEIGHT_MAX_REL_UNC:g}; "
        "clamped outside the bin range; weights keep the Drell-Yan yield."
    )
    return _correction(
        "ptz_weight", desc,
        [ERA_INPUT, cs.Variable(name="ptz", type="real", description="generator pT of the Z boson (GeV)")],
        cs.Variable(name="weight", type="real", description="per-event weight of simulated Drell-Yan"),
        _cat("era", per_era),
    )


# --- line fits: p_T^miss (thesis sec. 6.2.3) and residual shape (sec. 6.2.2) ---------------
@dataclass(frozen=True)
class LineFit:
    """ratio(x) = p0 + p1 (x - pivot); the pivot decorrelates p0 and p1."""

    p0: float
    p1: float
    pivot: float
    err_p0: float
    err_p1: float
    correlation: float
    chi2: float
    ndf: int

    def __call__(self, x: np.ndarray | float) -> np.ndarray | float:
        return self.p0 + self.p1 * (np.asarray(x) - self.pivot)

    def at(self, x: float) -> tuple[float, float]:
        """Value and uncertainty of the line at x."""
        dx = x - self.pivot
        var = self.err_p0**2 + dx**2 * self.err_p1**2 + 2 * dx * self.correlation * self.err_p0 * self.err_p1
        return float(self(x)), float(np.sqrt(max(var, 0.0)))


def _merge_sparse(x, data, sim, sim_var, min_eff: float):
    """Merge adjacent bins (left to right) until each has ``min_eff`` effective simulated
    entries sim^2/var; x becomes the simulation-weighted mean of the merged centres. A
    short remainder joins the last merged bin."""
    groups, cur = [], []
    for i in range(x.size):
        cur.append(i)
        s, v = sim[cur].sum(), sim_var[cur].sum()
        if s > 0 and (v <= 0 or s * s / v >= min_eff):
            groups.append(cur)
            cur = []
    if cur:
        if groups:
            groups[-1] += cur
        else:
            groups.append(cur)
    out = []
    for g in groups:
        s = sim[g].sum()
        xm = float(np.average(x[g], weights=sim[g])) if s > 0 else float(np.mean(x[g]))
        out.append((xm, data[g].sum(), s, sim_var[g].sum()))
    return tuple(np.array(col) for col in zip(*out, strict=True))


def fit_line(x: np.ndarray, data: np.ndarray, sim: np.ndarray, sim_var: np.ndarray,
             min_effective_entries: float = cfg.LINE_FIT_MIN_EFFECTIVE_ENTRIES) -> LineFit:
    """Fit data_i = sim_i * (p0 + p1 (x_i - pivot)) by a binned Poisson likelihood.

    Bins are first merged until each holds ``min_effective_entries`` effective simulated
    entries (sparse, large-weight simulation would otherwise dominate the fit).

    The fit minimizes the Poisson deviance 2 sum (mu - d + d ln(d / mu)), mu = m f, which
    is unbiased for the small counts of the p_T^miss tail (a Pearson or Neyman chi2 pulls
    the normalization up or down there); the simulation's statistical uncertainty is
    added to the parameter covariance by scaling it with (1 + r^2 var_m / m) averaged over
    the bins, r the overall data/simulation ratio. The pivot is the simulation-weighted
    mean of x.
    """
    x, data, sim, sim_var = _merge_sparse(*(np.asarray(a, dtype=np.float64) for a in (x, data, sim, sim_var)),
                                          min_eff=min_effective_entries)
    ok = sim > 0
    if ok.sum() < 3:
        raise CorrectionError(f"line fit needs at least 3 bins with simulation, got {int(ok.sum())}")
    x, data, sim, sim_var = x[ok], data[ok], sim[ok], sim_var[ok]
    pivot = float(np.average(x, weights=sim))

    # the simulation variance enters at the overall ratio, not at the fitted line: scaled
    # with f^2 it would make steep lines cheap in bins of sparse, large-weight simulation
    scale = data.sum() / sim.sum() if data.sum() > 0 else 1.0

    def chi2(p0: float, p1: float) -> float:
        f = p0 + p1 * (x - pivot)
        mu = np.maximum(sim * f, 1e-9)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_term = np.where(data > 0, data * np.log(data / mu), 0.0)
        return float(2.0 * np.sum(mu - data + log_term))

    m = Minuit(chi2, p0=scale, p1=0.0)
    m.errordef = Minuit.LEAST_SQUARES
    m.migrad()
    m.hesse()
    if not m.valid:
        raise CorrectionError(f"line fit did not converge ({m.fmin})")
    cov = np.array(m.covariance)
    # inflate by the simulation's statistical share of the variance
    inflation = float(np.average(1.0 + scale**2 * sim_var / np.maximum(sim * scale, 1e-12), weights=sim))
    cov = cov * inflation
    return LineFit(float(m.values["p0"]), float(m.values["p1"]), pivot, float(np.sqrt(cov[0, 0])),
                   float(np.sqrt(cov[1, 1])), float(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])), float(m.fval),
                   int(x.size - 2))


def fit_met_line(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping], era: str,
                 fit_range: tuple[float, float] = cfg.MET_WEIGHT_FIT_RANGE) -> LineFit:
    """Line fit of the data/simulation p_T^miss ratio after the baseline (thesis sec. 6.2.3).

    Uses ``met`` (dataset, systematic, met) of the signal-region processor, bins whose
    centre lies in ``fit_range``.
    """
    h = _require(hists, "met", "the p_T^miss weights")
    data = select_datasets(datasets, era, is_data=True)
    sim = select_datasets(datasets, era, is_data=False, processes=[
        p for p in {m["process"] for m in datasets.values()} if not p.startswith("signal")])
    if not data or not sim:
        raise CorrectionError(f"era {era}: the p_T^miss fit needs data and background simulation in the signal output")
    d = summed(h, data, systematic="nominal")[0]
    s, vs = summed(h, sim, systematic="nominal")
    ax = h.axes["met"]
    u = 1 if ax.traits.underflow else 0
    centres = np.asarray(ax.centers)
    sel = (centres > fit_range[0]) & (centres < fit_range[1])
    return fit_line(centres[sel], d[u: u + ax.size][sel], s[u: u + ax.size][sel], vs[u: u + ax.size][sel])


def met_weight(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping],
               fits: dict[str, LineFit] | None = None,
               fit_range: tuple[float, float] = cfg.MET_WEIGHT_FIT_RANGE) -> cs.Correction:
    """p_T^miss weights of simulated background: the line fit as a formula, frozen outside
    the fit range (thesis sec. 6.2.3; summary sec. 4.2). up/down move the slope by +-1 sigma
    around the pivot (where slope and normalization are uncorrelated)."""
    fits = fits or {era: fit_met_line(hists, datasets, era, fit_range) for era in eras_of(datasets)}
    lo, hi = fit_range
    expr = f"[0]+[1]*(min(max(x,{lo:g}),{hi:g})-[2])"
    per_era, lines = {}, []
    for era, f in fits.items():
        per_era[era] = _cat("syst", {
            syst: cs.Formula(nodetype="formula", expression=expr, parser="TFormula", variables=["met"],
                             parameters=[f.p0, f.p1 + sign * f.err_p1, f.pivot])
            for syst, sign in zip(SYSTS, (0.0, 1.0, -1.0), strict=True)
        })
        lines.append(f"{era}: {f.p0:.4f} +- {f.err_p0:.4f} + ({f.p1:.3e} +- {f.err_p1:.1e})/GeV (x - {f.pivot:.0f}), "
                     f"chi2/ndf {f.chi2:.1f}/{f.ndf}")
    desc = (
        f"p_T^miss weights of simulated background: line fit of data/simulation in {lo:g}-{hi:g} GeV after the baseline "
        "(thesis sec. 6.2.3), frozen outside. up/down: slope +-1 sigma. Fits: " + "; ".join(lines)
    )
    return _correction(
        "met_weight", desc,
        [ERA_INPUT, cs.Variable(name="met", type="real", description="p_T^miss (GeV)"), SYST_INPUT],
        cs.Variable(name="weight", type="real", description="per-event weight of simulated background"),
        _cat("era", per_era),
    )


# --- max-logit sideband SFs and residual shape (thesis sec. 6.2.1, 6.2.2) ------------------
def _max_logit(hists, datasets, era, dm: str, what: str):
    h = _require(hists, "max_logit", what)
    data = select_datasets(datasets, era, is_data=True)
    sim = select_datasets(datasets, era, is_data=False, processes=[
        p for p in {m["process"] for m in datasets.values()} if not p.startswith("signal")])
    if not data or not sim:
        raise CorrectionError(f"era {era}: {what} needs data and background simulation")
    ax = h.axes["max_logit"]
    u = 1 if ax.traits.underflow else 0
    d = summed(h, data, systematic="nominal", dm=dm)[0][u: u + ax.size]
    s, vs = (x[u: u + ax.size] for x in summed(h, sim, systematic="nominal", dm=dm))
    return np.asarray(ax.edges), d, s, vs


def fit_sideband_sf(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping], era: str, dm: str,
                    window: tuple[float, float] = cfg.SIDEBAND_LOGIT_RANGE) -> tuple[float, float]:
    """Data/simulation yield ratio (and its statistical uncertainty) in the max-logit
    sideband ``window`` of one Delta m category (thesis sec. 6.2.1, Table 6.1).

    Uses ``max_logit`` (dataset, systematic, dm, max_logit); the window edges must be bin
    edges.
    """
    edges, d, s, vs = _max_logit(hists, datasets, era, dm, "the sideband scale factors")
    for b in window:
        if not np.any(np.isclose(edges, b)):
            raise CorrectionError(f"sideband edge {b} is not a max_logit bin edge")
    sel = (edges[:-1] >= window[0] - 1e-9) & (edges[1:] <= window[1] + 1e-9)
    nd, ns, vns = d[sel].sum(), s[sel].sum(), vs[sel].sum()
    if ns <= 0:
        raise CorrectionError(f"era {era}, dm {dm}: no simulated events in the sideband {window}")
    sf = nd / ns
    return float(sf), float(np.sqrt(nd / ns**2 + sf**2 * vns / ns**2))


def sideband_sf(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping],
                window: tuple[float, float] = cfg.SIDEBAND_LOGIT_RANGE) -> cs.Correction:
    """Sideband scale factors per max-score category (inputs era, category = Delta m
    "0.3"/"0.6"/"1", syst); up/down = +-1 statistical sigma (thesis sec. 6.2.1)."""
    cats = [f"{dm:g}" for dm in cfg.CLASSIFIER_DMS]
    per_era, lines = {}, []
    for era in eras_of(datasets):
        items = {}
        for dm in cats:
            sf, err = fit_sideband_sf(hists, datasets, era, dm, window)
            items[dm] = _cat("syst", {"nominal": sf, "up": sf + err, "down": sf - err})
            lines.append(f"{era} dm {dm}: {sf:.4f} +- {err:.4f}")
        per_era[era] = _cat("category", items)
    desc = (f"Sideband scale factors: data/simulation yield in {window[0]:g} < max logit < {window[1]:g} per "
            "Delta m category, after the track-class scale factors (thesis sec. 6.2.1, Table 6.1). "
            + "; ".join(lines))
    return _correction(
        "sideband_sf", desc,
        [ERA_INPUT, cs.Variable(name="category", type="string", description="Delta m category of the max logit: 0.3, 0.6 or 1"),
         SYST_INPUT],
        cs.Variable(name="sf", type="real", description="per-event scale factor of simulated background"),
        _cat("era", per_era),
    )


def fit_residual_shapes(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping], era: str, dm: str,
                        fit_min: tuple[float, float] = cfg.RESIDUAL_SHAPE_FIT_MIN) -> tuple[LineFit, LineFit]:
    """Line fits of the data/(refined) simulation max-logit ratio above the loose and the
    tight threshold in cleaned Drell-Yan (thesis sec. 6.2.2, Tables 6.3 and 6.4)."""
    edges, d, s, vs = _max_logit(hists, datasets, era, dm, "the residual-shape fits")
    centres = 0.5 * (edges[:-1] + edges[1:])
    out = []
    for lo in fit_min:
        sel = edges[:-1] >= lo - 1e-9
        out.append(fit_line(centres[sel], d[sel], s[sel], vs[sel]))
    return out[0], out[1]


def residual_shape_factors(loose: LineFit, tight: LineFit, low_edges: Sequence[float],
                           sideband: tuple[float, float] = cfg.SIDEBAND_LOGIT_RANGE
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nominal, statistical uncertainty, fit-choice uncertainty) of the residual shape at each
    signal region's lower edge: the loose line divided by its value at the sideband centre
    (the sideband scale factor normalizes the background there, so the residual shape only
    carries the change from the sideband to the signal regions); the statistical uncertainty
    of that ratio from the line's covariance; |tight - loose| over the same normalization."""
    centre = 0.5 * (sideband[0] + sideband[1])
    norm = float(loose(centre))
    if not norm > 0:
        raise CorrectionError(f"the loose residual line is {norm:.3g} at the sideband centre {centre:g}")
    edges = np.asarray(low_edges, dtype=np.float64)
    nominal = np.asarray(loose(edges), dtype=np.float64) / norm
    # d(ratio)/d(p0, p1) of (p0 + p1 (e - pivot)) / (p0 + p1 (c - pivot))
    de, dc = edges - loose.pivot, centre - loose.pivot
    g0 = (1.0 - nominal) / norm
    g1 = (de - nominal * dc) / norm
    cov01 = loose.correlation * loose.err_p0 * loose.err_p1
    var = g0**2 * loose.err_p0**2 + g1**2 * loose.err_p1**2 + 2.0 * g0 * g1 * cov01
    stat = np.sqrt(np.maximum(var, 0.0))
    choice = np.abs(np.asarray(tight(edges), dtype=np.float64) - np.asarray(loose(edges), dtype=np.float64)) / norm
    return nominal, stat, choice


def residual_shape(hists: Mapping[str, hist.Hist], datasets: Mapping[str, Mapping],
                   sr_edges: Mapping[float, Sequence[float]] | None = None,
                   fit_min: tuple[float, float] = cfg.RESIDUAL_SHAPE_FIT_MIN,
                   max_rel_unc: float = cfg.RESIDUAL_SHAPE_MAX_REL_UNC,
                   notes: list[str] | None = None) -> cs.Correction:
    """Residual max-logit shape correction (inputs era, category, max_logit, syst).

    In each signal-region bin of a category the weight is the loose line fit evaluated at
    the bin's lower edge, relative to its value at the sideband centre
    (:func:`residual_shape_factors`); up/down add -+ the fit-choice (loose vs tight) and the
    statistical uncertainty in quadrature; below the first signal region the weight is 1
    (thesis sec. 6.2.2, 7; summary sec. 5). An era and category whose shape the cleaned-DY
    tail does not constrain (statistical uncertainty above ``max_rel_unc`` of the weight at
    some edge, or a fit that fails) has no entry, and the reason is appended to ``notes``;
    CorrectionError if no entry is left.
    """
    sr_edges = sr_edges or cfg.SR_LOGIT_EDGES
    notes = notes if notes is not None else []
    axis_edges = hists["max_logit"].axes["max_logit"].edges
    per_era, lines = {}, []
    for era in eras_of(datasets):
        items = {}
        for dm in cfg.CLASSIFIER_DMS:
            key = f"{dm:g}"
            low_edges = [float(e) for e in sr_edges[dm]]
            try:
                loose, tight = fit_residual_shapes(hists, datasets, era, key, fit_min)
                nominal, stat, choice = residual_shape_factors(loose, tight, low_edges)
            except (CorrectionError, ValueError, RuntimeError, ZeroDivisionError) as err:
                notes.append(f"residual_shape not derived for {era} dm {key}: {err}")
                continue
            rel = stat / np.maximum(np.abs(nominal), 1e-12)
            if np.any(nominal <= 0) or np.any(rel > max_rel_unc):
                notes.append(f"residual_shape not derived for {era} dm {key}: "
                             + ", ".join(f"{n:.2f} +- {u:.2f}" for n, u in zip(nominal, stat, strict=True))
                             + f" at the SR edges, statistical uncertainty above {max_rel_unc:g} of the weight")
                continue
            spread = np.hypot(stat, choice)
            edges = [float(axis_edges[0]), *low_edges, float(axis_edges[-1])]
            per_syst = {}
            for syst, sign in zip(SYSTS, (0.0, 1.0, -1.0), strict=True):
                per_syst[syst] = cs.Binning(nodetype="binning", input="max_logit", edges=edges,
                                            content=[1.0, *[float(x) for x in np.maximum(nominal + sign * spread, 0.0)]],
                                            flow="clamp")
            items[key] = _cat("syst", per_syst)
            lines.append(f"{era} dm {key}: " + ", ".join(f"{n:.3f}" for n in nominal)
                         + f" (>{fit_min[0]:g} slope {loose.p1:.3f}+-{loose.err_p1:.3f}, "
                         f">{fit_min[1]:g} slope {tight.p1:.3f}+-{tight.err_p1:.3f})")
        if items:
            per_era[era] = _cat("category", items)
    if not per_era:
        raise CorrectionError("no era and category constrains the residual shape (the notes say why for each)")
    centre = 0.5 * sum(cfg.SIDEBAND_LOGIT_RANGE)
    desc = ("Residual max-logit shape weights of simulated background in the signal regions: line fit of cleaned-DY "
            f"data/refined simulation above {fit_min[0]:g} at each signal region's lower edge, relative to its value "
            f"at the sideband centre {centre:g}; up/down: the difference to the fit above {fit_min[1]:g} and the "
            "statistical uncertainty in quadrature (thesis sec. 6.2.2, 7). Eras and categories without an entry are "
            "not constrained by the cleaned-DY tail. " + "; ".join(lines))
    return _correction(
        "residual_shape", desc,
        [ERA_INPUT, cs.Variable(name="category", type="string", description="Delta m category: 0.3, 0.6 or 1"),
         cs.Variable(name="max_logit", type="real", description="event max logit of the category"), SYST_INPUT],
        cs.Variable(name="weight", type="real", description="per-event weight of simulated background"),
        _cat("era", per_era),
    )
