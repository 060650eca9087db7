"""Generate audio clips with trained bundles; writes each clip, its spectrogram and the settings used.

make generate ARGS="vae=<vae bundle> dit=<dit bundle> seconds=4 n=2 seed=0 output=outputs/clips"
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from latentaudio.apps.common import CONFIG_PATH, ConfigError, log
from latentaudio.audio import write_audio
from latentaudio.training.media import spectrogram_image

MODES = ("generate",)


def check_generate_config(cfg: DictConfig) -> None:
    for key in ("vae", "dit"):
        if cfg.get(key) in (None, ""):
            raise ConfigError(
                f"{key}=<path> is required: the {key.upper()} bundle (the export/ folder of its training run)"
            )
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode}: choose one of {', '.join(MODES)}")
    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n}: ask for at least one clip")
    if cfg.seconds is not None and cfg.seconds <= 0:
        raise ConfigError(f"seconds={cfg.seconds}: must be positive")


def generate(cfg: DictConfig) -> list[Path]:
    from latentaudio.pipeline import Pipeline

    check_generate_config(cfg)
    pipeline = Pipeline.from_bundles(cfg.vae, cfg.dit, cfg.device)
    audio = pipeline.generate(
        seconds=cfg.seconds,
        n=cfg.n,
        prompt=cfg.prompt,
        label=cfg.label,
        sampler=cfg.sampler,
        steps=cfg.steps,
        cfg_scale=cfg.cfg_scale,
        cfg_rescale=cfg.cfg_rescale,
        seed=cfg.seed,
        progress=True,
    )
    output = Path(cfg.output)
    written = []
    for i, clip in enumerate(audio):
        path = write_audio(output / f"clip{i:02d}.wav", clip, pipeline.sample_rate)
        spectrogram_image(clip, pipeline.sample_rate, path.with_suffix(".png"), title=path.name)
        written.append(path)
    settings = {
        **OmegaConf.to_container(cfg, resolve=True),
        "sample_rate": pipeline.sample_rate,
        "resolved": {
            k: pipeline.defaults[k] if cfg.get(k) is None else cfg[k]
            for k in ("sampler", "steps", "cfg_scale")
        },
        "vae_hash": pipeline.autoencoder.hash,
        "dit_hash": pipeline.bundle.hash,
    }
    settings.pop("paths", None)
    (output / "settings.json").write_text(json.dumps(settings, indent=2))
    log.info("wrote %d clips of %.2f s to %s", len(written), audio.shape[-1] / pipeline.sample_rate, output)
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
