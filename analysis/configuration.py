"""Analysis configuration as validated data: the base every analysis' configuration extends.

An analysis' configuration is a pydantic model with ``extra="forbid"`` (a typo in a key is an
error that quotes the key) whose defaults live in code. A user overrides any part of it from
a TOML or YAML file (``--config FILE``); :func:`load_config` merges the file into the
defaults key by key and validates the result. :func:`config_hash` is the hash of the
effective configuration that goes into the provenance of every output.

Example of an override file for the soft-track analysis::

    [baseline]
    met = 350.0

    [lumi_fb]
    "2018" = 59.7
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.constants import ERAS, LUMI_FB
from analysis.errors import ConfigError


class ConfigModel(BaseModel):
    """A frozen block of configuration whose unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AnalysisConfig(ConfigModel):
    """What every analysis configures: its eras with their luminosities, the dataset-metadata
    keys it adds to the fileset, and the models and corrections it uses.

    Attributes
    ----------
    eras : the data-taking periods the analysis reads (every dataset's ``era`` must be one).
    lumi_fb : integrated luminosity (fb^-1) per era, the default normalization of simulation.
    metadata_keys : dataset-metadata keys of this analysis beyond the core's (name -> type
        name ``"float"``, ``"int"``, ``"str"`` or ``"bool"``), e.g. the signal masses.
    models : model name -> file (ONNX) the analysis evaluates; empty: none or shipped.
    corrections : correction set name -> correctionlib file; empty: none or shipped.
    """

    eras: tuple[str, ...] = ERAS
    lumi_fb: dict[str, float] = Field(default_factory=lambda: dict(LUMI_FB))
    metadata_keys: dict[str, str] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)
    corrections: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _eras_have_luminosity(self):
        missing = [era for era in self.eras if era not in self.lumi_fb]
        if missing:
            raise ValueError(f"eras {missing} have no lumi_fb entry")
        bad = {era: v for era, v in self.lumi_fb.items() if not v > 0}
        if bad:
            raise ValueError(f"lumi_fb must be positive, got {bad}")
        unknown = {k: t for k, t in self.metadata_keys.items() if t not in METADATA_TYPES}
        if unknown:
            raise ValueError(f"metadata_keys types must be one of {sorted(METADATA_TYPES)}, got {unknown}")
        return self


#: type names of :attr:`AnalysisConfig.metadata_keys`
METADATA_TYPES: dict[str, type] = {"float": float, "int": int, "str": str, "bool": bool}

C = TypeVar("C", bound=AnalysisConfig)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"configuration file {path} not found")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or write TOML") from None
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"configuration file {path}: use .toml, .yaml or .json")
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any parse error of the user's file
        raise ConfigError(f"configuration file {path} does not parse: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a table of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, override: Mapping, where: str = "") -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def describe_validation_error(err: ValidationError, source: str) -> str:
    """One line naming the first bad key (dotted), its value and what is wrong."""
    first = err.errors()[0]
    where = ".".join(str(x) for x in first["loc"]) or "(top level)"
    value = first.get("input")
    shown = json.dumps(value, default=str) if not isinstance(value, dict) else "{...}"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key {where!r} (value {shown}): check the spelling against the documented keys"
    return f"{source}: {where} = {shown}: {first['msg']}"


def load_config(cls: type[C], path: str | Path | None = None, **overrides: Any) -> C:
    """The defaults of ``cls`` overridden by the file at ``path`` (TOML, YAML or JSON) and then
    by ``overrides``; a bad key or value raises one ConfigError quoting it."""
    data = cls().model_dump()
    source = "configuration"
    if path is not None:
        path = Path(path)
        source = f"configuration file {path}"
        data = _merge(data, _read(path))
    data = _merge(data, overrides)
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, source)) from None


def config_hash(config: BaseModel) -> str:
    """sha256 (16 hex digits) of the effective configuration, independent of key order."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
