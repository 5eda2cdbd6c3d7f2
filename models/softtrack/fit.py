"""Train, evaluate and export the soft-track models in one call each (docs/physics.md sec. 4
and 7): what ``python run.py train refiner|classifier`` runs once it has its inputs.

* :func:`fit_refiner` -- simulated and data track tables -> split by event, the ensemble
  trained on one part, evaluated on the held-out part (MMD, 1D distances, mean ratios),
  exported to ONNX and checked against torch.
* :func:`fit_classifier` -- :class:`~models.softtrack.data.ClassifierData` -> trained,
  evaluated (ROC AUC per Delta m and class, calibration), exported and checked.

Both need the ``[train]`` extra (torch, onnx).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.softtrack.config import REFINER_VARIABLES

from .data import ClassifierData, split_by_event

Say = Callable[[str], None]


@dataclass
class RefinerFit:
    """The evaluation (the JSON report) and the held-out arrays of the before/after figure."""

    metrics: dict[str, Any]
    held_out_simulation: np.ndarray
    held_out_refined: np.ndarray
    held_out_data: np.ndarray
    held_out_weight: np.ndarray | None = None


def fit_refiner(sim: dict[str, np.ndarray], data: dict[str, np.ndarray], cfg, out: Path, *,
                conditions: tuple[str, ...] = (), held_out_fraction: float = 0.25, threads: int = 1,
                extra_metrics: dict[str, Any] | None = None, say: Say = print) -> RefinerFit:
    """Train the refiner ensemble on simulated -> data tracks and export it to ``out``.

    ``sim`` and ``data`` hold the refined variables, the ``conditions`` and ``event`` (tracks
    of one event stay in one part), ``sim`` optionally ``weight`` (the simulated tracks'
    weights: training and evaluation then compare the weighted simulation with data); ``cfg`` is a :class:`~models.softtrack.training.RefinerConfig`;
    ``extra_metrics`` (e.g. the injected truth of a toy sample) go into the report and the JSON.
    """
    import torch

    from .export import export_refiner
    from .inference import RefinerModel
    from .training import evaluate_refiner, refine_numpy, train_refiner

    t0 = time.perf_counter()
    columns = (*REFINER_VARIABLES, *conditions)
    x_sim = np.stack([sim[c] for c in columns], axis=1)
    x_dat = np.stack([data[c] for c in columns], axis=1)
    held_fracs = (1.0 - held_out_fraction, 0.0, held_out_fraction)
    split_sim = split_by_event(sim["event"], cfg.seed, held_fracs)
    split_dat = split_by_event(data["event"], cfg.seed + 1, held_fracs)
    train_sim, test_sim = x_sim[split_sim == 0], x_sim[split_sim == 2]
    train_dat, test_dat = x_dat[split_dat == 0], x_dat[split_dat == 2]
    w_sim = sim.get("weight")
    w_train, w_test = (None, None) if w_sim is None else (w_sim[split_sim == 0], w_sim[split_sim == 2])
    say(f"tracks: simulation {len(train_sim)} train / {len(test_sim)} held out, "
        f"data {len(train_dat)} / {len(test_dat)}")
    torch.set_num_threads(threads)
    model, history = train_refiner(train_sim, train_dat, cfg, progress=say, sim_weight=w_train)
    refined = refine_numpy(model, test_sim)
    ev = evaluate_refiner(test_sim, refined, test_dat, REFINER_VARIABLES, seed=cfg.seed, sim_weight=w_test)
    ev |= extra_metrics or {}
    ev["n_train"] = {"simulation": len(train_sim), "data": len(train_dat)}
    export_refiner(model, Path(out), REFINER_VARIABLES, conditions, config=cfg.as_dict(), metrics=ev)
    onnx_refined = RefinerModel(out)(test_sim)
    ev["onnx_vs_torch_max_abs_diff"] = float(np.max(np.abs(onnx_refined - refined))) if len(refined) else 0.0
    ev["history"] = history
    ev["train_seconds"] = time.perf_counter() - t0
    return RefinerFit(ev, test_sim, refined, test_dat, w_test)


def fit_classifier(data: ClassifierData, cfg, out: Path, *, source: str, threads: int = 1,
                   say: Say = print) -> dict[str, Any]:
    """Train the classifier on the training split of ``data``, evaluate it on the test split,
    export it to ``out`` (``source`` recorded in its JSON) and check ONNX against torch;
    returns the evaluation. ``cfg`` is a :class:`~models.softtrack.training.ClassifierConfig`."""
    import torch

    from .export import export_classifier
    from .inference import ClassifierModel
    from .training import evaluate_classifier, predict_probabilities, train_classifier

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    model, history = train_classifier(data, cfg, progress=say)
    ev = evaluate_classifier(lambda x: predict_probabilities(model, x), data)
    ev["source"] = source
    config = cfg.as_dict() | {"source": source, "input_names": list(data.input_names)}
    export_classifier(model, Path(out), data.input_names, config=config, metrics=dict(ev))
    ev["history"] = history
    test_x = data.x[data.split == 2]
    diff = np.abs(ClassifierModel(out)(test_x) - predict_probabilities(model, test_x))
    ev["onnx_vs_torch_max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    ev["train_seconds"] = time.perf_counter() - t0
    return ev
