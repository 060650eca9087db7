"""The guarded optimizer step and the hooks that the VAE and DiT LightningModules share.

Both modules optimise manually (the VAE's generator and critic take turns), count micro-batches
with ``GradientAccumulation`` and protect every step with the ``NonFiniteGuard``. The step,
the guard's checkpoint state and the validation zero-grad hook live here once.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from latentaudio.training.ema import EMA
from latentaudio.training.guard import NonFiniteGuard
from latentaudio.training.speed import GradientAccumulation


class GuardedTraining(pl.LightningModule):
    """A manually optimised module with gradient accumulation and the non-finite guard.

    Subclasses add each micro-batch's losses to ``self.accumulation`` under their names, with
    the group's total loss as ``train/loss``, and call ``guarded_step`` on a group's last batch.
    """

    def __init__(self, accumulate_grad_batches: int = 1, max_bad_steps: int = 20):
        super().__init__()
        self.automatic_optimization = False
        self.guard = NonFiniteGuard(max_bad_steps)
        self.accumulation = GradientAccumulation(accumulate_grad_batches)

    def guarded_step(
        self,
        loss: torch.Tensor,
        optimizer,
        scheduler,
        network: torch.nn.Module,
        max_norm: float,
        ema: EMA | None = None,
    ) -> torch.Tensor | None:
        """Back-propagate a group's last ``loss``, clip ``network``'s gradients and step once.

        The step is skipped (gradients dropped, skipped steps logged, None returned) when the
        group's mean ``train/loss`` or the gradient norm is not finite, so a bad batch never
        reaches the weights, the optimizer state or the EMA. Returns the gradient norm otherwise.
        """
        step = self.global_step
        if not self.guard.check(step, loss=self.accumulation.mean("train/loss")):
            optimizer.zero_grad(set_to_none=True)
            self.log_skipped_steps()
            return None
        self.manual_backward(self.accumulation.scale(loss))
        grad_norm = clip_gradients(network, max_norm)
        if not self.guard.check(step, grad_norm=grad_norm):
            optimizer.zero_grad(set_to_none=True)
            self.log_skipped_steps()
            return None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if ema is not None:
            ema.update(network)
        return grad_norm

    def log_skipped_steps(self) -> None:
        self.log("train/skipped_steps", float(self.guard.total), on_step=True)

    def on_validation_model_zero_grad(self) -> None:
        # Lightning zeroes gradients before validation; mid-group they are the accumulated ones
        if not self.accumulation.in_progress:
            super().on_validation_model_zero_grad()

    def frozen_weights(self) -> set[str]:
        """State-dict keys that checkpoints leave out: frozen weights read again from elsewhere
        (a fine-tuned DiT's base bundle) when the module is built."""
        return set()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["nonfinite_guard"] = self.guard.state_dict()
        frozen = self.frozen_weights()
        if frozen:
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.guard.load_state_dict(checkpoint.get("nonfinite_guard", {}))
        frozen = self.frozen_weights()
        if not frozen:
            return
        missing = [k for k in self.state_dict() if k not in checkpoint["state_dict"] and k not in frozen]
        if missing:
            raise ValueError(
                f"the checkpoint lacks {len(missing)} tensors that train (e.g. {missing[0]}): it was not written "
                "by this run; start a new run folder, or resume from this run's own last.ckpt"
            )


def clip_gradients(network: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """Clip ``network``'s gradients to ``max_norm`` (0: no clipping) and return their total norm."""
    parameters = [p for p in network.parameters() if p.grad is not None]
    if not parameters:
        return torch.zeros(())
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm > 0 else float("inf"))
