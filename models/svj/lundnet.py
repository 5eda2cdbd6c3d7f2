"""LundNet: EdgeConv on the primary Lund chain of a jet (Dreyer, Qu, "Jet tagging in the Lund
plane with graph networks", arXiv:2012.08526, sec. 3; SVJ talk, "Supervised SVJ Tagging via
LundNet"). Training in torch (extra ``[train]``), export to ONNX with padded graphs.

The graph: one node per primary declustering with the 5 features (ln 1/Delta, ln k_t, ln z,
ln m, psi); the primary declusterings form a chain, each node linked to the one before and the
one after (its Lund-tree parent and child along the harder branch). A padded jet has
``max_nodes`` nodes and a mask. An EdgeConv block (arXiv:2012.08526 eq. 1) updates node i as

    h_i' = ReLU( shortcut(h_i) + mean_{j in N(i)} MLP([h_i, h_j - h_i]) )

and the jet score is an MLP on the mean of the last block's node features over the real nodes
(the paper's global average pooling), with a sigmoid. Everything is gathers by shifts along the
chain, so the exported graph has fixed, ONNX-friendly shapes. The network is smaller than the
paper's (docs/svj.md: two CPU cores); its input standardisation is inside the graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.svj.lund import LUND_FEATURES
from models.metrics import roc_auc

N_FEATURES = len(LUND_FEATURES)


class EdgeConvChain(nn.Module):
    """One EdgeConv block on chain graphs (module docstring)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.edge = nn.Sequential(nn.Linear(2 * d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out), nn.ReLU())
        self.shortcut = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        zeros_h = torch.zeros_like(h[:, :1])
        zeros_m = torch.zeros_like(mask[:, :1])
        prev = torch.cat([zeros_h, h[:, :-1]], dim=1)
        nxt = torch.cat([h[:, 1:], zeros_h], dim=1)
        m_prev = torch.cat([zeros_m, mask[:, :-1]], dim=1) * mask
        m_next = torch.cat([mask[:, 1:], zeros_m], dim=1) * mask
        e_prev = self.edge(torch.cat([h, prev - h], dim=-1)) * m_prev.unsqueeze(-1)
        e_next = self.edge(torch.cat([h, nxt - h], dim=-1)) * m_next.unsqueeze(-1)
        n_neigh = (m_prev + m_next).clamp_min(1.0).unsqueeze(-1)
        return torch.relu(self.shortcut(h) + (e_prev + e_next) / n_neigh) * mask.unsqueeze(-1)


class LundNet(nn.Module):
    """Flat input (n, max_nodes * 5 + max_nodes): node features then mask; output (n, 1) in [0, 1]."""

    def __init__(self, max_nodes: int, widths: tuple[int, ...] = (32, 32), head: int = 32,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        super().__init__()
        self.max_nodes = int(max_nodes)
        self.n_inputs = self.max_nodes * (N_FEATURES + 1)
        self.register_buffer("mean", torch.as_tensor(np.zeros(N_FEATURES) if mean is None else mean,
                                                     dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.ones(N_FEATURES) if std is None else std,
                                                    dtype=torch.float32))
        blocks, d = [], N_FEATURES
        for w in widths:
            blocks.append(EdgeConvChain(d, w))
            d = w
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Linear(d, head), nn.ReLU(), nn.Linear(head, 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        n_feat = self.max_nodes * N_FEATURES
        feats = x[:, :n_feat].reshape(-1, self.max_nodes, N_FEATURES)
        mask = x[:, n_feat:]
        h = (feats - self.mean) / self.std * mask.unsqueeze(-1)
        for block in self.blocks:
            h = block(h, mask)
        pooled = h.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


@dataclass
class LundNetTraining:
    """Training settings (docs/svj.md, "LundNet"): Adam, balanced classes, few epochs."""

    widths: tuple[int, ...] = (32, 32)
    head: int = 32
    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 2e-3
    seed: int = 1
    threads: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_statistics(x: np.ndarray, max_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each node feature over the real nodes of flat inputs."""
    n_feat = max_nodes * N_FEATURES
    feats = x[:, :n_feat].reshape(-1, max_nodes, N_FEATURES)
    mask = x[:, n_feat:] > 0
    real = feats[mask]
    return real.mean(axis=0), np.maximum(real.std(axis=0), 1e-3)


def train_lundnet(x: np.ndarray, y: np.ndarray, max_nodes: int, cfg: LundNetTraining,
                  x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> tuple[LundNet, dict]:
    """Train LundNet on flat inputs ``x`` (n, max_nodes * 6) with labels ``y`` (1: signal jet),
    classes balanced by weights; returns the model and the loss history."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    mean, std = node_statistics(x, max_nodes)
    model = LundNet(max_nodes, cfg.widths, cfg.head, mean, std)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    n_sig = max(float(y.sum()), 1.0)
    n_bkg = max(float(len(y) - y.sum()), 1.0)
    wt = torch.where(yt > 0.5, 0.5 * len(y) / n_sig, 0.5 * len(y) / n_bkg)
    gen = torch.Generator().manual_seed(cfg.seed)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    history = []
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(yt), generator=gen)
        total = 0.0
        for start in range(0, len(perm), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            loss = (loss_fn(model.logits(xt[idx])[:, 0], yt[idx]) * wt[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        entry = {"train_loss": total / len(perm)}
        if x_val is not None:
            entry["val_auc"] = roc_auc(predict(model, x_val), y_val)
        history.append(entry)
    return model.eval(), {"history": history}


def predict(model: nn.Module, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        parts = [model(torch.as_tensor(x[i:i + batch], dtype=torch.float32))[:, 0].numpy()
                 for i in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros(0)
