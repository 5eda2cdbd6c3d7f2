"""3D-ABCDisCoTEC: two event-level MLPs trained together with DisCo and closure constraints by
the MDMM (SVJ talk, "III) 3D-ABCDisCoTEC Method", "Constructing the Training Objective",
"Modified Differential Multiplier Method (MDMM)" and "Loss details (i)-(iii)").

Loss: the weighted BCE of X and of Y (the primary objective) plus, as inequality constraints
L_j <= epsilon_j (:class:`models.losses.MDMMInequality`), on the background of each
mini-batch:

* DisCo (weighted distance correlation, :func:`models.losses.distance_correlation`) of
  (X, Y), (X, M_T), (Y, M_T), (X, DeltaEta), (Y, DeltaEta), and (our addition) of (X, Y) on the
  validation plane's background alone (``eps_disco_xy_vp``; docs/svj.md);
* normalization closure C_k = |n_A n_D - n_B n_C| / (n_A n_D + n_B n_C) in the signal plane and
  in the validation plane, the regions' yields soft: n_A = sum w G(X - x0) G(Y - y0) etc. with
  G(u) = sigmoid(kappa u), (x0, y0) a quantile of the batch's background scores (one set of
  terms per quantile in ``boundary_quantiles``);
* shape closure C_k,i: the same per M_T bin i.

Class weights rescaled to S/B = 3/2, mini-batches drawn with replacement (the talk's "5
mini-batches sampled per epoch with replacement"); the 40/20/40 split is the analysis'
(``analysis.svj.config.Split``). The two networks share the inputs and have independent weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from models.losses import MDMMInequality, distance_correlation_fast


def _mlp(n_in: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers, d = [], n_in
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)


class TwoScores(nn.Module):
    """X and Y: two MLPs on the same standardised inputs; (n, 12) raw -> (n, 2) in [0, 1]."""

    def __init__(self, n_inputs: int, hidden: tuple[int, ...], mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.n_inputs = int(n_inputs)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.net_x = _mlp(n_inputs, hidden)
        self.net_y = _mlp(n_inputs, hidden)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return torch.cat([self.net_x(z), self.net_y(z)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class FlatOnBackground(nn.Module):
    """A trained :class:`TwoScores` followed by each score's background cumulative distribution
    (piecewise linear between ``knots`` (2, k) increasing logit values at the quantiles
    0, 1/(k-1), ..., 1): monotone, so every ABCD region keeps its events, and flat on the
    training background, so the scan's [0.1, 0.9] spans the background's 10-90% quantiles
    (docs/svj.md). Clamp and sum only: exportable to ONNX."""

    def __init__(self, scores: TwoScores, knots: np.ndarray) -> None:
        super().__init__()
        self.scores = scores
        self.n_inputs = scores.n_inputs
        k = torch.as_tensor(np.asarray(knots, np.float64), dtype=torch.float32)
        self.register_buffer("lo", k[:, :-1])
        self.register_buffer("width", (k[:, 1:] - k[:, :-1]).clamp_min(1e-12))
        self.step = 1.0 / (k.shape[1] - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # on the logits: the sigmoid's float32 saturation near 1 would tie the upper knots
        s = self.scores.logits(x)  # (n, 2)
        frac = ((s.unsqueeze(-1) - self.lo) / self.width).clamp(0.0, 1.0)  # (n, 2, k - 1)
        return frac.sum(dim=-1) * self.step


def background_knots(scores: np.ndarray, label: np.ndarray, weight: np.ndarray, n_knots: int = 101) -> np.ndarray:
    """(2, n_knots) weighted background quantiles of the two logits (strictly increasing)."""
    b = label < 0.5
    levels = np.linspace(0.0, 1.0, n_knots)
    out = np.empty((2, n_knots))
    for i in range(2):
        v, w = scores[b, i].astype(np.float64), weight[b].astype(np.float64)
        order = np.argsort(v)
        cdf = np.cumsum(w[order]) - 0.5 * w[order]
        cdf /= w.sum()
        q = np.interp(levels, cdf, v[order])
        q[0], q[-1] = min(q[0], v.min()) - 1e-6, max(q[-1], v.max()) + 1e-6
        out[i] = np.maximum.accumulate(q + np.arange(n_knots) * 1e-9)
    return out


@dataclass
class ABCDisCoTECTraining:
    """Settings of the training (docs/svj.md, "ABCDisCoTEC"; the constraint targets are ours)."""

    hidden: tuple[int, ...] = (32, 32)
    epochs: int = 300
    batches_per_epoch: int = 5
    #: the talk's batches hold 55000 events; ours 16384 drawn with replacement from the
    #: training set (a few thousand background events), so each batch's DisCo terms see about
    #: the whole training background (the O(n log n) distance correlation,
    #: models.losses.distance_correlation_fast) and the targets can sit near its noise floor
    #: (docs/svj.md: dCorr of independent samples is 0.053 at 1200 and 0.035 at 2400 events)
    batch_size: int = 16384
    learning_rate: float = 2e-3
    multiplier_learning_rate: float = 2e-2
    seed: int = 1
    threads: int = 1
    #: S/B of the class weights (the talk: 3/2)
    class_ratio: float = 1.5
    #: False: BCE only (the reference "without DisCo"); True: every constraint
    constraints: bool = True
    #: near the noise floor of the whole training background (docs/svj.md: 0.08 and 0.10 with
    #: the 2048-event batches; 0.05 for the M_T and DeltaEta terms leaves Y a better AUC than 0.08)
    eps_disco_xy: float = 0.03
    eps_disco_mt: float = 0.05
    eps_disco_deta: float = 0.05
    eps_closure: float = 0.05
    eps_shape: float = 0.15
    damping: float = 10.0
    #: soft region boundaries of the closure terms: this quantile of the batch's background
    #: scores (fixed boundaries admit the degenerate minimum of every background on one side,
    #: where C = 0/0; docs/svj.md), and the sigmoid slope
    boundary_quantiles: tuple[float, ...] = (0.7,)
    kappa: float = 20.0
    #: DisCo of (X, Y) on the validation plane's background alone (None: no such term). The
    #: DisCo terms above act on the whole background, 88% of it in the signal plane: without this
    #: term X and Y stayed dependent in the VP (dCorr 0.24 on the test split's VP background)
    #: and the VP did not close (+50 to +400%, in the training split as much as in the test
    #: split); 0.08 left the tight boundaries at -30 to -50% (docs/svj.md)
    eps_disco_xy_vp: float | None = 0.06
    mt_edges: tuple[float, ...] = field(default=(650.0, 800.0, 1000.0, 1300.0, 1800.0, 4000.0))

    def __post_init__(self) -> None:
        qs = tuple(float(q) for q in self.boundary_quantiles)
        if not qs or len(set(qs)) != len(qs) or not all(0.0 < q < 1.0 for q in qs):
            raise ValueError(f"boundary_quantiles must be distinct values in (0, 1), got {self.boundary_quantiles!r}")
        self.boundary_quantiles = qs
        if self.eps_disco_xy_vp is not None and not self.eps_disco_xy_vp > 0.0:
            raise ValueError(f"eps_disco_xy_vp must be positive or None (no VP term), got {self.eps_disco_xy_vp!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingData:
    """Per-event arrays of the training: features (n, 12), label (1: signal), physical weight,
    M_T, |DeltaEta|, signal plane flag."""

    features: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    mt: np.ndarray
    deta: np.ndarray
    signal_plane: np.ndarray

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in asdict(self).items()}


def class_weights(label: np.ndarray, weight: np.ndarray, ratio: float) -> np.ndarray:
    """Training weights with sum(signal) / sum(background) = ratio and mean 1."""
    sig = label > 0.5
    w = np.asarray(weight, np.float64).copy()
    ws, wb = w[sig].sum(), w[~sig].sum()
    w[sig] *= ratio / (1.0 + ratio) / ws
    w[~sig] *= 1.0 / (1.0 + ratio) / wb
    return w * w.size


def soft_closure(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, x0: float, y0: float,
                 kappa: float) -> torch.Tensor:
    """C = |n_A n_D - n_B n_C| / (n_A n_D + n_B n_C) with sigmoid region memberships."""
    px, py = torch.sigmoid(kappa * (x - x0)), torch.sigmoid(kappa * (y - y0))
    n_a = (w * px * py).sum()
    n_b = (w * px * (1 - py)).sum()
    n_c = (w * (1 - px) * py).sum()
    n_d = (w * (1 - px) * (1 - py)).sum()
    return (n_a * n_d - n_b * n_c).abs() / (n_a * n_d + n_b * n_c + 1e-12)


def constraint_values(scores: torch.Tensor, batch: dict[str, torch.Tensor], cfg: ABCDisCoTECTraining,
                      edges: torch.Tensor) -> dict[str, torch.Tensor]:
    """The constrained losses on the background of a batch (module docstring)."""
    bkg = batch["label"] < 0.5
    x, y = scores[bkg, 0], scores[bkg, 1]
    w = batch["weight"][bkg]
    mt, deta, sp = batch["mt"][bkg], batch["deta"][bkg], batch["signal_plane"][bkg] > 0.5
    out = {
        "disco_xy": distance_correlation_fast(x, y, w),
        "disco_x_mt": distance_correlation_fast(x, mt, w),
        "disco_y_mt": distance_correlation_fast(y, mt, w),
        "disco_x_deta": distance_correlation_fast(x, deta, w),
        "disco_y_deta": distance_correlation_fast(y, deta, w),
    }
    if cfg.eps_disco_xy_vp is not None and int((~sp).sum()) >= 4:  # a batch without VP background has no term
        out["disco_xy_vp"] = distance_correlation_fast(x[~sp], y[~sp], w[~sp])
    for q in cfg.boundary_quantiles:
        x0 = torch.quantile(x.detach(), q).item()
        y0 = torch.quantile(y.detach(), q).item()
        for plane, m in (("sp", sp), ("vp", ~sp)):
            out[_closure_name(f"closure_{plane}", q, cfg)] = soft_closure(x[m], y[m], w[m], x0, y0, cfg.kappa)
            bins = torch.bucketize(mt[m], edges[1:-1])
            for i in range(edges.numel() - 1):
                mi = bins == i
                if int(mi.sum()) >= 4:
                    out[_closure_name(f"shape_{plane}_{i}", q, cfg)] = soft_closure(
                        x[m][mi], y[m][mi], w[m][mi], x0, y0, cfg.kappa)
    return out


def _closure_name(base: str, q: float, cfg: ABCDisCoTECTraining) -> str:
    """A closure term's name: ``base`` alone with one boundary quantile, else with the
    quantile in per cent."""
    return base if len(cfg.boundary_quantiles) == 1 else f"{base}_q{round(100 * q)}"


def _target(name: str, cfg: ABCDisCoTECTraining) -> float:
    if name == "disco_xy":
        return cfg.eps_disco_xy
    if name == "disco_xy_vp":
        return cfg.eps_disco_xy_vp
    if name.endswith("_mt"):
        return cfg.eps_disco_mt
    if name.endswith("_deta"):
        return cfg.eps_disco_deta
    if name.startswith("closure"):
        return cfg.eps_closure
    return cfg.eps_shape


def constraint_names(cfg: ABCDisCoTECTraining) -> list[str]:
    names = ["disco_xy", "disco_x_mt", "disco_y_mt", "disco_x_deta", "disco_y_deta"]
    if cfg.eps_disco_xy_vp is not None:
        names.append("disco_xy_vp")
    n_bins = len(cfg.mt_edges) - 1
    closures = [f"closure_{p}" for p in ("sp", "vp")] + [f"shape_{p}_{i}" for p in ("sp", "vp") for i in range(n_bins)]
    return names + [_closure_name(c, q, cfg) for q in cfg.boundary_quantiles for c in closures]


def feature_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)


def train_abcdiscotec(data: TrainingData, cfg: ABCDisCoTECTraining) -> tuple[TwoScores, dict]:
    """Train X and Y (module docstring); returns the model and the history of the losses."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    mean, std = feature_statistics(data.features)
    model = TwoScores(data.features.shape[1], cfg.hidden, mean, std)
    tensors = data.tensors()
    tensors["train_weight"] = torch.as_tensor(class_weights(data.label, data.weight, cfg.class_ratio),
                                              dtype=torch.float32)
    # the constraints see the physical background weights, normalised per batch
    constraints = nn.ModuleDict({n: MDMMInequality(_target(n, cfg), cfg.damping) for n in constraint_names(cfg)}) \
        if cfg.constraints else nn.ModuleDict()
    groups = [{"params": model.parameters(), "lr": cfg.learning_rate}]
    if cfg.constraints:
        groups.append({"params": [c.lmbda for c in constraints.values()], "lr": cfg.multiplier_learning_rate})
        groups.append({"params": [c.slack for c in constraints.values()], "lr": cfg.learning_rate})
    opt = torch.optim.Adam(groups)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    edges = torch.as_tensor(cfg.mt_edges, dtype=torch.float32)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = data.label.size
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        sums: dict[str, float] = {}
        for _ in range(cfg.batches_per_epoch):
            idx = torch.randint(n, (cfg.batch_size,), generator=gen)  # with replacement
            batch = {k: v[idx] for k, v in tensors.items()}
            logits = model.logits(batch["features"])
            wt = batch["train_weight"]
            loss_x = (bce(logits[:, 0], batch["label"]) * wt).sum() / wt.sum()
            loss_y = (bce(logits[:, 1], batch["label"]) * wt).sum() / wt.sum()
            loss = loss_x + loss_y
            values = {"bce_x": loss_x, "bce_y": loss_y}
            if cfg.constraints:
                got = constraint_values(torch.sigmoid(logits), batch, cfg, edges)
                for name, value in got.items():
                    loss = loss + constraints[name](value)
                values.update(got)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v.item() / cfg.batches_per_epoch
        if epoch % 10 == 0 or epoch == cfg.epochs - 1:
            entry = {"epoch": epoch, **sums}
            if cfg.constraints:
                entry["lambda_max"] = max(c.lmbda.item() for c in constraints.values())
            history.append(entry)
    return model.eval(), {"history": history}


def predict_logits(model: TwoScores, x: np.ndarray, batch: int = 16384) -> np.ndarray:
    """(n, 2) logits of X, Y of the torch model."""
    model.eval()
    with torch.no_grad():
        parts = [model.logits(torch.as_tensor(x[i:i + batch], dtype=torch.float32)).numpy()
                 for i in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)


def predict_scores(model: nn.Module, x: np.ndarray, batch: int = 16384) -> np.ndarray:
    """(n, 2) scores X, Y of the torch model."""
    model.eval()
    with torch.no_grad():
        parts = [model(torch.as_tensor(x[i:i + batch], dtype=torch.float32)).numpy()
                 for i in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)
