"""ONNX export of LundNet and of the ABCDisCoTEC tagger with their JSON (:mod:`models.export`):
raw inputs in (standardisation inside the graph), probabilities out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.export import common_metadata, to_onnx_bytes, write_model

from .abcdiscotec import FlatOnBackground, TwoScores
from .inference import LUNDNET_KIND, TAGGER_KIND, lundnet_feature_order
from .lundnet import LundNet


def export_lundnet(model: LundNet, path: Path, *, config: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Write LundNet (flat padded-graph input ``graph``, output ``score``) and its JSON."""
    names = lundnet_feature_order(model.max_nodes)
    blob = to_onnx_bytes(model.eval(), model.n_inputs, "graph", "score")
    meta = common_metadata(LUNDNET_KIND, config, metrics)
    meta |= {"inputs": [{"name": "graph", "width": model.n_inputs}], "feature_order": names,
             "outputs": [{"name": "score", "columns": ["p_svj"]}], "max_nodes": model.max_nodes}
    return write_model(path, blob, meta)


def export_tagger(model: TwoScores | FlatOnBackground, path: Path, feature_names: tuple[str, ...], *, config: dict[str, Any],
                  metrics: dict[str, Any]) -> Path:
    """Write the two event scores (input ``features`` in ``feature_names`` order, output
    ``scores`` with columns X, Y) and the JSON."""
    if len(feature_names) != model.n_inputs:
        raise ValueError(f"{len(feature_names)} names for a model with {model.n_inputs} inputs")
    blob = to_onnx_bytes(model.eval(), model.n_inputs, "features", "scores")
    meta = common_metadata(TAGGER_KIND, config, metrics)
    meta |= {"inputs": [{"name": "features", "width": model.n_inputs}], "feature_order": list(feature_names),
             "outputs": [{"name": "scores", "columns": ["X", "Y"]}]}
    return write_model(path, blob, meta)
