"""The refiner network (docs/physics.md sec. 7; thesis Part I sec. 1.1 and sec. 6.2.2).

A residual network morphs simulated track variables (pT, dxyErr, dzErr) towards data.
It works in the space z = (log10 x - mean) / std of each refined variable (the thesis
refines log10 pT, log10 dxyErr, log10 dzErr); optional conditioning variables (e.g. |eta|)
are standardised and fed to every block but not refined.

Each residual block has two hidden layers, as the thesis' (Fig. 1.1):
``Linear(d + c, hidden) -> LeakyReLU -> Linear(hidden, hidden) -> LeakyReLU -> Linear(hidden, d)``
plus a skip connection. Fixup initialisation (thesis sec. 1.1, after Zhang et al. 2019):
zero biases, the output layer of each block zero, so that the untrained network is the
identity *exactly* (every block adds exactly 0); the first layer Kaiming, the second one
Kaiming scaled by L^(-1/(2m-2)) = L^(-1/4) for L blocks of m = 3 layers (a zero second layer
as well would leave the block without gradient: the output layer's gradient is the second
layer's activation).

:class:`TrackRefiner` bundles the transforms and an ensemble of residual nets (thesis sec.
6.2.2: five trainings, mean output). The ensemble mean is taken over the shifts in z
space, and the raw output is ``x * 10 ** (mean_shift * std)``: mathematically the same as
transforming back, and bit-exact for a zero shift, so an untrained refiner returns its
input unchanged. The whole chain is one ONNX graph taking raw values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from analysis.softtrack.config import REFINER_BLOCKS, REFINER_HIDDEN, REFINER_LEAKY_SLOPE

#: raw values are floored here before log10 (a track error or pT is never <= 0)
RAW_FLOOR = 1.0e-12
LN10 = math.log(10.0)


class ResidualBlock(nn.Module):
    """Two hidden layers and a skip connection, Fixup-initialised (thesis Fig. 1.1).

    Parameters
    ----------
    n_refined : width d of the refined variables (input and output of the skip).
    n_conditions : number c of conditioning inputs concatenated to the block input.
    hidden : width of the two hidden layers.
    slope : negative slope of the LeakyReLU.
    n_blocks : number L of blocks of the network (the Fixup scale of the second layer).
    """

    def __init__(self, n_refined: int, n_conditions: int, hidden: int, slope: float, n_blocks: int = 1) -> None:
        super().__init__()
        self.inner = nn.Linear(n_refined + n_conditions, hidden)
        self.middle = nn.Linear(hidden, hidden)
        self.act = nn.LeakyReLU(slope)
        self.outer = nn.Linear(hidden, n_refined)
        nn.init.kaiming_normal_(self.inner.weight, a=slope, nonlinearity="leaky_relu")
        nn.init.kaiming_normal_(self.middle.weight, a=slope, nonlinearity="leaky_relu")
        with torch.no_grad():
            self.middle.weight.mul_(max(n_blocks, 1) ** -0.25)
        for bias in (self.inner.bias, self.middle.bias, self.outer.bias):
            nn.init.zeros_(bias)
        nn.init.zeros_(self.outer.weight)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The residual r(h, c) that the skip connection adds to h (shape of h)."""
        return self.outer(self.act(self.middle(self.act(self.inner(torch.cat([h, c], dim=1))))))


class ResidualNet(nn.Module):
    """A stack of :class:`ResidualBlock`: z -> z + shift(z, c); returns the total shift."""

    def __init__(
        self,
        n_refined: int,
        n_conditions: int = 0,
        *,
        blocks: int = REFINER_BLOCKS,
        hidden: int = REFINER_HIDDEN,
        slope: float = REFINER_LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResidualBlock(n_refined, n_conditions, hidden, slope, blocks) for _ in range(blocks)
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Total shift sum_k r_k (exactly 0 at initialisation), shape (n, d)."""
        h = z
        shift = torch.zeros_like(z)
        for block in self.blocks:
            r = block(h, c)
            h = h + r
            shift = shift + r
        return shift


class TrackRefiner(nn.Module):
    """Raw (refined variables, conditions) -> refined raw variables; an ensemble mean.

    Parameters
    ----------
    log_mean, log_std : mean and standard deviation of log10 of each refined variable in
        the training simulation, shape (d,).
    cond_mean, cond_std : the same for the conditioning variables (raw, not logged), (c,).
    members : the trained :class:`ResidualNet` s (one or more).

    ``forward(x)`` takes x of shape (n, d + c) in the order (refined..., conditions...) and
    returns the refined raw values, shape (n, d).
    """

    def __init__(
        self,
        log_mean: torch.Tensor,
        log_std: torch.Tensor,
        cond_mean: torch.Tensor,
        cond_std: torch.Tensor,
        members: list[ResidualNet],
    ) -> None:
        super().__init__()
        self.register_buffer("log_mean", torch.as_tensor(log_mean, dtype=torch.float32))
        self.register_buffer("log_std", torch.as_tensor(log_std, dtype=torch.float32))
        self.register_buffer("cond_mean", torch.as_tensor(cond_mean, dtype=torch.float32))
        self.register_buffer("cond_std", torch.as_tensor(cond_std, dtype=torch.float32))
        self.members = nn.ModuleList(members)
        # plain ints: widths must be constants of the traced (ONNX) graph
        self.n_refined = int(self.log_mean.numel())
        self.n_conditions = int(self.cond_mean.numel())

    def to_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw inputs (n, d + c) -> (z, standardised conditions)."""
        d = self.n_refined
        z = (torch.log10(x[:, :d].clamp_min(RAW_FLOOR)) - self.log_mean) / self.log_std
        c = (x[:, d:] - self.cond_mean) / self.cond_std
        return z, c

    def mean_shift(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Ensemble mean of the members' shifts in z space."""
        shifts = [member(z, c) for member in self.members]
        return shifts[0] if len(shifts) == 1 else torch.stack(shifts).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, c = self.to_latent(x)
        shift = self.mean_shift(z, c)
        return x[:, : self.n_refined] * torch.exp(shift * self.log_std * LN10)
