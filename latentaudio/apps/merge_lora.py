"""Merge LoRA adapters into their base DiT bundle, each at its scale: a plain DiT bundle out.

make merge-lora ARGS="dit=<dit bundle> lora=<adapter bundle> lora_scale=1.0 output=<folder>"
latentaudio-merge-lora dit=<dit bundle> lora=[a,b] lora_scale=[1.0,0.5] output=<folder>
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, ConfigError, adapters, log


def merge_lora(cfg: DictConfig) -> str:
    from latentaudio.dit.lora import merge_into_bundle

    for key in ("dit", "lora", "output"):
        if cfg.get(key) in (None, ""):
            raise ConfigError(
                f"{key}= is required: dit=<base DiT bundle> lora=<adapter bundle(s)> output=<new bundle folder>"
            )
    pairs = adapters(cfg)
    digest = merge_into_bundle(str(cfg.dit), pairs, str(cfg.output))
    log.info("merged %d adapter(s) into %s: DiT bundle %s at %s", len(pairs), cfg.dit, digest, cfg.output)
    return digest


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="merge_lora")
def main(cfg: DictConfig) -> None:
    merge_lora(cfg)


if __name__ == "__main__":
    main()
