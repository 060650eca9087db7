"""Learning-rate schedules counted in optimizer steps."""

from __future__ import annotations

import math

import torch


def warmup_decay_lambda(
    warmup_steps: int, total_steps: int, decay: str = "cosine", min_lr_ratio: float = 0.1
):
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` (or constant)."""
    if decay not in ("cosine", "constant"):
        raise ValueError(f"optim.decay={decay!r}: choose cosine or constant")

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay == "constant" or total_steps <= warmup_steps:
            return 1.0
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def warmup_decay(
    optimizer, warmup_steps: int, total_steps: int, decay: str = "cosine", min_lr_ratio: float = 0.1
):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_decay_lambda(warmup_steps, total_steps, decay, min_lr_ratio)
    )
