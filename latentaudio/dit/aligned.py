"""Aligned-audio conditioning: known latents and their mask as extra DiT input channels.

A DiT built with ``aligned_cond_channels = latent_dim + 1`` sees, frame by frame, the
normalised latents it may rely on (zero elsewhere) and a mask channel (1: known). Training
draws random masks so that one model does generation (nothing known), inpainting (spans
regenerated), continuation (a known prefix) and, for ``task="enhance"``, enhancement
(everything "known", but from a degraded copy of the clip). Pure torch: the pipeline and
the LightningModule share it.
"""

from __future__ import annotations

import torch
from torch import Tensor

TASKS = ("inpaint", "enhance")


def aligned_input(known: Tensor, keep: Tensor) -> Tensor:
    """(B, D + 1, T): the known latents where ``keep`` (B or 1, 1, T) is set, then the mask."""
    hard = (keep >= 0.5).to(known.dtype).expand(known.shape[0], 1, known.shape[-1])  # (B, 1, T)
    return torch.cat([known * hard, hard], dim=1)


def nothing_known(x: Tensor) -> Tensor:
    """The aligned input of plain generation: no known frames."""
    return torch.zeros(x.shape[0], x.shape[1] + 1, x.shape[2], device=x.device, dtype=x.dtype)


def random_keep_masks(
    batch: int,
    frames: int,
    generator: torch.Generator | None = None,
    drop: float = 0.1,
    prefix: float = 0.3,
    max_spans: int = 3,
) -> Tensor:
    """(B, 1, T) float masks, 1 = known: with probability ``drop`` nothing is known (plain
    generation), with ``prefix`` a random prefix (continuation), otherwise 1 to ``max_spans``
    random spans are regenerated and the rest is known (inpainting)."""
    masks = torch.zeros(batch, 1, frames)
    for i in range(batch):
        kind = torch.rand((), generator=generator).item()
        if kind < drop:
            continue
        if kind < drop + prefix:
            length = int(torch.randint(1, max(2, frames), (), generator=generator))
            masks[i, 0, :length] = 1.0
            continue
        masks[i] = 1.0
        spans = int(torch.randint(1, max_spans + 1, (), generator=generator))
        for _ in range(spans):
            length = int(torch.randint(1, max(2, frames // 2), (), generator=generator))
            start = int(torch.randint(0, frames - length + 1, (), generator=generator))
            masks[i, 0, start : start + length] = 0.0
    return masks


def add_noise_at_snr(
    audio: Tensor,
    snr_db: tuple[float, float],
    generator: torch.Generator | None = None,
    clip_probability: float = 0.0,
) -> Tensor:
    """A degraded copy of (B, C, S) audio: white noise at a per-item SNR drawn uniformly in
    ``snr_db`` (dB), then, with ``clip_probability``, hard clipping at half the peak."""
    batch = audio.shape[0]
    low, high = snr_db
    snr = low + (high - low) * torch.rand(batch, generator=generator)  # (B,)
    noise = torch.randn(audio.shape, generator=generator).to(audio)
    signal_power = audio.pow(2).flatten(1).mean(1).clamp_min(1e-10)  # (B,)
    noise_power = noise.pow(2).flatten(1).mean(1).clamp_min(1e-10)
    gain = torch.sqrt(signal_power / (noise_power * 10 ** (snr.to(audio) / 10)))  # (B,)
    degraded = audio + gain.view(-1, 1, 1) * noise
    clipped = torch.rand(batch, generator=generator) < clip_probability
    if clipped.any():
        peak = degraded.abs().flatten(1).amax(1).view(-1, 1, 1) * 0.5
        degraded = torch.where(clipped.view(-1, 1, 1).to(audio.device), degraded.clamp(-peak, peak), degraded)
    return degraded


class PairPool:
    """Degraded/clean training pairs, a few made per step and each reused for a few steps.

    A degraded copy is made in audio space (decode, add noise, encode through the frozen VAE),
    which at demo size costs several times the DiT step itself. So each step makes ``fresh``
    new pairs from its own batch and fills the rest of the batch with pairs drawn from the last
    ``size`` made: the cost falls by ``batch / fresh`` while every pair is still made on the
    fly from training crops. Until the pool holds ``size`` pairs, whole batches are degraded.
    Items are the batch's per-item values (tensors along dim 0, lists item by item) plus
    ``"degraded"``. The pool is not checkpointed: a resumed run refills it.
    """

    def __init__(self, size: int, fresh: int):
        if size < 1 or fresh < 1:
            raise ValueError(f"a pair pool needs size >= 1 and fresh >= 1, got {size} and {fresh}")
        self.size, self.fresh = size, fresh
        self.items: list[dict] = []
        self.next_slot = 0  # the oldest item, overwritten next once the pool is full

    def mix(self, batch: dict, degrade, generator: torch.Generator | None = None) -> dict:
        """A batch of the same size with a ``"degraded"`` entry; ``degrade`` maps (n, D, T) latents."""
        count = batch["latents"].shape[0]
        made = count if len(self.items) < self.size else min(self.fresh, count)
        new = _items(batch, made)
        for item, degraded in zip(new, degrade(batch["latents"][:made])):
            item["degraded"] = degraded
            self._add(item)
        if made == count:
            return _stack(new)
        picks = torch.randint(len(self.items), (count - made,), generator=generator).tolist()
        return _stack(new + [self.items[i] for i in picks])

    def _add(self, item: dict) -> None:
        if len(self.items) < self.size:
            self.items.append(item)
            return
        self.items[self.next_slot] = item
        self.next_slot = (self.next_slot + 1) % self.size


def _items(batch: dict, count: int) -> list[dict]:
    # clones, so a pooled item does not keep its whole batch alive
    return [
        {key: value[i].clone() if isinstance(value, Tensor) else value[i] for key, value in batch.items()}
        for i in range(count)
    ]


def _stack(items: list[dict]) -> dict:
    return {
        key: torch.stack([item[key] for item in items])
        if isinstance(items[0][key], Tensor)
        else [item[key] for item in items]
        for key in items[0]
    }


def crossfade_ramp(length: int) -> Tensor:
    """(length,) weights from near 1 to near 0: how much of the earlier window to keep."""
    return torch.tensor([(length - i) / (length + 1) for i in range(length)]) if length else torch.zeros(0)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"aligned.task={task!r}: choose one of {', '.join(TASKS)}")
