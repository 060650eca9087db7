"""Untrained tiny bundles built in a second, for tests of the pipeline's logic (not its quality).

The DiT conditions on timing, two labels and byte-level captions; its zero-initialised
(adaLN-Zero) layers get small random weights, so its output depends on every condition.
"""

from __future__ import annotations

from pathlib import Path

import torch

from latentaudio.bundle import instantiate, save_bundle

RATE = 16000
VAE = dict(channels=1, base_channels=4, channel_mults=[1, 2], strides=[2, 4], latent_dim=3)
LABELS = ["low", "high"]
WINDOW = 32  # the DiT's training window in latent frames


def tiny_vae_bundle(directory: Path) -> str:
    torch.manual_seed(0)
    config = {"_target_": "latentaudio.vae.model.AudioVAE", **VAE}
    vae = instantiate(config).eval()
    meta = {"sample_rate": RATE, "channels": 1, "hop": vae.hop, "latent_dim": VAE["latent_dim"]}
    return save_bundle(directory, "vae", {"vae": vae}, {"vae": config}, meta)


def tiny_dit_bundle(
    directory: Path,
    vae_hash: str,
    objective: str = "v",
    sampling: dict | None = None,
    latent_std: float = 1.0,
    text: str | None = "bytes",
    tempo_and_key: bool = False,
    tempo_grid: bool = False,
) -> str:
    hop = 8
    generator = torch.Generator().manual_seed(0)
    conditioner_config = {
        "_target_": "latentaudio.dit.conditioning.Conditioner",
        "global_dim": 16,
        "cross_dim": 16,
        "timing": True,
        "num_labels": len(LABELS),
        "text": text,
        "text_depth": 1,
        "text_heads": 2,
        "cfg_dropout": 0.0,
        "tempo": tempo_and_key,
        "key": tempo_and_key,
        "tempo_grid": tempo_grid,
        "frame_rate": RATE / hop if tempo_grid else 0.0,
    }
    conditioner = instantiate(conditioner_config)
    dit_config = {
        "_target_": "latentaudio.dit.model.DiT",
        "latent_dim": VAE["latent_dim"],
        "width": 16,
        "depth": 1,
        "heads": 2,
        "global_cond_dim": conditioner.global_cond_dim,
        "cross_attn_dim": conditioner.cross_attn_dim,
        "aligned_cond_channels": conditioner.aligned_dim,
    }
    dit = instantiate(dit_config)
    with torch.no_grad():
        for module in (dit, conditioner):
            for parameter in module.parameters():
                if not parameter.abs().any():
                    parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    meta = {
        "vae_hash": vae_hash,
        "sample_rate": RATE,
        "hop": hop,
        "latent_dim": VAE["latent_dim"],
        "latent_statistics": {"mean": [0.0] * VAE["latent_dim"], "std": [latent_std] * VAE["latent_dim"]},
        "crop_frames": WINDOW,
        "train_seconds": WINDOW * hop / RATE,
        "objective": {"name": objective, "weighting": "uniform"},
        "sampling": sampling or {},
        "labels": LABELS,
        "aligned": {"enabled": False},
    }
    return save_bundle(
        directory,
        "dit",
        {"dit": dit.eval(), "conditioner": conditioner.eval()},
        {"dit": dit_config, "conditioner": conditioner_config},
        meta,
    )


def tiny_bundles(directory: Path, **dit_options) -> tuple[Path, Path]:
    """(vae bundle, dit bundle) folders under ``directory``."""
    vae_hash = tiny_vae_bundle(directory / "vae")
    tiny_dit_bundle(directory / "dit", vae_hash, **dit_options)
    return directory / "vae", directory / "dit"
