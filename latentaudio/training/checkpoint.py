"""Checkpoints that are never half-written and that resume without unpickling anything.

Every resume reads the checkpoint with ``torch.load(..., weights_only=True)``: single-device and
DDP runs through ``AtomicCheckpointIO``, FSDP runs through ``SafeFSDPStrategy`` (Lightning's own
FSDP loader unpickles the file with a full unpickler). ``build_trainer`` refuses any other strategy
that loads checkpoints its own way.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.strategies.fsdp import _get_full_state_dict_context
from lightning_fabric.strategies.model_parallel import _load_raw_module_state
from pytorch_lightning.strategies import FSDPStrategy, Strategy
from pytorch_lightning.trainer.states import TrainerFn
from torch.distributed.fsdp import FullyShardedDataParallel, OptimStateKeyType

from latentaudio.files import atomic_write, stale_temporaries


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O whose saves are atomic and whose loads are weights-only.

    A kill mid-save leaves the previous file intact; the next save of the same path removes the
    killed save's temporary (only rank zero saves, so no other writer can own it). ``write`` is
    the seam for a subclass that wants to act between writing the data and the rename.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_write(path) as temporary:
            self.write(checkpoint, temporary, Path(path))
        for stale in stale_temporaries(path):
            stale.unlink(missing_ok=True)

    def write(self, checkpoint: dict, temporary: Path, path: Path) -> None:
        """Write ``checkpoint`` to ``temporary``, which replaces ``path`` once this returns."""
        torch.save(checkpoint, temporary)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = True) -> dict:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class SafeFSDPStrategy(FSDPStrategy):
    """Lightning's FSDP strategy, resuming from full checkpoints read with ``weights_only=True``.

    Sharded checkpoint folders are refused: torch's distributed checkpoint reader unpickles their
    metadata. ``state_dict_type: full`` (conf/trainer/fsdp.yaml) writes full checkpoints.
    """

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict:
        path = Path(self.broadcast(checkpoint_path))
        if not path.is_file():
            raise ValueError(
                f"{path} is not a checkpoint file: latentaudio resumes FSDP runs only from full checkpoints "
                "(a sharded checkpoint folder is read with pickle); train with trainer.strategy.state_dict_type=full"
            )
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        self._load_full_state(checkpoint)
        return checkpoint

    def _load_full_state(self, checkpoint: dict) -> None:
        """Lightning's full-checkpoint restore of the sharded module and optimizers, given the dict."""
        module = self.lightning_module
        _load_raw_module_state(
            checkpoint.pop("state_dict"),
            module=self.model,
            world_size=self.world_size,
            strict=module.strict_loading,
        )
        optimizer_states = checkpoint.get("optimizer_states")
        if optimizer_states is None or module.trainer.state.fn != TrainerFn.FITTING:
            return
        if len(self.optimizers) != len(optimizer_states):
            raise RuntimeError(
                f"the run has {len(self.optimizers)} optimizers but the checkpoint holds {len(optimizer_states)}: "
                "resume with the configuration the checkpoint was trained with"
            )
        with _get_full_state_dict_context(self.model, world_size=self.world_size, rank0_only=False):
            for optimizer, state in zip(self.optimizers, optimizer_states):
                if isinstance(next(iter(state["state"]), None), int):  # saved by a plain optimizer
                    state = FullyShardedDataParallel.rekey_optim_state_dict(
                        state, OptimStateKeyType.PARAM_NAME, self.model
                    )
                state = FullyShardedDataParallel.optim_state_dict_to_load(
                    model=self.model, optim=optimizer, optim_state_dict=state
                )
                optimizer.load_state_dict(state)


def loads_weights_only(strategy: Strategy) -> bool:
    """Whether ``strategy`` resumes through weights-only loading (see the module docstring)."""
    if isinstance(strategy, SafeFSDPStrategy):
        return True
    own_loader = type(strategy).load_checkpoint is not Strategy.load_checkpoint
    return not own_loader and isinstance(strategy.checkpoint_io, AtomicCheckpointIO)
