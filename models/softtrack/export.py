"""ONNX export of the soft-track classifier and refiner (docs/physics.md sec. 4 and 7).

The graph takes raw values (input standardisation and the refiner's log transforms are
inside it); batch norm is folded into the preceding Linear first
(:func:`models.softtrack.classifier.fold_batch_norm`). The
JSON beside each file is the contract :mod:`models.softtrack.inference` checks: ``kind``,
``inputs`` (name and width), ``feature_order``, ``outputs`` (name and columns),
``class_order`` (classifier), ``versions``, ``onnx_sha256``, ``config`` and its
``config_sha256``, and the training ``metrics`` (:mod:`models.export`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.softtrack.config import TRACK_CLASSES
from models.export import common_metadata, to_onnx_bytes, write_model

from .classifier import ProbabilityHead, TrackClassifier, fold_batch_norm
from .refiner import TrackRefiner


def export_classifier(
    model: TrackClassifier,
    path: Path,
    input_names: tuple[str, ...],
    *,
    config: dict[str, Any],
    metrics: dict[str, Any],
    input_name: str = "features",
    output_name: str = "probabilities",
) -> Path:
    """Write the classifier (batch norm folded, softmax output) to ``path`` and its JSON.

    Parameters
    ----------
    model : the trained classifier (any mode; it is copied and put in eval mode).
    path : the .onnx file; the JSON goes to the same name with suffix .json.
    input_names : names of the input columns in order (track features, dm, era one-hot).

    Returns the path of the JSON.
    """
    if len(input_names) != model.n_inputs:
        raise ValueError(f"{len(input_names)} input names for a model with {model.n_inputs} inputs")
    exported = ProbabilityHead(fold_batch_norm(model)).eval()
    blob = to_onnx_bytes(exported, model.n_inputs, input_name, output_name)
    meta = common_metadata("classifier", config, metrics)
    meta |= {
        "inputs": [{"name": input_name, "width": model.n_inputs}],
        "feature_order": list(input_names),
        "outputs": [{"name": output_name, "columns": list(TRACK_CLASSES)}],
        "class_order": list(TRACK_CLASSES),
    }
    return write_model(path, blob, meta)


def export_refiner(
    model: TrackRefiner,
    path: Path,
    variables: tuple[str, ...],
    conditions: tuple[str, ...] = (),
    *,
    config: dict[str, Any],
    metrics: dict[str, Any],
    input_name: str = "tracks",
    output_name: str = "refined",
) -> Path:
    """Write the refiner ensemble (raw in, raw refined out) to ``path`` and its JSON.

    ``variables`` name the refined columns (input and output), ``conditions`` the extra
    conditioning inputs that follow them. Returns the path of the JSON.
    """
    if len(variables) != model.n_refined or len(conditions) != model.n_conditions:
        raise ValueError("variable/condition names do not match the refiner's widths")
    n_inputs = model.n_refined + model.n_conditions
    blob = to_onnx_bytes(model.eval(), n_inputs, input_name, output_name)
    meta = common_metadata("refiner", config, metrics)
    meta |= {
        "inputs": [{"name": input_name, "width": n_inputs}],
        "feature_order": [*variables, *conditions],
        "outputs": [{"name": output_name, "columns": list(variables)}],
        "refined_variables": list(variables),
        "conditions": list(conditions),
        "ensemble_size": len(model.members),
    }
    return write_model(path, blob, meta)
