"""Write generated toy samples as NanoAOD-like ROOT files and a coffea fileset JSON.

Writes DIR/<dataset>.root (an ``Events`` tree with NanoAOD ``n<Collection>`` counters and the
track extension of analysis/contract.py) and DIR/fileset.json:
``{dataset: {"files": {path: "Events"}, "metadata": {...}}}`` with metadata ``process``,
``era``, ``is_data``, ``xsec_pb`` and ``sum_genweight`` (simulation), ``lumi_fb``
(pseudo-data: the equivalent luminosity of the generated stream), ``m_chargino`` and
``dm_chargino`` (signal). Pseudo-data streams are data_met, data_singlemuon, data_jetht.
DIR/request.json records what was asked for and its :func:`request_hash`, the sha256 of
fileset.json and each file's name, size, UUID and entries, so that a caller can reuse a
sample already there (:func:`present_fileset`, which checks all of it: :func:`check_sample`).

A sample replaces the one in DIR atomically: it is written into DIR/.generate-<pid>/, and
only when it is complete is a commit record written there and the files moved into DIR
(request.json withdrawn first, fileset.json and request.json moved last; files of the
previous sample that the new one lacks removed). A generate killed before the commit leaves
the previous sample as it was; one killed during the moves is finished by the next
:func:`generate_samples` or :func:`present_fileset` on DIR (:func:`recover`). Other files in
DIR are left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from analysis.errors import ConfigError
from analysis.io import write_atomic

from .jagged import Jagged
from .memory import keep_freed_memory
from .processes import DATA_STREAMS, signal_dataset_name
from .sample import generate_mc, generate_stream
from .smuon import SIGNAL_PROCESS as SMUON_SIGNAL
from .smuon import (
    SMUON_GENERATOR_VERSION,
    SMUON_PROCESSES,
    generate_smuon_sample,
    smuon_dataset_name,
)

COMPRESSION = uproot.ZSTD(1)
FILESET = "fileset.json"
REQUEST = "request.json"
#: DIR/.generate-<pid>/: a sample being written by process <pid>; COMMIT in it: complete
STAGING_PREFIX = ".generate-"
COMMIT = "commit.json"
TREE = "Events"
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


def request_hash(eras, procs, points, n, seed, signal_events: int | None = None, plans: dict | None = None,
                 stream_lumi_fb: dict | None = None, skim: bool = False) -> str:
    """sha256 (16 hex digits) of what a sample is made of: the generator version, eras, processes,
    signal points, events, seed, and the plans, stream luminosities and skim where given."""
    extra = [] if not (plans or stream_lumi_fb or skim) else [
        {k: v.as_dict() for k, v in sorted((plans or {}).items())}, dict(sorted((stream_lumi_fb or {}).items())), skim]
    if any(p in SMUON_PROCESSES for p in procs):  # the smuon processes' own version
        extra = [*extra, {"smuon_generator_version": SMUON_GENERATOR_VERSION}]
    text = json.dumps([GENERATOR_VERSION, eras, procs, points, n, seed] + ([signal_events] if signal_events else [])
                      + extra)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_record(path: Path) -> dict:
    """What request.json records of a written file: name, size, UUID and entries."""
    path = Path(path)
    with uproot.open(path) as f:
        uuid, entries = str(f.file.uuid), int(f[TREE].num_entries)
    return {"file": path.name, "size": path.stat().st_size, "uuid": uuid, "entries": entries}


def _generate_one(task) -> tuple[str, dict, dict, float]:
    """One sample: generate and write it into the staging directory (its fileset entry names
    its final place); its own random stream makes it independent of the others."""
    staging, final, dataset, proc, era, point, n, n_signal, seed, plan, lumi_fb, skim = task
    keep_freed_memory()  # this process (or worker) is generating: reuse freed memory, no page faults
    t0 = time.perf_counter()
    if proc in DATA_STREAMS:
        branches, meta = generate_stream(proc, era, n, seed, lumi_fb=lumi_fb, skim=skim)
    elif proc in SMUON_PROCESSES:  # the smuon search's processes (analysis/toymc/smuon.py)
        branches, meta = generate_smuon_sample(proc, n_signal if proc == SMUON_SIGNAL else n, seed, point)
    elif proc == "signal":
        branches, meta = generate_mc(proc, era, n_signal, seed, m_chargino=point[0], dm=point[1])
    else:
        branches, meta = generate_mc(proc, era, n, seed, plan=plan)
    name = f"{dataset}.root"
    write_root(staging / name, branches)
    meta = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.items()}
    meta["generator_version"] = GENERATOR_VERSION
    entry = {"files": {str((final / name).resolve()): TREE}, "metadata": meta}
    return dataset, entry, file_record(staging / name), time.perf_counter() - t0


def _collect(results, fileset: dict, records: dict, n_jobs: int, progress) -> None:
    for i, (dataset, entry, record, seconds) in enumerate(results):
        fileset[dataset] = entry
        records[dataset] = record
        if progress:
            progress(i + 1, n_jobs, dataset, entry["metadata"]["n_events"], seconds)


def generate_samples(out: Path, eras, procs, points, n: int, seed: int, progress=None,
                     signal_events: int | None = None, workers: int = 1, plans: dict | None = None,
                     stream_lumi_fb: dict | None = None, skim: bool = False) -> dict:
    """Generate everything requested into ``out``, replacing the sample there atomically
    (module docstring); returns the fileset dict (also written).
    ``signal_events`` (default ``n``) is the number of events per signal point; ``workers``
    processes generate samples in parallel (the files do not depend on it). ``plans``:
    process -> processes.SamplePlan (slices and enrichment; about ``n`` events each);
    ``stream_lumi_fb``: stream -> stated luminosity per era (fb^-1; the others: about ``n``
    events); ``skim``: the streams' reconstructed-level skims (processes.STREAM_SKIMS)."""
    plans, stream_lumi_fb = dict(plans or {}), dict(stream_lumi_fb or {})
    unknown = sorted((set(plans) - set(procs)) | (set(stream_lumi_fb) - set(procs)))
    if unknown:
        raise ConfigError(f"plans or luminosities for processes not requested: {unknown}")
    out = Path(out)
    staging = out / f"{STAGING_PREFIX}{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        recover(out)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as err:
        raise ConfigError(f"cannot write to output directory {out}: {err.strerror or err}") from None
    jobs = []
    for era in eras:
        for p in procs:
            if p == "signal":
                jobs += [(signal_dataset_name(m, dm) + f"_{era}", p, era, (m, dm)) for m, dm in points]
            elif p == SMUON_SIGNAL:
                jobs += [(smuon_dataset_name(m, x) + f"_{era}", p, era, (m, x)) for m, x in points]
            else:
                jobs.append((f"{p}_{era}", p, era, None))
    fileset: dict = {}
    records: dict = {}
    tasks = [(staging, out, dataset, proc, era, point, n, signal_events or n, seed, plans.get(proc),
              stream_lumi_fb.get(proc), skim) for dataset, proc, era, point in jobs]
    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"))
            with pool:
                futures = {i: pool.submit(_generate_one, tasks[i])
                           for i in _start_order([_trials_per_event(plans.get(p)) for _, p, _, _ in jobs])}
                try:
                    _collect((futures[i].result() for i in range(len(tasks))), fileset, records, len(tasks),
                             progress)
                except BaseException:  # a failed sample stops the others not started
                    for f in futures.values():
                        f.cancel()
                    raise
        else:
            _collect(map(_generate_one, tasks), fileset, records, len(tasks), progress)
        fileset_text = json.dumps(fileset, indent=1)
        request = {"hash": request_hash(eras, procs, points, n, seed, signal_events, plans, stream_lumi_fb, skim),
                   "eras": eras, "processes": procs, "signal_points": points, "events_per_sample": n,
                   "plans": {k: v.as_dict() for k, v in sorted(plans.items())}, "stream_lumi_fb": stream_lumi_fb,
                   "skim": skim,
                   "signal_events": signal_events or n, "seed": seed,
                   "fileset_sha256": hashlib.sha256(fileset_text.encode()).hexdigest(), "files": records}
        (staging / FILESET).write_text(fileset_text)
        (staging / REQUEST).write_text(json.dumps(request, indent=1))
        names = [r["file"] for r in records.values()]
        stale = sorted(set(_sample_files(out)) - set(names))
        write_atomic(staging / COMMIT, json.dumps({"move": [*names, FILESET, REQUEST], "remove": stale}))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _finish(staging, out)
    return fileset


def _start_order(cost: list[float]) -> list[int]:
    """The order in which the workers start the samples (their results are collected in the
    request's order): the samples of most trials first, so that the others fill the
    workers' tails, except that the second to start is the cheapest: on a fresh checkout
    its worker compiles the generator's JIT kernels (~40 s, cached on disk by numba) while
    the first is still in the trials of the heaviest sample, whose events then find the
    kernels of their soft part compiled instead of compiling them once more."""
    order = sorted(range(len(cost)), key=lambda i: -cost[i])
    if len(order) > 2:
        order.insert(1, order.pop())
    return order


def _trials_per_event(plan) -> float:
    """Trials generated per kept event, at least: the prescale of an enriched plan's rest."""
    return float(plan.enrichment.rest) if plan is not None and plan.enrichment is not None else 1.0


def _sample_files(out: Path) -> list[str]:
    """Names of the files of the sample in ``out`` (from its request.json, else its
    fileset.json: files directly in ``out``)."""
    try:
        files = json.loads((out / REQUEST).read_text()).get("files")
        if isinstance(files, dict):
            return [r["file"] for r in files.values()]
    except (OSError, ValueError, TypeError, KeyError):
        pass
    try:
        fileset = json.loads((out / FILESET).read_text())
        here = out.resolve()
        return [Path(f).name for d in fileset.values() for f in d["files"] if Path(f).parent == here]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


def _move(src: Path, dst: Path) -> None:
    os.replace(src, dst)


def _finish(staging: Path, out: Path) -> None:
    """Move the committed sample in ``staging`` into ``out``; idempotent (a rerun after a kill
    continues where it stopped)."""
    commit = json.loads((staging / COMMIT).read_text())
    # withdraw the previous sample before any of its files is replaced: a reader then finds
    # either the complete previous sample, no sample, or the complete new one
    if (staging / REQUEST).exists():
        (out / REQUEST).unlink(missing_ok=True)
    if (staging / FILESET).exists():
        (out / FILESET).unlink(missing_ok=True)
    for name in commit["move"]:
        if (staging / name).exists():
            _move(staging / name, out / name)
    for name in commit["remove"]:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(out: Path) -> None:
    """Finish the commit of a sample whose generate was killed while moving it into ``out``,
    and remove the staging directories of generates killed before their commit (those of
    running processes are left alone)."""
    out = Path(out)
    if not out.is_dir():
        return
    for staging in sorted(out.glob(f"{STAGING_PREFIX}*")):
        pid = staging.name[len(STAGING_PREFIX):]
        if not staging.is_dir() or (pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))):
            continue
        if (staging / COMMIT).is_file():
            _finish(staging, out)
        else:
            shutil.rmtree(staging, ignore_errors=True)


def check_sample(out: Path, wanted_hash: str) -> str | None:
    """Why ``out`` does not hold a complete sample of the request with hash ``wanted_hash``
    (:func:`request_hash`), or None if it does: request.json of that hash, fileset.json the
    one written with it (sha256), and every file it lists present with the name, size, UUID
    and entries recorded."""
    out = Path(out)
    try:
        request = json.loads((out / REQUEST).read_text())
    except FileNotFoundError:
        return f"no {REQUEST} in {out}"
    except (OSError, ValueError) as err:
        return f"{out / REQUEST} is unreadable: {err}"
    if not isinstance(request, dict) or request.get("hash") != wanted_hash:
        got = request.get("hash") if isinstance(request, dict) else None
        return f"{out} holds another request (hash {got}, wanted {wanted_hash})"
    records = request.get("files")
    if not isinstance(records, dict) or "fileset_sha256" not in request:
        return f"{out / REQUEST} records no files (written by an older generator)"
    try:
        text = (out / FILESET).read_bytes()
    except OSError:
        return f"no {FILESET} in {out}"
    if hashlib.sha256(text).hexdigest() != request["fileset_sha256"]:
        return f"{out / FILESET} is not the one written with {REQUEST}"
    fileset = json.loads(text)
    if set(fileset) != set(records):
        return f"{out / FILESET} and {REQUEST} list different datasets"
    for dataset, entry in fileset.items():
        paths = list(entry["files"])
        record = records[dataset]
        if len(paths) != 1 or Path(paths[0]).name != record["file"]:
            return f"dataset {dataset}: {FILESET} lists {paths}, {REQUEST} {record['file']}"
        path = Path(paths[0])
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != record["size"]:
            return f"{path} has {path.stat().st_size} bytes, the sample {record['size']}"
        try:
            found = file_record(path)
        except Exception as err:  # noqa: BLE001 - any reading failure: not the file written
            return f"{path} is unreadable: {type(err).__name__}: {err}"
        for key in ("uuid", "entries"):
            if found[key] != record[key]:
                return f"{path} has {key} {found[key]}, the sample {record[key]}"
    return None


def present_fileset(out: Path, wanted_hash: str) -> Path | None:
    """``out``/fileset.json if ``out`` holds a complete sample of the request with hash
    ``wanted_hash`` (:func:`check_sample`), else None; first finishes a commit that a killed
    generate left half done (:func:`recover`)."""
    out = Path(out)
    if not out.is_dir():
        return None
    try:
        recover(out)
    except OSError:
        pass  # a read-only directory: check what is there
    return out / FILESET if check_sample(out, wanted_hash) is None else None
