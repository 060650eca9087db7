"""Exponential moving average of a network's weights: torch's ``AveragedModel`` with an EMA rule.

The average is a submodule of the LightningModule, so it is saved in every checkpoint (with its
count of updates) and restored on resume. Buffers are copied, not averaged.

Warm-up: with a fixed decay d, the average after n updates still holds d**n of the initial
weights (0.999**2000 = 13.5%), and adaLN-Zero networks start with their conditioning paths at
zero, so a short run exports a network that barely listens to its conditions. With
``warmup=True`` the decay of update n is ``min(decay, (1 + n) / (10 + n))``: the average
follows the network closely early on and reaches ``decay`` after about ``10 / (1 - decay)``
updates.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_decay_at(update: int, decay: float, warmup: bool) -> float:
    """The decay applied at the ``update``-th update (1 for the first real average)."""
    return min(decay, (1.0 + update) / (10.0 + update)) if warmup else decay


class EMA(nn.Module):
    def __init__(self, network: nn.Module, decay: float, warmup: bool = True):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.averaged = AveragedModel(network, multi_avg_fn=self._average)
        self.averaged.module.eval().requires_grad_(False)

    def _average(self, averaged: list[torch.Tensor], current: list[torch.Tensor], count) -> None:
        weight = 1.0 - ema_decay_at(int(count), self.decay, self.warmup)
        torch._foreach_lerp_(averaged, current, weight)

    @property
    def average(self) -> nn.Module:
        """The averaged network, evaluated only."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        self.averaged.update_parameters(network)

    def train(self, mode: bool = True):
        super().train(mode)
        self.average.eval()
        return self
