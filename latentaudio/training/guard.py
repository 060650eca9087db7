"""Catch non-finite losses and gradients: skip the step, count it, stop after too many in a row."""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Training produced too many non-finite steps in a row."""


class NonFiniteGuard:
    def __init__(self, max_bad_steps: int = 20):
        self.max_bad_steps = max_bad_steps
        self.consecutive = 0
        self.total = 0

    def check(self, step: int, **values: torch.Tensor | float) -> bool:
        """True when every value is finite; otherwise record a bad step (and raise past the limit)."""
        bad = [name for name, value in values.items() if not _finite(value)]
        if not bad:
            self.consecutive = 0
            return True
        self.consecutive += 1
        self.total += 1
        log.warning(
            "step %d: non-finite %s, step skipped (%d in a row)", step, ", ".join(bad), self.consecutive
        )
        if self.consecutive >= self.max_bad_steps:
            raise NonFiniteError(
                f"{self.consecutive} consecutive steps had a non-finite loss or gradient (last at step {step}). "
                "The weights were not updated by any of them; resume from checkpoints/last.ckpt with a lower "
                "optim.lr, a lower loss.adversarial_weight or a later loss.adversarial_start_step"
            )
        return False

    def state_dict(self) -> dict:
        return {"consecutive": self.consecutive, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.consecutive = state.get("consecutive", 0)
        self.total = state.get("total", 0)


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))
