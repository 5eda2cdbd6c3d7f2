"""The soft-track models in processors (docs/physics.md sec. 4 and 7): ONNX Runtime wrappers
of the classifier and the refiner on :class:`models.inference.OnnxModel` (no torch).

* :class:`ClassifierModel` -- ``classify(features, dm, era)`` -> class probabilities,
  ``signal_logit(...)``; :func:`logit` is the score transform of thesis eq. 4.1.
* :class:`RefinerModel` -- ``refine(columns)`` -> refined pt, dxyErr, dzErr.

The shipped files lie beside this module (:data:`DEFAULT_CLASSIFIER`,
:data:`DEFAULT_REFINER`); ``python run.py train classifier|refiner`` rewrites them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import ModelError
from analysis.softtrack.config import (
    CLASSIFIER_DM_INPUT,
    CLASSIFIER_ERA_INPUTS,
    ERAS,
    LOGIT_EPSILON,
    TRACK_CLASSES,
)
from models.inference import OnnxModel

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_CLASSIFIER = MODELS_DIR / "classifier.onnx"
DEFAULT_REFINER = MODELS_DIR / "refiner.onnx"
#: rows per onnxruntime call of the classifier: its 256-wide hidden layers stay in the cache
#: (measured 0.81x the CPU time of 10^4-row batches on one thread, issue 24); its outputs do
#: not depend on the batch (checked row for row from 1 to 65536 rows)
CLASSIFIER_BATCH_ROWS = 2048


def logit(p: np.ndarray) -> np.ndarray:
    """Score transform ln((P + eps) / (1 - P + eps)), eps = 1e-6 (thesis eq. 4.1).

    Bounded to about [-13.82, 13.82]; float64 in, float64 out.
    """
    p = np.asarray(p, dtype=np.float64)
    return np.log((p + LOGIT_EPSILON) / (1.0 - p + LOGIT_EPSILON))


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
    retrain_hint = "retrain it with `python run.py train classifier` or restore the shipped file"

    def __init__(self, path: Path | str = DEFAULT_CLASSIFIER, **kw: Any) -> None:
        kw.setdefault("batch_rows", CLASSIFIER_BATCH_ROWS)
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
        feats = self._track_matrix(features)
        n = feats.shape[0]
        dm_col = np.broadcast_to(np.asarray(dm, dtype=np.float32), (n,))[:, None]
        return self(np.concatenate([feats, dm_col, era_one_hot(era, n)], axis=1))

    def _track_matrix(self, features: Any) -> np.ndarray:
        """The track features as an (n, N) float32 array in ``track_features`` order."""
        if isinstance(features, Mapping) or (isinstance(features, np.ndarray) and features.dtype.names) \
                or hasattr(features, "fields"):
            names = set(features.keys()) if isinstance(features, Mapping) else \
                set(features.dtype.names if isinstance(features, np.ndarray) else features.fields)
            missing = [n for n in self.track_features if n not in names]
            if missing:
                raise ModelError(f"{self.path.name}: features lack column(s) {missing}")
            return np.stack([np.asarray(features[n], np.float32).reshape(-1) for n in self.track_features], axis=1) \
                if self.track_features else np.zeros((0, 0), np.float32)
        feats = np.asarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != len(self.track_features):
            raise ModelError(f"{self.path.name}: features of shape {feats.shape}, the classifier needs "
                             f"(n, {len(self.track_features)}) in the order of its JSON feature_order")
        return feats

    def signal_probability(self, features: Any, dm: float | np.ndarray, era: Any) -> np.ndarray:
        """P(signal | ...), shape (n,)."""
        return self.classify(features, dm, era)[:, TRACK_CLASSES.index("signal")]

    def signal_logit(self, features: Any, dm: float | np.ndarray, era: Any) -> np.ndarray:
        """logit(P(signal | ...)) (thesis eq. 4.1), float64 (n,)."""
        return logit(self.signal_probability(features, dm, era))

    def signal_logits(self, features: Any, dms, era: Any) -> np.ndarray:
        """logit(P(signal | ...)) for each Delta m of ``dms``: float64 (n, len(dms)). The input
        matrix is assembled once and only its Delta m column changes between the evaluations:
        row for row the inputs, and so the outputs, of :meth:`signal_logit` for each Delta m."""
        column = len(self.track_features)
        if isinstance(features, np.ndarray) and features.dtype.names \
                and all(n in features.dtype.names for n in self.track_features):
            # a feature table: its columns copied once, straight into the input matrix
            n = features.shape[0]
            eras = era_one_hot(era, n)
            mat = np.empty((n, column + 1 + eras.shape[1]), np.float32)
            for j, name in enumerate(self.track_features):
                mat[:, j] = features[name]
            mat[:, column] = 0.0
            mat[:, column + 1:] = eras
        else:
            feats = self._track_matrix(features)
            n = feats.shape[0]
            mat = np.concatenate([feats, np.zeros((n, 1), np.float32), era_one_hot(era, n)], axis=1)
        signal = TRACK_CLASSES.index("signal")
        out = np.empty((n, len(dms)))
        for j, dm in enumerate(dms):
            mat[:, column] = np.float32(dm)
            out[:, j] = logit(self(mat)[:, signal])
        return out


class RefinerModel(OnnxModel):
    """The refiner ensemble (docs/physics.md sec. 7): simulated (pt, dxyErr, dzErr) -> refined."""

    kind = "refiner"
    retrain_hint = "retrain it with `python run.py train refiner` or restore the shipped file"

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
