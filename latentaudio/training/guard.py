"""Catch non-finite losses and gradients: skip the step, count it, stop after too many in a row."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytorch_lightning as pl
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
                "The weights were not updated by any of them and were saved to checkpoints/before-fault.ckpt; "
                "resume from it (ckpt_path=<run>/checkpoints/before-fault.ckpt) with a lower "
                "optim.lr, a lower loss.adversarial_weight or a later loss.adversarial_start_step"
            )
        return False

    def state_dict(self) -> dict:
        return {"consecutive": self.consecutive, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        # a resumed run (typically from before-fault.ckpt, with safer settings) starts a new streak
        self.consecutive = 0
        self.total = state.get("total", 0)


class SaveBeforeFault(pl.Callback):
    """When a NonFiniteError stops training, save ``checkpoints/before-fault.ckpt``.

    The guard skipped every bad step, so the weights, optimizer state and step count at
    that moment are those from before the fault: a checkpoint to resume from with safer
    settings, even when the last interval checkpoint is far behind.
    """

    FILENAME = "before-fault.ckpt"

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, NonFiniteError):
            return
        checkpointer = trainer.checkpoint_callback
        directory = getattr(checkpointer, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
        path = Path(directory) / self.FILENAME
        trainer.save_checkpoint(path)
        log.error("saved the state from before the fault (step %d) to %s", trainer.global_step, path)


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))
