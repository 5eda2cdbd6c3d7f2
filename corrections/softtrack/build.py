"""Assemble the derived corrections into one correctionlib CorrectionSet and write it.

One gzipped JSON for all eras (``analysis.softtrack.config.CORRECTIONS_FILENAME``): every correction
takes the era as its first (string) input, so a consumer opens one file and an era the
file lacks is an out-of-range category, not a missing file. Corrections whose input
histograms are absent (the max-logit ones before the classifier lands) are left out and
listed in the returned notes (docs/physics.md sec. 6).
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import correctionlib.schemav2 as cs

from analysis.errors import ConfigError, SoftTrackError
from analysis.io import atomic_output
from analysis.softtrack import config as cfg

from . import derive
from .signal_regions import sr_edges_of

SCHEMA_VERSION = 2


@dataclass
class BuildResult:
    """The CorrectionSet and the fit results behind it (for printing and tests)."""

    cset: cs.CorrectionSet
    track_fits: dict[str, derive.TrackClassFit] = field(default_factory=dict)
    ptz_fits: dict[str, derive.PtzWeights] = field(default_factory=dict)
    met_fits: dict[str, derive.LineFit] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: correction -> eras of the inputs it could not be derived for (the notes say why): the
    #: file has no entry for them, and a processor applying it there must be told it is
    #: optional (SoftTrackConfig.optional_corrections)
    not_derived: dict[str, list[str]] = field(default_factory=dict)


def _fit_eras(fit, eras, name: str, result: BuildResult) -> dict:
    """Per-era fits; an era whose inputs cannot support the fit is skipped with a note and
    recorded in ``result.not_derived`` (the correction then has no entry for it and asking
    for it raises CorrectionError)."""
    out = {}
    for era in eras:
        try:
            out[era] = fit(era)
        except (SoftTrackError, ValueError, RuntimeError, ZeroDivisionError) as err:
            result.notes.append(f"{name} not derived for {era}: {err}")
            result.not_derived.setdefault(name, []).append(era)
    return out


def _optional(make, name: str, notes: list[str]):
    try:
        return make()
    except (SoftTrackError, ValueError, RuntimeError, ZeroDivisionError) as err:
        notes.append(f"{name} not derived: {err}")
        return None


def _sr_edges(*outputs: Mapping | None) -> dict[float, tuple[float, ...]] | None:
    """The signal-region edges recorded by the first output that has them."""
    for out in outputs:
        edges = sr_edges_of(out) if out is not None else None
        if edges:
            return edges
    return None


def build_corrections(dy: Mapping | None = None, signal: Mapping | None = None, *,
                      pileup_profiles: derive.PileupProfiles) -> BuildResult:
    """Derive every correction the inputs allow and assemble the CorrectionSet.

    Parameters
    ----------
    dy : output of the ``dy`` processor (cleaned Drell-Yan): pT(Z) weights, track-class
        scale factors, residual max-logit shape (when ``max_logit`` exists).
    signal : output of the ``signal`` processor: p_T^miss weights, sideband scale factors
        (when ``max_logit`` exists).
    pileup_profiles : the true-interaction profiles of simulation and data per era that the pileup
        weights are derived from (:class:`corrections.softtrack.derive.PileupProfiles`; the commands
        pass the generator's truth profiles, analysis.toymc.pileup.truth_profiles).

    The residual shape is evaluated at the signal-region edges the signal output (else the
    dy output) was filled with, as its provenance records them (config.SR_LOGIT_EDGES for
    outputs that do not).

    Pileup weights come from ``pileup_profiles`` for the eras of the inputs.
    """
    if dy is None and signal is None:
        raise ConfigError("corrections need at least one processor output (--dy and/or --signal)")
    eras = sorted({e for out in (dy, signal) if out for e in derive.eras_of(out["datasets"])})
    pileup = derive.pileup_weight(pileup_profiles, eras or cfg.ERAS)
    result = BuildResult(cs.CorrectionSet(schema_version=SCHEMA_VERSION, corrections=[]))
    corrections = [pileup]
    if dy is not None:
        h, ds = dy["histograms"], dy["datasets"]
        notes = result.notes
        result.ptz_fits = _fit_eras(lambda e: derive.fit_ptz_weights(h, ds, e), derive.eras_of(ds), "ptz_weight", result)
        if result.ptz_fits:
            corrections.append(derive.ptz_weight(h, ds, result.ptz_fits))
        # the preselected cleaned-DY tracks (before the baseline) when the output has them:
        # the same track population with far more events; the simulated tracks and events
        # weighted with the pileup weights where the output has them by true interactions
        names = ({"hist_name": "track_log10_dz_presel", "events_name": "n_events_presel",
                  "pileup_hist": "track_log10_dz_presel_pileup", "pileup_events": "n_events_presel_pileup"}
                 if "track_log10_dz_presel" in h and "n_events_presel" in h else {})
        result.track_fits = _fit_eras(lambda e: derive.fit_track_classes(h, ds, e, pileup, **names),
                                      derive.eras_of(ds), "track_class_sf", result)
        if result.track_fits:
            corrections.append(derive.track_class_sf(h, ds, pileup, result.track_fits))
        if "max_logit" in h:
            edges = _sr_edges(signal, dy)
            corrections.append(_optional(lambda: derive.residual_shape(h, ds, sr_edges=edges, notes=notes),
                                         "residual_shape", notes))
        else:
            result.notes.append("residual_shape not derived: the dy output has no 'max_logit' histogram")
    else:
        result.notes.append("ptz_weight, track_class_sf, residual_shape not derived: no dy output")
    if signal is not None:
        h, ds = signal["histograms"], signal["datasets"]
        result.met_fits = _fit_eras(lambda e: derive.fit_met_line(h, ds, e), derive.eras_of(ds), "met_weight",
                                    result)
        if result.met_fits:
            corrections.append(derive.met_weight(h, ds, result.met_fits))
        if "max_logit" in h:
            corrections.append(_optional(lambda: derive.sideband_sf(h, ds), "sideband_sf", result.notes))
        else:
            result.notes.append("sideband_sf not derived: the signal output has no 'max_logit' histogram")
    else:
        result.notes.append("met_weight, sideband_sf not derived: no signal output")
    result.cset = cs.CorrectionSet(
        schema_version=SCHEMA_VERSION,
        description=(f"softtrack corrections (docs/physics.md sec. 5, 6; thesis sec. 6.1-6.2) for eras {', '.join(eras)}; "
                     "see corrections/softtrack/README.md"),
        corrections=[c for c in corrections if c is not None],
    )
    return result


def with_signal_region_corrections(cset: cs.CorrectionSet, signal: Mapping | None, dy: Mapping | None,
                                   sr_edges: Mapping[float, Sequence[float]] | None = None
                                   ) -> tuple[cs.CorrectionSet, list[str]]:
    """``cset`` with ``sideband_sf`` and ``residual_shape`` derived again, from outputs that
    were processed *with* the other corrections (the track-class scale factors above all,
    which the sideband factor would otherwise count a second time) and for the signal-region
    edges in use; see :mod:`corrections.softtrack.signal_regions` for how they are applied.

    An entry that cannot be derived from these outputs is removed, not kept from an earlier
    derivation, and the reason is in the returned notes.
    """
    notes: list[str] = []
    made = {}
    if signal is not None and "max_logit" in signal["histograms"]:
        made["sideband_sf"] = _optional(lambda: derive.sideband_sf(signal["histograms"], signal["datasets"]),
                                        "sideband_sf", notes)
    else:
        notes.append("sideband_sf not derived: no signal output with a 'max_logit' histogram")
    if dy is not None and "max_logit" in dy["histograms"]:
        made["residual_shape"] = _optional(
            lambda: derive.residual_shape(dy["histograms"], dy["datasets"], sr_edges=sr_edges, notes=notes),
            "residual_shape", notes)
    else:
        notes.append("residual_shape not derived: no dy output with a 'max_logit' histogram")
    kept = [c for c in cset.corrections if c.name not in ("sideband_sf", "residual_shape")]
    new = [c for c in made.values() if c is not None]
    return cs.CorrectionSet(schema_version=cset.schema_version, description=cset.description,
                            corrections=kept + new), notes


def write_correction_set(cset: cs.CorrectionSet, out: Path | str) -> Path:
    """Write ``cset`` as gzipped JSON; ``out`` is a directory (file name from config) or a
    path ending in .json.gz. Returns the path written."""
    out = Path(out)
    path = out if out.name.endswith(".json.gz") else out / cfg.CORRECTIONS_FILENAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mtime 0: the same corrections give the same bytes
        # (atomically, through a temporary file; the gzip header names the target)
        with (atomic_output(path) as tmp, open(tmp, "wb") as raw,
              gzip.GzipFile(filename=str(path), fileobj=raw, mode="wb", mtime=0) as f):
            f.write(cset.model_dump_json(exclude_unset=True).encode("utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot write corrections to {path}: {err.strerror or err}") from None
    return path
