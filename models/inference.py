"""ONNX Runtime evaluation of the exported models (docs/physics.md sec. 4 and 7; DESIGN.md notes).

No torch here: analyses run with numpy, onnxruntime and json only.

* :class:`OnnxModel` -- a model file and the JSON beside it. The
  ``onnxruntime.InferenceSession`` is created lazily on first use and is left out of the
  pickle (``__getstate__``), so a processor holding a model ships cheaply to workers, each
  of which opens its own session (as coffea's ``ml_tools`` do). One intra-op thread by
  default (workers are the parallelism). Inputs are a 2D float32 array in the JSON's
  ``feature_order`` or a mapping / structured array of named columns; rows are evaluated
  in batches of :data:`analysis.softtrack.config.ONNX_BATCH_ROWS`.
* :class:`ClassifierModel` -- ``classify(features, dm, era)`` -> class probabilities,
  ``signal_logit(...)``; :func:`logit` is the score transform of thesis eq. 4.1.
* :class:`RefinerModel` -- ``refine(columns)`` -> refined pt, dxyErr, dzErr.
* :func:`load_model` -- opens a file as the class its JSON ``kind`` names.

Every problem a user can cause (missing or corrupt file, JSON that does not describe the
graph, input of the wrong width or with missing columns) raises
:class:`analysis.errors.ModelError` naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from analysis.errors import ModelError
from analysis.softtrack.config import (
    CLASSIFIER_DM_INPUT,
    CLASSIFIER_ERA_INPUTS,
    ERAS,
    LOGIT_EPSILON,
    ONNX_BATCH_ROWS,
    TRACK_CLASSES,
)

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_CLASSIFIER = MODELS_DIR / "classifier.onnx"
DEFAULT_REFINER = MODELS_DIR / "refiner.onnx"
METADATA_FORMAT = 1
DEFAULT_THREADS = 1
_TRAIN_HINT = "retrain it with `python run.py train {kind}` or restore the shipped file"


def logit(p: np.ndarray) -> np.ndarray:
    """Score transform ln((P + eps) / (1 - P + eps)), eps = 1e-6 (thesis eq. 4.1).

    Bounded to about [-13.82, 13.82]; float64 in, float64 out.
    """
    p = np.asarray(p, dtype=np.float64)
    return np.log((p + LOGIT_EPSILON) / (1.0 - p + LOGIT_EPSILON))


def metadata_path(path: Path) -> Path:
    """The JSON description beside a model file."""
    return Path(path).with_suffix(".json")


def read_metadata(path: Path) -> dict[str, Any]:
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
        raise ModelError(f"model file {path} not found: {_TRAIN_HINT.format(kind='classifier|refiner')}")
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
                             f"(corrupt or replaced): {_TRAIN_HINT.format(kind=meta['kind'])}")
    return meta


class OnnxModel:
    """An exported model: lazy onnxruntime session, input checks, batched evaluation.

    Parameters
    ----------
    path : the .onnx file (its JSON description must lie beside it).
    threads : intra-op threads of the session (1: the workers are the parallelism).
    batch_rows : rows per ``session.run`` call.
    """

    kind: str | None = None

    def __init__(self, path: Path | str, *, threads: int = DEFAULT_THREADS, batch_rows: int = ONNX_BATCH_ROWS) -> None:
        self.path = Path(path)
        self.threads = int(threads)
        self.batch_rows = int(batch_rows)
        self.meta = read_metadata(self.path)
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
        try:
            session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types per failure
            raise ModelError(f"onnxruntime cannot load {self.path} ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}): "
                             f"{_TRAIN_HINT.format(kind=self.meta['kind'])}") from None
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


def era_one_hot(era: Any, n: int) -> np.ndarray:
    """One-hot era matrix (n, len(ERAS)) from an era name, or an array of names or indices."""
    era_arr = np.asarray(era)
    if era_arr.ndim == 0:
        era_arr = np.full(n, era_arr.item())
    if era_arr.shape != (n,):
        raise ModelError(f"era has shape {era_arr.shape}, expected a scalar or ({n},)")
    if era_arr.dtype.kind in "iu":
        idx = era_arr.astype(np.int64)
        bad = np.unique(idx[(idx < 0) | (idx >= len(ERAS))])
    else:
        # vectorized lookup over the distinct names (no Python loop per row)
        names = era_arr.astype(str)
        uniq, inverse = np.unique(names, return_inverse=True)
        lookup = {e: i for i, e in enumerate(ERAS)}
        idx = np.array([lookup.get(e, -1) for e in uniq], dtype=np.int64)[inverse] if n else np.zeros(0, np.int64)
        bad = np.unique(names[idx < 0])
    if bad.size:
        raise ModelError(f"unknown era(s) {bad.tolist()}: choose from {', '.join(ERAS)}")
    out = np.zeros((n, len(ERAS)), dtype=np.float32)
    out[np.arange(n), idx] = 1.0
    return out


class ClassifierModel(OnnxModel):
    """The soft-track classifier (docs/physics.md sec. 4): P(class | track features, dm, era)."""

    kind = "classifier"

    def __init__(self, path: Path | str = DEFAULT_CLASSIFIER, **kw: Any) -> None:
        super().__init__(path, **kw)
        self.class_order: tuple[str, ...] = tuple(self.meta.get("class_order", ()))
        if self.class_order != TRACK_CLASSES:
            raise ModelError(f"{self.path}: class order {list(self.class_order)} differs from "
                             f"TRACK_CLASSES {list(TRACK_CLASSES)}; retrain the classifier")
        tail = (CLASSIFIER_DM_INPUT, *CLASSIFIER_ERA_INPUTS)
        if self.feature_order[-len(tail):] != tail:
            raise ModelError(f"{self.path}: the last inputs are {list(self.feature_order[-len(tail):])}, "
                             f"expected {list(tail)}; retrain the classifier")
        self.track_features: tuple[str, ...] = self.feature_order[: -len(tail)]

    def classify(self, features: Any, dm: float | np.ndarray, era: Any) -> np.ndarray:
        """Class probabilities (n, 5) in :data:`TRACK_CLASSES` order.

        Parameters
        ----------
        features : (n, N) array in ``track_features`` order, or named columns.
        dm : the Delta m hypothesis (GeV), scalar or (n,).
        era : era name ("2016", ...) or per-row names / indices into ERAS.
        """
        if isinstance(features, Mapping) or (isinstance(features, np.ndarray) and features.dtype.names) \
                or hasattr(features, "fields"):
            names = set(features.keys()) if isinstance(features, Mapping) else \
                set(features.dtype.names if isinstance(features, np.ndarray) else features.fields)
            missing = [n for n in self.track_features if n not in names]
            if missing:
                raise ModelError(f"{self.path.name}: features lack column(s) {missing}")
            feats = np.stack([np.asarray(features[n], np.float32).reshape(-1) for n in self.track_features], axis=1) \
                if self.track_features else np.zeros((0, 0), np.float32)
        else:
            feats = np.asarray(features, dtype=np.float32)
            if feats.ndim != 2 or feats.shape[1] != len(self.track_features):
                raise ModelError(f"{self.path.name}: features of shape {feats.shape}, the classifier needs "
                                 f"(n, {len(self.track_features)}) in the order of its JSON feature_order")
        n = feats.shape[0]
        dm_col = np.broadcast_to(np.asarray(dm, dtype=np.float32), (n,))[:, None]
        return self(np.concatenate([feats, dm_col, era_one_hot(era, n)], axis=1))

    def signal_probability(self, features: Any, dm: float | np.ndarray, era: Any) -> np.ndarray:
        """P(signal | ...), shape (n,)."""
        return self.classify(features, dm, era)[:, TRACK_CLASSES.index("signal")]

    def signal_logit(self, features: Any, dm: float | np.ndarray, era: Any) -> np.ndarray:
        """logit(P(signal | ...)) (thesis eq. 4.1), float64 (n,)."""
        return logit(self.signal_probability(features, dm, era))


class RefinerModel(OnnxModel):
    """The refiner ensemble (docs/physics.md sec. 7): simulated (pt, dxyErr, dzErr) -> refined."""

    kind = "refiner"

    def __init__(self, path: Path | str = DEFAULT_REFINER, **kw: Any) -> None:
        super().__init__(path, **kw)
        self.variables: tuple[str, ...] = tuple(self.meta.get("refined_variables", ()))
        self.conditions: tuple[str, ...] = tuple(self.meta.get("conditions", ()))

    def refine(self, columns: Any) -> dict[str, np.ndarray]:
        """Refined values of the refined variables, as a dict name -> float32 (n,).

        ``columns`` holds at least the refined variables and the conditions by name
        (e.g. ``{"pt": ..., "dxyErr": ..., "dzErr": ...}``), or is an (n, k) array in
        ``feature_order``.
        """
        out = self(columns)
        return {name: out[:, i] for i, name in enumerate(self.variables)}


def load_model(path: Path | str, **kw: Any) -> OnnxModel:
    """Open a model file as the wrapper its JSON ``kind`` names."""
    kind = read_metadata(Path(path))["kind"]
    cls = {"classifier": ClassifierModel, "refiner": RefinerModel}.get(kind)
    if cls is None:
        raise ModelError(f"{path}: unknown model kind {kind!r} in its JSON (classifier or refiner)")
    return cls(path, **kw)
