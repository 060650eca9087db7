"""Export latentaudio bundles in stable-audio-tools' format: ``model_config.json`` + ``model.safetensors``.

make export-sat ARGS="vae=<VAE bundle> dit=<DiT bundle> output=<folder>"
latentaudio-export-sat vae=... [dit=...] output=...

Writes the VAE as an ``autoencoder`` model, or with ``dit=`` the whole ``diffusion_cond`` model
(a DiT made as in ``conf/model/dit/sao_open_*.yaml``, on that VAE), which stable-audio-tools loads
with ``create_model_from_config`` and ``load_state_dict``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, ConfigError, log


def export_sat(cfg: DictConfig):
    from latentaudio.interop.stable_audio_tools import export_vae

    for key in ("vae", "output"):
        if cfg.get(key) in (None, ""):
            raise ConfigError(f"{key}= is required: vae=<VAE bundle> output=<folder for the files>")
    dit = cfg.get("dit") or None
    folder = export_vae(str(cfg.vae), str(cfg.output), dit=None if dit is None else str(dit))
    kind = "an autoencoder model" if dit is None else "a diffusion_cond model"
    log.info("wrote %s/model_config.json and model.safetensors (%s)", folder, kind)
    return folder


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export_sat")
def main(cfg: DictConfig) -> None:
    export_sat(cfg)


if __name__ == "__main__":
    main()
