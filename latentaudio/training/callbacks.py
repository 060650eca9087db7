"""Callbacks shared by both training apps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

log = logging.getLogger(__name__)


class ExportBundle(pl.Callback):
    """Write the inference bundle at every checkpoint and at the end of training.

    The LightningModule provides ``export(directory)``; the bundle is replaced atomically.
    """

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.last_exported_step = -1

    @rank_zero_only
    def _export(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == self.last_exported_step or trainer.sanity_checking:
            return
        pl_module.export(self.dirpath)
        self.last_exported_step = trainer.global_step
        log.info("exported bundle at step %d to %s", trainer.global_step, self.dirpath)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._export(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._export(trainer, pl_module)


class FinalCheckpoint(pl.Callback):
    """Write ``last.ckpt`` when training ends between two checkpoint intervals.

    Otherwise a finished run's last.ckpt could lag its bundle, and ``ckpt_path=last`` would redo
    up to one interval.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        callback = trainer.checkpoint_callback
        if callback is None or callback.dirpath is None:
            return
        if callback.save_last and not getattr(callback, "_last_checkpoint_saved", True):
            return  # Lightning (2.6+) writes last.ckpt itself at the end; a second writer makes last-v1.ckpt
        last = Path(callback.dirpath) / "last.ckpt"
        if getattr(callback, "_last_global_step_saved", -1) != trainer.global_step or not last.exists():
            trainer.save_checkpoint(last)
