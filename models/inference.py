"""ONNX Runtime evaluation of exported models, for any analysis (ARCHITECTURE.md).

No torch here: analyses run with numpy, onnxruntime and json only.

* :class:`OnnxModel` -- a model file and the JSON beside it. The model travels **by
  content**: its bytes and their sha256 are read once on the client and go into the pickle,
  so a dask worker started anywhere (another directory, another machine) evaluates the same
  graph without seeing the file; the sha256 is checked again on the worker before the
  ``onnxruntime.InferenceSession`` is created (lazily, on first use, and left out of the
  pickle as coffea's ``ml_tools`` do). One intra-op thread by default (workers are the
  parallelism). Inputs are a 2D float32 array in the JSON's ``feature_order`` or a mapping /
  structured array of named columns; rows are evaluated in batches of ``batch_rows``.
* An analysis subclasses it with a ``kind`` (the JSON's ``kind``) and the methods its
  processors call; :func:`load_model` opens a file as the subclass its kind names (the
  subclasses register themselves when their module is imported).

Every problem a user can cause (missing or corrupt file, JSON that does not describe the
graph, input of the wrong width or with missing columns) raises
:class:`analysis.errors.ModelError` naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from analysis.errors import ModelError

METADATA_FORMAT = 1
DEFAULT_THREADS = 1
#: rows per onnxruntime call (bounded memory, amortized call overhead)
DEFAULT_BATCH_ROWS = 10_000
_RETRAIN_HINT = "re-export the model or restore the shipped file"


def metadata_path(path: Path) -> Path:
    """The JSON description beside a model file."""
    return Path(path).with_suffix(".json")


def read_metadata(path: Path, retrain_hint: str = _RETRAIN_HINT) -> dict[str, Any]:
    """Read and validate the JSON beside ``path`` (and the model file's hash).

    Raises
    ------
    ModelError
        If the model file or its JSON is missing, the JSON is not valid or lacks a key,
        or the model file does not match the hash recorded in the JSON.
    """
    path = Path(path)
    json_path = metadata_path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found: {retrain_hint}")
    if not json_path.is_file():
        raise ModelError(f"model description {json_path} (beside {path.name}) not found: "
                         "export the model with models.export, which writes both files")
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"model description {json_path} is not valid JSON ({err}): re-export the model") from None
    required = ("format_version", "kind", "inputs", "feature_order", "outputs")
    missing = [key for key in required if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise ModelError(f"model description {json_path} lacks key(s) {missing}: re-export the model")
    if meta["format_version"] != METADATA_FORMAT:
        raise ModelError(f"model description {json_path} has format_version {meta['format_version']!r}, "
                         f"this code reads {METADATA_FORMAT}: re-export the model")
    expected = meta.get("onnx_sha256")
    if expected is not None:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise ModelError(f"model file {path} does not match the sha256 recorded in {json_path.name} "
                             f"(corrupt or replaced): {retrain_hint}")
    return meta


class OnnxModel:
    """An exported model: lazy onnxruntime session, input checks, batched evaluation.

    Parameters
    ----------
    path : the .onnx file (its JSON description must lie beside it).
    threads : intra-op threads of the session (1: the workers are the parallelism).
    batch_rows : rows per ``session.run`` call.
    """

    #: the JSON ``kind`` this class evaluates (None: any)
    kind: ClassVar[str | None] = None
    #: what to tell a user whose model file is bad (a subclass names its training command)
    retrain_hint: ClassVar[str] = _RETRAIN_HINT
    #: kind -> class, filled by the subclasses that declare a kind
    kinds: ClassVar[dict[str, type[OnnxModel]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind is not None:
            OnnxModel.kinds[cls.kind] = cls

    def __init__(self, path: Path | str, *, threads: int = DEFAULT_THREADS,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.path = Path(path).resolve()
        self.threads = int(threads)
        self.batch_rows = int(batch_rows)
        self.meta = read_metadata(self.path, self.retrain_hint)
        # the content travels with the model (read after the check of read_metadata; a file
        # replaced in between is caught by the hash below)
        self.blob: bytes = self.path.read_bytes()
        self.sha256: str = hashlib.sha256(self.blob).hexdigest()
        expected = self.meta.get("onnx_sha256")
        if expected is not None and expected != self.sha256:
            raise ModelError(f"model file {self.path} changed while it was read: {self.retrain_hint}")
        if self.kind is not None and self.meta["kind"] != self.kind:
            raise ModelError(f"{self.path} holds a {self.meta['kind']!r} model, not a {self.kind!r} one")
        if len(self.meta["inputs"]) != 1 or len(self.meta["outputs"]) < 1:
            raise ModelError(f"{metadata_path(self.path)} describes {len(self.meta['inputs'])} inputs; "
                             "these models take exactly one 2D input")
        self.input_name: str = self.meta["inputs"][0]["name"]
        self.feature_order: tuple[str, ...] = tuple(self.meta["feature_order"])
        self.output_names: tuple[str, ...] = tuple(o["name"] for o in self.meta["outputs"])
        if self.meta["inputs"][0].get("width", len(self.feature_order)) != len(self.feature_order):
            raise ModelError(f"{metadata_path(self.path)}: input width and feature_order disagree; re-export")
        self._session: ort.InferenceSession | None = None

    # --- session ----------------------------------------------------------------------
    @property
    def session(self) -> ort.InferenceSession:
        """The onnxruntime session, created on first use (per process)."""
        if self._session is None:
            self._session = self._open()
        return self._session

    def _open(self) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        if hashlib.sha256(self.blob).hexdigest() != self.sha256:
            raise ModelError(f"the content of model {self.path} was altered in transit "
                             f"(sha256 differs from {self.sha256[:12]}...): {self.retrain_hint}")
        try:
            session = ort.InferenceSession(self.blob, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types per failure
            raise ModelError(f"onnxruntime cannot load {self.path} ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}): {self.retrain_hint}") from None
        inputs = session.get_inputs()
        names = [i.name for i in inputs]
        if names != [self.input_name]:
            raise ModelError(f"{self.path}: graph inputs {names} differ from {[self.input_name]} "
                             f"in {metadata_path(self.path).name}; re-export the model")
        width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
        if width != len(self.feature_order):
            raise ModelError(f"{self.path}: graph input width {width} differs from the "
                             f"{len(self.feature_order)} features of its JSON; re-export the model")
        outputs = [o.name for o in session.get_outputs()]
        if outputs != list(self.output_names):
            raise ModelError(f"{self.path}: graph outputs {outputs} differ from {list(self.output_names)} "
                             f"in its JSON; re-export the model")
        return session

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_session"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # --- inputs -----------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return len(self.feature_order)

    def as_matrix(self, x: Any) -> np.ndarray:
        """Inputs -> C-contiguous float32 array (n, n_inputs) in ``feature_order``.

        ``x`` is a 2D array already in that order, or a mapping / numpy structured array
        / awkward record array of named 1D columns (extra columns are ignored).
        """
        if isinstance(x, Mapping) or (isinstance(x, np.ndarray) and x.dtype.names) or hasattr(x, "fields"):
            names = set(x.keys()) if isinstance(x, Mapping) else set(x.dtype.names if isinstance(x, np.ndarray) else x.fields)
            missing = [n for n in self.feature_order if n not in names]
            if missing:
                raise ModelError(f"{self.path.name}: input lacks column(s) {missing}; "
                                 f"the model needs {list(self.feature_order)}")
            cols = [np.asarray(x[n], dtype=np.float32).reshape(-1) for n in self.feature_order]
            sizes = {c.size for c in cols}
            if len(sizes) > 1:
                raise ModelError(f"{self.path.name}: input columns have different lengths {sorted(sizes)}")
            return np.ascontiguousarray(np.stack(cols, axis=1))
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.n_inputs:
            raise ModelError(f"{self.path.name}: input of shape {arr.shape}, the model needs (n, {self.n_inputs}) "
                             f"columns in the order {list(self.feature_order)}")
        return np.ascontiguousarray(arr)

    def __call__(self, x: Any) -> np.ndarray:
        """Evaluate the first output on all rows of ``x``, in batches; float32 (n, k)."""
        mat = self.as_matrix(x)
        session = self.session
        out_name = self.output_names[0]
        if mat.shape[0] == 0:
            width = len(self.meta["outputs"][0].get("columns", []))
            return np.zeros((0, width), dtype=np.float32)
        parts = [
            session.run([out_name], {self.input_name: mat[start : start + self.batch_rows]})[0]
            for start in range(0, mat.shape[0], self.batch_rows)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, inputs={self.n_inputs})"


def load_model(path: Path | str, **kw: Any) -> OnnxModel:
    """Open a model file as the registered wrapper its JSON ``kind`` names.

    The wrappers register when their module is imported (an analysis' models module);
    an unknown kind is an error naming the known ones.
    """
    kind = read_metadata(Path(path))["kind"]
    cls = OnnxModel.kinds.get(kind)
    if cls is None:
        known = ", ".join(sorted(OnnxModel.kinds)) or "none registered"
        raise ModelError(f"{path}: model kind {kind!r} in its JSON has no wrapper (known: {known}); "
                         "import the analysis' models module that defines it")
    return cls(path, **kw)
