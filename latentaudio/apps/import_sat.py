"""Import a stable-audio-tools checkpoint (Stable Audio Open 1.0 or Small) as latentaudio bundles.

make import-sat ARGS="checkpoint=<model.safetensors|model.ckpt> config=<model_config.json> output=<folder>"
latentaudio-import-sat checkpoint=... config=... output=...

Writes the VAE bundle at ``<output>/vae`` and the DiT bundle (DiT and conditioners, tied to that
VAE) at ``<output>/dit``; ``parts=[vae]`` imports the VAE alone. ``text_path=<local t5-base
folder>`` is recorded in the DiT bundle's meta; the T5 weights are not in the checkpoint.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, ConfigError, log, plain

PARTS = ("vae", "dit")


def import_sat(cfg: DictConfig):
    from latentaudio.interop.stable_audio_tools import import_vae

    for key in ("checkpoint", "config", "output"):
        if cfg.get(key) in (None, ""):
            raise ConfigError(
                f"{key}= is required: checkpoint=<model.safetensors or model.ckpt> "
                "config=<model_config.json> output=<folder for the bundles>"
            )
    parts = plain(cfg.parts)
    parts = [parts] if isinstance(parts, str) else list(parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ConfigError(f"parts={parts}: choose among {', '.join(PARTS)}")
    if "dit" in parts and "vae" not in parts:
        raise ConfigError("parts=[dit] needs the VAE it belongs to: import parts=[vae,dit] together")
    report = import_vae(str(cfg.checkpoint), str(cfg.config), f"{cfg.output}/vae")
    for line in report.summary(with_dit="dit" in parts).splitlines():
        log.info("%s", line)
    if "dit" in parts:
        from latentaudio.interop.sat_dit import import_dit

        dit_report = import_dit(
            str(cfg.checkpoint),
            str(cfg.config),
            f"{cfg.output}/dit",
            f"{cfg.output}/vae",
            cfg.get("text_path"),
        )
        for line in dit_report.summary().splitlines():
            log.info("%s", line)
        return report, dit_report
    return report


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="import_sat")
def main(cfg: DictConfig) -> None:
    import_sat(cfg)


if __name__ == "__main__":
    main()
