"""The one execution path of every processor: :func:`run` over a fileset with coffea's
executors (iterative, futures, dask), checking inputs first and recording processed and
skipped chunks.

Bad input: a missing file, a file that is not ROOT or is truncated, a file without the
``Events`` tree: with ``skip_bad_files`` it is skipped and the reason recorded in the output,
otherwise the run stops with one clear message. Chunks that fail while processing are
retried by the executor, then treated the same way.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field

import uproot
from coffea import processor
from coffea.processor.executor import FileMeta

from analysis.configuration import config_hash
from analysis.errors import ConfigError, InputFileError

from .schema import SoftTrackSchema

EXECUTORS = ("futures", "iterative", "dask")
#: exceptions that mean "this input is bad" (as opposed to a bug in the code)
BAD_INPUT_ERRORS = (OSError, ValueError, KeyError, uproot.exceptions.KeyInFileError, InputFileError)


@dataclass
class RunOptions:
    executor: str = "futures"
    workers: int = 2
    chunksize: int = 50_000
    max_chunks: int | None = None
    scheduler: str | None = None
    skip_bad_files: bool = False
    retries: int = 2
    status: bool = True
    systematics: bool = True
    extra: dict = field(default_factory=dict)


#: what the check learnt of each local file that passed it, keyed by (absolute path, tree, size,
#: modification time): a process that runs several passes over the same files (the main job runs
#: four) reads each tree's metadata once, and a file that changes is checked again
_CHECKED: dict[tuple, dict] = {}


def _file_key(path: str, tree: str) -> tuple | None:
    if "://" in path:  # remote (xrootd, http): nothing to stat, checked every time
        return None
    st = os.stat(path)
    return (os.path.abspath(path), tree, st.st_size, st.st_mtime_ns)


def inspect_file(path: str, tree: str) -> tuple[str | None, dict | None]:
    """(None, {"numentries", "uuid"}) if the file opens and has the tree with branches, else
    (the reason, None). Reading a tree's metadata costs ~0.25 s for our 172 branches (uproot
    deserializes every TBranch), so the answer for a local file is kept until it changes."""
    try:
        key = _file_key(path, tree)
        if key in _CHECKED:
            return None, _CHECKED[key]
        with uproot.open(path) as f:
            if tree not in f:
                return f"no {tree!r} tree in {path}", None
            t = f[tree]
            info = {"numentries": t.num_entries, "uuid": f.file.fUUID}
            if len(t.keys()) == 0:
                return f"tree {tree!r} in {path} has no branches", None
    except FileNotFoundError:
        return f"file {path} not found", None
    except Exception as err:  # noqa: BLE001 - any failure to open is a bad file
        return f"cannot read {path}: {type(err).__name__}: {err}", None
    if key is not None:
        _CHECKED[key] = info
    return None, info


def check_file(path: str, tree: str) -> str | None:
    """None if the file opens and has the tree with branches, else the reason."""
    return inspect_file(path, tree)[0]


def preflight(fileset: dict, skip_bad_files: bool) -> tuple[dict, list[dict]]:
    """The datasets' files that pass :func:`inspect_file` (the others skipped with their reason,
    or one InputFileError); each good file's entry count and UUID go into the dataset's
    ``"file_info"`` for :func:`execute`, so that coffea does not open the file again to learn them."""
    good, skipped = {}, []
    for name, entry in fileset.items():
        files, info = {}, {}
        for path, tree in entry["files"].items():
            reason, meta = inspect_file(path, tree)
            if reason is None:
                files[path], info[path] = tree, meta
            elif skip_bad_files:
                skipped.append({"dataset": name, "file": path, "reason": reason})
            else:
                raise InputFileError(f"{reason} (dataset {name}); fix the fileset or pass --skip-bad-files")
        if files:
            good[name] = {"files": files, "metadata": entry["metadata"], "file_info": info}
    return good, skipped


def metadata_cache(fileset: dict, treename: str = "Events") -> dict:
    """coffea's per-file metadata (the dataset's metadata, entries, UUID) of the files
    :func:`preflight` read, for ``processor.Runner(metadata_cache=...)``: coffea's preprocessing
    then opens none of them again. A fresh cache per run: coffea's default one is shared by the
    whole process and keyed by (dataset, file, tree) only, so a second run over the same file
    with other dataset metadata would get the first run's."""
    cache = {}
    for name, entry in fileset.items():
        for path, info in entry.get("file_info", {}).items():
            meta = dict(entry["metadata"]) | info
            cache[FileMeta(name, path, entry.get("treename", treename), meta)] = meta
    return cache


class _Guarded(processor.ProcessorABC):
    """Wraps a processor: a chunk failing on bad input is recorded as skipped (or re-raised
    as an InputFileError naming the file and entries)."""

    def __init__(self, inner: processor.ProcessorABC, skip: bool):
        self.inner, self.skip = inner, skip

    def process(self, events):
        try:
            return self.inner.process(events)
        except BAD_INPUT_ERRORS as err:
            meta = events.metadata
            where = f"{meta.get('filename')} entries {meta.get('entrystart')}-{meta.get('entrystop')}"
            if not self.skip:
                raise InputFileError(f"processing {where} failed: {type(err).__name__}: {err}") from err
            return {"skipped_chunks": [{"dataset": meta.get("dataset"), "file": meta.get("filename"),
                                        "entrystart": meta.get("entrystart"), "entrystop": meta.get("entrystop"),
                                        "reason": f"{type(err).__name__}: {err}"}]}

    def postprocess(self, accumulator):
        return accumulator


def normalization_lumi(fileset: dict, stream: str | None, default: dict[str, float]) -> dict[str, float]:
    """Luminosity per era for simulation: the data stream's ``lumi_fb`` (pseudo-data: the
    equivalent luminosity of the generated stream) where the fileset has it, else ``default``."""
    lumi = dict(default)
    for entry in fileset.values():
        meta = entry["metadata"]
        if meta["is_data"] and (stream is None or meta["process"] == f"data_{stream}") and "lumi_fb" in meta:
            lumi[meta["era"]] = float(meta["lumi_fb"])
    return lumi


def make_executor(opts: RunOptions):
    if opts.executor == "iterative":
        return processor.IterativeExecutor(status=opts.status), None
    if opts.executor == "futures":
        return processor.FuturesExecutor(workers=opts.workers, status=opts.status, retries=opts.retries), None
    if opts.executor == "dask":
        from distributed import Client, LocalCluster

        if opts.scheduler:
            client = Client(opts.scheduler)
            cluster = None
        else:
            cluster = LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        return processor.DaskExecutor(client=client, status=opts.status, retries=opts.retries), (client, cluster)
    raise ConfigError(f"unknown executor {opts.executor!r}: choose from {', '.join(EXECUTORS)}")


def provenance(proc: processor.ProcessorABC, opts: RunOptions) -> dict:
    """Versions, options, the hash of the effective configuration, the processor's models
    (``scorer.hashes()``) and corrections (path and names), and the time."""
    import awkward
    import coffea
    import hist
    import numpy

    config = getattr(proc, "config", None)
    prov = {
        "processor": getattr(proc, "name", type(proc).__name__), "executor": opts.executor,
        "workers": opts.workers, "chunksize": opts.chunksize,
        "python": platform.python_version(), "coffea": coffea.__version__, "awkward": awkward.__version__,
        "uproot": uproot.__version__, "hist": hist.__version__, "numpy": numpy.__version__,
        "config_hash": config_hash(config) if config is not None else None,
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


def execute(proc: processor.ProcessorABC, fileset: dict, opts: RunOptions) -> dict:
    """Run ``proc`` over checked datasets with the executor of ``opts``; returns the merged
    accumulator ({} for an empty fileset). Worker exceptions about bad input come back as
    one InputFileError; a dask cluster started here is closed again."""
    if not fileset:
        return {}
    executor, handles = make_executor(opts)
    try:
        runner = processor.Runner(executor, schema=SoftTrackSchema, chunksize=opts.chunksize,
                                  maxchunks=opts.max_chunks, skipbadfiles=False, metadata_cache=metadata_cache(fileset))
        files = {k: {"files": v["files"], "metadata": v["metadata"]} for k, v in fileset.items()}
        try:
            return runner(files, _Guarded(proc, opts.skip_bad_files), treename="Events")
        except Exception as err:
            # executors wrap worker exceptions; surface ours with its message
            cause = err
            while cause is not None and not isinstance(cause, InputFileError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise InputFileError(str(cause)) from None
            raise
    finally:
        if handles is not None:
            client, cluster = handles
            client.close()
            if cluster is not None:
                cluster.close()


def run(proc: processor.ProcessorABC, fileset: dict, opts: RunOptions) -> dict:
    """Run ``proc`` over the datasets of ``fileset`` it accepts: the one execution path of every
    processor. Returns the output dict: ``histograms`` and the processor's other accumulators,
    ``cutflow`` (datasets sorted), ``chunks`` (processed and skipped, sorted), ``provenance``,
    ``notices`` (sorted) and ``datasets`` (their metadata)."""
    if opts.chunksize <= 0 or opts.workers <= 0:
        raise ConfigError("--chunksize and --workers must be positive")
    if opts.max_chunks is not None and opts.max_chunks <= 0:
        raise ConfigError(f"--max-chunks must be positive, got {opts.max_chunks}")
    name = getattr(proc, "name", type(proc).__name__)
    selected = {k: v for k, v in fileset.items() if proc.accepts(v["metadata"])}
    if not selected:
        raise ConfigError(f"no dataset of the fileset is read by the {name} processor")
    proc.validate(selected)
    good, skipped = preflight(selected, opts.skip_bad_files)
    result = dict(execute(proc, good, opts))

    def order(c):
        return (c["dataset"], c["file"], c["entrystart"])

    chunks = sorted(result.pop("chunks", []), key=order)
    skipped_chunks = sorted(result.pop("skipped_chunks", []), key=order)
    cutflow = result.pop("cutflow", {})
    out = {"histograms": result.pop("histograms", {})}
    out.update(result)
    out |= {
        "cutflow": {k: cutflow[k] for k in sorted(cutflow)},
        "chunks": {"processed": chunks, "skipped": skipped + skipped_chunks},
        "provenance": provenance(proc, opts),
        "notices": sorted(result.get("notices", set())),
        "datasets": {k: v["metadata"] for k, v in selected.items()},
    }
    return out


def make_processor(cls, fileset: dict, config=None, systematics: bool = True, **kwargs):
    """An instance of processor class ``cls`` for ``fileset``: its analysis' configuration
    (default: the defaults), simulation normalized to the luminosity of the data stream it
    reads where the fileset records one (:func:`normalization_lumi`), and ``kwargs``."""
    config = cls.config_class() if config is None else config
    lumi = normalization_lumi(fileset, cls.stream, config.lumi_fb)
    return cls(config=config, lumi_fb=lumi, systematics=systematics, **kwargs)
