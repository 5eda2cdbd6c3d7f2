"""Processing the chunks of a run: on the client (iterative), in local processes (futures) or
on a dask cluster, with the errors sorted, retries, checkpoints and an exact merge.

Each chunk is one :class:`Task`. A worker (:func:`process_task`) opens the file, builds the
NanoEvents of the chunk with :class:`~processors.schema.SoftTrackSchema` and calls the
processor, and sorts any failure (:func:`classify`):

- a :class:`~analysis.errors.DataFileError` or an I/O error raised while reading the data
  file (by uproot, fsspec, XRootD, the network or the operating system) is the data file's:
  retried with backoff when transient (``RunOptions.retries`` times, waits of
  ``retry_backoff`` x 1, 2, 4, ... s), then the chunk is *skipped* with its reason;
- anything else (a model, corrections, the configuration, the code) is fatal: the run stops
  at once with one message naming it; it is neither retried nor blamed on the data file.

A worker process that dies (killed, out of memory, a crash in compiled code) loses its chunk,
not the run: the futures backend starts a new pool and runs the chunks that were in flight
again, one at a time, so that a chunk that kills its worker every time is named after
``retries`` + 1 deaths; on dask the scheduler reschedules them (``KilledWorker`` after its
``allowed-failures`` is fatal, naming the chunk).

The merge is exact and does not depend on the executor, the number of workers or the order
in which chunks finish: the outputs are accumulated on the client in the order of the tasks
(the fileset's order), each as soon as all before it are in; at most ``window`` chunks are in
flight, so at most that many wait in memory.

Within :func:`persistent_workers` (the soft-track main job and ``rs-closure`` run their
passes inside it) the futures backend keeps its worker processes from one run to the next,
and every process that reads chunks keeps the local files it opened open
(:class:`OpenFiles`): a later chunk of the same file, in the same run or a later one, skips
opening it and reading its tree's metadata (0.1-0.3 s of the ~1 s a 1000-event chunk of the
soft-track signal processor costs). A file replaced or changed on disk since is opened
again. Outside it nothing is kept.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import time
import traceback
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from analysis.errors import DataFileError, ProcessingError, SoftTrackError

#: packages whose frames mean "raised while reading a data file"
READER_PACKAGES = ("uproot", "fsspec", "fsspec_xrootd", "XRootD", "pyxrootd", "aiohttp", "urllib3", "requests",
                   "http", "ssl", "socket", "asyncio")
#: errno values of an I/O error worth retrying on a local file
TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ESTALE, errno.ETIMEDOUT, errno.ECONNRESET,
                    errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH}


@dataclass(frozen=True)
class Task:
    """One chunk: entries [entrystart, entrystop) of ``filename``'s tree for ``dataset``."""

    index: int
    dataset: str
    filename: str
    treename: str
    entrystart: int
    entrystop: int
    fileuuid: str
    usermeta: dict = field(compare=False, hash=False)
    key: str = ""

    @property
    def size(self) -> int:
        return self.entrystop - self.entrystart

    def metadata(self) -> dict:
        """``events.metadata`` of the chunk (the keys coffea's Runner gives, then the dataset's)."""
        meta = {"dataset": self.dataset, "filename": self.filename, "treename": self.treename,
                "entrystart": self.entrystart, "entrystop": self.entrystop, "fileuuid": self.fileuuid}
        meta.update(self.usermeta)
        return meta

    def where(self) -> str:
        return f"{self.filename} entries {self.entrystart}-{self.entrystop} (dataset {self.dataset})"

    def record(self, reason: str, attempts: int) -> dict:
        """Its entry in the output's ``chunks["skipped"]``."""
        return {"dataset": self.dataset, "file": self.filename, "entrystart": self.entrystart,
                "entrystop": self.entrystop, "reason": reason, "attempts": attempts}


@dataclass(frozen=True)
class Settings:
    """What a worker needs besides the task and the processor."""

    retries: int = 2
    retry_backoff: float = 1.0
    timeout: float | None = None


# -- sorting failures --------------------------------------------------------------------------
def _chain(err: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while err is not None and id(err) not in seen:
        out.append(err)
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return out


def _package(filename: str) -> str:
    """Top-level package of a source file (``uproot`` for .../site-packages/uproot/x.py)."""
    parts = filename.replace("\\", "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            i = parts.index(marker)
            return parts[i + 1] if i + 1 < len(parts) else ""
    if len(parts) >= 2 and "python3" in "/".join(parts[:-1]):  # the standard library
        return parts[-1].removesuffix(".py") if parts[-2].startswith("python3") else parts[-2]
    return ""


def _frames(err: BaseException) -> list[tuple[str, int, str]]:
    """(file, line, function) of every frame between the handler and the raise, outermost first."""
    out, tb = [], err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        out.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return out


def _reader_error(err: BaseException) -> bool:
    """Raised while a reader (uproot, fsspec, XRootD, the network) was running: reading the
    data file failed, whatever the frame that raised (awkward filling a corrupt buffer)."""
    return any(_package(f) in READER_PACKAGES for f, _, _ in _frames(err))


def _transient(err: BaseException, filename: str) -> bool:
    if isinstance(err, (TimeoutError, ConnectionError)):
        return True
    if isinstance(err, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return False
    if isinstance(err, OSError) and err.errno in TRANSIENT_ERRNOS:
        return True
    remote = "://" in filename and not filename.startswith("file://")
    return remote and isinstance(err, OSError)


def describe_read_error(err: BaseException, filename: str) -> str:
    """What is wrong with a data file, in words (not uproot's "expected Chunk of length 403")."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, FileNotFoundError):
        return f"file {filename} not found"
    if isinstance(err, PermissionError):
        return f"file {filename} cannot be read (permission denied)"
    if isinstance(err, IsADirectoryError):
        return f"{filename} is a directory, not a ROOT file"
    if "expected Chunk of length" in str(err) or "not a ROOT file" in str(err):
        return f"{filename} is not a ROOT file or is truncated (uproot: {text})"
    kind = type(err).__name__ if type(err).__module__ == "builtins" else f"{type(err).__module__}.{type(err).__name__}"
    return f"cannot read {filename}: {kind}: {text}"


def classify(err: BaseException, filename: str) -> tuple[str, str, bool]:
    """("data" or "fatal", the reason, transient) of a failure while processing a chunk of
    ``filename`` (see the module's docstring)."""
    chain = _chain(err)
    for e in chain:
        if isinstance(e, DataFileError):
            return "data", str(e), e.transient
    for e in chain:
        if isinstance(e, SoftTrackError):
            return "fatal", str(e), False
    for e in chain:
        if isinstance(e, OSError) or _reader_error(e):
            return "data", describe_read_error(e, filename), _transient(e, filename)
    return "fatal", "", False


# -- the worker --------------------------------------------------------------------------------
_PROCESSORS: dict[str, Any] = {}  # processor bytes' sha256 -> processor, per worker process


def _processor(proc: Any) -> Any:
    """The processor of a task: the object itself (iterative) or its cloudpickle bytes,
    unpickled once per worker process (models and corrections then open once per worker)."""
    if not isinstance(proc, (bytes, bytearray)):
        return proc
    digest = hashlib.sha256(proc).hexdigest()
    if digest not in _PROCESSORS:
        import cloudpickle

        _PROCESSORS.clear()
        _PROCESSORS[digest] = cloudpickle.loads(proc)
    return _PROCESSORS[digest]


def _open(task: Task, timeout: float | None, **options):
    import uproot

    try:
        kwargs = dict(options) if timeout is None else dict(options, timeout=timeout)
        f = uproot.open({task.filename: None}, **kwargs)
    except Exception as err:
        kind, reason, transient = classify(err, task.filename)
        raise DataFileError(reason or describe_read_error(err, task.filename), task.filename,
                            transient if kind == "data" else False) from err
    uuid = f.file.uuid
    if task.fileuuid and str(uuid) != task.fileuuid:
        f.close()
        raise DataFileError(f"{task.filename} changed since it was checked (UUID {uuid}, was {task.fileuuid}): "
                            "rerun the command", task.filename)
    return f


class OpenFiles:
    """The local files one process keeps open between chunks (least recently used closed
    first beyond ``size``), each with the identity it had on disk when opened (device, inode,
    size, modification time): a file that no longer has it is closed and opened again. Files
    are opened without uproot's array cache (a chunk reads each branch once; kept files would
    hold up to 100 MB of arrays each); the object cache keeps the tree's metadata."""

    def __init__(self, size: int = 128):
        self.size = size
        self._files: OrderedDict[str, tuple[tuple, Any]] = OrderedDict()

    @staticmethod
    def _identity(path: str) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def get(self, task: Task, timeout: float | None):
        ident = self._identity(task.filename)
        kept = self._files.pop(task.filename, None)
        if kept is not None:
            if kept[0] == ident and (not task.fileuuid or str(kept[1].file.uuid) == task.fileuuid):
                self._files[task.filename] = kept
                return kept[1]
            kept[1].close()
        f = _open(task, timeout, array_cache=None)
        if ident is not None:
            self._files[task.filename] = (ident, f)
            while len(self._files) > self.size:
                self._files.popitem(last=False)[1][1].close()
        return f

    def discard(self, filename: str) -> None:
        kept = self._files.pop(filename, None)
        if kept is not None:
            kept[1].close()

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1][1].close()

    def __len__(self) -> int:
        return len(self._files)


#: this process's kept files (None: nothing is kept; set within persistent_workers and in
#: the workers of a kept pool)
_OPEN_FILES: OpenFiles | None = None


def _keep_files() -> None:
    """Initializer of a kept pool's workers: keep the files they open."""
    global _OPEN_FILES
    _OPEN_FILES = OpenFiles()


@contextmanager
def _chunk_file(task: Task, timeout: float | None):
    """The opened file of a chunk: a kept one (local, within persistent_workers) or one
    opened for this chunk and closed after it. A failure discards a kept file, so that a
    retry opens it again."""
    if _OPEN_FILES is None or _is_remote(task.filename):
        with _open(task, timeout) as f:
            yield f
        return
    f = _OPEN_FILES.get(task, timeout)
    try:
        yield f
    except BaseException:
        _OPEN_FILES.discard(task.filename)
        raise


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _run_chunk(task: Task, proc: Any, settings: Settings) -> tuple[Any, float]:
    import awkward as ak
    from coffea.nanoevents import NanoEventsFactory

    from .schema import SoftTrackSchema

    with _chunk_file(task, settings.timeout) as file:
        events = NanoEventsFactory.from_root(
            file=file, treepath=task.treename, schemaclass=SoftTrackSchema, metadata=task.metadata(),
            mode="virtual", entry_start=task.entrystart, entry_stop=task.entrystop,
        ).events()
        out = proc.process(events)
        if out is None:
            raise ProcessingError(f"{type(proc).__name__}.process returned None for {task.where()}: it must "
                                  "return its accumulator")
        genweight = 0.0
        if not task.usermeta.get("is_data", True) and "genWeight" in events.fields:
            genweight = float(ak.sum(events.genWeight))
    return out, genweight


def process_task(task: Task, proc: Any, settings: Settings) -> dict:
    """Process one chunk; never raises. Returns ``{"index", "status": "ok" | "skipped" |
    "fatal", "attempts", ...}``: with "ok" the output and the sum of generator weights read,
    with "skipped" the reason, with "fatal" the error (an exception to re-raise on the client)
    and the worker's traceback."""
    proc = _processor(proc)
    attempt = 0
    while True:
        attempt += 1
        try:
            out, genweight = _run_chunk(task, proc, settings)
            return {"index": task.index, "status": "ok", "out": out, "genweight": genweight, "attempts": attempt}
        except BaseException as err:  # noqa: BLE001 - sorted below; KeyboardInterrupt too
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            kind, reason, transient = classify(err, task.filename)
            if kind == "fatal":
                return {"index": task.index, "status": "fatal", "error": _portable(err, task),
                        "traceback": "".join(traceback.format_exception(err))}
            if not transient or attempt > settings.retries:
                return {"index": task.index, "status": "skipped", "reason": reason, "attempts": attempt}
            time.sleep(min(settings.retry_backoff * 2 ** (attempt - 1), 60.0))


def _portable(err: BaseException, task: Task) -> BaseException:
    """The error to raise on the client: ours as they are (with where it happened), anything
    else as a ProcessingError naming the chunk and the line that raised it."""
    for e in _chain(err):
        if isinstance(e, SoftTrackError):
            try:
                import pickle

                pickle.loads(pickle.dumps(e))
                return e
            except Exception:  # noqa: BLE001 - not picklable: carry its message
                return ProcessingError(str(e))
    frames = _frames(err)
    ours = [f for f in frames if not _package(f[0])]  # the project's code, not a library's
    path, line, func = (ours or frames or [("", 0, "")])[-1]
    where = f" at {os.path.relpath(path) if path and not path.startswith('<') else path}:{line} in {func}" if path else ""
    return ProcessingError(
        f"processing {task.where()} failed: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        f"{where}. This is an error of the code or of an unchecked input, not of the data file: it is not "
        "retried or skipped (rerun with --executor iterative to debug it)")


# -- backends: each yields results in completion order ------------------------------------------
def _iterative(tasks: list[Task], proc: Any, settings: Settings, window: int) -> Iterator[dict]:
    for task in tasks:
        yield process_task(task, proc, settings)


def _forkserver_context(proc: Any):
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    # imported once in the forkserver, inherited by every worker (processors.preload); a
    # processor may name more (``preload_modules``: what its chunks import on first use)
    modules = ["processors.execution", "processors.preload", type(proc).__module__,
               *getattr(proc, "preload_modules", ())]
    ctx.set_forkserver_preload(modules)
    return ctx


def _futures(tasks: list[Task], proc: Any, settings: Settings, workers: int) -> Iterator[dict]:
    """Local worker processes; a pool that breaks (a worker died) is replaced, and the chunks in
    flight are run again one at a time until each has finished or killed ``retries`` + 1
    workers (then the run stops naming it)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    import cloudpickle

    payload = cloudpickle.dumps(proc)
    ctx = _forkserver_context(proc)
    # the largest chunks first, so that the last ones to finish are small and no worker waits
    # long at the end (the outputs are folded in the tasks' order, whatever order they finish in)
    queue, suspects = deque(sorted(tasks, key=lambda t: -t.size)), deque()
    deaths: dict[int, int] = {}
    inflight: dict = {}

    def new_pool():
        if _KEPT["depth"] == 0:
            return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_keep_files)

    pool = _take_kept_pool(workers) or new_pool()
    finished = False
    try:
        while queue or suspects or inflight:
            limit = 1 if suspects or any(t.index in deaths for t in inflight.values()) else 2 * workers
            source = suspects if suspects else queue
            while source and len(inflight) < limit:
                task = source.popleft()
                inflight[pool.submit(process_task, task, payload, settings)] = task
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            broken = []
            for fut in done:
                task = inflight.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken.append(task)
                    continue
                except Exception as err:  # noqa: BLE001 - e.g. an output that does not pickle
                    result = {"index": task.index, "status": "fatal", "traceback": "", "error": ProcessingError(
                        f"the output of {task.where()} could not be returned from the worker: "
                        f"{type(err).__name__}: {err}")}
                yield result
            if broken:
                broken += list(inflight.values())
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                alone = len(broken) == 1
                for task in sorted(broken, key=lambda t: t.index):
                    if alone:  # it ran alone: its death is its own
                        deaths[task.index] = deaths.get(task.index, 0) + 1
                        if deaths[task.index] > settings.retries:
                            yield {"index": task.index, "status": "fatal", "traceback": "", "error": ProcessingError(
                                f"a worker process died {deaths[task.index]} times processing {task.where()} "
                                "(killed, out of memory, or a crash in compiled code): not a readable-file error; "
                                "check the memory of the workers (--workers, --chunksize) or run it with "
                                "--executor iterative")}
                            return
                    else:
                        deaths.setdefault(task.index, 0)
                    suspects.append(task)
                print(f"warning: a worker process died; {len(broken)} chunk(s) run again", file=sys.stderr)
                pool = new_pool()
        finished = True
    finally:
        # a pool is kept only after a run that ended normally (nothing of it still in flight)
        if not (finished and _keep_pool(pool, workers)):
            pool.shutdown(wait=False, cancel_futures=True)


#: the futures pool kept between runs within persistent_workers: depth of nesting, the pool
#: and its number of workers
_KEPT: dict[str, Any] = {"depth": 0, "pool": None, "workers": 0}


def _take_kept_pool(workers: int):
    """The kept pool if it has ``workers`` workers and none of them died while it waited
    (killed, out of memory): otherwise None, and the kept one is shut down."""
    pool, _KEPT["pool"] = _KEPT["pool"], None
    if pool is None:
        return None
    alive = not getattr(pool, "_broken", False) and all(p.is_alive() for p in (pool._processes or {}).values())
    if _KEPT["workers"] != workers or not alive:
        pool.shutdown(wait=False, cancel_futures=True)
        return None
    return pool


def _keep_pool(pool, workers: int) -> bool:
    if _KEPT["depth"] == 0:
        return False
    _KEPT["pool"], _KEPT["workers"] = pool, workers
    return True


@contextmanager
def persistent_workers():
    """Keep worker processes and open files from one run to the next within this block (see
    the module's docstring): the futures backend's pool (replaced if a run asks for another
    number of workers, or after a run that ended with an error) and, in every process that
    reads chunks (the client too with the iterative backend), the local files. Leaving the
    outermost block shuts the pool down and closes the files. Results do not depend on it."""
    global _OPEN_FILES
    outermost = _KEPT["depth"] == 0
    if outermost:
        _OPEN_FILES = OpenFiles()
    _KEPT["depth"] += 1
    try:
        yield
    finally:
        _KEPT["depth"] -= 1
        if outermost:
            pool, _KEPT["pool"] = _KEPT["pool"], None
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            files, _OPEN_FILES = _OPEN_FILES, None
            if files is not None:
                files.close()


def _dask(tasks: list[Task], proc: Any, settings: Settings, client, window: int) -> Iterator[dict]:
    import cloudpickle
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    payload = client.submit(_identity, cloudpickle.dumps(proc), pure=False)
    queue = deque(tasks)
    by_key: dict[str, Task] = {}
    ac = as_completed(loop=client.loop)

    def submit():
        task = queue.popleft()
        fut = client.submit(process_task, task, payload, settings, pure=False, retries=0,
                            key=f"softtrack-chunk-{task.index}-{uuid.uuid4().hex}")
        by_key[fut.key] = task
        ac.add(fut)

    try:
        for _ in range(min(window, len(queue))):
            submit()
        for fut in ac:
            task = by_key.pop(fut.key)
            try:
                result = fut.result()
            except KilledWorker:
                result = {"index": task.index, "status": "fatal", "traceback": "", "error": ProcessingError(
                    f"dask workers died processing {task.where()} (killed, out of memory or a crash in compiled "
                    "code): check the workers' memory and logs, or run the chunk with --executor iterative")}
            except Exception as err:  # noqa: BLE001 - e.g. the worker cannot import the package
                result = {"index": task.index, "status": "fatal", "traceback": "", "error": ProcessingError(
                    f"the dask task of {task.where()} failed: {type(err).__name__}: {err} (is this package "
                    "installed on the workers? `pip install -e .` or PYTHONPATH)")}
            yield result
            if queue:
                submit()
    finally:
        for fut in list(ac.futures):
            fut.cancel()
        payload.release()


def _identity(x):
    return x


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Executed:
    """What :func:`execute` returns: the merged accumulator (None when nothing was processed),
    the skipped chunks, and per dataset the sum of generator weights read and the entries read."""

    out: Any = None
    skipped: list[dict] = field(default_factory=list)
    genweight: dict[str, float] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    #: chunks read (processed here or loaded from a checkpoint), chunks loaded from a checkpoint
    ok: int = 0
    from_checkpoint: int = 0


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.last = total, 0, 0.0
        self.enabled = enabled and total > 0 and sys.stderr.isatty()

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and (time.monotonic() - self.last > 1.0 or self.done == self.total):
            self.last = time.monotonic()
            end = "\n" if self.done == self.total else "\r"
            print(f"processing: {self.done}/{self.total} chunks", end=end, file=sys.stderr, flush=True)


def execute(tasks: list[Task], proc: Any, executor: str, settings: Settings, *, workers: int = 1,
            client=None, checkpoints=None, status: bool = False) -> Executed:
    """Process ``tasks`` (ordered; their ``index`` is their position) with ``executor``
    ("iterative", "futures" or "dask" with ``client``), loading and saving chunk outputs with
    ``checkpoints`` when given; raises the first fatal error at once."""
    from coffea.processor import accumulate

    res = Executed()
    ready: dict[int, dict] = {}
    done_from_checkpoint = set()
    todo = []
    for task in tasks:
        if checkpoints is not None and checkpoints.exists(task.key):
            done_from_checkpoint.add(task.index)
        else:
            todo.append(task)
    progress = _Progress(len(tasks), status)
    next_index = 0

    def fold() -> None:
        nonlocal next_index
        while next_index < len(tasks) and (next_index in ready or next_index in done_from_checkpoint):
            task = tasks[next_index]
            if next_index in done_from_checkpoint:
                out = checkpoints.load(task.key)
                if out is None:  # unreadable: process it here and now
                    result = process_task(task, proc, settings)
                    _raise_fatal(result)
                    if result["status"] == "ok":
                        checkpoints.save(task.key, result)
                else:
                    result, res.from_checkpoint = out, res.from_checkpoint + 1
                progress.step()
            else:
                result = ready.pop(next_index)
            if result["status"] == "ok":
                res.ok += 1
                res.out = result["out"] if res.out is None else accumulate([result["out"]], res.out)
                res.genweight[task.dataset] = res.genweight.get(task.dataset, 0.0) + result["genweight"]
                res.entries[task.dataset] = res.entries.get(task.dataset, 0) + task.size
            else:
                res.skipped.append(task.record(result["reason"], result["attempts"]))
            next_index += 1

    if executor == "iterative":
        results = _iterative(todo, proc, settings, 1)
    elif executor == "futures":
        results = _futures(todo, proc, settings, workers)
    elif executor == "dask":
        n = max(1, len(client.scheduler_info().get("workers", {})))
        results = _dask(todo, proc, settings, client, max(64, 4 * n))
    else:
        raise ValueError(executor)
    try:
        fold()
        for result in results:
            _raise_fatal(result)
            task = tasks[result["index"]]
            if checkpoints is not None and result["status"] == "ok":
                checkpoints.save(task.key, result)
            ready[result["index"]] = result
            progress.step()
            fold()
    finally:
        results.close()
    fold()
    return res


def _raise_fatal(result: dict) -> None:
    if result["status"] != "fatal":
        return
    err = result["error"]
    if isinstance(err, ProcessingError) and result.get("traceback"):
        err.details = tuple(result["traceback"].rstrip().splitlines())
    raise err
