"""The DiT together with its conditioner: metadata and noisy latents in, the model output out.

Keeping both in one module lets one EMA, one checkpoint entry and one bundle cover them, and
gives samplers a single ``model_fn`` with classifier-free guidance batched into one forward
pass (conditional and unconditional halves side by side).

The DiT's aligned input is the caller's (known latents and their mask, for inpainting and
prompts) followed by the conditioner's (speech's phoneme features), frame by frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentaudio.dit.samplers import classifier_free_guidance


class Denoiser(nn.Module):
    def __init__(self, dit: nn.Module, conditioner: nn.Module):
        super().__init__()
        self.dit = dit
        self.conditioner = conditioner

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        batch: dict,
        force_uncond: bool = False,
        aligned_cond: Tensor | None = None,
    ) -> Tensor:
        cond = self.conditioner(batch, force_uncond=force_uncond, frames=x.shape[-1])
        return self.dit(x, t, **_with_aligned(cond, aligned_cond))  # (B, D, T)

    def guided(
        self,
        x: Tensor,
        t: Tensor,
        batch: dict,
        cfg_scale: float = 1.0,
        cfg_rescale: float = 0.0,
        negative: dict | None = None,
        aligned_cond: Tensor | None = None,
    ) -> Tensor:
        """Classifier-free guidance in one forward pass of twice the batch.

        Without ``negative`` the second half is unconditional (every condition null). With it,
        the second half takes ``batch`` with the keys of ``negative`` replaced (a negative
        caption: ``{"caption": [...]}``), so the conditions it does not name (timing, label)
        are the same in both halves and guidance steers only by what differs.
        """
        if cfg_scale == 1.0:
            return self(x, t, batch, aligned_cond=aligned_cond)
        frames = x.shape[-1]
        cond = _with_aligned(self.conditioner(batch, frames=frames), aligned_cond)
        if negative is None:
            uncond = self.conditioner(batch, force_uncond=True, frames=frames)
        else:
            uncond = self.conditioner({**batch, **negative}, frames=frames)
        both = _concat_conditions(cond, _with_aligned(uncond, aligned_cond))
        out = self.dit(torch.cat([x, x]), torch.cat([t, t]), **both)  # (2B, D, T)
        cond_out, uncond_out = out.chunk(2)
        return classifier_free_guidance(cond_out, uncond_out, cfg_scale, cfg_rescale)


def _with_aligned(cond: dict, aligned_cond: Tensor | None) -> dict:
    """The conditioner's output with the caller's aligned input in front of its own (if any)."""
    parts = [part for part in (aligned_cond, cond.get("aligned_cond")) if part is not None]
    aligned = None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (B, A, T)
    return {**cond, "aligned_cond": aligned}


def _concat_conditions(a: dict, b: dict) -> dict:
    out = {"global_cond": None, "cross_cond": None, "cross_mask": None, "aligned_cond": None}
    for name in ("global_cond", "aligned_cond"):
        if a[name] is not None:
            out[name] = torch.cat([a[name], b[name]])  # (2B, ...)
    if a["cross_cond"] is not None:
        length = max(a["cross_cond"].shape[1], b["cross_cond"].shape[1])
        out["cross_cond"] = torch.cat(
            [_pad_tokens(a["cross_cond"], length), _pad_tokens(b["cross_cond"], length)]
        )
        out["cross_mask"] = torch.cat(
            [_pad_mask(a["cross_mask"], length), _pad_mask(b["cross_mask"], length)]
        )
    return out


def _pad_tokens(tokens: Tensor, length: int) -> Tensor:
    return nn.functional.pad(tokens, (0, 0, 0, length - tokens.shape[1]))  # (B, S', E)


def _pad_mask(mask: Tensor, length: int) -> Tensor:
    return nn.functional.pad(mask, (0, length - mask.shape[1]), value=False)  # (B, S')
