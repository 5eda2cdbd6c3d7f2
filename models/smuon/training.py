"""Training of the two smuon networks as seed 002 sec. III.2-III.4 describes (docs/smuon.md
sec. 5); torch (``[train]`` extra).

1. The preselected events of every training dataset (their 37 features and their weights
   sigma L genWeight / sum_genweight: "the mean weight per event equals the cross section
   times the luminosity, divided by the size of the dataset") come from the processor
   (:class:`processors.smuon.processor.SmuonProcessor` with ``store_features``).
2. Each component (a signal point, a background process) is split 8:1:1 into training,
   validation and test events.
3. The training set is balanced: the signal and the background classes get the same number of
   events, shared equally by their components (a component with fewer events is drawn with
   replacement, at most MAX_REPEAT times its size; one with more without), and the classes
   the same weight in the loss.
4. The inputs are standardized with the mean and standard deviation of the balanced
   training set (the same constants for the three sets; they go into the exported graph).
5. SGD with momentum, batch 32, binary cross-entropy; after every epoch the validation
   metrics at threshold 0.5 (F1, ROC AUC, precision, AUPRC, the validation events weighted as
   the balanced training set is composed) and the epoch with the best mean of the four is kept.
6. Test: ROC AUC of every training point against the background (physical weights), and the
   metrics of the whole test set (balanced as the validation set, and with physical weights); export to ONNX with the feature order, the standardization and the
   analysis threshold (0.7) in the JSON, and the largest ONNX-torch difference on the test set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.smuon.config import NetworkTraining
from analysis.smuon.features import FEATURES
from models.export import common_metadata, to_onnx_bytes, write_model
from models.metrics import roc_auc

from .inference import KIND, SmuonNetwork
from .network import SmuonClassifier, StandardizedScore


@dataclass
class Component:
    """The preselected events of one signal point or background process."""

    name: str
    is_signal: bool
    x: np.ndarray  # (n, 37) float32
    w: np.ndarray  # physical weights (events at the luminosity)
    point: tuple[float, float] | None = None


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray  # physical weights (events)
    component: np.ndarray  # index into the components


@dataclass
class TrainingResult:
    model: SmuonClassifier
    mean: np.ndarray
    std: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)
    test: Split | None = None


# --- metrics at a threshold -------------------------------------------------------------------
def binary_metrics(score: np.ndarray, y: np.ndarray, w: np.ndarray, threshold: float) -> dict[str, float]:
    """F1, precision, recall, ROC AUC and AUPRC (average precision) of ``score`` for labels
    ``y`` with weights ``w``; precision, recall and F1 at ``threshold``."""
    pos = y > 0.5
    sel = score > threshold
    tp, fp, fn = w[sel & pos].sum(), w[sel & ~pos].sum(), w[~sel & pos].sum()
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    order = np.argsort(-score, kind="stable")
    wp, wn = np.where(pos[order], w[order], 0.0), np.where(~pos[order], w[order], 0.0)
    ctp, cfp = np.cumsum(wp), np.cumsum(wn)
    prec = ctp / np.maximum(ctp + cfp, 1e-300)
    auprc = float(np.sum(prec * wp) / max(wp.sum(), 1e-300))
    return {"f1": float(f1), "precision": float(precision), "recall": float(recall),
            "roc_auc": roc_auc(score, pos, w), "auprc": auprc}


def selection_score(m: Mapping[str, float]) -> float:
    """The model-choice criterion of seed 002 sec. III.4: the mean of F1, ROC AUC, precision
    and AUPRC."""
    return float(np.mean([m["f1"], m["roc_auc"], m["precision"], m["auprc"]]))


def _class_balanced(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weights rescaled so that each class sums to 1."""
    out = np.asarray(w, np.float64).copy()
    for cls in (0, 1):
        m = (y > 0.5) == bool(cls)
        total = out[m].sum()
        if total > 0:
            out[m] /= total
    return out


# --- data -----------------------------------------------------------------------------------
def split_components(components: list[Component], fractions: tuple[float, float, float],
                     rng: np.random.Generator) -> tuple[Split, Split, Split]:
    """Each component split at random into training, validation and test events."""
    parts: list[list[tuple]] = [[], [], []]
    for i, c in enumerate(components):
        n = c.x.shape[0]
        order = rng.permutation(n)
        a = int(round(fractions[0] * n))
        b = a + int(round(fractions[1] * n))
        for k, idx in enumerate((order[:a], order[a:b], order[b:])):
            parts[k].append((c.x[idx], np.full(idx.size, float(c.is_signal)), c.w[idx], np.full(idx.size, i)))
    return tuple(Split(*(np.concatenate([p[j] for p in ps]) for j in range(4))) for ps in parts)


#: a component of the balanced training set repeats its events at most this many times (a
#: compressed point with a handful of preselected events is not drawn thousands of times)
MAX_REPEAT = 4


def balanced(train: Split, components: list[Component], rng: np.random.Generator,
             max_per_class: int | None = None) -> Split:
    """The balanced training set: each class (signal, background) gets as many events as the
    larger class has (at most ``max_per_class``), shared equally by its components; a component
    with fewer events is drawn with replacement, at most MAX_REPEAT times its size. The two
    classes then weigh the same in the loss (:func:`class_weights`)."""
    sig = [i for i, c in enumerate(components) if c.is_signal]
    bkg = [i for i, c in enumerate(components) if not c.is_signal]
    n_class = max(int((train.y > 0.5).sum()), int((train.y < 0.5).sum()))
    if max_per_class is not None:
        n_class = min(n_class, int(max_per_class))
    idx = []
    for group in (sig, bkg):
        per = max(n_class // len(group), 1)
        for i in group:
            have = np.nonzero(train.component == i)[0]
            if have.size == 0:
                continue
            k = min(per, MAX_REPEAT * have.size)
            idx.append(rng.choice(have, k, replace=have.size < k))
    idx = rng.permutation(np.concatenate(idx))
    return Split(train.x[idx], train.y[idx], train.w[idx], train.component[idx])


def class_weights(y: np.ndarray) -> np.ndarray:
    """Per-event loss weights (mean 1) that give both classes the same total."""
    pos = y > 0.5
    n, n_pos = y.size, int(pos.sum())
    return np.where(pos, n / (2.0 * max(n_pos, 1)), n / (2.0 * max(n - n_pos, 1)))


def composition_weights(split: Split, reference: Split) -> np.ndarray:
    """Weights of ``split``'s events (each class summing to 1) that give every component the
    share it has in ``reference`` (the balanced training set): the validation and test events
    weighted as the training set is composed."""
    out = np.zeros(split.y.size)
    for cls in (0, 1):
        in_ref = (reference.y > 0.5) == bool(cls)
        in_split = (split.y > 0.5) == bool(cls)
        comps, counts = np.unique(reference.component[in_ref], return_counts=True)
        for c, share in zip(comps, counts / max(counts.sum(), 1), strict=True):
            m = in_split & (split.component == c)
            if m.any():
                out[m] = share / m.sum()
        total = out[in_split].sum()
        if total > 0:
            out[in_split] /= total
    return out


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per column (a constant column gets std 1)."""
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    return mean, np.where(std > 0, std, 1.0)


# --- training -------------------------------------------------------------------------------
def _scores(model: SmuonClassifier, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(x)).numpy().astype(np.float64)


def train_network(components: list[Component], cfg: NetworkTraining, *, log=None) -> TrainingResult:
    """Train one network on ``components`` (signal points and backgrounds) as the module
    docstring describes; returns the model at its best epoch, the standardization and the
    metrics (history, best epoch, validation and test metrics, per-point test ROC AUC)."""
    torch.manual_seed(cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 32 rows: one thread is fastest (no thread hand-offs)
    try:
        return _train(components, cfg, log)
    finally:
        torch.set_num_threads(threads)


def _train(components: list[Component], cfg: NetworkTraining, log) -> TrainingResult:
    rng = np.random.default_rng(cfg.seed)
    train, val, test = split_components(components, cfg.split, rng)
    bal = balanced(train, components, rng, cfg.max_per_class)
    mean, std = standardization(bal.x)

    def tensor(x):
        return torch.as_tensor(((x - mean) / std).astype(np.float32))

    xt, yt = tensor(bal.x), torch.as_tensor(bal.y.astype(np.float32))
    lw = torch.as_tensor(class_weights(bal.y).astype(np.float32))
    xv = tensor(val.x)
    wv = composition_weights(val, bal)
    model = SmuonClassifier(len(FEATURES), tuple(cfg.hidden), cfg.activation, cfg.init_std)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    history, best, best_state = [], -np.inf, None
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(xt.shape[0], generator=gen)
        xs, ys, ws = xt[order], yt[order], lw[order]  # one gather per epoch, then slices
        total = torch.zeros(())
        for start in range(0, xt.shape[0], cfg.batch_size):
            stop = start + cfg.batch_size
            opt.zero_grad(set_to_none=True)
            loss = (loss_fn(model(xs[start:stop]), ys[start:stop]) * ws[start:stop]).mean()
            loss.backward()
            opt.step()
            total += loss.detach() * (min(stop, xt.shape[0]) - start)
        total = float(total)
        model.eval()
        sv = _scores(model, xv)
        with torch.no_grad():
            val_loss = float(torch.nn.functional.binary_cross_entropy(
                torch.as_tensor(np.clip(sv, 1e-7, 1 - 1e-7)), torch.as_tensor(val.y), weight=torch.as_tensor(wv * wv.size / 2)))
        m = binary_metrics(sv, val.y, wv, cfg.training_threshold)
        crit = selection_score(m)
        history.append({"epoch": epoch, "train_loss": total / xt.shape[0], "val_loss": val_loss, **m, "criterion": crit})
        if crit > best:
            best, best_state = crit, {k: v.clone() for k, v in model.state_dict().items()}
        if log is not None:
            log(f"epoch {epoch:3d}: loss {total / xt.shape[0]:.4f}, val loss {val_loss:.4f}, "
                f"AUC {m['roc_auc']:.4f}, F1 {m['f1']:.3f}, criterion {crit:.4f}")
    model.load_state_dict(best_state)
    model.eval()
    best_epoch = int(np.argmax([h["criterion"] for h in history]))
    st = _scores(model, tensor(test.x))
    per_point = {}
    bkg = test.y < 0.5
    for i, c in enumerate(components):
        if c.is_signal:
            mask = (test.component == i) | bkg
            per_point[c.name] = roc_auc(st[mask], test.y[mask] > 0.5, test.w[mask])
    metrics = {
        "n_train_balanced": int(bal.y.size), "n_validation": int(val.y.size), "n_test": int(test.y.size),
        "components": {c.name: {"signal": c.is_signal, "events": int(c.x.shape[0]), "weighted": float(c.w.sum())}
                       for c in components},
        "best_epoch": best_epoch, "epochs": cfg.epochs, "seconds": time.perf_counter() - t0,
        "validation_at_best": {k: history[best_epoch][k] for k in ("f1", "precision", "recall", "roc_auc", "auprc")},
        "test": binary_metrics(st, test.y, composition_weights(test, bal), cfg.training_threshold),
        "test_physical_weights": binary_metrics(st, test.y, _class_balanced(test.y, test.w), cfg.training_threshold),
        "test_roc_auc_by_point": per_point,
        "history": history,
    }
    return TrainingResult(model, mean, std, metrics, test)


def export_network(result: TrainingResult, path: Path, name: str, cfg: NetworkTraining,
                   training_points: list[tuple[float, float]]) -> Path:
    """Write the network (standardization inside the graph, sigmoid score out) and its JSON;
    records the largest |ONNX - torch| on the test set. Returns the JSON's path."""
    exported = StandardizedScore(result.model, result.mean, result.std).eval()
    blob = to_onnx_bytes(exported, len(FEATURES), "features", "score")
    metrics = dict(result.metrics)
    meta = common_metadata(KIND, cfg.model_dump(mode="json"), metrics)
    meta |= {
        "inputs": [{"name": "features", "width": len(FEATURES)}],
        "feature_order": list(FEATURES),
        "outputs": [{"name": "score", "columns": ["score"]}],
        "network": name,
        "threshold": cfg.analysis_threshold,
        "standardization": {"mean": result.mean.tolist(), "std": result.std.tolist(),
                            "source": "the balanced training set (seed 002 sec. III.2)"},
        "training_points": [list(p) for p in training_points],
    }
    json_path = write_model(path, blob, meta)
    if result.test is not None:
        x = result.test.x.astype(np.float32)
        with torch.no_grad():
            torch_score = exported(torch.as_tensor(x)).numpy().reshape(-1).astype(np.float64)
        onnx_score = SmuonNetwork(path).score(x)
        meta["metrics"]["onnx_torch_max_abs_diff"] = float(np.max(np.abs(onnx_score - torch_score))) if x.size else 0.0
        json_path = write_model(path, blob, meta)
    return json_path
