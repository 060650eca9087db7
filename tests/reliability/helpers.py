"""Small builders shared by the reliability tests: tiny bundles and train-vae overrides."""

from __future__ import annotations

from pathlib import Path

import torch
from apps_helpers import tiny_vae_overrides

from latentaudio.bundle import save_bundle
from latentaudio.vae.model import AudioVAE

TINY_VAE = dict(channels=1, base_channels=4, channel_mults=[1, 2], strides=[2, 4], latent_dim=3)


def tiny_vae_bundle(directory: Path, seed: int = 0) -> str:
    """An untrained tiny VAE saved as a bundle; returns its hash (another seed, another hash)."""
    torch.manual_seed(seed)
    vae = AudioVAE(**TINY_VAE).eval()
    return save_bundle(
        directory,
        "vae",
        {"vae": vae},
        {"vae": {"_target_": "latentaudio.vae.model.AudioVAE", **TINY_VAE}},
        {"sample_rate": 16000, "channels": 1, "hop": vae.hop, "latent_dim": TINY_VAE["latent_dim"]},
    )


vae_overrides = tiny_vae_overrides
