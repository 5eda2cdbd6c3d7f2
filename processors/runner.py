"""The one execution path of every processor: :func:`run` over a fileset on the iterative,
futures or dask executor, checking inputs first and recording processed and skipped chunks.

1. :func:`preflight` checks every file of the datasets the processor reads, in parallel,
   and learns its entries and UUID; what it learnt is kept on disk
   (:class:`~processors.checkpoint.FileInfoCache`), so a rerun opens no file again.
2. :func:`plan` cuts the files into chunks (coffea's chunking; ``max_chunks`` per dataset).
3. :func:`processors.execution.execute` processes them, sorting failures: only a data file
   that cannot be read is retried (when transient) and then skipped; a model, corrections,
   the configuration or the code fail the run at once with one message
   (``analysis/errors.py``). The outputs merge exactly, in the fileset's order, whatever the
   executor; with ``checkpoint`` every processed chunk is kept on disk and a rerun loads it.
4. A run that skipped anything (a file at the check, a chunk while processing) fails listing
   them unless ``skip_bad_files``; with it, they are in the output's ``chunks["skipped"]``.

Normalization of a partly read simulated dataset (files or chunks skipped, ``max_chunks``):
``sum_genweight`` of the fileset is the sum of generator weights of all the dataset's files,
so the processor is given ``sum_genweight x f``, f = entries read / entries in the dataset's
files (the yields then estimate the whole dataset); chunks skipped while processing change f
afterwards, and the dataset's histograms (their ``dataset`` slice) and weighted cutflow are
scaled to the final f. The output's ``normalization`` records per dataset the entries in the
files and read, f, ``sum_genweight`` and the value used, and the generator weights read. A
simulated file that cannot be opened has no known entry count, so f is unknown: that fails
the run even with ``skip_bad_files`` (restore the file, or remove it and lower
``sum_genweight``). Data is not scaled; its f is recorded.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import uproot
from coffea import processor

from analysis.configuration import config_hash
from analysis.errors import (
    ConfigError,
    DataFileError,
    InputFileError,
    ProcessingError,
    SkippedInputError,
)

from .checkpoint import Checkpoints, FileInfoCache, chunk_key, default_cache_dir, fingerprint
from .execution import Executed, Settings, Task, _is_remote, classify, describe_read_error, execute
from .fileset import refuse_same_uuid

EXECUTORS = ("futures", "iterative", "dask")
CLUSTERS = ("gateway", "slurm", "htcondor")
#: seconds uproot waits on a remote (root://, http(s)://) file before giving up (coffea's default)
XROOTD_TIMEOUT = 60
#: the only errors a run may skip (analysis/errors.py)
BAD_INPUT_ERRORS = (DataFileError,)
#: keys of a run's output that :func:`run` adds around the processor's accumulators
OUTPUT_KEYS = ("chunks", "provenance", "notices", "datasets", "normalization")
NORMALIZATION_RULE = (
    "simulation: sum_genweight x f, f = entries read / entries in the dataset's files "
    "(processors/runner.py); data: not scaled")


@dataclass
class RunOptions:
    executor: str = "futures"
    workers: int = 2
    chunksize: int = 50_000
    max_chunks: int | None = None
    scheduler: str | None = None
    skip_bad_files: bool = False
    #: attempts after the first for a transient read error (waits retry_backoff x 1, 2, 4 s)
    retries: int = 2
    retry_backoff: float = 1.0
    status: bool = True
    systematics: bool = True
    #: directory of chunk checkpoints (resume a killed run with the same command)
    checkpoint: str | None = None
    #: persistent cache of file metadata: None the default directory, "" none
    cache_dir: str | None = None
    #: dask-gateway or dask-jobqueue cluster (adaptive up to ``workers``)
    cluster: str | None = None
    #: seconds to reach a dask scheduler, and to wait for its first worker
    connect_timeout: float = 5.0
    worker_timeout: float = 60.0
    #: uproot's open timeout (s) of remote files, in the preflight and on the workers
    xrootd_timeout: int = XROOTD_TIMEOUT
    extra: dict = field(default_factory=dict)


def check_options(opts: RunOptions) -> None:
    """One ConfigError line for options that cannot work, before any file is opened."""
    if opts.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {opts.executor!r}: choose from {', '.join(EXECUTORS)}")
    if opts.chunksize <= 0 or opts.workers <= 0:
        raise ConfigError(f"--chunksize and --workers must be positive, got {opts.chunksize} and {opts.workers}")
    if opts.max_chunks is not None and opts.max_chunks <= 0:
        raise ConfigError(f"--max-chunks must be a positive number of chunks per dataset, got {opts.max_chunks} "
                          "(leave it out to process everything)")
    if opts.retries < 0 or opts.retry_backoff < 0:
        raise ConfigError(f"--retries must be >= 0, got {opts.retries}")
    if opts.cluster is not None and opts.cluster not in CLUSTERS:
        raise ConfigError(f"unknown cluster {opts.cluster!r}: choose from {', '.join(CLUSTERS)}")
    if (opts.scheduler or opts.cluster) and opts.executor != "dask":
        raise ConfigError("--scheduler and --cluster need --executor dask")
    if opts.scheduler and opts.cluster:
        raise ConfigError("give --scheduler or --cluster, not both")
    if opts.scheduler and "://" not in opts.scheduler and ":" not in opts.scheduler:
        raise ConfigError(f"--scheduler {opts.scheduler!r} is not an address: give tcp://HOST:PORT "
                          "(e.g. tcp://127.0.0.1:8786)")
    if opts.cluster is not None:
        import importlib.util

        module, package = ("dask_gateway", "dask-gateway") if opts.cluster == "gateway" else ("dask_jobqueue",
                                                                                              "dask-jobqueue")
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"--cluster {opts.cluster} needs {package}: pip install 'softtrack[cluster]'")


# -- checking the files ------------------------------------------------------------------------
#: what the check learnt of each file that passed it in this process, by its cache key
_CHECKED: dict[tuple, dict] = {}


def _file_key(path: str, tree: str) -> tuple | None:
    if _is_remote(path):  # keyed by its header (UUID, length) once opened
        return None
    st = os.stat(path)
    return (os.path.abspath(path), tree, st.st_size, st.st_mtime_ns)


def _local_problem(path: str) -> str | None:
    """What is wrong with a local file before uproot sees it (empty, not ROOT)."""
    if os.path.isdir(path):
        return f"{path} is a directory, not a ROOT file"
    if os.path.getsize(path) == 0:
        return f"{path} is empty (0 bytes), not a ROOT file"
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"root":
        return f"{path} is not a ROOT file (it starts with {magic!r}, not b'root')"
    return None


def _inspect(path: str, tree: str, timeout: float | None = None,
             cache: FileInfoCache | None = None) -> tuple[str | None, dict | None, bool]:
    """(reason or None, {"numentries", "uuid"} or None, transient)."""
    try:
        key = _file_key(path, tree)
        if key is not None:
            if key in _CHECKED:
                return None, _CHECKED[key], False
            cached = cache.get(key) if cache is not None else None
            if cached is not None:
                _CHECKED[key] = cached
                return None, cached, False
            problem = _local_problem(path)
            if problem is not None:
                return problem, None, False
        with uproot.open(path, **({} if timeout is None else {"timeout": timeout})) as f:
            if key is None:  # remote: the header names the file
                key = (path, tree, f.file.fUUID.hex(), int(f.file.fEND))
                cached = _CHECKED.get(key) or (cache.get(key) if cache is not None else None)
                if cached is not None:
                    _CHECKED[key] = cached
                    return None, cached, False
            if tree not in f:
                return f"no {tree!r} tree in {path} (it has {', '.join(sorted(f.keys(cycle=False))) or 'no keys'})", None, False
            t = f[tree]
            info = {"numentries": int(t.num_entries), "uuid": f.file.fUUID}
            if len(t.keys()) == 0:
                return f"tree {tree!r} in {path} has no branches", None, False
    except Exception as err:  # noqa: BLE001 - any failure to open is a bad file
        kind, reason, transient = classify(err, path)
        reason = reason if kind == "data" else describe_read_error(err, path)
        if "://" in path:  # a remote file names the timeout it had
            reason += f" (remote, timeout {timeout} s: --xrootd-timeout)"
        return reason, None, transient
    _CHECKED[key] = info
    if cache is not None:
        cache.put(key, info)
    return None, info, False


def inspect_file(path: str, tree: str, timeout: float | None = None,
                 cache: FileInfoCache | None = None) -> tuple[str | None, dict | None]:
    """(None, {"numentries", "uuid"}) if the file opens and has the tree with branches, else
    (the reason, None). Reading a tree's metadata costs ~0.25 s for our 172 branches (uproot
    deserializes every TBranch), so the answer is kept until the file changes: in this process
    and, with ``cache``, on disk. ``timeout``: uproot's, for a remote file."""
    reason, info, _ = _inspect(path, tree, timeout, cache)
    return reason, info


def check_file(path: str, tree: str) -> str | None:
    """None if the file opens and has the tree with branches, else the reason."""
    return inspect_file(path, tree)[0]


def _file_cache(opts: RunOptions | None) -> FileInfoCache | None:
    if opts is None:
        return FileInfoCache(default_cache_dir())
    if opts.cache_dir == "":
        return None
    return FileInfoCache(opts.cache_dir or default_cache_dir())


def preflight(fileset: dict, skip_bad_files: bool, opts: RunOptions | None = None) -> tuple[dict, list[dict]]:
    """The datasets' files that pass :func:`inspect_file` (checked in parallel, transient
    failures retried), each good file's entries and UUID in its dataset's ``"file_info"``; the
    others skipped with their reason, or, without ``skip_bad_files``, one DataFileError
    naming the first and listing all in its ``details``."""
    opts = opts or RunOptions()
    cache, timeout = _file_cache(opts), getattr(opts, "xrootd_timeout", None)
    files = sorted({(p, t) for entry in fileset.values() for p, t in entry["files"].items()})

    def check(pt):
        for attempt in range(opts.retries + 1):
            reason, info, transient = _inspect(pt[0], pt[1], timeout, cache)
            if reason is None or not transient or attempt == opts.retries:
                return reason, info
            time.sleep(min(opts.retry_backoff * 2 ** attempt, 60.0))
        return reason, info

    if len(files) > 1:
        with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
            answers = dict(zip(files, pool.map(check, files), strict=True))
    else:
        answers = {pt: check(pt) for pt in files}
    good, skipped = {}, []
    for name, entry in fileset.items():
        ok, info = {}, {}
        for path, tree in entry["files"].items():
            reason, meta = answers[(path, tree)]
            if reason is None:
                ok[path], info[path] = tree, meta
            else:
                skipped.append({"dataset": name, "file": path, "entrystart": None, "entrystop": None,
                                "reason": reason, "attempts": 1})
        if ok:
            good[name] = {"files": ok, "metadata": entry["metadata"], "file_info": info}
    if skipped and not skip_bad_files:
        first = skipped[0]
        more = f" and {len(skipped) - 1} more file(s), listed above" if len(skipped) > 1 else ""
        raise DataFileError(f"{first['reason']} (dataset {first['dataset']}){more}; fix the fileset or pass "
                            "--skip-bad-files to skip bad files (recorded in the output)",
                            first["file"]) if len(skipped) == 1 else _listed(
            DataFileError(f"{first['reason']} (dataset {first['dataset']}){more}; fix the fileset or pass "
                          "--skip-bad-files to skip bad files (recorded in the output)", first["file"]), skipped)
    return good, skipped


def _listed(err, skipped: list[dict]):
    err.details = tuple(f"skipped: {_where(s)}: {s['reason']}" for s in skipped)
    return err


def _where(s: dict) -> str:
    if s.get("entrystart") is None:
        return f"{s['file']} (dataset {s['dataset']})"
    return f"{s['file']} entries {s['entrystart']}-{s['entrystop']} (dataset {s['dataset']})"


# -- planning and normalization ----------------------------------------------------------------
def _ranges(numentries: int, uuid: bytes, chunksize: int) -> list[tuple[int, int]]:
    """coffea's chunking of a file (``FileMeta.chunks``): equal chunks of about ``chunksize``."""
    from coffea.processor.executor import FileMeta

    meta = FileMeta("d", "f", "t", {"numentries": numentries, "uuid": uuid})
    return [(w.entrystart, w.entrystop) for w in meta.chunks(chunksize, False)]


def plan(good: dict, opts: RunOptions) -> dict[str, list[tuple[str, str, str, int, int]]]:
    """dataset -> [(file, tree, uuid, entrystart, entrystop)] in the fileset's order, at most
    ``max_chunks`` per dataset."""
    out = {}
    for name, entry in good.items():
        chunks = []
        for path, tree in entry["files"].items():
            info = entry["file_info"][path]
            uuid = str(uuidlib.UUID(bytes=info["uuid"]))
            chunks += [(path, tree, uuid, a, b) for a, b in _ranges(info["numentries"], info["uuid"], opts.chunksize)]
        out[name] = chunks[: opts.max_chunks] if opts.max_chunks is not None else chunks
    return out


def _fraction(read: int, total: int | None) -> float | None:
    if total is None:
        return None
    return 1.0 if total == 0 else read / total


def _needs_genweight(meta: dict) -> bool:
    return not meta["is_data"] and "sum_genweight" in meta


def _unknown_entries_error(name: str, skip: dict) -> InputFileError:
    return InputFileError(
        f"dataset {name}: {skip['file']} could not be read ({skip['reason']}), so the fraction of the dataset's "
        "events that is read, which scales its sum_genweight, is unknown: restore the file, or remove it from "
        "the fileset and lower sum_genweight to that of the files that remain")


def _task_metadata(meta: dict, fraction: float | None) -> dict:
    if fraction is None or fraction == 1.0 or not _needs_genweight(meta):
        return dict(meta)
    return dict(meta) | {"sum_genweight": float(meta["sum_genweight"]) * fraction}


def make_tasks(proc_fp: str, good: dict, chunks: dict, fractions: dict[str, float | None]) -> list[Task]:
    tasks = []
    for name, entries in chunks.items():
        meta = _task_metadata(good[name]["metadata"], fractions.get(name))
        for path, tree, uuid, a, b in entries:
            key = chunk_key(proc_fp, name, meta, path, tree, uuid, a, b)
            tasks.append(Task(len(tasks), name, path, tree, a, b, uuid, meta, key))
    return tasks


def scale_dataset(out: dict, dataset: str, factor: float) -> None:
    """Multiply the weighted content of ``dataset`` in an output by ``factor``: the
    ``dataset`` slice of every histogram (Weight storage: values x f, variances x f^2;
    Double: values x f; counts unchanged) and the cutflow's ``weighted``."""
    import hist
    import numpy as np

    def scale_hist(h, name):
        names = [ax.name for ax in h.axes]
        if "dataset" not in names:
            raise ProcessingError(f"histogram {name!r} has no dataset axis, so the normalization of dataset "
                                  f"{dataset} cannot be corrected for skipped chunks: rerun without skipping "
                                  "(fix or remove the bad files)")
        ax = h.axes["dataset"]
        if dataset not in list(ax):
            return
        i = names.index("dataset")
        sl = (slice(None),) * i + (ax.index(dataset),)
        view = h.view(flow=True)
        storage = h.storage_type
        if storage is hist.storage.Weight:
            view.value[sl] *= factor
            view.variance[sl] *= factor * factor
        elif storage is hist.storage.Double:
            view[sl] *= factor
        elif not np.issubdtype(np.asarray(view).dtype, np.integer):
            raise ProcessingError(f"histogram {name!r} ({storage.__name__} storage) cannot be renormalized")

    def walk(obj, name):
        if isinstance(obj, hist.Hist):
            scale_hist(obj, name)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                if k != "cutflow":
                    walk(v, f"{name}/{k}" if name else str(k))

    walk(out, "")
    for step in out.get("cutflow", {}).get(dataset, {}).values():
        step["weighted"] *= factor


# -- executors ---------------------------------------------------------------------------------
def dask_client(opts: RunOptions):
    """(client, cluster or None): the scheduler at ``opts.scheduler`` (reached within
    ``connect_timeout`` s, with a worker within ``worker_timeout`` s), an adaptive
    dask-gateway/dask-jobqueue cluster (``opts.cluster``), or a LocalCluster of ``workers``
    single-threaded processes. Prints the dashboard link."""
    from distributed import Client, LocalCluster

    cluster = None
    if opts.scheduler:
        address = opts.scheduler
        try:
            client = Client(address, timeout=opts.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise ConfigError(f"cannot reach the dask scheduler at {address} within {opts.connect_timeout:g} s "
                              f"({type(err).__name__}): start it (`dask scheduler`) or fix --scheduler") from None
        try:
            client.wait_for_workers(1, timeout=opts.worker_timeout)
        except (TimeoutError, OSError):
            client.close()
            raise ConfigError(f"the dask scheduler at {address} has no worker after {opts.worker_timeout:g} s: "
                              f"start some (`dask worker {address}`)") from None
    elif opts.cluster:
        cluster = _facility_cluster(opts)
        client = Client(cluster, set_as_default=False)
    else:
        cluster = LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster, set_as_default=False)
    link = None
    if opts.scheduler or opts.cluster:
        try:
            if "dashboard" in client.scheduler_info().get("services", {}):
                link = client.dashboard_link
        except Exception:  # noqa: BLE001 - the link is information only
            link = None
    if opts.status or link:
        print(f"dask: scheduler {client.scheduler.address}" + (f", dashboard {link}" if link else ""), file=sys.stderr)
    return client, cluster


def _facility_cluster(opts: RunOptions):
    try:
        if opts.cluster == "gateway":
            from dask_gateway import Gateway

            cluster = Gateway().new_cluster()
        else:
            import dask_jobqueue

            cls = dask_jobqueue.SLURMCluster if opts.cluster == "slurm" else dask_jobqueue.HTCondorCluster
            cluster = cls()  # queue, cores, memory: dask's jobqueue configuration (~/.config/dask/jobqueue.yaml)
    except ImportError:
        package = "dask-gateway" if opts.cluster == "gateway" else "dask-jobqueue"
        raise ConfigError(f"--cluster {opts.cluster} needs {package}: pip install 'softtrack[cluster]'") from None
    except Exception as err:  # noqa: BLE001 - the facility's configuration
        raise ConfigError(f"cannot start a {opts.cluster} cluster ({type(err).__name__}: {err}): check dask's "
                          "configuration for it (dask-gateway address or jobqueue.yaml)") from None
    cluster.adapt(minimum=1, maximum=opts.workers)
    return cluster


def _more_versions() -> dict:
    """The versions of the other libraries a result can depend on (numba, ONNX Runtime,
    correctionlib, scipy: absent ones are None) and the machine: the CPU's architecture and
    the SIMD extensions NumPy dispatches to (ONNX Runtime's and numba's kernels also follow the
    CPU, so two machines can differ in the last bits of floats and, through a cut, in events)."""
    from importlib import metadata

    out: dict = {}
    for name in ("numba", "onnxruntime", "correctionlib", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        from numpy._core._multiarray_umath import __cpu_features__

        simd = sorted(k for k, v in __cpu_features__.items() if v)
    except ImportError:  # private to NumPy: absent in some version
        simd = None
    out["machine"] = {"arch": platform.machine(), "simd": simd}
    return out


def provenance(proc: processor.ProcessorABC, opts: RunOptions) -> dict:
    """Versions (and the machine: :func:`_more_versions`), options, the hash of the effective
    configuration, the processor's models (``scorer.hashes()``) and corrections (path and
    names), and the time."""
    import awkward
    import coffea
    import hist
    import numpy

    config = getattr(proc, "config", None)
    prov = {
        "processor": getattr(proc, "name", type(proc).__name__), "executor": opts.executor,
        "workers": opts.workers, "chunksize": opts.chunksize, "max_chunks": opts.max_chunks,
        "python": platform.python_version(), "coffea": coffea.__version__, "awkward": awkward.__version__,
        "uproot": uproot.__version__, "hist": hist.__version__, "numpy": numpy.__version__,
        **_more_versions(),
        "config_hash": config_hash(config) if config is not None else None,
        "fingerprint": fingerprint(proc), "normalization": NORMALIZATION_RULE,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    scorer = getattr(proc, "scorer", None)
    if scorer is not None and hasattr(scorer, "hashes"):
        prov["models"] = scorer.hashes()
    corrections = getattr(proc, "corrections", None)
    if corrections is not None:
        prov["corrections"] = {"path": corrections.path, "names": corrections.names}
    if getattr(proc, "sr_edges", None):
        prov["sr_edges"] = {f"{k:g}": list(v) for k, v in proc.sr_edges.items()}
    prov["lumi_fb"] = dict(getattr(proc, "lumi_fb", {}))
    return prov


def _execute(proc, tasks: list[Task], opts: RunOptions, proc_fp: str) -> Executed:
    settings = Settings(retries=opts.retries, retry_backoff=opts.retry_backoff,
                        timeout=getattr(opts, "xrootd_timeout", None))
    checkpoints = None
    if opts.checkpoint:
        checkpoints = Checkpoints(opts.checkpoint, proc_fp)
        checkpoints.prepare({"processor": getattr(proc, "name", type(proc).__name__), "fingerprint": proc_fp,
                             "config_hash": config_hash(proc.config) if getattr(proc, "config", None) else None})
    if not tasks:
        return Executed()
    client = cluster = None
    try:
        if opts.executor == "dask" and not all(checkpoints is not None and checkpoints.exists(t.key) for t in tasks):
            client, cluster = dask_client(opts)
        return execute(tasks, proc, opts.executor if client is not None or opts.executor != "dask" else "iterative",
                       settings, workers=opts.workers, client=client, checkpoints=checkpoints, status=opts.status)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _assemble(result: dict, proc, opts: RunOptions, selected: dict, skipped: list[dict],
              normalization: dict, executed: Executed) -> dict:
    def order(c):
        return (c["dataset"], c["file"], -1 if c.get("entrystart") is None else c["entrystart"])

    result = dict(result)
    chunks = sorted(result.pop("chunks", []), key=order)
    cutflow = result.pop("cutflow", {})
    notices = result.pop("notices", set())
    out = {"histograms": result.pop("histograms", {})}
    out.update(result)
    out |= {
        "cutflow": {k: cutflow[k] for k in sorted(cutflow)},
        "chunks": {"processed": chunks, "skipped": sorted(skipped, key=order)},
        "provenance": provenance(proc, opts) | {"chunks_from_checkpoint": executed.from_checkpoint},
        "notices": sorted(notices),
        "datasets": {k: v["metadata"] for k, v in selected.items()},
        "normalization": {k: normalization[k] for k in sorted(normalization)},
    }
    return out


def _normalize(out: dict, selected: dict, totals: dict[str, int | None], planned: dict[str, float | None],
               executed: Executed, prior_read: dict[str, int] | None = None,
               prior_genweight: dict[str, float] | None = None) -> dict:
    """Scale each simulated dataset read only in part to its final fraction (see the module's
    docstring) and return the output's ``normalization`` entry."""
    table = {}
    for name, entry in selected.items():
        meta = entry["metadata"]
        read = executed.entries.get(name, 0) + (prior_read or {}).get(name, 0)
        total = totals.get(name)
        final = _fraction(read, total)
        row = {"is_data": bool(meta["is_data"]), "entries_in_files": total, "entries_read": read, "fraction": final}
        if _needs_genweight(meta):
            used = planned.get(name)
            if read and used is not None and final is not None and used != final:
                scale_dataset(out, name, used / final)
            s = float(meta["sum_genweight"])
            row |= {"sum_genweight": s, "sum_genweight_used": s * final if final is not None else None,
                    "genweight_read": executed.genweight.get(name, 0.0) + (prior_genweight or {}).get(name, 0.0)}
        table[name] = row
    return table


def _check_skips(skipped: list[dict], processed: int, opts: RunOptions) -> None:
    if not skipped:
        return
    first = skipped[0]
    files = len({s["file"] for s in skipped})
    if processed == 0:
        raise _listed(DataFileError(f"nothing could be read: {len(skipped)} chunk(s) or file(s) of {files} file(s) "
                                    f"failed, first {_where(first)}: {first['reason']}", first["file"]), skipped)
    if not opts.skip_bad_files:
        what = (f"{len(skipped)} chunks or files ({files} file(s), listed above) could not be read, the first "
                f"{_where(first)}" if len(skipped) > 1 else f"{_where(first)} could not be read")
        raise SkippedInputError(f"{what}: {first['reason']}; fix or remove the files and rerun (with "
                                "--checkpoint the rest is not processed again), or pass --skip-bad-files to skip "
                                "them (recorded in the output)",
                                tuple(f"skipped: {_where(s)}: {s['reason']}" for s in skipped))


def run(proc: processor.ProcessorABC, fileset: dict, opts: RunOptions) -> dict:
    """Run ``proc`` over the datasets of ``fileset`` it accepts: the one execution path of every
    processor. Returns the output dict: ``histograms`` and the processor's other accumulators,
    ``cutflow`` (datasets sorted), ``chunks`` (processed and skipped, sorted), ``provenance``,
    ``notices`` (sorted), ``datasets`` (their metadata) and ``normalization``."""
    check_options(opts)
    name = getattr(proc, "name", type(proc).__name__)
    selected = {k: v for k, v in fileset.items() if proc.accepts(v["metadata"])}
    if not selected:
        raise ConfigError(f"no dataset of the fileset is read by the {name} processor")
    validate = getattr(proc, "validate", None)  # AnalysisProcessor's hook; other coffea processors have none
    if validate is not None:
        validate(selected)  # models, corrections, templates: before any file is opened
    good, skipped = preflight(selected, opts.skip_bad_files, opts)
    refuse_same_uuid(good)  # the same file under two names (a copy, a local path and a URL)
    chunks = plan(good, opts)
    totals, planned = {}, {}
    for ds, entry in selected.items():
        lost = [s for s in skipped if s["dataset"] == ds]
        if lost and _needs_genweight(entry["metadata"]):
            raise _unknown_entries_error(ds, lost[0])
        totals[ds] = None if lost else sum(i["numentries"] for i in good[ds]["file_info"].values())
        planned[ds] = _fraction(sum(b - a for *_, a, b in chunks.get(ds, [])), totals[ds])
    proc_fp = fingerprint(proc)
    tasks = make_tasks(proc_fp, good, chunks, planned)
    executed = _execute(proc, tasks, opts, proc_fp)
    skipped = skipped + executed.skipped
    _check_skips(skipped, executed.ok, opts)
    result = dict(executed.out or {})
    normalization = _normalize(result, selected, totals, planned, executed)
    return _assemble(result, proc, opts, selected, skipped, normalization, executed)


def _dataset_totals(selected: dict, opts: RunOptions) -> dict[str, int | None]:
    """Entries in each dataset's files (None where a file cannot be read); cached checks."""
    cache = _file_cache(opts)
    totals = {}
    for ds, entry in selected.items():
        infos = [inspect_file(p, t, getattr(opts, "xrootd_timeout", None), cache)[1] for p, t in entry["files"].items()]
        totals[ds] = None if any(i is None for i in infos) else sum(i["numentries"] for i in infos)
    return totals


def rerun_skipped(proc: processor.ProcessorABC, fileset: dict, previous: dict, opts: RunOptions) -> dict:
    """Process only the entries ``previous`` (an output of :func:`run`) skipped and merge them
    into it: the merged output, as :func:`run` would have written it had those entries been
    read the first time (up to the order of floating-point additions). ``previous`` is not
    modified."""
    import copy

    from coffea.processor import accumulate

    check_options(opts)
    prov = previous.get("provenance", {})
    fp = fingerprint(proc)
    if prov.get("fingerprint") != fp:
        raise ConfigError(f"the output was made by processor {prov.get('processor')!r} with configuration "
                          f"{prov.get('config_hash')} and other options or code (fingerprint "
                          f"{str(prov.get('fingerprint'))[:12]}, now {fp[:12]}): rerun with the options it was made "
                          "with, or run it again whole")
    old_skipped = previous["chunks"]["skipped"]
    if not old_skipped:
        return previous
    previous = copy.deepcopy(previous)
    selected = {k: v for k, v in fileset.items() if k in previous["datasets"]}
    missing = sorted({s["dataset"] for s in old_skipped} - set(selected))
    if missing:
        raise ConfigError(f"datasets {', '.join(missing)} of the output are not in the fileset: give the fileset "
                          "it was made from")
    cache = _file_cache(opts)
    still, chunks = [], {}
    for s in sorted(old_skipped, key=lambda c: (c["dataset"], c["file"], c.get("entrystart") or 0)):
        tree = selected[s["dataset"]]["files"].get(s["file"], "Events")
        reason, info = inspect_file(s["file"], tree, getattr(opts, "xrootd_timeout", None), cache)
        if reason is not None:
            still.append(dict(s, reason=reason))
            continue
        uuid = str(uuidlib.UUID(bytes=info["uuid"]))
        ranges = ([(s["entrystart"], s["entrystop"])] if s.get("entrystart") is not None
                  else _ranges(info["numentries"], info["uuid"], opts.chunksize))
        chunks.setdefault(s["dataset"], []).extend((s["file"], tree, uuid, a, b) for a, b in ranges)
    norm = previous.get("normalization", {})
    totals = _dataset_totals(selected, opts)
    planned, prior_read = {}, {}
    for ds, entry in selected.items():
        row = norm.get(ds, {})
        prior_read[ds] = int(row.get("entries_read", 0))
        planned[ds] = _fraction(prior_read[ds] + sum(b - a for *_, a, b in chunks.get(ds, [])), totals[ds])
        old = row.get("fraction")
        if _needs_genweight(entry["metadata"]) and prior_read[ds] and old is not None and old != planned[ds]:
            scale_dataset(previous, ds, old / planned[ds])  # to the fraction the new chunks are normalized to
    tasks = make_tasks(fp, selected, chunks, planned)
    executed = _execute(proc, tasks, opts, fp)
    skipped = still + executed.skipped
    _check_skips(skipped, executed.ok + len(previous["chunks"]["processed"]), opts)
    raw = {k: v for k, v in previous.items() if k not in OUTPUT_KEYS}
    raw["chunks"] = list(previous["chunks"]["processed"])
    raw["notices"] = set(previous.get("notices", ()))
    merged = accumulate([raw, executed.out]) if executed.out is not None else raw
    prior_gw = {k: v.get("genweight_read", 0.0) for k, v in norm.items()}
    normalization = _normalize(merged, selected, totals, planned, executed, prior_read, prior_gw)
    return _assemble(merged, proc, opts, selected, skipped, normalization, executed)


def normalization_lumi(fileset: dict, stream: str | None, default: dict[str, float]) -> dict[str, float]:
    """Luminosity per era for simulation: the data stream's ``lumi_fb`` (pseudo-data: the
    equivalent luminosity of the generated stream) where the fileset has it, else ``default``.

    Several datasets of one stream and era (run periods) add up. A processor that names no
    stream (``stream = None``) takes the luminosity of the era's data, which must then be the
    same in every stream the fileset holds for that era; streams recorded with different
    luminosities are one ConfigError (the processor should name the stream it reads).
    """
    per_stream: dict[str, dict[str, float]] = {}
    for entry in fileset.values():
        meta = entry["metadata"]
        if meta["is_data"] and (stream is None or meta["process"] == f"data_{stream}") and "lumi_fb" in meta:
            era = per_stream.setdefault(str(meta["era"]), {})
            era[meta["process"]] = era.get(meta["process"], 0.0) + float(meta["lumi_fb"])
    lumi = dict(default)
    for era, streams in per_stream.items():
        values = sorted(set(streams.values()))
        if len(values) > 1 and not math.isclose(values[0], values[-1], rel_tol=1e-9):
            listed = ", ".join(f"{k} {v:.6g} fb^-1" for k, v in sorted(streams.items()))
            raise ConfigError(f"era {era}: the fileset's data streams have different luminosities ({listed}) and "
                              "the processor names no stream to normalize simulation to: set its `stream` "
                              "class attribute, or give a fileset with one data stream per era")
        lumi[era] = values[0]
    return lumi


def make_processor(cls, fileset: dict, config=None, systematics: bool = True, **kwargs):
    """An instance of processor class ``cls`` for ``fileset``: its analysis' configuration
    (default: the defaults), simulation normalized to the luminosity of the data stream it
    reads where the fileset records one (:func:`normalization_lumi`), and ``kwargs``."""
    config = cls.config_class() if config is None else config
    lumi = normalization_lumi(fileset, cls.stream, config.lumi_fb)
    return cls(config=config, lumi_fb=lumi, systematics=systematics, **kwargs)
