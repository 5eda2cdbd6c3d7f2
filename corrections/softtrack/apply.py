"""Evaluate the corrections with correctionlib on numpy or awkward arrays (docs/physics.md sec. 6).

:class:`SoftTrackCorrections` holds the CorrectionSet's JSON text and builds the
correctionlib evaluator lazily, so it pickles through its JSON and every coffea worker
loads its own evaluator (ARCHITECTURE.md, rules for an analysis). Values are computed by
correctionlib's vectorized evaluator: no Python-side lookups per event. String inputs
(era, class, syst, category) are checked up front against the categories in the file, so a
request the file cannot answer raises :class:`~analysis.errors.CorrectionError` naming
the file, the correction and what it does provide.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import correctionlib
import correctionlib.schemav2 as cs
import numpy as np

from analysis.errors import CorrectionError
from analysis.softtrack.config import CORRECTIONS_FILENAME

#: the shipped corrections (derived from the default-like sample, see README.md here)
DEFAULT_PATH = Path(__file__).resolve().parent / CORRECTIONS_FILENAME
#: the inputs, in order, with which this module evaluates each correction
INPUTS: dict[str, tuple[str, ...]] = {
    "pileup_weight": ("era", "n_true_int", "syst"),
    "ptz_weight": ("era", "ptz"),
    "met_weight": ("era", "met", "syst"),
    "track_class_sf": ("era", "class", "syst"),
    "sideband_sf": ("era", "category", "syst"),
    "residual_shape": ("era", "category", "max_logit", "syst"),
}


def _string_categories(node: Any, out: dict[str, set[str]]) -> None:
    """Collect, per string input, the category keys found anywhere in a correction's tree."""
    if isinstance(node, cs.Category):
        out.setdefault(node.input, set()).update(str(item.key) for item in node.content)
        for item in node.content:
            _string_categories(item.value, out)
        if node.default is not None:
            _string_categories(node.default, out)
    elif isinstance(node, cs.Binning | cs.MultiBinning):
        for item in node.content:
            _string_categories(item, out)


class SoftTrackCorrections:
    """The analysis corrections of one CorrectionSet file.

    Parameters
    ----------
    path : a ``.json`` or ``.json.gz`` CorrectionSet (default: the shipped file).
    """

    def __init__(self, path: str | Path | None = None, *, json_text: str | None = None):
        if json_text is None:
            self.path = str(Path(path) if path is not None else DEFAULT_PATH)
            try:
                opener = gzip.open if self.path.endswith(".gz") else open
                with opener(self.path, "rt", encoding="utf-8") as f:
                    json_text = f.read()
            except OSError as err:
                raise CorrectionError(f"cannot read corrections file {self.path}: {err.strerror or err}; "
                                      "derive it with `python run.py corrections`") from None
        else:
            self.path = "<json text>"
        self._json = json_text
        try:
            model = cs.CorrectionSet.model_validate(json.loads(json_text))
        except Exception as err:  # noqa: BLE001 - any parse failure is a bad file
            raise CorrectionError(f"{self.path} is not a correctionlib schema-v2 CorrectionSet: {err}") from None
        self._inputs: dict[str, list[str]] = {}
        self._categories: dict[str, dict[str, set[str]]] = {}
        self._data: dict[str, Any] = {}
        for c in model.corrections:
            self._inputs[c.name] = [v.name for v in c.inputs]
            self._data[c.name] = c.data
            cats: dict[str, set[str]] = {}
            _string_categories(c.data, cats)
            self._categories[c.name] = cats
        self._evaluator: correctionlib.CorrectionSet | None = None

    # -- pickling: the JSON travels with its sha256, the evaluator is rebuilt on first use --
    @property
    def sha256(self) -> str:
        """sha256 of the CorrectionSet's JSON text."""
        return hashlib.sha256(self._json.encode("utf-8")).hexdigest()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "json": self._json, "sha256": self.sha256}

    def __setstate__(self, state: dict[str, Any]) -> None:
        digest = hashlib.sha256(state["json"].encode("utf-8")).hexdigest()
        if state.get("sha256", digest) != digest:
            raise CorrectionError(f"the corrections of {state['path']} arrived altered (sha256 {digest[:12]} "
                                  f"instead of {state['sha256'][:12]}): rerun the job")
        self.__init__(json_text=state["json"])
        self.path = state["path"]

    @property
    def evaluator(self) -> correctionlib.CorrectionSet:
        """The correctionlib evaluator, built on first use in each process."""
        if self._evaluator is None:
            self._evaluator = correctionlib.CorrectionSet.from_string(self._json)
        return self._evaluator

    @property
    def names(self) -> list[str]:
        return sorted(self._inputs)

    def eras(self, name: str) -> list[str]:
        """Eras a correction provides."""
        self._require(name)
        return sorted(self._categories[name].get("era", set()))

    def provides(self, name: str, **inputs: str) -> bool:
        """Whether correction ``name`` has an entry for the given string inputs together, e.g.
        ``provides("residual_shape", era="2018", category="0.3")`` (:meth:`eras` and the
        category checks of :meth:`evaluate` look at each input on its own)."""
        if name not in self._data:
            return False
        node = self._data[name]
        while isinstance(node, cs.Category) and node.input in inputs:
            want = str(inputs[node.input])
            match = [item.value for item in node.content if str(item.key) == want]
            if not match and node.default is None:
                return False
            node = match[0] if match else node.default
        return True

    def missing(self, name: str, **inputs: str | Sequence[str]) -> tuple[str, str] | None:
        """Why the file cannot evaluate correction ``name`` with these string inputs (each
        one value or several; every combination is checked), or None if it can. The reason is
        ``(kind, text)``: kind ``"correction"`` (not in the file), ``"inputs"`` (other inputs
        than this module passes, :data:`INPUTS`), ``"era"`` or another input name (a value the
        file lacks), ``"combination"`` (the values exist, not together)."""
        if name not in self._inputs:
            return "correction", f"has no correction {name!r} (it has {', '.join(self.names) or 'none'})"
        expected = INPUTS.get(name)
        if expected is not None and tuple(self._inputs[name]) != expected:
            return "inputs", (f"{name} takes the inputs ({', '.join(self._inputs[name])}), this code passes "
                              f"({', '.join(expected)})")
        wanted = {k: [str(v)] if isinstance(v, str) else [str(x) for x in v] for k, v in inputs.items()}
        for input_name, values in wanted.items():
            allowed = self._categories[name].get(input_name, set())
            absent = [v for v in values if v not in allowed]
            if absent:
                return input_name, (f"{name} has no {input_name} {', '.join(repr(v) for v in absent)} "
                                    f"(it has {', '.join(sorted(allowed)) or 'none'})")
        for combo in itertools.product(*wanted.values()):
            given = dict(zip(wanted, combo, strict=True))
            if not self.provides(name, **given):
                return "combination", f"{name} has no entry for {', '.join(f'{k} {v!r}' for k, v in given.items())}"
        return None

    def _require(self, name: str) -> None:
        if name not in self._inputs:
            raise CorrectionError(f"correction {name!r} not in {self.path}: it has {', '.join(self.names)}; "
                                  "derive it with `python run.py corrections` from outputs that contain its inputs")

    def evaluate(self, name: str, *args: Any) -> Any:
        """Evaluate correction ``name`` with its inputs in order, after checking every string
        input against the categories in the file."""
        self._require(name)
        inputs = self._inputs[name]
        if len(args) != len(inputs):
            raise CorrectionError(f"correction {name!r} takes {len(inputs)} inputs ({', '.join(inputs)}), got {len(args)}")
        for input_name, value in zip(inputs, args, strict=True):
            allowed = self._categories[name].get(input_name)
            if allowed is None:
                continue
            values = {str(value)} if isinstance(value, str) else {str(v) for v in np.unique(np.asarray(value))}
            missing = values - allowed
            if missing:
                raise CorrectionError(f"correction {name!r} in {self.path} has no {input_name} "
                                      f"{', '.join(repr(m) for m in sorted(missing))}: it provides "
                                      f"{', '.join(sorted(allowed))}")
        return self.evaluator[name].evaluate(*args)

    # -- the corrections of the analysis --------------------------------------------------
    def pileup_weight(self, era: str, n_true_int: Any, syst: str = "nominal") -> Any:
        """Per-event pileup weight for Pileup_nTrueInt (docs/physics.md sec. 6)."""
        return self.evaluate("pileup_weight", era, n_true_int, syst)

    def ptz_weight(self, era: str, ptz: Any) -> Any:
        """Per-event weight of simulated cleaned Drell-Yan for the generator pT(Z) in GeV (docs/physics.md sec. 5)."""
        return self.evaluate("ptz_weight", era, ptz)

    def met_weight(self, era: str, met: Any, syst: str = "nominal") -> Any:
        """Per-event p_T^miss weight of simulated background (thesis sec. 6.2.3)."""
        return self.evaluate("met_weight", era, met, syst)

    def track_class_sf(self, era: str, cls: str, syst: str = "nominal") -> float:
        """Scale factor of the PV-associated ("pv") or spurious track class (thesis sec. 6.2.1)."""
        return float(self.evaluate("track_class_sf", era, cls, syst))

    def sideband_sf(self, era: str, category: str | float, syst: str = "nominal") -> float:
        """Sideband scale factor of a max-score category, e.g. "0.6" (thesis sec. 6.2.1)."""
        key = f"{category:g}" if isinstance(category, float) else str(category)
        return float(self.evaluate("sideband_sf", era, key, syst))

    def residual_shape(self, era: str, category: str | float, max_logit: Any, syst: str = "nominal") -> Any:
        """Residual max-logit shape weight in the signal regions (thesis sec. 6.2.2)."""
        key = f"{category:g}" if isinstance(category, float) else str(category)
        return self.evaluate("residual_shape", era, key, max_logit, syst)
