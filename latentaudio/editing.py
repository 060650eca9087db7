"""What each editing mode asks of the sampler, as plain functions of the input's latents.

Every editing mode of ``Pipeline`` (vary, inpaint, extend, enhance) encodes its input, turns
the latents into an ``Edit`` with one of these functions, and hands it to the one routine that
samples and decodes (``Pipeline._edit``). Pure torch: no model is called here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from latentaudio.dit.aligned import aligned_input


@dataclass(frozen=True)
class Edit:
    """One edit: ``frames`` latent frames to sample, decoded to ``length`` samples.

    known, keep: latents (B, D, frames) kept where ``keep`` (1, 1, frames) is 1 (RePaint).
    init, t_start: latents (B, D, frames) noised to ``t_start`` as the starting state (SDEdit).
    aligned_cond: (B, D + 1, frames) input of a DiT trained with aligned conditioning.
    """

    frames: int
    length: int
    known: Tensor | None = None
    keep: Tensor | None = None
    init: Tensor | None = None
    t_start: float = 1.0
    aligned_cond: Tensor | None = None


def vary(latents: Tensor, length: int, strength: float) -> Edit:
    """Noise the input's latents to t = ``strength`` (0: unchanged, 1: new) and sample them back."""
    return Edit(latents.shape[-1], length, init=latents, t_start=strength)


def inpaint(latents: Tensor, length: int, keep: Tensor) -> Edit:
    """Regenerate the frames where ``keep`` is 0; the others come back as the input's latents."""
    return Edit(latents.shape[-1], length, known=latents, keep=keep)


def keep_mask(ranges: list[tuple[float, float]], frames: int, seconds: float, frame_seconds: float) -> Tensor:
    """(1, 1, frames): 0 on every frame that overlaps one of ``ranges`` (seconds), 1 elsewhere."""
    if not ranges:
        raise ValueError("give at least one (start, end) range to inpaint")
    keep = torch.ones(1, 1, frames)
    for start, end in ranges:
        if not 0.0 <= start < end <= seconds + 1e-9:
            raise ValueError(
                f"range ({start}, {end}) s: need 0 <= start < end <= {seconds:.3f} (the clip's length)"
            )
        first = math.floor(start / frame_seconds)
        last = min(frames, math.ceil(end / frame_seconds - 1e-9))
        keep[..., first : max(last, first + 1)] = 0.0
    return keep


def extend(latents: Tensor, length: int, hop: int, added_frames: int, added_samples: int) -> Edit:
    """The input cut to whole latent frames as the known prefix, ``added_frames`` new ones after it.

    The output is the cut input (``length // hop`` frames) followed by ``added_samples`` samples.
    """
    whole = length // hop
    prefix = latents[..., :whole]
    known = torch.cat([prefix, prefix.new_zeros(*prefix.shape[:2], added_frames)], dim=-1)
    keep = torch.cat([torch.ones(1, 1, whole), torch.zeros(1, 1, added_frames)], dim=-1).to(latents.device)
    return Edit(whole + added_frames, whole * hop + added_samples, known=known, keep=keep)


def enhance(latents: Tensor, length: int) -> Edit:
    """Generate from noise with the degraded input's latents as the aligned input (all known)."""
    everything = torch.ones(1, 1, latents.shape[-1], device=latents.device)
    return Edit(latents.shape[-1], length, aligned_cond=aligned_input(latents, everything))
