"""What a run keeps on disk between runs: the metadata of the files it checked and, with
``--checkpoint DIR``, the output of every chunk it processed.

- :class:`FileInfoCache`: the entries and UUID of each data file that passed the check, keyed
  by (absolute path, tree, size, modification time) for a local file and by (URL, tree, UUID,
  file length) for a remote one, so that a rerun opens no local file again and reads only the
  header of a remote one. In ``$SOFTTRACK_CACHE``, else ``$XDG_CACHE_HOME/softtrack``, else
  ``~/.cache/softtrack`` (``RunOptions.cache_dir`` overrides; ``""`` turns it off).
- :class:`Checkpoints`: one file per processed chunk, keyed by the processor's
  :func:`fingerprint` (its class, configuration, models, corrections and options, and the
  framework's source code), the dataset and its metadata, the file (path, UUID, tree) and the
  entry range. A run killed at any point and rerun with the same command loads the chunks it
  finished and processes the others; the output is bit for bit the one of an uninterrupted
  run because the chunks' outputs are merged in the same (fileset) order either way.

Every file is written atomically (temporary file in the same directory, then ``os.replace``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .output import atomic_write_bytes

CACHE_ENV = "SOFTTRACK_CACHE"
#: bumped when the layout of a cache entry or a checkpoint changes
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "softtrack"


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


class FileInfoCache:
    """Persistent ``key -> {"numentries", "uuid"}`` of checked files (``None`` directory: off)."""

    def __init__(self, directory: str | Path | None):
        self.directory = Path(directory) / "files" if directory else None

    def _path(self, key: tuple) -> Path:
        digest = _sha(json.dumps([FORMAT_VERSION, *key]))
        return self.directory / digest[:2] / f"{digest}.json"

    def get(self, key: tuple | None) -> dict | None:
        if self.directory is None or key is None:
            return None
        try:
            entry = json.loads(self._path(key).read_text())
            if entry["key"] != json.loads(json.dumps(list(key))):
                return None
            info = entry["info"]
            return {"numentries": int(info["numentries"]), "uuid": bytes.fromhex(info["uuid"])}
        except (OSError, ValueError, KeyError, TypeError):  # absent or unreadable: check the file again
            return None

    def put(self, key: tuple | None, info: dict) -> None:
        if self.directory is None or key is None:
            return
        path = self._path(key)
        entry = {"key": list(key), "info": {"numentries": int(info["numentries"]), "uuid": info["uuid"].hex()}}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(entry).encode())
        except OSError:  # a read-only cache only costs time
            pass


# -- the processor's identity ------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _source_hash(modules: frozenset[str]) -> str:
    """sha256 of the Python sources of the top-level packages ``modules`` (their code)."""
    import importlib

    h = hashlib.sha256()
    for name in sorted(modules):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        files = [Path(mod.__file__)] if getattr(mod, "__file__", None) else []
        if files and files[0].name == "__init__.py":
            files = sorted(files[0].parent.rglob("*.py"))
        for f in files:
            h.update(str(f.name).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _canon(x: Any, depth: int = 0) -> Any:
    """A JSON-able, deterministic description of ``x`` (objects by type and state)."""
    if depth > 12:
        return f"<{type(x).__module__}.{type(x).__qualname__}>"
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, (bytes, bytearray, memoryview)):
        return {"sha256": _sha(bytes(x))}
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.ndarray):
        return {"array": _sha(np.ascontiguousarray(x).tobytes()), "shape": list(x.shape), "dtype": str(x.dtype)}
    if isinstance(x, np.generic):
        return repr(x.item())
    if isinstance(x, Mapping):
        items = [[_canon(k, depth + 1), _canon(v, depth + 1)] for k, v in x.items()]
        return {"mapping": sorted(items, key=lambda kv: json.dumps(kv[0], sort_keys=True))}
    if isinstance(x, (list, tuple)):
        return [_canon(v, depth + 1) for v in x]
    if isinstance(x, (set, frozenset)):
        return {"set": sorted((_canon(v, depth + 1) for v in x), key=lambda v: json.dumps(v, sort_keys=True))}
    if inspect.isclass(x) or inspect.isroutine(x) or inspect.ismodule(x):
        return f"{getattr(x, '__module__', '')}.{getattr(x, '__qualname__', getattr(x, '__name__', ''))}"
    model_dump = getattr(x, "model_dump", None)  # pydantic: the configuration
    if callable(model_dump):
        return {"type": f"{type(x).__module__}.{type(x).__qualname__}", "config": model_dump(mode="json")}
    try:
        state = x.__getstate__()
    except Exception:  # noqa: BLE001 - fall back to the instance dict
        state = getattr(x, "__dict__", None)
    if state is None and hasattr(type(x), "__slots__"):
        state = {s: getattr(x, s, None) for s in type(x).__slots__}
    return {"type": f"{type(x).__module__}.{type(x).__qualname__}", "state": _canon(state, depth + 1)}


def fingerprint(proc: Any) -> str:
    """sha256 of everything a chunk's output depends on besides its input: the processor
    (class, configuration, models, corrections, options, by content where they travel by
    content) and the source code of the packages it comes from."""
    packages = frozenset({"analysis", "processors", "corrections", "models", type(proc).__module__.split(".")[0]})
    desc = {"format": FORMAT_VERSION, "processor": _canon(proc), "code": _source_hash(packages)}
    return _sha(json.dumps(desc, sort_keys=True))


# -- chunk checkpoints -------------------------------------------------------------------------
class Checkpoints:
    """The outputs of processed chunks under ``directory/<fingerprint>/``."""

    def __init__(self, directory: str | Path, proc_fingerprint: str):
        self.root = Path(directory)
        self.directory = self.root / proc_fingerprint[:24]

    def prepare(self, description: dict) -> None:
        """Make the directory (one ConfigError line if it cannot be written) and describe it."""
        from analysis.errors import ConfigError

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.directory / "processor.json", json.dumps(description, indent=1,
                                                                              sort_keys=True, default=str).encode())
        except OSError as err:
            raise ConfigError(f"--checkpoint {self.root} cannot be written ({err.strerror or err}): "
                              "choose a writable directory") from None

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.pkl"

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str) -> Any | None:
        """The chunk's output, or None if there is none or it cannot be read."""
        import lz4.frame

        try:
            entry = pickle.loads(lz4.frame.decompress(self.path(key).read_bytes()))
        except Exception:  # noqa: BLE001 - absent or unreadable: process the chunk again
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        return entry["out"]

    def save(self, key: str, out: Any) -> None:
        import cloudpickle
        import lz4.frame

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, lz4.frame.compress(cloudpickle.dumps({"key": key, "out": out})))


def chunk_key(proc_fingerprint: str, dataset: str, metadata: Mapping, filename: str, treename: str,
              fileuuid: str, entrystart: int, entrystop: int) -> str:
    """The checkpoint key of one chunk."""
    desc = [proc_fingerprint, dataset, _canon(dict(metadata)), filename, treename, fileuuid, entrystart, entrystop]
    return _sha(json.dumps(desc, sort_keys=True))
