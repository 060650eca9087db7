"""A trained VAE loaded from its bundle: audio in any rate and channel count to latents and back.

Needs no Hydra and no Lightning:

    from latentaudio.autoencoder import Autoencoder
    ae = Autoencoder.from_bundle("outputs/demo/vae/export")
    latents = ae.encode(audio, sample_rate=44100)   # audio (C, T) or (B, C, T)
    audio = ae.decode(latents)                       # (B, channels, frames * hop) at ae.sample_rate

Long inputs go through overlapping chunks (``latentaudio.vae.chunked``), so memory stays bounded.

``decode_precision``: "fp32" (default), "bf16" (autocast: 1.6-1.9x faster decoding of batches on a
CPU with native bf16, the output within -37 dB of fp32's; experiments/inference/decode.md) or
"auto" (bf16 where the device has native bf16 kernels, else fp32). Encoding is always fp32.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from latentaudio.audio import convert_channels, resample
from latentaudio.bundle import Bundle, load_bundle
from latentaudio.devices import bf16_for
from latentaudio.vae.chunked import decode_chunked, encode_chunked


class Autoencoder:
    def __init__(
        self,
        bundle: Bundle,
        device: str | torch.device = "cpu",
        chunk_seconds: float = 20.0,
        decode_precision: str = "fp32",
    ):
        self.decode_bf16 = bf16_for(decode_precision, device, "decode_precision")
        self.bundle = bundle
        self.vae = bundle.build("vae", device)
        self.device = torch.device(device)
        meta = bundle.meta
        self.sample_rate: int = meta["sample_rate"]
        self.channels: int = meta["channels"]
        self.hop: int = meta["hop"]
        self.latent_dim: int = meta["latent_dim"]
        # a VAE with spectral channels trained with detail dropout decodes a DiT's clips from
        # those channels alone (vae/spectral.py): the detail a DiT generates is its mean over phase
        self.generated_detail: bool = not meta.get("detail_dropout", 0.0)
        self.chunk_frames = max(16, math.ceil(chunk_seconds * self.sample_rate / self.hop))
        self.overlap_frames = min(max(8, self.chunk_frames // 8), self.chunk_frames // 2)

    @classmethod
    def from_bundle(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs) -> Autoencoder:
        return cls(load_bundle(path, kind="vae"), device, **kwargs)

    def choose_generated_decode(self, with_detail: bool | None) -> None:
        """How latents a DiT generated decode (``generated_detail``): with the detail channels the
        DiT generated (True) or from the spectral channels alone (False); None keeps this VAE's
        rule. The mel channels alone keep a clip's timbre and lose its notes (the demo's labels
        94% against 80% with the detail; the caption DiT's keys 5% against 59%:
        experiments/conditioning/results.md), so a DiT asked for keys decodes with the detail
        (``sampling.decode_detail``). A VAE without spectral channels always decodes its detail."""
        if with_detail is not None and getattr(self.vae, "spectral", None) is not None:
            self.generated_detail = bool(with_detail)

    @property
    def hash(self) -> str:
        return self.bundle.hash

    def prepare(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Any ``(C, T)`` or ``(B, C, T)`` audio to the model's rate and channels, as ``(B, C, T)``."""
        if audio.dim() == 2:
            audio = audio.unsqueeze(0)
        audio = convert_channels(audio.float(), self.channels)
        return resample(audio, sample_rate, self.sample_rate).to(self.device)

    @torch.inference_mode()
    def encode(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Posterior means ``(B, latent_dim, ceil(T / hop))``."""
        audio = self.prepare(audio, sample_rate or self.sample_rate)
        frames = math.ceil(audio.shape[-1] / self.hop)
        if frames <= self.chunk_frames:
            return self.vae.encode(audio)
        return encode_chunked(self.vae, audio, self.chunk_frames, self.overlap_frames)

    @torch.inference_mode()
    def decode(
        self, latents: torch.Tensor, length: int | None = None, as_generated: bool = False
    ) -> torch.Tensor:
        """Audio ``(B, channels, length or frames * hop)`` at ``self.sample_rate``. ``as_generated``:
        latents a DiT sampled, decoded as this VAE decodes them (from the spectral channels alone,
        `AudioVAE.drop_detail`, where ``generated_detail`` is False)."""
        detail = self.generated_detail or not as_generated
        latents = latents.to(self.device, torch.float32)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.decode_bf16):
            if latents.shape[-1] <= self.chunk_frames:
                audio = self.vae.decode(latents, length=length, detail=detail)
            else:
                audio = decode_chunked(
                    self.vae, latents, self.chunk_frames, self.overlap_frames, length=length, detail=detail
                )
        return audio.float()

    def reconstruct(
        self, audio: torch.Tensor, sample_rate: int | None = None, as_generated: bool = False
    ) -> torch.Tensor:
        """Encode and decode: ``(B, channels, T')`` at the model's rate, same duration as the input.
        ``as_generated``: decoded as a DiT's clips are (``generated_detail``): what a perfect DiT
        on this VAE could make of the audio."""
        prepared = self.prepare(audio, sample_rate or self.sample_rate)
        return self.decode(self.encode(prepared), length=prepared.shape[-1], as_generated=as_generated)
