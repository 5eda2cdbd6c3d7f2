"""Write generated toy samples as NanoAOD-like ROOT files and a coffea fileset JSON.

Writes DIR/<dataset>.root (an ``Events`` tree with NanoAOD ``n<Collection>`` counters and the
track extension of analysis/contract.py) and DIR/fileset.json:
``{dataset: {"files": {path: "Events"}, "metadata": {...}}}`` with metadata ``process``,
``era``, ``is_data``, ``xsec_pb`` and ``sum_genweight`` (simulation), ``lumi_fb``
(pseudo-data: the equivalent luminosity of the generated stream), ``m_chargino`` and
``dm_chargino`` (signal). Pseudo-data streams are data_met, data_singlemuon, data_jetht.
DIR/request.json records what was asked for and its :func:`request_hash`, so that a caller
can reuse a sample already there (:func:`present_fileset`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from analysis.errors import ConfigError

from .jagged import Jagged
from .memory import keep_freed_memory
from .processes import DATA_STREAMS, signal_dataset_name
from .sample import generate_mc, generate_stream

COMPRESSION = uproot.ZSTD(1)
GENERATOR_VERSION = "7"  # 2: numba track/vertex/PF kernels (new random streams); 3: fewer
#   transcendental calls per track (same random streams, values differ in the last bits); 4: the
#   kernels draw from inlined xoshiro256++ streams (analysis.toymc.rand; new random streams); 5: the
#   track kernel smears by angle-addition formulas and the isolation sum is vectorized (same
#   random streams, values differ in the last bits); 6: jet tags and lepton variables are drawn
#   only for the reconstructed jets and the generator's leptons (new random streams); 7: the
#   track kernel may multiply by reciprocals instead of dividing (values differ in the last bits)
#: store jagged float fields as float32 (NanoAOD precision); these stay float64-free
FLOAT_DTYPE = np.float32

#: float branches stored with a reduced mantissa as in NanoAOD (bits kept), for compression;
#: the helix parameters, reference points and vertices keep full float32 precision
MANTISSA_BITS: dict[str, int] = {
    **{f"Track_{b}": 12 for b in ("cov00", "cov01", "cov02", "cov03", "cov04", "cov11", "cov12", "cov13",
                                   "cov14", "cov22", "cov23", "cov24", "cov33", "cov34", "cov44")},
    "Track_chi2ndof": 10, "Track_pfIso03": 12, "Track_dxyErr": 12, "Track_dzErr": 12,
    "PFCand_pt": 12, "PFCand_eta": 12, "PFCand_phi": 12,
    "Jet_btagDeepB": 10, "Jet_chHEF": 10, "Jet_neHEF": 10, "Jet_mass": 10, "GenJet_mass": 10,
    "Muon_pfRelIso03_all": 10, "Electron_pfRelIso03_all": 10, "Photon_pfRelIso03_all": 10,
    "SV_chi2": 10, "SV_mass": 10, "PV_chi2": 10,
}


def truncate_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` mantissa bits (NanoAOD-style lossy precision)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    drop = 23 - bits
    u = a.view(np.uint32)
    rounded = (u + np.uint32(1 << (drop - 1))) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    return np.where(np.isfinite(a), rounded.view(np.float32), a)


def to_arrays(branches: dict) -> dict:
    """Branch dict of the generator -> dict for uproot (jagged collections as awkward records)."""
    out = {}
    for key, v in branches.items():
        if isinstance(v, Jagged):
            # the layout directly (a list of records over the collection's offsets): the same
            # array as ak.zip of ak.unflatten per field, without ~0.3 ms of dispatch per field
            fields = {f: ak.contents.NumpyArray(_stored(f"{key}_{f}", a, jagged=True)) for f, a in v.fields.items()}
            record = ak.contents.RecordArray(list(fields.values()), list(fields), length=int(v.counts.sum()))
            out[key] = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(v.offsets), record))
        else:
            out[key] = _stored(key, v, jagged=False)
    return out


def _stored(branch: str, a, jagged: bool) -> np.ndarray:
    """An array as written: float64 -> FLOAT_DTYPE (and int64 -> int32 in collections), rounded to
    the branch's MANTISSA_BITS."""
    a = np.asarray(a)
    if a.dtype == np.float64:
        a = a.astype(FLOAT_DTYPE)
    elif a.dtype == np.int64 and jagged:
        a = a.astype(np.int32)
    if branch in MANTISSA_BITS:
        a = truncate_mantissa(a, MANTISSA_BITS[branch])
    return a


def write_root(path: Path, branches: dict) -> None:
    arrays = to_arrays(branches)
    tmp = path.with_suffix(".root.tmp")
    with uproot.recreate(tmp, compression=COMPRESSION) as f:
        f.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in arrays.items()},
                 counter_name=lambda c: "n" + c, field_name=lambda outer, inner: f"{outer}_{inner}")
        f["Events"].extend(arrays)
    os.replace(tmp, path)


def request_hash(eras, procs, points, n, seed, signal_events: int | None = None) -> str:
    text = json.dumps([GENERATOR_VERSION, eras, procs, points, n, seed] + ([signal_events] if signal_events else []))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _generate_one(task) -> tuple[str, dict, float]:
    """One sample: generate and write it; its own random stream makes it independent of the others."""
    out, dataset, proc, era, point, n, n_signal, seed = task
    keep_freed_memory()  # this process (or worker) is generating: reuse freed memory, no page faults
    t0 = time.perf_counter()
    if proc in DATA_STREAMS:
        branches, meta = generate_stream(proc, era, n, seed)
    elif proc == "signal":
        branches, meta = generate_mc(proc, era, n_signal, seed, m_chargino=point[0], dm=point[1])
    else:
        branches, meta = generate_mc(proc, era, n, seed)
    path = out / f"{dataset}.root"
    write_root(path, branches)
    meta = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.items()}
    meta["generator_version"] = GENERATOR_VERSION
    return dataset, {"files": {str(path.resolve()): "Events"}, "metadata": meta}, time.perf_counter() - t0


def _collect(results, fileset: dict, n_jobs: int, progress) -> None:
    for i, (dataset, entry, seconds) in enumerate(results):
        fileset[dataset] = entry
        if progress:
            progress(i + 1, n_jobs, dataset, entry["metadata"]["n_events"], seconds)


def generate_samples(out: Path, eras, procs, points, n: int, seed: int, progress=None,
                     signal_events: int | None = None, workers: int = 1) -> dict:
    """Generate everything requested into ``out``; returns the fileset dict (also written).
    ``signal_events`` (default ``n``) is the number of events per signal point; ``workers``
    processes generate samples in parallel (the files do not depend on it)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to output directory {out}: {err.strerror or err}") from None
    jobs = []
    for era in eras:
        for p in procs:
            if p == "signal":
                jobs += [(signal_dataset_name(m, dm) + f"_{era}", p, era, (m, dm)) for m, dm in points]
            else:
                jobs.append((f"{p}_{era}", p, era, None))
    fileset = {}
    tasks = [(out, dataset, proc, era, point, n, signal_events or n, seed) for dataset, proc, era, point in jobs]
    if workers > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"))
        with pool:
            results = pool.map(_generate_one, tasks)
            _collect(results, fileset, len(tasks), progress)
    else:
        _collect(map(_generate_one, tasks), fileset, len(tasks), progress)
    request = {"hash": request_hash(eras, procs, points, n, seed, signal_events), "eras": eras, "processes": procs,
               "signal_points": points, "events_per_sample": n, "signal_events": signal_events or n, "seed": seed}
    (out / "fileset.json").write_text(json.dumps(fileset, indent=1))
    (out / "request.json").write_text(json.dumps(request, indent=1))
    return fileset


def present_fileset(out: Path, wanted_hash: str) -> Path | None:
    """``out``/fileset.json if ``out`` holds a complete sample of the request with hash
    ``wanted_hash`` (:func:`request_hash`; every file of its fileset present), else None."""
    request = out / "request.json"
    if not request.is_file() or json.loads(request.read_text()).get("hash") != wanted_hash:
        return None
    fileset = json.loads((out / "fileset.json").read_text())
    if all(Path(f).is_file() for d in fileset.values() for f in d["files"]):
        return out / "fileset.json"
    return None
