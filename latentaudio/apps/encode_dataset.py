"""Encode an audio folder with a trained VAE into latent shards, the input of DiT training.

make encode-dataset ARGS="vae=outputs/train_vae/<date>/<time>/export"
latentaudio-encode-dataset vae=/path/to/export data.root=/path/to/audio output=/path/to/latents

Rerunning with the same ``output`` resumes: files already in finished shards are not
encoded again.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, ConfigError, log, save_resolved_config
from latentaudio.bundle import Bundle, load_bundle
from latentaudio.data.latents import encode_folder
from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import scan_audio_folder


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


def encode_with_vae(
    bundle: Bundle,
    root,
    output,
    device: str = "cpu",
    min_seconds: float = 0.05,
    check_content: bool = True,
    cache_dir=None,
    chunk_seconds: float = 30.0,
    shard_frames: int = 2**18,
    overlap_frames: int = 64,
    progress: bool = True,
) -> dict:
    """Encode the audio folder ``root`` with the VAE of ``bundle`` into shards in ``output`` (resumable)."""
    vae = bundle.build("vae", device=device)
    scan = scan_audio_folder(root, min_seconds, check_content, cache_dir, progress)
    metadata = load_metadata(scan.root, [f.path for f in scan.files])
    log.info("encoding %s with VAE %s (%s) into %s", scan.root, bundle.hash, bundle.path, output)
    manifest = encode_folder(
        vae,
        bundle.hash,
        int(bundle.meta["sample_rate"]),
        scan.root,
        scan.files,
        output,
        metadata=metadata,
        chunk_seconds=chunk_seconds,
        shard_frames=shard_frames,
        overlap_frames=overlap_frames,
        progress=progress,
    )
    log_summary(manifest, output)
    if manifest["frames"] == 0:
        raise ConfigError(f"no file under {scan.root} could be encoded (see the warnings above)")
    return manifest


def log_summary(manifest: dict, output) -> None:
    files = sum(len(shard["files"]) for shard in manifest["shards"])
    frames_per_second = manifest["sample_rate"] / manifest["hop"]
    log.info(
        "%s: %d files encoded (%.1f s of audio, %d latent frames of %d channels at %.2f frames/s), "
        "%d skipped, %d shards",
        output,
        files,
        manifest["seconds"],
        manifest["frames"],
        manifest["latent_dim"],
        frames_per_second,
        len(manifest["skipped"]),
        len(manifest["shards"]),
    )
    for entry in manifest["skipped"]:
        log.info("skipped %s: %s", entry["path"], entry["reason"])
    statistics = manifest["statistics"]
    log.info("latent mean per channel: %s", [round(v, 4) for v in statistics["mean"]])
    log.info("latent std per channel:  %s", [round(v, 4) for v in statistics["std"]])


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="encode_dataset")
def main(cfg: DictConfig) -> None:
    save_resolved_config(cfg)
    encode_dataset(cfg)


if __name__ == "__main__":
    main()
