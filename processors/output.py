"""Writing a processor output: the coffea file and the portable histograms beside it, atomically.

Every file is written to a temporary file in the same directory, flushed to disk and renamed
over the target (``os.replace``), so a run killed while saving leaves the previous file
whole, never a truncated one. The pair ``OUT.coffea`` + ``OUT.histograms.json.gz`` is
written as both temporaries first, then renamed, JSON first: the ``.coffea`` records the
sha256 of its JSON (``provenance["histograms_json_sha256"]``), so that the only mismatch a
kill between the two renames can leave (a new JSON beside the previous ``.coffea``) is
detected by :func:`verify_output`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

from analysis.errors import ConfigError, InputFileError

HISTOGRAMS_SUFFIX = ".histograms.json.gz"


def histograms_path(out: Path) -> Path:
    return Path(out).with_suffix(HISTOGRAMS_SUFFIX)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once, at import (setting it to read it is not thread-safe)
_UMASK = _read_umask()


def temp_path(target: Path) -> Path:
    """A fresh temporary file beside ``target`` (same directory, so the rename is atomic),
    with the permissions a plain ``open`` would give it."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)
    return Path(name)


def commit(tmp: Path, target: Path) -> None:
    """Flush ``tmp`` to disk and rename it over ``target``."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)
    _fsync_dir(Path(target).parent)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """``data`` to ``target``: whole or not at all."""
    target = Path(target)
    tmp = temp_path(target)
    try:
        tmp.write_bytes(data)
        commit(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(out: Path, what: str = "--out") -> None:
    """One ConfigError line unless ``out`` can be written: not a directory, its directory
    exists (or can be made) and accepts a new file. Called before any processing."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{what} {out} is a directory: give a file name such as {out / 'output.coffea'}")
    parent = out.parent if str(out.parent) else Path(".")
    for above in (parent, *parent.parents):
        if above.exists() and not above.is_dir():
            raise ConfigError(f"{what} {out} cannot be written: {above} is a file, not a directory; choose a "
                              "writable directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(out)
        tmp.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(f"{what} {out} cannot be written ({reason} in {parent}): choose a writable "
                          "directory") from None
    if out.exists() and not os.access(out, os.W_OK):
        raise ConfigError(f"{what} {out} exists and is read-only: remove it or choose another file")


def histograms_json(histograms: dict) -> bytes:
    """The UHI JSON of ``histograms``, gzipped reproducibly (no time stamp in the header)."""
    import uhi.io.json as uhi_json

    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(histograms, default=uhi_json.default).encode())
    return buf.getvalue()


def save_output(output: dict, out: Path) -> None:
    """``output`` to ``out`` (coffea.util.save) and its histograms to
    ``OUT.histograms.json.gz`` (UHI JSON: ``hist.Hist(obj)`` reads each back), atomically
    (see the module's docstring); the ``.coffea`` records the JSON's sha256."""
    from coffea.util import save

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = histograms_json(output["histograms"])
    provenance = dict(output.get("provenance", {}))
    provenance["histograms_json_sha256"] = hashlib.sha256(data).hexdigest()
    output = {**output, "provenance": provenance}
    tmp_json, tmp_coffea = temp_path(histograms_path(out)), temp_path(out)
    try:
        tmp_json.write_bytes(data)
        save(output, str(tmp_coffea))
        commit(tmp_json, histograms_path(out))
        commit(tmp_coffea, out)
    finally:
        tmp_json.unlink(missing_ok=True)
        tmp_coffea.unlink(missing_ok=True)


def load_output(path: Path) -> dict:
    """A processor output written by :func:`save_output` (one InputFileError line otherwise)."""
    from coffea.util import load

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"processor output {path} not found: make it with `run.py process --out {path}`")
    try:
        output = load(str(path))
    except Exception as err:  # noqa: BLE001 - any failure to read is a bad file
        raise InputFileError(f"cannot read processor output {path} ({type(err).__name__}: {err}): "
                             "rerun the command that wrote it") from None
    if not isinstance(output, dict) or "histograms" not in output or "chunks" not in output:
        raise InputFileError(f"{path} is not a processor output of run.py process (no histograms/chunks)")
    return output


def verify_output(out: Path) -> bool:
    """True when ``OUT.histograms.json.gz`` is the one written with ``OUT.coffea``."""
    output = load_output(out)
    expected = output.get("provenance", {}).get("histograms_json_sha256")
    path = histograms_path(out)
    if expected is None or not path.is_file():
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == expected
