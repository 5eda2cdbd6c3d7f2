"""The soft-track classifier network (docs/physics.md sec. 4; thesis ch. 4, Tables 4.3-4.4).

Inputs: the track features, Delta m and the one-hot era, standardised inside the model
(mean and std of the training data stored as buffers; the one-hot columns pass through),
so the ONNX graph takes raw values. Three hidden layers of 256, each
``Linear -> BatchNorm1d -> LeakyReLU(0.1) -> Dropout(0.2)``, and a linear layer to the 5
classes of :data:`analysis.softtrack.config.TRACK_CLASSES`. ``forward`` returns logits (for the
cross-entropy); :class:`ProbabilityHead` adds the softmax for export.

:func:`fold_batch_norm` folds each eval-mode BatchNorm1d into the Linear before it: ONNX
Runtime runs a standalone BatchNormalization node slowly on small MLPs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from analysis.softtrack.config import (
    CLASSIFIER_BN_EPS,
    CLASSIFIER_BN_MOMENTUM,
    CLASSIFIER_DROPOUT,
    CLASSIFIER_HIDDEN_LAYERS,
    CLASSIFIER_LEAKY_SLOPE,
    TRACK_CLASSES,
)


class TrackClassifier(nn.Module):
    """Multi-class track classifier parametrised by Delta m and era (docs/physics.md sec. 4).

    Parameters
    ----------
    input_mean, input_std : per-input standardisation, shape (n_inputs,); inputs with
        std 0 (constant in training) get std 1.
    hidden_layers : widths of the hidden layers (thesis: 3 x 256).
    n_classes : number of output classes (5).
    dropout, slope, bn_momentum, bn_eps : thesis Table 4.3/4.4 values by default
        (momentum in the torch convention).
    """

    def __init__(
        self,
        input_mean: torch.Tensor,
        input_std: torch.Tensor,
        *,
        hidden_layers: tuple[int, ...] = CLASSIFIER_HIDDEN_LAYERS,
        n_classes: int = len(TRACK_CLASSES),
        dropout: float = CLASSIFIER_DROPOUT,
        slope: float = CLASSIFIER_LEAKY_SLOPE,
        bn_momentum: float = CLASSIFIER_BN_MOMENTUM,
        bn_eps: float = CLASSIFIER_BN_EPS,
    ) -> None:
        super().__init__()
        mean = torch.as_tensor(input_mean, dtype=torch.float32)
        std = torch.as_tensor(input_std, dtype=torch.float32)
        std = torch.where(std > 0, std, torch.ones_like(std))
        self.register_buffer("input_mean", mean)
        self.register_buffer("input_std", std)
        layers: list[nn.Module] = []
        width = mean.shape[0]
        for hidden in hidden_layers:
            layers += [
                nn.Linear(width, hidden),
                nn.BatchNorm1d(hidden, eps=bn_eps, momentum=bn_momentum),
                nn.LeakyReLU(slope),
                nn.Dropout(dropout),
            ]
            width = hidden
        layers.append(nn.Linear(width, n_classes))
        self.body = nn.Sequential(*layers)
        self.n_inputs = int(mean.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (n, n_inputs) -> class logits (n, n_classes)."""
        return self.body((x - self.input_mean) / self.input_std)


class ProbabilityHead(nn.Module):
    """Wraps a logit model with a softmax over classes (the exported graph)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every ``Linear -> BatchNorm1d`` pair folded.

    In eval mode BN(y) = gamma (y - mu) / sqrt(var + eps) + beta with running statistics,
    so with s = gamma / sqrt(var + eps) the pair equals one Linear with W' = s W and
    b' = s (b - mu) + beta; the BatchNorm1d becomes an Identity. Works on every
    ``nn.Sequential`` inside the model.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.children())
        for i in range(len(children) - 1):
            lin, bn = children[i], children[i + 1]
            if isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
                with torch.no_grad():
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    lin.weight.mul_(scale[:, None])
                    bias = lin.bias if lin.bias is not None else torch.zeros_like(bn.running_mean)
                    new_bias = scale * (bias - bn.running_mean) + bn.bias
                    if lin.bias is None:
                        lin.bias = nn.Parameter(new_bias)
                    else:
                        lin.bias.copy_(new_bias)
                module[i + 1] = nn.Identity()
    return folded
