"""Training loops of the classifier and the refiner (torch; extra ``[train]``).

Classifier (docs/physics.md sec. 4; thesis sec. 4.2, Table 4.4): weighted categorical
cross-entropy, Adam, early stopping on the validation loss (best weights restored).
The thesis trains 2000 epochs at learning rate 1e-4 and batch 10^4 on ~4 10^6 tracks; the
defaults here are sized for a CPU and a toy sample (see :class:`ClassifierConfig`).

Refiner (docs/physics.md sec. 7; thesis Part I sec. 1.2-1.3 and sec. 6.2.2): each ensemble member
is a Fixup-initialised :class:`~models.softtrack.refiner.ResidualNet` trained on random batches of
simulation and data in the standardised log10 space, with one of three schedules:

* ``"mmd"`` -- the biased MMD only (thesis sec. 6.2.2, the analysis' choice);
* ``"mdmm"`` -- a pairwise primary loss (Huber or MSE between refined and *unrefined*
  simulation: data and simulation are not matched event by event here, so the pairwise
  term keeps the morphing minimal) with the constraint MMD_u = 0 through the MDMM;
* ``"two-stage"`` -- ``"mdmm"`` for the first ``stage1_fraction`` of the steps, then the
  biased MMD alone (thesis sec. 1.3.3).

The kernel bandwidths are the median heuristic between simulation and data, computed
once before training and kept fixed (thesis sec. 6.2.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.softtrack.config import (
    CLASSIFIER_BN_EPS,
    CLASSIFIER_BN_MOMENTUM,
    CLASSIFIER_DMS,
    CLASSIFIER_DROPOUT,
    CLASSIFIER_HIDDEN_LAYERS,
    CLASSIFIER_LEAKY_SLOPE,
    REFINER_BLOCKS,
    REFINER_ENSEMBLE,
    REFINER_HIDDEN,
    REFINER_LEAKY_SLOPE,
    REFINER_VARIABLES,
    TRACK_CLASSES,
)
from models import metrics
from models.losses import MDMMConstraint, median_bandwidths, mmd_biased, mmd_unbiased

from .classifier import TrackClassifier
from .data import SIGNAL_CLASS, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, ClassifierData
from .refiner import ResidualNet, TrackRefiner

Progress = Callable[[str], None] | None
#: rows per forward pass when predicting (memory bound, not a physics choice)
PREDICT_BATCH_ROWS = 65_536
#: bins of the calibration curves
CALIBRATION_BINS = 10


# --- Classifier -----------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifierConfig:
    """Classifier training settings (architecture: thesis Table 4.3; training: Table 4.4,
    with a larger learning rate and smaller batches than the thesis, for CPU-sized runs)."""

    hidden_layers: tuple[int, ...] = CLASSIFIER_HIDDEN_LAYERS
    dropout: float = CLASSIFIER_DROPOUT
    slope: float = CLASSIFIER_LEAKY_SLOPE
    bn_momentum: float = CLASSIFIER_BN_MOMENTUM
    bn_eps: float = CLASSIFIER_BN_EPS
    epochs: int = 40
    batch_size: int = 1024
    learning_rate: float = 1.0e-3
    patience: int = 6
    seed: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"model": "classifier", **asdict(self)}


def _weighted_ce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    per_track = nn.functional.cross_entropy(logits, y, reduction="none")
    return (per_track * w).sum() / w.sum()


def train_classifier(
    data: ClassifierData, cfg: ClassifierConfig = ClassifierConfig(), progress: Progress = None
) -> tuple[TrackClassifier, dict[str, list[float]]]:
    """Train the classifier on the train split, early-stop on the validation split.

    Returns the model (eval mode, best validation weights) and the history
    (``train_loss``, ``val_loss`` per epoch).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train, val = data.subset(SPLIT_TRAIN), data.subset(SPLIT_VAL)
    x_tr, y_tr, w_tr = (torch.from_numpy(a) for a in (train.x, train.y, train.weight))
    x_va, y_va, w_va = (torch.from_numpy(a) for a in (val.x, val.y, val.weight))
    mean, std = x_tr.mean(dim=0), x_tr.std(dim=0)
    n_feat = data.n_features + 1  # features and dm are standardised, the one-hot era is not
    mean[n_feat:], std[n_feat:] = 0.0, 1.0
    model = TrackClassifier(mean, std, hidden_layers=cfg.hidden_layers, dropout=cfg.dropout,
                            slope=cfg.slope, bn_momentum=cfg.bn_momentum, bn_eps=cfg.bn_eps)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    best, best_state, stale = math.inf, None, 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(x_tr.shape[0], generator=gen)
        total, weight = 0.0, 0.0
        for start in range(0, order.numel(), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if idx.numel() < 2:  # batch norm needs two rows
                continue
            loss = _weighted_ce(model(x_tr[idx]), y_tr[idx], w_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bw = float(w_tr[idx].sum())
            total, weight = total + float(loss.detach()) * bw, weight + bw
        model.eval()
        with torch.no_grad():
            val_loss = float(_weighted_ce(model(x_va), y_va, w_va)) if x_va.shape[0] else math.nan
        history["train_loss"].append(total / max(weight, 1e-12))
        history["val_loss"].append(val_loss)
        if progress:
            progress(f"epoch {epoch + 1:>3}/{cfg.epochs}  train {history['train_loss'][-1]:.4f}  val {val_loss:.4f}")
        if val_loss < best:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history


def predict_probabilities(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Softmax probabilities of a logit model in eval mode, numpy float32 (n, n_classes)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], PREDICT_BATCH_ROWS):
            out.append(torch.softmax(model(torch.from_numpy(x[start : start + PREDICT_BATCH_ROWS])), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(TRACK_CLASSES)), np.float32)


def evaluate_classifier(
    predict: Callable[[np.ndarray], np.ndarray], data: ClassifierData, dms: tuple[float, ...] = CLASSIFIER_DMS
) -> dict[str, Any]:
    """Test-split metrics (thesis sec. 4.3-4.4): per Delta m hypothesis the one-vs-one ROC
    AUC of P(signal) for signal vs each background class, and calibration curves.

    For each ``dm`` the signal tracks are those of the signal point nearest to it, and
    every test track is evaluated with its Delta m input set to ``dm``.
    """
    test = data.subset(SPLIT_TEST)
    is_sig = test.y == SIGNAL_CLASS
    points = np.unique(test.dm_point[is_sig])
    out: dict[str, Any] = {"n_test_tracks": int(test.y.size),
                           "n_test_by_class": {c: int((test.y == i).sum()) for i, c in enumerate(TRACK_CLASSES)},
                           "auc": {}}
    for dm in dms:
        if points.size == 0:
            break
        nearest = float(points[np.argmin(np.abs(points - dm))])
        p_sig = predict(test.with_dm(dm))[:, SIGNAL_CLASS]
        sig = is_sig & np.isclose(test.dm_point, nearest)
        entry = {"signal_dm_point": nearest}
        for k, cls in enumerate(TRACK_CLASSES):
            if k == SIGNAL_CLASS:
                continue
            sel = sig | (test.y == k)
            entry[cls] = metrics.roc_auc(p_sig[sel], sig[sel], test.weight[sel])
        sel = sig | ~is_sig
        entry["all_background"] = metrics.roc_auc(p_sig[sel], sig[sel], test.weight[sel])
        out["auc"][f"{dm:g}"] = entry
    probs = predict(test.x)
    out["accuracy"] = float(np.sum(test.weight * (probs.argmax(axis=1) == test.y)) / np.sum(test.weight))
    out["calibration"] = {
        cls: metrics.calibration_curve(probs[:, k], test.y == k, test.weight, CALIBRATION_BINS)
        for k, cls in enumerate(TRACK_CLASSES)
    }
    return out


# --- Refiner --------------------------------------------------------------------------
@dataclass(frozen=True)
class RefinerConfig:
    """Refiner training settings (thesis Table 6.2: 5 blocks of 512, MMD; smaller here)."""

    variables: tuple[str, ...] = REFINER_VARIABLES
    conditions: tuple[str, ...] = ()
    blocks: int = REFINER_BLOCKS
    hidden: int = REFINER_HIDDEN
    slope: float = REFINER_LEAKY_SLOPE
    ensemble: int = REFINER_ENSEMBLE
    steps: int = 1000
    batch_size: int = 512
    learning_rate: float = 2.0e-3
    #: "mmd", "mdmm" or "two-stage" (module docstring)
    loss: str = "mmd"
    #: pairwise primary loss of the MDMM: "huber" or "mse"
    primary: str = "huber"
    huber_delta: float = 1.0
    mdmm_damping: float = 10.0
    mdmm_lambda_init: float = 1.0
    mdmm_lambda_learning_rate: float = 1.0e-2
    stage1_fraction: float = 0.5
    seed: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"model": "refiner", **asdict(self)}


LOSSES = ("mmd", "mdmm", "two-stage")
PRIMARY_LOSSES = ("huber", "mse")


def _primary_loss(cfg: RefinerConfig) -> nn.Module:
    if cfg.primary == "huber":
        return nn.HuberLoss(delta=cfg.huber_delta)
    if cfg.primary == "mse":
        return nn.MSELoss()
    raise ValueError(f"unknown primary loss {cfg.primary!r}: choose from {PRIMARY_LOSSES}")


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    std = x.std(dim=0)
    return x.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std))


def train_refiner(
    sim: np.ndarray, data: np.ndarray, cfg: RefinerConfig = RefinerConfig(), progress: Progress = None,
    sim_weight: np.ndarray | None = None,
) -> tuple[TrackRefiner, dict[str, Any]]:
    """Train the refiner ensemble on raw simulation and data rows (docs/physics.md sec. 7).

    Parameters
    ----------
    sim, data : float32 (n, d + c): refined variables (raw: pt, dxyErr, dzErr) then the
        conditions, for simulated and data tracks (the training partition).
    cfg : settings; ``cfg.seed + k`` seeds member k (initialisation and batches).
    sim_weight : (n,) weights of the simulated tracks (the analysis' event and track-class
        weights): the MMD compares the weighted simulation with data (the weighted
        estimator of :func:`models.losses.mmd_biased`; the unbiased MMD of the MDMM stage
        draws its batches with probability proportional to the positive weights instead).

    Returns
    -------
    The :class:`TrackRefiner` (eval mode) and the history: bandwidths and, per member,
    the logged steps with MMD_b, the primary loss and the multiplier.
    """
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown refiner loss {cfg.loss!r}: choose from {LOSSES}")
    d, c = len(cfg.variables), len(cfg.conditions)
    x_sim = torch.from_numpy(np.ascontiguousarray(sim, dtype=np.float32))
    x_dat = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if x_sim.shape[1] != d + c or x_dat.shape[1] != d + c:
        raise ValueError(f"expected {d + c} columns (variables {cfg.variables} + conditions {cfg.conditions})")
    log_mean, log_std = _stats(torch.log10(x_sim[:, :d]))
    cond_mean, cond_std = _stats(x_sim[:, d:]) if c else (torch.zeros(0), torch.ones(0))
    shell = TrackRefiner(log_mean, log_std, cond_mean, cond_std, [])
    with torch.no_grad():
        z_sim, c_sim = shell.to_latent(x_sim)
        z_dat, c_dat = shell.to_latent(x_dat)
    full_sim = torch.cat([z_sim, c_sim], dim=1)
    full_dat = torch.cat([z_dat, c_dat], dim=1)
    bandwidths = median_bandwidths(full_sim, full_dat, seed=cfg.seed)
    w_sim = None if sim_weight is None else torch.as_tensor(np.asarray(sim_weight, np.float32))
    if w_sim is not None and (w_sim.shape[0] != x_sim.shape[0] or not bool(w_sim.sum() > 0)):
        raise ValueError("sim_weight needs one weight per simulated row and a positive sum")
    primary = _primary_loss(cfg)
    members, history = [], {"bandwidths": bandwidths.tolist(), "members": []}
    log_every = max(cfg.steps // 20, 1)
    for k in range(cfg.ensemble):
        seed = cfg.seed + k
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = ResidualNet(d, c, blocks=cfg.blocks, hidden=cfg.hidden, slope=cfg.slope)
        constraint = MDMMConstraint(0.0, cfg.mdmm_damping, cfg.mdmm_lambda_init)
        opt = torch.optim.Adam([
            {"params": net.parameters(), "lr": cfg.learning_rate},
            {"params": constraint.parameters(), "lr": cfg.mdmm_lambda_learning_rate},
        ])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
        n_stage1 = {"mmd": 0, "mdmm": cfg.steps, "two-stage": int(cfg.stage1_fraction * cfg.steps)}[cfg.loss]
        log: list[dict[str, float]] = []
        for step in range(cfg.steps):
            stage1 = step < n_stage1
            if w_sim is not None and stage1:
                i = torch.multinomial(w_sim.clamp_min(0.0), cfg.batch_size, replacement=True, generator=gen)
            else:
                i = torch.randint(z_sim.shape[0], (cfg.batch_size,), generator=gen)
            j = torch.randint(z_dat.shape[0], (cfg.batch_size,), generator=gen)
            zs, cs = z_sim[i], c_sim[i]
            out = zs + net(zs, cs)
            refined = torch.cat([out, cs], dim=1)
            target = full_dat[j]
            wb = None if (w_sim is None or stage1) else w_sim[i]
            if wb is not None and not bool(wb.sum() > 0):
                wb = None  # a batch of negative weights only (vanishingly rare): unweighted
            if stage1:
                value = mmd_unbiased(refined, target, bandwidths)
                prim = primary(out, zs)
                loss = prim + constraint(value)
                mmd_b = float("nan")
            else:
                loss = mmd_biased(refined, target, bandwidths, wb)
                prim, mmd_b = None, float(loss.detach())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % log_every == 0 or step == cfg.steps - 1:
                if math.isnan(mmd_b):
                    with torch.no_grad():
                        mmd_b = float(mmd_biased(refined, target, bandwidths, wb))
                entry = {"step": step, "mmd_b": mmd_b, "lambda": float(constraint.lmbda.detach()),
                         "primary": float(prim.detach()) if prim is not None else float("nan")}
                log.append(entry)
                if progress:
                    progress(f"member {k + 1}/{cfg.ensemble} step {step:>5}/{cfg.steps}  MMD_b {mmd_b:.5f}")
        members.append(net.eval())
        history["members"].append(log)
    model = TrackRefiner(log_mean, log_std, cond_mean, cond_std, members).eval()
    return model, history


def refine_numpy(model: TrackRefiner, x: np.ndarray) -> np.ndarray:
    """Apply a torch refiner to raw rows (n, d + c); float32 (n, d)."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def evaluate_refiner(
    sim: np.ndarray,
    refined: np.ndarray,
    data: np.ndarray,
    variables: tuple[str, ...] = REFINER_VARIABLES,
    *,
    seed: int,
    max_rows: int = 8000,
    sim_weight: np.ndarray | None = None,
) -> dict[str, Any]:
    """Before/after distances on held-out tracks (docs/physics.md sec. 7 success criteria).

    Distances are computed in log10 of each variable (the refinement space): MMD_b and
    MMD_u with median-heuristic bandwidths from (simulation, data) -- the same bandwidths
    before and after -- on at most ``max_rows`` random rows of each sample, and the 1D
    Wasserstein distance per variable on all rows. Mean ratios are in raw units. With
    ``sim_weight`` every distance and mean compares the weighted simulation (the 1D
    distances with the negative weights set to 0) with data.
    """
    d = len(variables)
    rng = np.random.default_rng(seed)
    log_sim, log_ref, log_dat = (np.log10(np.asarray(a, np.float64)[:, :d]) for a in (sim, refined, data))
    pick_s = rng.permutation(log_sim.shape[0])[:max_rows]
    pick_d = rng.permutation(log_dat.shape[0])[:max_rows]
    bw = metrics.median_bandwidths(log_sim[pick_s], log_dat[pick_d], seed)
    w = None if sim_weight is None else np.asarray(sim_weight, np.float64)
    w_pick = None if w is None else w[pick_s]
    w_pos = None if w is None else np.clip(w, 0.0, None)
    out: dict[str, Any] = {"n_sim": int(log_sim.shape[0]), "n_data": int(log_dat.shape[0]),
                           "bandwidths_log10": bw.tolist(), "variables": list(variables),
                           "weighted_simulation": w is not None}
    for name, arr in (("simulation", log_sim), ("refined", log_ref)):
        out[f"mmd_b_{name}"] = metrics.mmd(arr[pick_s], log_dat[pick_d], bw, biased=True, x_weights=w_pick)
        out[f"mmd_u_{name}"] = metrics.mmd(arr[pick_s], log_dat[pick_d], bw, biased=False, x_weights=w_pick)
    out["wasserstein_log10"] = {
        v: {"simulation": metrics.wasserstein_1d(log_sim[:, i], log_dat[:, i], w_pos),
            "refined": metrics.wasserstein_1d(log_ref[:, i], log_dat[:, i], w_pos)}
        for i, v in enumerate(variables)
    }
    raw_s, raw_r, raw_d = (np.asarray(a, np.float64)[:, :d] for a in (sim, refined, data))
    ws = np.ones(raw_s.shape[0]) if w is None else w

    def mean(a):
        return float(a @ ws / ws.sum())

    def median(a):
        if w is None:
            return float(np.median(a))
        order = np.argsort(a)
        cum = np.cumsum(w_pos[order])
        return float(a[order][np.searchsorted(cum, 0.5 * cum[-1])])

    out["mean_ratio"] = {
        v: {"refined_over_simulation": mean(raw_r[:, i]) / mean(raw_s[:, i]),
            "data_over_simulation": float(raw_d[:, i].mean()) / mean(raw_s[:, i])}
        for i, v in enumerate(variables)
    }
    out["median_ratio"] = {
        v: {"refined_over_simulation": median(raw_r[:, i]) / median(raw_s[:, i]),
            "data_over_simulation": float(np.median(raw_d[:, i])) / median(raw_s[:, i])}
        for i, v in enumerate(variables)
    }
    out["mmd_b_reduction_factor"] = out["mmd_b_simulation"] / max(out["mmd_b_refined"], 1e-300)
    return out
