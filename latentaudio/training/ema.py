"""Exponential moving average of a network's weights, kept as a frozen copy inside the LightningModule.

Being a submodule, the average is saved in every checkpoint and restored on resume.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    def __init__(self, network: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.average = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        averaged = [p for p in self.average.parameters()]
        current = [p.detach() for p in network.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - self.decay)
        for average_buffer, buffer in zip(self.average.buffers(), network.buffers()):
            average_buffer.copy_(buffer)

    def train(self, mode: bool = True):
        super().train(mode)
        self.average.eval()  # the average is only ever evaluated
        return self
