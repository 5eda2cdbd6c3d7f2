"""Read the object collections a processor needs from NanoEvents, with the fallbacks of
docs/physics.md sec. 1 for real NanoAOD (IsoTrack or PFCands instead of the Track extension).

Returns plain awkward records with only the fields the analysis uses, so that the same
analysis code runs on our files and on files nobody here wrote.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis.contract import TRACK_COV_BRANCHES
from analysis.errors import DataFileError

#: track fields the analysis reads from the full extension
TRACK_FIELDS = (
    "pt", "eta", "phi", "charge", "dxy", "dz", "dxyErr", "dzErr", "highPurity", "isPFcand", "pfIso03",
    "refX", "refY", "refZ", "vtxIdx", "svIdx",
)


def _fields(events, name: str) -> list[str] | None:
    """The fields of collection ``name`` as the file has them (None: no such collection),
    read from the layout: asking the collection itself would first run its behaviour's
    validation, which fails without naming the branch (e.g. MET without pt: "missing
    azimuthal coordinates")."""
    if name not in events.fields:
        return None
    layout = events.layout
    try:
        return list(layout.content(name).fields)
    except (AttributeError, TypeError, ValueError):  # not a record layout: ask the array
        return list(events[name].fields)


def _require(events, name: str, fields: tuple[str, ...] = ()) -> ak.Array:
    filename = events.metadata.get("filename", "the input file")
    have = _fields(events, name)
    if have is None:
        raise DataFileError(f"collection {name!r} (branches {name}_*) missing from {filename}: the processor reads "
                            "it; fix the file or the fileset, or pass --skip-bad-files to skip the file",
                            path=str(filename))
    missing = [f for f in fields if f not in have]
    if missing:
        raise DataFileError(f"branch{'es' if len(missing) > 1 else ''} {', '.join(name + '_' + m for m in missing)} "
                            f"missing from {filename}: the processor reads "
                            f"{'them' if len(missing) > 1 else 'it'}; fix the file or the fileset, or pass "
                            "--skip-bad-files to skip the file", path=str(filename))
    return events[name]


def _pick(coll, fields):
    return ak.zip({f: coll[f] for f in fields}, depth_limit=2)


def jets(events) -> ak.Array:
    j = _require(events, "Jet", ("pt", "eta", "phi", "jetId", "btagDeepB"))
    fields = ["pt", "eta", "phi", "mass", "jetId", "btagDeepB"]
    return _pick(j, [f for f in fields if f in j.fields])


def leptons(events):
    mu = _require(events, "Muon", ("pt", "eta", "phi", "charge", "pfRelIso03_all"))
    el = _require(events, "Electron", ("pt", "eta", "phi", "charge"))
    if "pfRelIso03_all" not in el.fields:
        el = ak.with_field(el, el.pt * 0.0, "pfRelIso03_all")
    ph = _require(events, "Photon", ("pt", "eta", "phi"))
    if "pfRelIso03_all" not in ph.fields:
        iso = ph.pfRelIso03_chg if "pfRelIso03_chg" in ph.fields else ph.pt * 0.0
        ph = ak.with_field(ph, iso, "pfRelIso03_all")
    ta = _require(events, "Tau", ("pt", "eta", "phi")) if "Tau" in events.fields else ak.Array([[]] * len(events))
    keep = ("pt", "eta", "phi", "charge", "pfRelIso03_all")
    tau = _pick(ta, ("pt", "eta", "phi")) if len(ta.fields) else ak.zip({"pt": ak.Array([[]] * len(events))})
    return (_pick(mu, keep), _pick(el, keep), _pick(ph, ("pt", "eta", "phi", "pfRelIso03_all")),
            tau if "eta" in tau.fields else ak.zip({"pt": tau.pt, "eta": tau.pt, "phi": tau.pt}))


def tracks(events) -> tuple[ak.Array, str]:
    """Tracks and where they came from: ``"Track"`` (full extension), ``"IsoTrack"`` or
    ``"PFCands"`` (real NanoAOD fallbacks, straight-line observables only; missing
    quantities are filled: errors and the reference point with NaN-free defaults)."""
    if "Track" in events.fields:
        t = _require(events, "Track", TRACK_FIELDS + TRACK_COV_BRANCHES)
        out = _pick(t, TRACK_FIELDS + TRACK_COV_BRANCHES)
        if "genPartIdx" in t.fields:
            out = ak.with_field(out, t.genPartIdx, "genPartIdx")
            out = ak.with_field(out, t.genOrigin if "genOrigin" in t.fields else t.genPartIdx * 0, "genOrigin")
        return out, "Track"
    if "IsoTrack" in events.fields:
        t = _require(events, "IsoTrack", ("pt", "eta", "phi", "dxy", "dz", "pfRelIso03_all"))
        one = t.pt * 0 + 1
        charge = np.sign(t.pdgId) if "pdgId" in t.fields else one
        fields = {
            "pt": t.pt, "eta": t.eta, "phi": t.phi, "charge": charge, "dxy": t.dxy, "dz": t.dz,
            "dxyErr": one * np.nan, "dzErr": one * np.nan,
            "highPurity": t.isHighPurityTrack if "isHighPurityTrack" in t.fields else one > 0,
            "isPFcand": t.isPFcand if "isPFcand" in t.fields else one > 0,
            "pfIso03": t.pfRelIso03_all * t.pt,
        }
        return ak.zip(fields), "IsoTrack"
    if "PFCands" in events.fields:
        pf = _require(events, "PFCands", ("pt", "eta", "phi", "charge"))
        c = pf[pf.charge != 0]
        one = c.pt * 0 + 1
        fields = {
            "pt": c.pt, "eta": c.eta, "phi": c.phi, "charge": c.charge,
            "dxy": c.d0 if "d0" in c.fields else one * np.nan, "dz": c.dz if "dz" in c.fields else one * np.nan,
            "dxyErr": c.d0Err if "d0Err" in c.fields else one * np.nan,
            "dzErr": c.dzErr if "dzErr" in c.fields else one * np.nan,
            "highPurity": one > 0, "isPFcand": one > 0, "pfIso03": one * np.nan,
        }
        return ak.zip(fields), "PFCands"
    return ak.zip({f: ak.Array([[]] * len(events)) for f in ("pt", "eta", "phi", "charge", "dxy", "dz", "dxyErr",
                                                             "dzErr", "highPurity", "isPFcand", "pfIso03")}), "none"


def met(events):
    m = _require(events, "MET", ("pt", "phi"))
    return ak.to_numpy(m.pt).astype(np.float64), ak.to_numpy(m.phi).astype(np.float64)


def gen_boson_pt(events) -> np.ndarray:
    """Generator pT of the first Z (pdgId 23) in GenPart, 0 when there is none."""
    if "GenPart" not in events.fields:
        return np.zeros(len(events))
    gp = _require(events, "GenPart", ("pt", "pdgId"))
    z = gp[gp.pdgId == 23]
    return ak.to_numpy(ak.fill_none(ak.firsts(z.pt), 0.0)).astype(np.float64)
