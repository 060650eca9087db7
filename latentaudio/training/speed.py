"""Throughput settings for the training modules: the optimizer, compile and gradient accumulation.

Lightning's ``Trainer(accumulate_grad_batches=...)`` does not apply to manual optimisation, so
the modules count micro-batches themselves with ``GradientAccumulation``: each micro-batch's loss
is scaled by 1/N and back-propagated, and the optimizers, schedulers, EMA, gradient clipping and
the non-finite guard act once per N batches. Only optimizer steps advance ``global_step``, so
``trainer.max_steps`` counts optimizer steps (N batches each).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from latentaudio.devices import native_bf16

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def fastest_precision() -> str:
    """The Lightning precision that trains fastest on this machine: ``bf16-mixed`` on a GPU with
    bf16 and on CPUs whose oneDNN has native bf16 kernels (AVX-512 BF16, AMX), else ``32-true``.

    A recipe that hard-codes bf16 for speed turns minutes into hours on an AVX2-only CPU
    (``latentaudio.devices.native_bf16``).
    """
    if torch.cuda.is_available():
        return "bf16-mixed" if native_bf16("cuda") else "16-mixed"
    return "bf16-mixed" if native_bf16("cpu") else "32-true"


def adamw(params, **options) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` with its fused kernel wherever every parameter allows it.

    Without ``fused`` or ``foreach``, torch steps CPU parameters one tensor at a time: 13-19 ms a
    step for the demo VAE's parameters against 2-3 ms fused, 1-2% of a demo training step
    (experiments/throughput/results.md). Same update rule; FSDP's flat or sharded parameters and
    non-float ones keep torch's default path.
    """
    groups = [dict(g, params=list(g["params"])) if isinstance(g, dict) else g for g in params]
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fusable = bool(tensors) and all(
        type(p) in (torch.Tensor, nn.Parameter) and p.is_floating_point() and p.device.type in ("cpu", "cuda")
        for p in tensors
    )
    return torch.optim.AdamW(groups, fused=True if fusable else None, **options)


def compile_in_place(networks: list[nn.Module], mode: str | None = None) -> None:
    """``torch.compile`` each network's forward without wrapping it.

    ``nn.Module.compile`` keeps the module itself (no ``_orig_mod.`` prefix), so state-dict
    keys, checkpoints and bundles have the same layout with and without compile. Compile
    after any EMA copy is made: a deep copy would share the original's compiled forward.
    """
    if mode is not None and mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode={mode!r}: choose null or one of {', '.join(COMPILE_MODES)}")
    for network in networks:
        network.compile(mode=mode)


class GradientAccumulation:
    """Counts the micro-batches of one optimizer step and sums their (detached) losses."""

    def __init__(self, batches: int = 1):
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ValueError(f"accumulate_grad_batches must be an integer of 1 or more, got {batches!r}")
        self.batches = batches
        self.seen = 0
        self.sums: dict[str, torch.Tensor] = {}

    def begin(self) -> bool:
        """Count a micro-batch in; True when it completes the group (step the optimizers after it)."""
        self.seen += 1
        return self.seen >= self.batches

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate: the group's gradient is the mean over its micro-batches."""
        return loss / self.batches if self.batches > 1 else loss

    def add(self, name: str, loss: torch.Tensor) -> None:
        """Add a micro-batch loss to the group's sum (non-finite if any of them was)."""
        self.sums[name] = loss.detach() + self.sums[name] if name in self.sums else loss.detach()

    def mean(self, name: str) -> torch.Tensor:
        """The mean over the group so far: the loss of the batch the step is taken on."""
        return self.sums[name] / self.seen

    def close(self) -> None:
        """The group is done (stepped or skipped): the next batch opens a new one."""
        self.seen = 0
        self.sums = {}

    @property
    def in_progress(self) -> bool:
        """Gradients of an unfinished group are waiting in ``.grad``: nothing may zero them."""
        return self.seen > 0


@contextmanager
def frozen(network: nn.Module):
    """Run ``network`` without accumulating gradients into its parameters (inputs still get them)."""
    flags = [p.requires_grad for p in network.parameters()]
    network.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(network.parameters(), flags):
            parameter.requires_grad_(flag)
