"""Per-channel latent statistics, measured shard by shard and merged exactly.

The DiT sees latents scaled to unit variance by these numbers (never a hand-set constant).
Each shard stores its count, mean and sum of squared deviations; merging them gives the
statistics over all frames without reading the latents again.
"""

from __future__ import annotations

import torch


def shard_statistics(latents: torch.Tensor) -> dict:
    """Count, mean and sum of squared deviations per channel, two-pass in float64."""
    x = latents.double()  # (latent_dim, frames)
    mean = x.mean(dim=-1)
    m2 = (x - mean[:, None]).square().sum(dim=-1)
    return {"count": int(x.shape[-1]), "mean": mean.tolist(), "m2": m2.tolist()}


def merge_statistics(parts: list[dict], latent_dim: int) -> dict:
    """Per-channel mean and (population) std over all frames: Chan et al.'s pairwise merge."""
    count = 0
    mean = torch.zeros(latent_dim, dtype=torch.float64)
    m2 = torch.zeros(latent_dim, dtype=torch.float64)
    for part in parts:
        n = part["count"]
        part_mean = torch.tensor(part["mean"], dtype=torch.float64)
        delta = part_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + torch.tensor(part["m2"], dtype=torch.float64) + delta.square() * (count * n / total)
        count = total
    std = (m2 / count).sqrt() if count else torch.full((latent_dim,), float("nan"), dtype=torch.float64)
    return {"frames": count, "mean": mean.tolist(), "std": std.tolist()}
