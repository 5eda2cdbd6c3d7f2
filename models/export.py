"""ONNX export of trained torch models with a JSON description beside each file, for any
analysis (the ONNX workflow of seed 002: train in torch, evaluate elsewhere).

An analysis' export function builds the module to export (raw values in: its input
standardisation inside the graph), calls :func:`to_onnx_bytes`, fills the metadata from
:func:`common_metadata` with its ``inputs``, ``feature_order`` and ``outputs``, and writes
both files with :func:`write_model`.

The JSON (``<name>.json`` beside ``<name>.onnx``) is the contract that
:mod:`models.inference` checks: ``kind``, ``inputs`` (name and width), ``feature_order``,
``outputs`` (name and columns), ``versions`` (torch, onnx, package), ``onnx_sha256`` (of
the .onnx file), ``config`` and its ``config_sha256``, the training ``metrics``, and what
the analysis adds (the soft-track classifier its ``class_order``).
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

#: version of the JSON sidecar layout (bump on incompatible change)
METADATA_FORMAT = 1
PACKAGE_NAME = "softtrack"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
#: name of the dynamic batch axis in the graph
BATCH_AXIS = "rows"
#: ONNX opset of the exported graphs (supported by the pinned onnxruntime)
ONNX_OPSET = 17


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


def to_onnx_bytes(module: nn.Module, n_inputs: int, input_name: str, output_name: str,
                  opset: int = ONNX_OPSET) -> bytes:
    """The checked ONNX graph of ``module`` (one 2D float32 input, dynamic rows)."""
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
            opset_version=opset,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def write_model(path: Path, blob: bytes, meta: dict[str, Any]) -> Path:
    """Write the graph (atomically) and its JSON with the graph's sha256; returns the JSON path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    meta["onnx_sha256"] = file_sha256(path)
    json_path = path.with_suffix(".json")
    tmp_json = json_path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(meta, indent=1, sort_keys=False, allow_nan=True) + "\n")
    tmp_json.replace(json_path)
    return json_path


def common_metadata(kind: str, config: dict[str, Any], metrics: dict[str, Any],
                    opset: int = ONNX_OPSET) -> dict[str, Any]:
    """The keys every model JSON has: format, kind, versions, config and its hash, metrics."""
    return {
        "format": "softtrack-onnx-model",
        "format_version": METADATA_FORMAT,
        "kind": kind,
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "opset": opset,
            PACKAGE_NAME: package_version(),
        },
        "config": config,
        "config_sha256": config_hash(config),
        "metrics": metrics,
    }
