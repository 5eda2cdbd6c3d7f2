"""The fileset JSON of the generator and of the user: validated, with clear errors.

Format: ``{dataset: {"files": {path: "Events"}, "metadata": {...}}}`` with the metadata keys
of :class:`DatasetMetadata` plus those the registered analyses declare
(``AnalysisConfig.metadata_keys``, e.g. the signal masses); any other key is an error: a typo
must not pass silently.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from analysis.errors import FilesetError


class DatasetMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    process: str
    era: str
    is_data: bool
    xsec_pb: float | None = None
    sum_genweight: float | None = None
    lumi_fb: float | None = None
    # informational keys written by the generator
    n_events: int | None = None
    seed: int | None = None
    generator_version: str | None = None
    processes: list[str] | None = None

    @model_validator(mode="after")
    def _normalization(self):
        if not self.is_data and (self.xsec_pb is None or self.sum_genweight is None):
            raise ValueError("simulation needs xsec_pb and sum_genweight")
        if not self.is_data and self.sum_genweight == 0:
            raise ValueError("sum_genweight is zero")
        return self


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: dict[str, str]
    metadata: DatasetMetadata


def _dataset_model(extra_keys: dict[str, type] | None) -> type[BaseModel]:
    if not extra_keys:
        return Dataset
    meta = create_model("AnalysisDatasetMetadata", __base__=DatasetMetadata,
                        **{k: (t | None, None) for k, t in sorted(extra_keys.items())})
    return create_model("AnalysisDataset", __base__=Dataset, metadata=(meta, ...))


def load_fileset(path: str | Path, extra_keys: dict[str, type] | None = None) -> dict[str, dict]:
    """Read and validate a fileset JSON; relative file paths are taken relative to it.

    ``extra_keys``: metadata keys (name -> type) allowed beside the core's; default: those of
    every registered analysis (:func:`processors.registry.metadata_keys`)."""
    if extra_keys is None:
        from .registry import metadata_keys

        extra_keys = metadata_keys()
    model = _dataset_model(extra_keys)
    path = Path(path)
    if not path.is_file():
        raise FilesetError(f"fileset {path} not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FilesetError(f"fileset {path} is not valid JSON: {err}") from None
    if not isinstance(raw, dict) or not raw:
        raise FilesetError(f"fileset {path} must be a non-empty object {{dataset: {{files, metadata}}}}")
    out = {}
    for name, entry in raw.items():
        try:
            ds = model.model_validate(entry)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise FilesetError(f"fileset {path}, dataset {name!r}: {where}: {first['msg']}") from None
        files = {str((path.parent / f) if not Path(f).is_absolute() else Path(f)): t for f, t in ds.files.items()}
        meta = ds.metadata.model_dump(exclude_none=True)
        meta.pop("processes", None)  # a list is not hashable metadata for coffea
        out[name] = {"files": files, "metadata": meta}
    return out
