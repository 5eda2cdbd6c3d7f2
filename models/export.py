"""ONNX export of the trained models with a JSON description beside each file.

docs/physics.md sec. 4 and 7, seed 002 (the ONNX workflow: train in torch, evaluate elsewhere).
The graph takes raw values (input standardisation and the refiner's log transforms are
inside it); batch norm is folded into the preceding Linear first (DESIGN.md notes).

The JSON (``<name>.json`` beside ``<name>.onnx``) is the contract that
:mod:`models.inference` checks: ``kind``, ``inputs`` (name and width), ``feature_order``,
``outputs`` (name and columns), ``class_order`` (classifier), ``versions`` (torch, onnx,
package), ``onnx_sha256`` (of the .onnx file), ``config`` and its ``config_sha256``, and
the training ``metrics``.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from analysis.softtrack.config import ONNX_OPSET, TRACK_CLASSES

from .classifier import ProbabilityHead, TrackClassifier, fold_batch_norm
from .refiner import TrackRefiner

#: version of the JSON sidecar layout (bump on incompatible change)
METADATA_FORMAT = 1
PACKAGE_NAME = "softtrack"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
#: name of the dynamic batch axis in the graph
BATCH_AXIS = "rows"


def package_version() -> str:
    """Version of the softtrack package (installed metadata, else pyproject.toml)."""
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:
        pass
    try:
        import tomllib

        return str(tomllib.loads(PYPROJECT.read_text())["project"]["version"])
    except (ImportError, OSError, KeyError):
        return "unknown"


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a training configuration."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _to_onnx_bytes(module: nn.Module, n_inputs: int, input_name: str, output_name: str) -> bytes:
    module = module.eval()
    dummy = torch.zeros(2, n_inputs, dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The torch.export-based exporter needs onnxscript (not a dependency); the
        # TorchScript exporter is announced as deprecated but is the one installed here.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*will be removed")
        torch.onnx.export(
            module,
            (dummy,),
            buffer,
            dynamo=False,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: BATCH_AXIS}, output_name: {0: BATCH_AXIS}},
            opset_version=ONNX_OPSET,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _write(path: Path, blob: bytes, meta: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    meta["onnx_sha256"] = file_sha256(path)
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1, sort_keys=False, allow_nan=True) + "\n")
    return json_path


def _common(kind: str, config: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "softtrack-onnx-model",
        "format_version": METADATA_FORMAT,
        "kind": kind,
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "opset": ONNX_OPSET,
            PACKAGE_NAME: package_version(),
        },
        "config": config,
        "config_sha256": config_hash(config),
        "metrics": metrics,
    }


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
    blob = _to_onnx_bytes(exported, model.n_inputs, input_name, output_name)
    meta = _common("classifier", config, metrics)
    meta |= {
        "inputs": [{"name": input_name, "width": model.n_inputs}],
        "feature_order": list(input_names),
        "outputs": [{"name": output_name, "columns": list(TRACK_CLASSES)}],
        "class_order": list(TRACK_CLASSES),
    }
    return _write(path, blob, meta)


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
    blob = _to_onnx_bytes(model.eval(), n_inputs, input_name, output_name)
    meta = _common("refiner", config, metrics)
    meta |= {
        "inputs": [{"name": input_name, "width": n_inputs}],
        "feature_order": [*variables, *conditions],
        "outputs": [{"name": output_name, "columns": list(variables)}],
        "refined_variables": list(variables),
        "conditions": list(conditions),
        "ensemble_size": len(model.members),
    }
    return _write(path, blob, meta)
