"""Writing a processor output: the coffea file and the portable histograms beside it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def save_output(output: dict, out: Path) -> None:
    """``output`` to ``out`` (coffea.util.save) and its histograms to
    ``OUT.histograms.json.gz`` (UHI JSON: ``hist.Hist(obj)`` reads each back)."""
    import uhi.io.json as uhi_json
    from coffea.util import save

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(output, str(out))
    with gzip.open(out.with_suffix(".histograms.json.gz"), "wt") as f:
        json.dump(output["histograms"], f, default=uhi_json.default)
