"""Encode an audio folder with a trained VAE into latent shards, the input of DiT training.

make encode-dataset ARGS="vae=outputs/train_vae/<date>/<time>/export"
latentaudio-encode-dataset vae=/path/to/export data.root=/path/to/audio output=/path/to/latents

Rerunning with the same ``output`` resumes: files already in finished shards are not
encoded again.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, ConfigError, save_resolved_config
from latentaudio.bundle import load_bundle
from latentaudio.data.encode import encode_with_vae


def encode_dataset(cfg: DictConfig) -> dict:
    """Scan ``data.root``, encode every usable file, return the manifest of ``output``."""
    if cfg.get("vae") in (None, ""):
        raise ConfigError(
            "vae=<path> is required: pass a VAE bundle, the export/ folder of a train_vae run "
            "(outputs/train_vae/<date>/<time>/export)"
        )
    bundle = load_bundle(cfg.vae, kind="vae")  # BundleError says what is wrong with the folder
    return encode_with_vae(
        bundle,
        cfg.data.root,
        cfg.output,
        device=cfg.device,
        min_seconds=cfg.data.min_seconds,
        check_content=cfg.data.check_content,
        cache_dir=cfg.data.cache_dir,
        chunk_seconds=cfg.chunk_seconds,
        shard_frames=cfg.shard_frames,
        overlap_frames=cfg.overlap_frames,
        progress=cfg.progress,
    )


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="encode_dataset")
def main(cfg: DictConfig) -> None:
    save_resolved_config(cfg)
    encode_dataset(cfg)


if __name__ == "__main__":
    main()
