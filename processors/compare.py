"""Are two runs' outputs the same? Compare two output directories (or two files).

:func:`compare_outputs` walks both sides and compares every file present in either, as the
main job and ``run.py process`` write them (README.md, "Outputs"):

- ``.coffea`` (``coffea.util.load``): the ``histograms`` dict (same names; same axes: type,
  name, flow bins, edges, and categories in any order, matched by label; values and
  variances element-wise) and the ``cutflow`` dict (dataset -> ordered step ->
  ``{"events", "weighted"}``: same datasets, same steps in the same order, equal event
  counts, weighted yields within the tolerance). ``provenance`` (time, versions) is
  ignored; differences in ``chunks``, ``notices`` and ``datasets`` are reported as
  information only. Any other entry is compared like JSON (below), a hist.Hist in it like
  the histograms.
- ``.json`` and ``.json.gz``: parsed and compared recursively; numbers within the
  tolerance; keys named ``time``, ``provenance``, ``elapsed``, ``timings``, ``times`` or
  ending in ``_s`` (durations) are ignored. A string that differs only by the two roots
  being compared (a path written into a summary; for two files, their directories) is
  equal.
- ``.histograms.json.gz``: the portable copy of the histograms of the ``.coffea`` beside
  it, skipped.
- anything else (png, pdf, txt, ...): compared by sha256; a difference is information only
  (plots are not reproducible byte for byte across library versions).

Tolerance: with ``rtol = atol = 0`` numbers must be exactly equal (NaN equals NaN); else
``|a - b| <= atol + rtol |b|`` (``numpy.isclose``). The report gives per file one of
:data:`IDENTICAL`, :data:`WITHIN_TOLERANCE` (with the maximum relative difference
``|a - b| / max(|a|, |b|)``), :data:`DIFFERENT` (with the first differences, each with its
path, e.g. ``signal.coffea: histograms/sr[dataset=ttjets_2018, systematic=nominal] bin 3:
12.5 vs 12.6``), :data:`MISSING` (present on one side only: a difference, whatever the format),
:data:`INFO_ONLY` or :data:`SKIPPED`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import InputFileError

IDENTICAL = "identical"
WITHIN_TOLERANCE = "equal within tolerance"
DIFFERENT = "different"
MISSING = "missing"
INFO_ONLY = "differs (not compared)"
SKIPPED = "skipped"

#: statuses that make a comparison fail
FAILING = (DIFFERENT, MISSING)
#: JSON keys never compared (times, versions), plus any key ending in IGNORED_KEY_SUFFIX
IGNORED_KEYS = frozenset({"time", "provenance", "elapsed", "timings", "times"})
IGNORED_KEY_SUFFIX = "_s"
#: entries of a processor output compared for information only
INFO_ENTRIES = ("chunks", "notices", "datasets")
HISTOGRAMS_JSON_SUFFIX = ".histograms.json.gz"
#: differences listed per file
MAX_DIFFERENCES = 5


@dataclass
class FileResult:
    """The comparison of one file (``name``: its path relative to the compared roots)."""

    name: str
    status: str
    max_rel_diff: float = 0.0
    n_differences: int = 0
    differences: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status not in FAILING


@dataclass
class CompareReport:
    """All files of a comparison; :attr:`ok` when none is different or missing."""

    a: Path
    b: Path
    rtol: float
    atol: float
    files: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    def by_status(self, status: str) -> list[FileResult]:
        return [f for f in self.files if f.status == status]

    def format(self) -> str:
        """The report as text: one line per file, its differences and notes indented."""
        lines = [f"compare {self.a} vs {self.b} (rtol={self.rtol:g}, atol={self.atol:g})"]
        width = max((len(f.status) for f in self.files), default=0)
        for f in self.files:
            line = f"  {f.status:<{width}}  {f.name}"
            if f.status == WITHIN_TOLERANCE or (f.status == DIFFERENT and 0 < f.max_rel_diff < math.inf):
                line += f" (max relative difference {f.max_rel_diff:.3g})"
            lines.append(line)
            lines.extend(f"      {d}" for d in f.differences)
            if f.n_differences > len(f.differences):
                lines.append(f"      ... {f.n_differences - len(f.differences)} more differences")
            lines.extend(f"      info: {i}" for i in f.info)
        counts = ", ".join(f"{len(self.by_status(s))} {s}" for s in
                           (IDENTICAL, WITHIN_TOLERANCE, DIFFERENT, MISSING, INFO_ONLY, SKIPPED)
                           if self.by_status(s))
        lines.append(f"{len(self.files)} files: {counts or 'none'}; "
                     f"{'the same' if self.ok else 'DIFFERENT'}")
        return "\n".join(lines)


class _Diffs:
    """Collects the differences of one file (the first ``limit`` as text, and a count)."""

    def __init__(self, rtol: float, atol: float, roots: tuple[str, str] = ("", ""), limit: int = MAX_DIFFERENCES):
        self.rtol, self.atol, self.limit = rtol, atol, limit
        self.roots = roots
        self.messages: list[str] = []
        self.count = 0
        self.inexact = False
        self.max_rel = 0.0

    def add(self, message: str, n: int = 1) -> None:
        self.count += n
        if len(self.messages) < self.limit:
            self.messages.append(message)

    @property
    def exact(self) -> bool:
        return self.count == 0 and not self.inexact

    def arrays(self, a: np.ndarray, b: np.ndarray, where: Callable[[int], str]) -> None:
        """Element-wise comparison of two float arrays of one shape; ``where(flat index)``
        names an element."""
        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
        exact = (a == b) | (np.isnan(a) & np.isnan(b))
        if exact.all():
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.maximum(np.abs(a), np.abs(b))
            rel = np.where(exact, 0.0, np.abs(a - b) / scale)
        rel = np.where(np.isnan(rel), np.inf, rel)
        self.max_rel = max(self.max_rel, float(rel.max()))
        if self.rtol == 0.0 and self.atol == 0.0:
            bad = ~exact
        else:
            bad = ~np.isclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=True)
        if (~exact & ~bad).any():
            self.inexact = True
        for i in np.flatnonzero(bad)[: self.limit - len(self.messages)]:
            self.messages.append(f"{where(int(i))}: {_num(a[i])} vs {_num(b[i])}")
        self.count += int(bad.sum())

    def number(self, a: float, b: float, where: str) -> None:
        self.arrays(np.array([a]), np.array([b]), lambda _i: where)

    def string(self, a: str, b: str, where: str) -> None:
        if a == b:
            return
        ra, rb = self.roots
        if ra and rb and a.replace(ra, "\0") == b.replace(rb, "\0"):
            return
        self.add(f"{where}: {a!r} vs {b!r}")


def _num(x: float) -> str:
    return repr(float(x))


def _ignored(key: Any) -> bool:
    return isinstance(key, str) and (key in IGNORED_KEYS or key.endswith(IGNORED_KEY_SUFFIX))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


# --- generic (JSON-like) values ----------------------------------------------------------
def _compare_values(a: Any, b: Any, where: str, diffs: _Diffs) -> None:
    """Recursive comparison of parsed JSON (and of the plain Python parts of an output)."""
    if _is_hist(a) or _is_hist(b):
        if _is_hist(a) and _is_hist(b):
            _compare_hist(a, b, where, diffs)
        else:
            diffs.add(f"{where}: {type(a).__name__} vs {type(b).__name__}")
    elif isinstance(a, Mapping) and isinstance(b, Mapping):
        keys_a = [k for k in a if not _ignored(k)]
        keys_b = [k for k in b if not _ignored(k)]
        for k in keys_a:
            if k not in b:
                diffs.add(f"{where}/{k}: only in A")
        for k in keys_b:
            if k not in a:
                diffs.add(f"{where}/{k}: only in B")
        for k in keys_a:
            if k in b:
                _compare_values(a[k], b[k], f"{where}/{k}", diffs)
    elif isinstance(a, (set, frozenset)) and isinstance(b, (set, frozenset)):
        for x in sorted(map(repr, a - b)):
            diffs.add(f"{where}: {x} only in A")
        for x in sorted(map(repr, b - a)):
            diffs.add(f"{where}: {x} only in B")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            diffs.add(f"{where}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _compare_values(x, y, f"{where}[{i}]", diffs)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        xa, xb = np.asarray(a), np.asarray(b)
        if xa.shape != xb.shape:
            diffs.add(f"{where}: shape {xa.shape} vs {xb.shape}")
        elif xa.dtype.kind in "fiu" and xb.dtype.kind in "fiu":
            shape = xa.shape
            diffs.arrays(xa, xb, lambda i: f"{where}{list(np.unravel_index(i, shape)) if shape else ''}")
        elif not np.array_equal(xa, xb):
            diffs.add(f"{where}: arrays differ")
    elif _is_number(a) and _is_number(b):
        diffs.number(float(a), float(b), where)
    elif isinstance(a, str) and isinstance(b, str):
        diffs.string(a, b, where)
    elif type(a) is not type(b) and not (isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_))):
        diffs.add(f"{where}: {a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})")
    else:
        try:
            equal = bool(a == b)
        except Exception:  # noqa: BLE001 -- objects without a plain ==
            equal = repr(a) == repr(b)
        if not equal:
            diffs.add(f"{where}: {a!r} vs {b!r}")


# --- histograms --------------------------------------------------------------------------
def _is_hist(x: Any) -> bool:
    try:
        import boost_histogram as bh
    except ImportError:  # pragma: no cover -- hist requires it
        return False
    return isinstance(x, bh.Histogram)


def _is_category(ax) -> bool:
    import boost_histogram as bh

    return isinstance(ax, (bh.axis.StrCategory, bh.axis.IntCategory))


def _categories(ax) -> list:
    return [ax.value(i) for i in range(len(ax))]


def _axis_differences(ax_a, ax_b, where: str, k: int, diffs: _Diffs) -> bool:
    """Compare axis k of two histograms; True when they are compatible bin by bin."""
    name = f"{where} axis {k} ({ax_a.name or k})"
    ok = True
    if type(ax_a).__name__ != type(ax_b).__name__:
        diffs.add(f"{name}: type {type(ax_a).__name__} vs {type(ax_b).__name__}")
        return False
    if ax_a.name != ax_b.name:
        diffs.add(f"{name}: name {ax_a.name!r} vs {ax_b.name!r}")
        ok = False
    if (ax_a.traits.underflow, ax_a.traits.overflow) != (ax_b.traits.underflow, ax_b.traits.overflow):
        diffs.add(f"{name}: flow bins (underflow, overflow) {(ax_a.traits.underflow, ax_a.traits.overflow)} vs "
                  f"{(ax_b.traits.underflow, ax_b.traits.overflow)}")
        ok = False
    if _is_category(ax_a):
        ca, cb = _categories(ax_a), _categories(ax_b)
        only_a = [c for c in ca if c not in cb]
        only_b = [c for c in cb if c not in ca]
        if only_a or only_b:
            diffs.add(f"{name}: categories only in A {only_a}, only in B {only_b}")
            ok = False
    else:
        ea, eb = np.asarray(ax_a.edges), np.asarray(ax_b.edges)
        if ea.shape != eb.shape:
            diffs.add(f"{name}: {ea.size - 1} vs {eb.size - 1} bins")
            ok = False
        else:
            sub = _Diffs(diffs.rtol, diffs.atol)
            sub.arrays(ea, eb, lambda i: f"{name} edge {i}")
            if sub.count:
                diffs.add(sub.messages[0], sub.count)
                ok = False
            elif sub.inexact:
                diffs.inexact = True
                diffs.max_rel = max(diffs.max_rel, sub.max_rel)
    return ok


def _bin_label(axes, index: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """(category labels 'name=value', other bin labels) of a flow-view index."""
    cats, bins = [], []
    for ax, i in zip(axes, index, strict=True):
        if _is_category(ax):
            cats.append(f"{ax.name}={ax.value(i)}" if i < len(ax) else f"{ax.name}=<overflow>")
        else:
            j = i - int(ax.traits.underflow)
            bins.append("underflow" if j < 0 else "overflow" if j >= len(ax) else str(j))
    return cats, bins


def _compare_hist(ha, hb, where: str, diffs: _Diffs) -> None:
    if ha.storage_type.__name__ != hb.storage_type.__name__:
        diffs.add(f"{where}: storage {ha.storage_type.__name__} vs {hb.storage_type.__name__}")
        return
    if ha.ndim != hb.ndim:
        diffs.add(f"{where}: {ha.ndim} vs {hb.ndim} axes")
        return
    pairs = enumerate(zip(ha.axes, hb.axes, strict=True))
    if not all([_axis_differences(x, y, where, k, diffs) for k, (x, y) in pairs]):
        return
    va, vb = np.asarray(ha.view(flow=True)), np.asarray(hb.view(flow=True))
    # bring B's categories into A's order (categories have no underflow bin)
    for k, (ax_a, ax_b) in enumerate(zip(ha.axes, hb.axes, strict=True)):
        if _is_category(ax_a):
            cb = _categories(ax_b)
            order = [cb.index(c) for c in _categories(ax_a)]
            if ax_b.traits.overflow:
                order.append(len(cb))
            vb = np.take(vb, order, axis=k)
    shape = va.shape
    fields = va.dtype.names or (None,)

    def name_of(field_name):
        def where_fn(i: int) -> str:
            cats, bins = _bin_label(ha.axes, np.unravel_index(i, shape))
            text = where + (f"[{', '.join(cats)}]" if cats else "")
            text += f" bin {','.join(bins)}" if bins else ""
            return text + (f" ({field_name})" if field_name not in (None, "value") else "")
        return where_fn

    for f in fields:
        diffs.arrays(va if f is None else va[f], vb if f is None else vb[f], name_of(f))


# --- cutflows ----------------------------------------------------------------------------
def _compare_cutflow(a: Mapping, b: Mapping, where: str, diffs: _Diffs) -> None:
    for d in a:
        if d not in b:
            diffs.add(f"{where}/{d}: only in A")
    for d in b:
        if d not in a:
            diffs.add(f"{where}/{d}: only in B")
    for d in a:
        if d not in b:
            continue
        sa, sb = a[d], b[d]
        if list(sa) != list(sb):
            diffs.add(f"{where}/{d}: steps {list(sa)} vs {list(sb)}")
            continue
        for step in sa:
            ea, eb = sa[step], sb[step]
            if not (isinstance(ea, Mapping) and isinstance(eb, Mapping)):
                _compare_values(ea, eb, f"{where}/{d}/{step}", diffs)
                continue
            if ea.get("events") != eb.get("events"):
                diffs.add(f"{where}/{d}/{step} events: {ea.get('events')} vs {eb.get('events')}")
            wa, wb = ea.get("weighted"), eb.get("weighted")
            if _is_number(wa) and _is_number(wb):
                diffs.number(float(wa), float(wb), f"{where}/{d}/{step} weighted")
            else:
                _compare_values(wa, wb, f"{where}/{d}/{step} weighted", diffs)
            rest_a = {k: v for k, v in ea.items() if k not in ("events", "weighted")}
            rest_b = {k: v for k, v in eb.items() if k not in ("events", "weighted")}
            _compare_values(rest_a, rest_b, f"{where}/{d}/{step}", diffs)


# --- files -------------------------------------------------------------------------------
def _load_coffea(path: Path) -> Any:
    from coffea.util import load

    try:
        return load(str(path))
    except Exception as err:  # noqa: BLE001 -- any unpickling failure is a bad file
        raise InputFileError(f"{path}: cannot read as a coffea output ({type(err).__name__}: {err})") from err


def _compare_coffea(pa: Path, pb: Path, name: str, diffs: _Diffs, info: list[str]) -> None:
    oa, ob = _load_coffea(pa), _load_coffea(pb)
    if not (isinstance(oa, Mapping) and isinstance(ob, Mapping)):
        _compare_values(oa, ob, name, diffs)
        return
    for key in sorted(set(oa) | set(ob), key=str):
        where = f"{name}: {key}"
        if key == "provenance":
            continue
        if key not in oa or key not in ob:
            (info.append if key in INFO_ENTRIES else diffs.add)(f"{where}: only in {'A' if key in oa else 'B'}")
            continue
        if key in INFO_ENTRIES:
            sub = _Diffs(diffs.rtol, diffs.atol, diffs.roots, limit=1)
            _compare_values(oa[key], ob[key], where, sub)
            if sub.count:
                info.append(f"{key} differ ({sub.count}): {sub.messages[0]}")
        elif key == "cutflow" and isinstance(oa[key], Mapping) and isinstance(ob[key], Mapping):
            _compare_cutflow(oa[key], ob[key], where, diffs)
        else:
            _compare_values(oa[key], ob[key], where, diffs)


def _load_json(path: Path) -> Any:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt") as f:
            return json.load(f)
    return json.loads(path.read_text())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _kind(name: str) -> str:
    if name.endswith(HISTOGRAMS_JSON_SUFFIX):
        return "skip"
    if name.endswith(".coffea"):
        return "coffea"
    if name.endswith(".json") or name.endswith(".json.gz"):
        return "json"
    return "other"


def compare_files(pa: Path, pb: Path, name: str, rtol: float = 0.0, atol: float = 0.0,
                  roots: tuple[str, str] = ("", "")) -> FileResult:
    """Compare one pair of files (``name`` labels the differences; ``roots`` are the two
    compared roots, which strings may differ by)."""
    kind = _kind(name)
    if kind == "skip":
        return FileResult(name, SKIPPED, info=["the same histograms as the .coffea beside it"])
    if kind == "other":
        same = _sha256(pa) == _sha256(pb)
        return FileResult(name, IDENTICAL if same else INFO_ONLY,
                          info=[] if same else ["sha256 differs (not a compared format)"])
    diffs, info = _Diffs(rtol, atol, roots), []
    if kind == "coffea":
        _compare_coffea(pa, pb, name, diffs, info)
    else:
        try:
            ja, jb = _load_json(pa), _load_json(pb)
        except (ValueError, OSError) as err:
            return FileResult(name, DIFFERENT, n_differences=1,
                              differences=[f"{name}: cannot parse as JSON ({type(err).__name__}: {err})"])
        _compare_values(ja, jb, name, diffs)
    status = DIFFERENT if diffs.count else WITHIN_TOLERANCE if diffs.inexact else IDENTICAL
    return FileResult(name, status, max_rel_diff=diffs.max_rel, n_differences=diffs.count,
                      differences=diffs.messages, info=info)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def compare_outputs(a: Path, b: Path, rtol: float = 0.0, atol: float = 0.0) -> CompareReport:
    """Compare two output directories (every file present in either) or two files.

    Raises :class:`~analysis.errors.InputFileError` for a missing path, for a file compared
    with a directory, or for an unreadable ``.coffea`` file; negative tolerances are a
    :class:`~analysis.errors.ConfigError`.
    """
    from analysis.errors import ConfigError

    a, b = Path(a), Path(b)
    if rtol < 0 or atol < 0:
        raise ConfigError(f"tolerances must be >= 0, got rtol={rtol}, atol={atol}")
    for p in (a, b):
        if not p.exists():
            raise InputFileError(f"{p}: no such file or directory")
    report = CompareReport(a, b, rtol, atol)
    if a.is_file() != b.is_file():
        raise InputFileError(f"cannot compare a file with a directory: {a} vs {b}")
    if a.is_file():
        name = a.name if a.name == b.name else f"{a.name} vs {b.name}"
        roots = (str(a.parent), str(b.parent)) if a.parent != b.parent else ("", "")
        report.files.append(compare_files(a, b, name, rtol, atol, roots))
        return report
    roots = (str(a), str(b))
    files_a, files_b = _files(a), _files(b)
    for name in sorted(files_a | files_b):
        if name not in files_b or name not in files_a:
            side = "A" if name in files_a else "B"
            report.files.append(FileResult(name, MISSING, n_differences=1, differences=[f"only in {side}"]))
            continue
        report.files.append(compare_files(a / name, b / name, name, rtol, atol, roots))
    return report
