"""Stage one: train the VAE on an audio folder.

make train-vae ARGS="experiment=demo_vae"
latentaudio-train-vae data.root=/path/to/audio trainer.max_steps=20000
"""

from __future__ import annotations

import math

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import (
    CONFIG_PATH,
    ConfigError,
    check_speed_config,
    fit,
    plain,
    resolve_ckpt_path,
    save_resolved_config,
    training_arguments,
)
from latentaudio.data.datamodule import check_audio_data
from latentaudio.data.scan import check_data_root
from latentaudio.training.seeding import seed_run


def check_vae_config(cfg: DictConfig) -> None:
    """Fail in a second, before any scan or model build, on settings that cannot work."""
    check_speed_config(cfg)
    hop = cfg.vae.get("bands", 1) * math.prod(cfg.vae.strides)
    if len(cfg.vae.strides) != len(cfg.vae.channel_mults):
        raise ConfigError(
            f"vae.strides has {len(cfg.vae.strides)} entries but vae.channel_mults has "
            f"{len(cfg.vae.channel_mults)}: give one stride per channel multiplier"
        )
    if cfg.data.sample_length % hop:
        fixed = max(hop, round(cfg.data.sample_length / hop) * hop)
        raise ConfigError(
            f"data.sample_length={cfg.data.sample_length} is not a multiple of the VAE's hop {hop} "
            f"(vae.bands times the product of vae.strides): use data.sample_length={fixed}"
        )
    if cfg.data.channels != cfg.vae.channels:
        raise ConfigError(
            f"data.channels={cfg.data.channels} but vae.channels={cfg.vae.channels}: make them equal"
        )
    spectral = cfg.vae.get("spectral_channels", 0)
    if not 0 <= spectral < cfg.vae.latent_dim:
        raise ConfigError(
            f"vae.spectral_channels={spectral}: at least 0 and below vae.latent_dim={cfg.vae.latent_dim} "
            "(the rest are the learnt detail channels)"
        )
    if cfg.vae.get("spectral_chroma", False) and spectral <= 12:
        raise ConfigError(
            f"vae.spectral_chroma=true makes 12 of the spectral channels pitch classes: it needs "
            f"vae.spectral_channels above 12 (got {spectral}), e.g. vae.spectral_channels=32"
        )
    if not 0.0 <= cfg.loss.get("detail_dropout", 0.0) < 1.0 or (
        cfg.loss.get("detail_dropout", 0.0) and not spectral
    ):
        raise ConfigError(
            f"loss.detail_dropout={cfg.loss.get('detail_dropout')}: a share in [0, 1) of the items decoded "
            "from their spectral channels alone; it needs vae.spectral_channels > 0"
        )
    if cfg.loss.adversarial_start_step < 0:
        raise ConfigError("loss.adversarial_start_step must be 0 or more")
    if not 0.0 <= cfg.loss.get("waveform_preemphasis", 0.0) < 1.0:
        raise ConfigError(
            f"loss.waveform_preemphasis={cfg.loss.waveform_preemphasis}: a pre-emphasis coefficient "
            "lies in [0, 1) (0: plain waveform L1; 0.9: weighted to the upper partials)"
        )
    if not 0.0 <= cfg.loss.get("waveform_lowpass", 0.0) < 1.0:
        raise ConfigError(
            f"loss.waveform_lowpass={cfg.loss.waveform_lowpass}: a fraction of the Nyquist frequency "
            "in [0, 1) (0: the whole band; 0.125: below 1 kHz at 16 kHz)"
        )
    try:
        check_audio_data(
            cfg.data.normalize,
            cfg.data.val_fraction,
            cfg.data.get("augment_pitch_probability", 0.0),
            cfg.data.get("augment_pitch_max_semitones", 12.0),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error
    check_data_root(cfg.data.root)


def train(cfg: DictConfig) -> float | None:
    """Train and export; returns the final validation MR-STFT distance (for sweeps)."""
    from latentaudio.vae.training import VAETraining

    check_vae_config(cfg)
    save_resolved_config(cfg)
    seed_run(cfg.seed)  # the same initial weights on every rank; SeedEachRank varies the draws
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    module = VAETraining(
        vae=plain(cfg.vae),
        sample_rate=cfg.data.sample_rate,
        loss=plain(cfg.loss),
        discriminator=plain(cfg.discriminator),
        **training_arguments(cfg),
    )
    return fit(cfg, module, datamodule, "val/mrstft", resolve_ckpt_path(cfg))


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train_vae")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
