"""Exponential moving average of a network's weights, saved in every checkpoint and restored on resume.

The average is a submodule of the LightningModule (``ema.averaged.module`` with its count of
updates in ``ema.averaged.n_averaged``, the layout of torch's ``AveragedModel``). Buffers are
copied with the network, not averaged.

Only what trains is averaged: parameters that are frozen when the EMA is made (the base of a
LoRA fine-tune) are shared with the network, not copied, so an adapter's EMA costs the
adapter's size, not a second copy of a billion-parameter base.

Warm-up: with a fixed decay d, the average after n updates still holds d**n of the initial
weights (0.999**2000 = 13.5%), and adaLN-Zero networks start with their conditioning paths at
zero, so a short run exports a network that barely listens to its conditions. With
``warmup=True`` the decay of update n is ``min(decay, (1 + n) / (10 + n))``: the average
follows the network closely early on and reaches ``decay`` after about ``10 / (1 - decay)``
updates.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(update: int, decay: float, warmup: bool) -> float:
    """The decay applied at the ``update``-th update (1 for the first real average)."""
    return min(decay, (1.0 + update) / (10.0 + update)) if warmup else decay


class _Averaged(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))


class EMA(nn.Module):
    def __init__(self, network: nn.Module, decay: float, warmup: bool = True):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        frozen = {id(p): p for p in network.parameters() if not p.requires_grad}  # shared, not copied
        self.averaged = _Averaged(copy.deepcopy(network, memo=frozen))
        self.average.eval().requires_grad_(False)

    @property
    def average(self) -> nn.Module:
        """The averaged network, evaluated only."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        pairs = [
            (mine, theirs)
            for mine, theirs in zip(self.average.parameters(), network.parameters())
            if theirs.requires_grad
        ]
        mine, theirs = [m for m, _ in pairs], [t.detach().to(m.device) for m, t in pairs]
        count = int(self.averaged.n_averaged)
        if count == 0:
            torch._foreach_copy_(mine, theirs)
        else:
            torch._foreach_lerp_(mine, theirs, 1.0 - ema_decay_at(count, self.decay, self.warmup))
        self.averaged.n_averaged += 1

    def train(self, mode: bool = True):
        super().train(mode)
        self.average.eval()
        return self
