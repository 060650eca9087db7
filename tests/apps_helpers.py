"""Compose an app's Hydra config the way the command line would, with test-safe paths."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from latentaudio.apps.common import CONFIG_PATH


def compose_app(app: str, output_dir: Path, overrides: list[str]) -> DictConfig:
    base = [f"paths.output_dir={output_dir}", f"paths.cache_dir={output_dir.parent / 'cache'}"]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name=app, overrides=base + overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg
