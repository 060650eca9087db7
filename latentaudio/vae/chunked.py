"""Encode and decode long audio in overlapping chunks, in bounded memory and without seams.

Chunks are counted in latent frames. Consecutive chunks overlap by ``overlap_frames``; inside
each overlap, a quarter of it at either chunk's cut edge is thrown away (there the chunk's
convolutions saw zero padding instead of the neighbouring audio), and the middle half is a
raised-cosine crossfade whose two weights sum to one. The true start and end of the input
are kept from the first and last chunk, just as one-piece coding would produce them.

With an overlap wider than twice the network's receptive field (in frames), the chunked
result equals one-piece coding up to float rounding; narrower overlaps trade accuracy for
speed. Both functions run under ``torch.no_grad()`` (and inside ``torch.inference_mode()``)
and return float32.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from latentaudio.vae.model import AudioVAE


def _chunk_bounds(frames: int, chunk_frames: int, overlap_frames: int) -> list[tuple[int, int]]:
    """(start, end) frame ranges; every overlap is exactly overlap_frames wide."""
    # chunk_frames >= 2 * overlap_frames: no point lies in more than two chunks.
    if overlap_frames < 0 or chunk_frames < max(2 * overlap_frames, 1):
        raise ValueError(
            f"need chunk_frames >= 2 * overlap_frames >= 0, got chunk_frames={chunk_frames}, "
            f"overlap_frames={overlap_frames}"
        )
    bounds, start = [], 0
    while True:
        end = min(start + chunk_frames, frames)
        bounds.append((start, end))
        if end == frames:
            return bounds
        start += chunk_frames - overlap_frames


def _fade_in(overlap: int, unit: int, device: torch.device) -> Tensor:
    """Weight of the later chunk across one overlap of ``overlap`` frames, ``unit`` samples each:
    zero over the discarded quarter, a raised cosine over the middle half, one after."""
    margin = overlap // 4
    ramp_length = (overlap - 2 * margin) * unit
    position = (torch.arange(ramp_length, device=device) + 0.5) / max(ramp_length, 1)
    ramp = 0.5 - 0.5 * torch.cos(math.pi * position)
    zeros, ones = torch.zeros(margin * unit, device=device), torch.ones(margin * unit, device=device)
    return torch.cat([zeros, ramp, ones])  # (overlap * unit,)


def _overlap_add(pieces, bounds, overlap_frames: int, unit: int, out: Tensor) -> Tensor:
    """Crossfades pieces (each (B, D, (end - start) * unit)) into out (B, D, frames * unit)."""
    fade_in = _fade_in(overlap_frames, unit, out.device)
    overlap = overlap_frames * unit
    for index, (piece, (start, end)) in enumerate(zip(pieces, bounds)):
        weight = torch.ones(piece.shape[-1], device=out.device)
        if index > 0:
            weight[:overlap] = fade_in
        if index < len(bounds) - 1:
            weight[weight.shape[0] - overlap :] *= 1.0 - fade_in
        out[..., start * unit : end * unit] += piece * weight  # (B, D, chunk * unit)
    return out


@torch.no_grad()
def decode_chunked(
    vae: AudioVAE,
    latents: Tensor,
    chunk_frames: int,
    overlap_frames: int,
    length: int | None = None,
    detail: bool = True,
) -> Tensor:
    """latents (B, latent_dim, F) -> audio (B, C, length or F * hop), decoded chunk by chunk;
    ``detail`` as for `AudioVAE.decode`."""
    batch, _, frames = latents.shape
    bounds = _chunk_bounds(frames, chunk_frames, overlap_frames)
    out = torch.zeros(batch, vae.channels, frames * vae.hop, device=latents.device)  # (B, C, F * hop)
    pieces = (
        vae.decode(latents[..., start:end], detail=detail) for start, end in bounds
    )  # (B, C, chunk * hop)
    out = _overlap_add(pieces, bounds, overlap_frames, vae.hop, out)
    return out if length is None else out[..., :length]


@torch.no_grad()
def encode_chunked(vae: AudioVAE, audio: Tensor, chunk_frames: int, overlap_frames: int) -> Tensor:
    """audio (B, C, T) -> posterior means (B, latent_dim, ceil(T / hop)), encoded chunk by chunk."""
    batch, _, length = audio.shape
    frames = math.ceil(length / vae.hop)
    audio = torch.nn.functional.pad(audio, (0, frames * vae.hop - length))  # (B, C, F * hop)
    bounds = _chunk_bounds(frames, chunk_frames, overlap_frames)
    out = torch.zeros(batch, vae.latent_dim, frames, device=audio.device)  # (B, latent_dim, F)
    pieces = (vae.encode(audio[..., start * vae.hop : end * vae.hop]) for start, end in bounds)
    return _overlap_add(pieces, bounds, overlap_frames, 1, out)
