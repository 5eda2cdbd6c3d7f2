"""The smuon network in torch (seed 002 sec. III.3, Table 5): 37 inputs, two hidden layers
of 50, one sigmoid output; Gaussian initialization. Training only (``[train]`` extra)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class SmuonClassifier(nn.Module):
    """Feed-forward network on standardized inputs; ``forward`` gives the logit.

    Parameters
    ----------
    n_inputs : input width (37).
    hidden : widths of the hidden layers ((50, 50)).
    activation : hidden activation, "relu" or "sigmoid".
    init_std : weights and biases drawn from N(0, init_std) (seed: Gaussian initialization).
    """

    def __init__(self, n_inputs: int, hidden: tuple[int, ...], activation: str, init_std: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)
        self.n_inputs = n_inputs
        for module in self.body:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, init_std)
                nn.init.normal_(module.bias, 0.0, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(-1)


class StandardizedScore(nn.Module):
    """What is exported: raw features in, (x - mean) / std, the network, the sigmoid score out
    (shape (n, 1))."""

    def __init__(self, model: SmuonClassifier, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("inv_std", torch.as_tensor(1.0 / np.asarray(std, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model((x - self.mean) * self.inv_std)).unsqueeze(-1)
