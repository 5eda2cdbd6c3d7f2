"""Atomic file output: a file is either its old content or its complete new content.

Every output a command writes goes to a temporary file beside the target (same directory,
hence the same file system) and is renamed onto it with :func:`os.replace`, which POSIX
makes atomic. A process killed at any point (SIGKILL, a full disk, an exception) leaves the
previous file untouched and at most a hidden ``.NAME.tmp-PID-XXXX.EXT`` beside it, never a
truncated or half-written target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

#: marker in the names of the temporary files (``.NAME.tmp-PID-XXXX.EXT``)
TEMP_MARKER = ".tmp-"


def temporary_sibling(path: str | Path) -> Path:
    """A fresh, hidden name beside ``path`` that keeps its last suffix (``.png`` stays
    ``.png``, so writers that infer the format from the name still do)."""
    path = Path(path)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.stem}{TEMP_MARKER}{token}{path.suffix}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Write ``path`` atomically through a temporary file.

    Yields the temporary path (it does not exist yet); whatever the block writes there is
    flushed to disk and renamed onto ``path`` when the block ends normally, and removed
    when it raises. Creates missing parent directories.

    Example::

        with atomic_output(out / "plot.png") as tmp:
            fig.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically (:func:`atomic_output`);
    returns ``path``."""
    path = Path(path)
    raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_output(path, fsync=False) as tmp:
        with open(tmp, "xb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
    return path
