"""The smuon networks in processors (docs/smuon.md sec. 5): an ONNX Runtime wrapper, no torch.

:class:`SmuonNetwork` evaluates an exported network on the 37 features of
:mod:`analysis.smuon.features` (raw values: the standardization of the balanced training
set is inside the graph) and returns the sigmoid score; its JSON carries the feature order,
the standardization, the analysis threshold and the training metrics. The shipped files
lie beside this module (:data:`SHIPPED`); ``python run.py smuon-train`` rewrites them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.errors import ModelError
from analysis.smuon.features import FEATURES
from models.inference import OnnxModel

MODELS_DIR = Path(__file__).resolve().parent
#: the two networks of seed 002: trained on the low- and on the high-mass benchmarks
NETWORKS: tuple[str, ...] = ("low", "high")
SHIPPED: dict[str, Path] = {name: MODELS_DIR / f"smuon_nn_{name}.onnx" for name in NETWORKS}
KIND = "smuon_nn"


class SmuonNetwork(OnnxModel):
    """A smuon network: ``score(features)`` -> sigmoid output in [0, 1], one per row."""

    kind = KIND
    retrain_hint = "retrain with `python run.py smuon-train` (needs the [train] extra) or restore the shipped file"

    def __init__(self, path, **kw) -> None:
        super().__init__(path, **kw)
        if tuple(self.feature_order) != FEATURES:
            raise ModelError(f"{self.path}: its feature_order differs from analysis.smuon.features.FEATURES "
                             f"({len(self.feature_order)} vs {len(FEATURES)} columns): {self.retrain_hint}")
        for key in ("standardization", "threshold", "network"):
            if key not in self.meta:
                raise ModelError(f"{self.path}: its JSON lacks {key!r}: {self.retrain_hint}")

    @property
    def threshold(self) -> float:
        """The analysis cut on the score recorded at export (seed 002: 0.7)."""
        return float(self.meta["threshold"])

    @property
    def network(self) -> str:
        """"low" or "high": the benchmarks it was trained on."""
        return str(self.meta["network"])

    def score(self, x) -> np.ndarray:
        """Sigmoid scores (float64, shape (n,)) of the rows of ``x`` (matrix in FEATURES order or
        named columns)."""
        return np.asarray(self(x), np.float64).reshape(-1)


def shipped_networks() -> dict[str, SmuonNetwork]:
    """The shipped networks by name; a missing or broken file is a ModelError naming it."""
    return {name: SmuonNetwork(path) for name, path in SHIPPED.items()}
