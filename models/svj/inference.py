"""ONNX Runtime wrappers of the semi-visible-jet networks (no torch): the padded-graph input
of LundNet and the two scores of the event tagger (docs/svj.md, "Networks")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.svj.lund import LUND_FEATURES
from models.inference import OnnxModel

HERE = Path(__file__).resolve().parent
LUNDNET_PATH = HERE / "lundnet.onnx"
TAGGER_PATH = HERE / "abcdiscotec.onnx"
LUNDNET_KIND = "svj_lundnet"
TAGGER_KIND = "svj_abcdiscotec"


def lundnet_feature_order(max_nodes: int) -> list[str]:
    """Column names of LundNet's flat input: node features (node-major), then the node mask."""
    return [f"{f}_{k}" for k in range(max_nodes) for f in LUND_FEATURES] + [f"mask_{k}" for k in range(max_nodes)]


def flatten_graph(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, nodes, 5) features and (n, nodes) mask -> the flat (n, nodes * 6) float32 input."""
    n = features.shape[0]
    return np.ascontiguousarray(np.concatenate([features.reshape(n, -1), mask], axis=1), dtype=np.float32)


class LundNetModel(OnnxModel):
    """LundNet on padded primary-Lund chains: probability that a jet is semi-visible."""

    kind = LUNDNET_KIND
    retrain_hint = "retrain with `python run.py svj-train` or restore models/svj/lundnet.onnx"

    @property
    def max_nodes(self) -> int:
        return int(self.meta["max_nodes"])

    def score(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Signal probability per jet, float64 (n,)."""
        if features.shape[0] == 0:
            return np.zeros(0)
        return self(flatten_graph(features, mask))[:, 0].astype(np.float64)


class EventTaggerModel(OnnxModel):
    """The two ABCDisCoTEC networks: scores X and Y (sigmoid) of the 12 event features."""

    kind = TAGGER_KIND
    retrain_hint = "retrain with `python run.py svj-train` or restore models/svj/abcdiscotec.onnx"

    def scores(self, features) -> tuple[np.ndarray, np.ndarray]:
        out = self(features)
        if out.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        return out[:, 0].astype(np.float64), out[:, 1].astype(np.float64)
