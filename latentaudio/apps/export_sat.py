"""Export latentaudio bundles in stable-audio-tools' format: ``model_config.json`` + ``model.safetensors``.

make export-sat ARGS="vae=<VAE bundle> output=<folder>"
latentaudio-export-sat vae=... output=...

Writes the VAE as an ``autoencoder`` model, which stable-audio-tools loads with
``create_model_from_config`` and ``load_state_dict``. DiT export is not implemented yet: ``dit=``
is refused.
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
    if cfg.get("dit") not in (None, ""):
        raise ConfigError(
            "dit= was given, but exporting a DiT to stable-audio-tools is not implemented yet: "
            "only the VAE exports today (leave dit= out)"
        )
    folder = export_vae(str(cfg.vae), str(cfg.output))
    log.info("wrote %s/model_config.json and model.safetensors (an autoencoder model)", folder)
    return folder


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export_sat")
def main(cfg: DictConfig) -> None:
    export_sat(cfg)


if __name__ == "__main__":
    main()
