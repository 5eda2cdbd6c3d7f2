"""The fileset JSON of the generator and of the user: validated, with clear errors.

Format: ``{dataset: {"files": {path: "Events"}, "metadata": {...}}}`` with the metadata keys
of :class:`DatasetMetadata` plus those the registered analyses declare
(``AnalysisConfig.metadata_keys``, e.g. the signal masses); any other key is an error: a typo
must not pass silently.

Files: a remote URL (``root://host//store/f.root``, ``https://host/f.root``, ``http://...``,
any other scheme fsspec knows) is kept verbatim; a local path is made absolute, relative
paths taken relative to the fileset's directory, so that workers elsewhere (a dask cluster)
get paths that do not depend on their working directory; ``file://`` URLs are local paths.
``root://`` needs the ``[xrootd]`` extra (fsspec-xrootd and the XRootD bindings).

Checks (:func:`validate_fileset`), each failure one :class:`~analysis.errors.FilesetError`
line naming the dataset, the key and its value, and the fix:

- ``xsec_pb``, ``sum_genweight`` and ``lumi_fb`` are positive finite numbers where given;
  simulation needs ``xsec_pb`` and ``sum_genweight`` (it is normalized with them,
  ``processors.base.AnalysisProcessor.weights``);
- pseudo-data (a data stream of the toy generator: its metadata has the generator's keys)
  needs ``lumi_fb``: simulation is normalized to the luminosity of the stream a processor
  reads (``processors.runner.normalization_lumi``), and without it would silently be
  normalized to the configuration's luminosity instead. Real data without ``lumi_fb`` is
  normalized to the configuration's luminosity of its era, as documented;
- ``process`` is one the registered analyses declare (``Analysis.processes``);
- no file is reached twice: the same real path (a symlink, ``../``) or the same URL in two
  entries is refused here; the same file under two names (the same ROOT file UUID, e.g. a
  local path and a ``root://`` URL) is refused when the files are opened
  (:func:`refuse_same_uuid`, called by ``processors.runner.run`` after the preflight).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
import os
import posixpath
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from analysis.configuration import describe_validation_error
from analysis.errors import FilesetError

#: URL schemes read through XRootD (the ``[xrootd]`` extra)
XROOTD_SCHEMES = frozenset({"root", "roots", "xroot", "xroots"})
#: URL schemes read over HTTP (uproot through fsspec and aiohttp)
HTTP_SCHEMES = frozenset({"http", "https"})
#: metadata keys the toy generator writes: a data stream that has them is pseudo-data
GENERATOR_KEYS = ("generator_version", "seed", "processes")
#: normalization keys: name -> what it is (for the messages)
NORMALIZATION_KEYS = {
    "xsec_pb": "the cross section in pb",
    "sum_genweight": "the sum of the generator weights of the sample",
    "lumi_fb": "the (equivalent) integrated luminosity in fb^-1",
}

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class DatasetMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    process: str
    era: str
    is_data: bool
    xsec_pb: float | None = None
    sum_genweight: float | None = None
    lumi_fb: float | None = None
    # informational keys written by the generator
    n_events: int | None = None
    seed: int | None = None
    generator_version: str | None = None
    processes: list[str] | None = None
    #: the generator filter, slices or skim in words, and the record of how the sample was made
    #: (slices with their cross sections, events and trials: analysis.toymc.processes.SamplePlan)
    filter: str | None = None
    generation: dict | None = None


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: dict[str, str]
    metadata: DatasetMetadata


def _dataset_model(extra_keys: dict[str, type] | None) -> type[BaseModel]:
    if not extra_keys:
        return Dataset
    meta = create_model("AnalysisDatasetMetadata", __base__=DatasetMetadata,
                        **{k: (t | None, None) for k, t in sorted(extra_keys.items())})
    return create_model("AnalysisDataset", __base__=Dataset, metadata=(meta, ...))


def url_scheme(path: str) -> str | None:
    """The scheme of a URL (``root``, ``https``, ...), lower case; None for a local path."""
    m = _URL.match(path)
    return m.group(1).lower() if m else None


def is_remote(path: str) -> bool:
    """A URL other than ``file://``: read over the network, nothing to stat locally."""
    return url_scheme(path) not in (None, "file")


def _xrootd_available() -> bool:
    return importlib.util.find_spec("fsspec_xrootd") is not None and importlib.util.find_spec("XRootD") is not None


def _known_scheme(scheme: str) -> bool:
    if scheme in XROOTD_SCHEMES or scheme in HTTP_SCHEMES:
        return True
    from fsspec.registry import known_implementations, registry

    return scheme in known_implementations or scheme in registry


def resolve_file(path: str, base: Path, where: str) -> str:
    """The path a worker opens: a remote URL verbatim, a local path absolute (relative paths
    relative to ``base``, the fileset's directory; ``~`` expanded; ``file://`` dropped)."""
    scheme = url_scheme(path)
    if scheme == "file":
        path = unquote(urlsplit(path).path)
    elif scheme is not None:
        if not _known_scheme(scheme):
            raise FilesetError(f"{where}: file {path!r} has an unknown URL scheme {scheme!r}: use root://, "
                               "https://, http:// or a local path")
        if scheme in XROOTD_SCHEMES and not _xrootd_available():
            raise FilesetError(f"{where}: file {path!r} needs XRootD: install the [xrootd] extra "
                               "(pip install -e \".[xrootd]\": fsspec-xrootd and the xrootd bindings)")
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).absolute())


def file_identity(path: str) -> str:
    """What makes two entries the same file before opening it: the real path of a local file
    (symlinks and ``..`` resolved), a normalized URL (scheme and host in lower case, the path's
    repeated slashes and ``..`` collapsed) of a remote one."""
    if not is_remote(path):
        return os.path.realpath(path)
    parts = urlsplit(path)
    norm = posixpath.normpath("/" + parts.path.lstrip("/"))
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{norm}{query}"


def _describe(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _check_normalization(where: str, meta: dict) -> None:
    for key, what in NORMALIZATION_KEYS.items():
        value = meta.get(key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise FilesetError(f"{where}: metadata.{key} = {_describe(value)} must be a positive finite number "
                               f"({what}): fix the fileset entry")
    if not meta["is_data"]:
        missing = [k for k in ("xsec_pb", "sum_genweight") if meta.get(k) is None]
        if missing:
            what = " and ".join(f"metadata.{k} ({NORMALIZATION_KEYS[k]})" for k in missing)
            raise FilesetError(f"{where}: simulation (is_data false) is normalized with {what}: add "
                               f"{'it' if len(missing) == 1 else 'them'}, or set is_data true if it is data")
    elif meta.get("lumi_fb") is None and any(meta.get(k) is not None for k in GENERATOR_KEYS):
        raise FilesetError(f"{where}: pseudo-data (metadata has the generator's keys) without metadata.lumi_fb: "
                           "simulation would be normalized to the configuration's luminosity instead of the "
                           "stream's; add lumi_fb (the stream's equivalent luminosity in fb^-1, as run.py "
                           "generate writes it) or regenerate the sample")


def _check_process(where: str, process: str, processes: Collection[str]) -> None:
    if process in processes:
        return
    close = difflib.get_close_matches(process, sorted(processes), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(processes)) or "none"
    raise FilesetError(f"{where}: metadata.process = {process!r} is not a process of a registered analysis{hint}: "
                       f"use one of {known}, or declare it in the analysis' Analysis(processes=...)")


def refuse_duplicates(entries: Iterable[tuple[str, str, str]], how: str, where: str = "fileset") -> None:
    """One FilesetError naming both entries if two (dataset, file, key) share a key (``how``
    says what the key is: "real path", "ROOT file UUID")."""
    seen: dict[str, tuple[str, str]] = {}
    for dataset, path, key in entries:
        if key in seen:
            first_dataset, first_path = seen[key]
            raise FilesetError(f"{where}: dataset {first_dataset!r} file {first_path} and dataset {dataset!r} file "
                               f"{path} are the same file ({how} {key}): its events would be counted twice; "
                               "list it once")
        seen[key] = (dataset, path)


def refuse_same_uuid(fileset: dict) -> None:
    """One FilesetError if two files of checked datasets (with the ``file_info`` of
    ``processors.runner.preflight``: entries and ROOT file UUID) are the same ROOT file."""
    refuse_duplicates(((name, path, _uuid_text(info["uuid"]))
                       for name, entry in fileset.items() for path, info in entry.get("file_info", {}).items()
                       if info.get("uuid")), "ROOT file UUID", "fileset (files opened)")


def _uuid_text(uuid) -> str:
    if isinstance(uuid, bytes | bytearray):
        import uuid as _uuid

        return str(_uuid.UUID(bytes=bytes(uuid)))
    return str(uuid)


def known_processes() -> frozenset[str]:
    """The process names the registered analyses declare (:attr:`Analysis.processes`)."""
    from .registry import known_processes as declared

    return declared()


def validate_fileset(raw: object, base: Path, source: str, extra_keys: dict[str, type] | None = None,
                     processes: Collection[str] | None = None) -> dict[str, dict]:
    """The validated fileset of the parsed JSON ``raw`` (files resolved against ``base``,
    messages naming ``source``); ``extra_keys``, ``processes``: see :func:`load_fileset`."""
    if extra_keys is None:
        from .registry import metadata_keys

        extra_keys = metadata_keys()
    if processes is None:
        processes = known_processes()
    model = _dataset_model(extra_keys)
    if not isinstance(raw, dict) or not raw:
        raise FilesetError(f"{source} must be a non-empty object {{dataset: {{files, metadata}}}}")
    out, given = {}, {}
    for name, entry in raw.items():
        where = f"{source}, dataset {name!r}"
        try:
            ds = model.model_validate(entry)
        except ValidationError as err:
            first = err.errors()[0]
            if first["type"] == "missing":
                key = ".".join(str(x) for x in first["loc"])
                raise FilesetError(f"{where}: {key} is missing: add it (format: README.md, "
                                   "\"Samples and filesets\")") from None
            raise FilesetError(describe_validation_error(err, where)) from None
        if not ds.files:
            raise FilesetError(f"{where}: files is empty: list its files as {{path: \"Events\"}}")
        files, given[name] = {}, {}
        for f, tree in ds.files.items():
            resolved = resolve_file(f, base, where)
            if resolved in files:
                refuse_duplicates([(name, given[name][resolved], resolved), (name, f, resolved)], "path", source)
            files[resolved], given[name][resolved] = tree, f
        meta = ds.metadata.model_dump(exclude_none=True)
        _check_normalization(where, meta)
        _check_process(where, meta["process"], processes)
        meta.pop("processes", None)  # a list is not hashable metadata for coffea
        out[name] = {"files": files, "metadata": meta}
    refuse_duplicates(((name, given[name][f], file_identity(f)) for name, entry in out.items()
                       for f in entry["files"]), "real path", source)
    return out


def load_fileset(path: str | Path, extra_keys: dict[str, type] | None = None,
                 processes: Collection[str] | None = None) -> dict[str, dict]:
    """Read and validate a fileset JSON (:func:`validate_fileset`); relative file paths are
    taken relative to it and made absolute, remote URLs kept verbatim.

    ``extra_keys``: metadata keys (name -> type) allowed beside the core's; default: those of
    every registered analysis (:func:`processors.registry.metadata_keys`). ``processes``: the
    process names allowed; default: those the registered analyses declare
    (:func:`processors.registry.known_processes`)."""
    path = Path(path)
    if not path.is_file():
        raise FilesetError(f"fileset {path} not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FilesetError(f"fileset {path} is not valid JSON: {err}") from None
    return validate_fileset(raw, path.absolute().parent, f"fileset {path}", extra_keys, processes)
