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


def tiny_vae_overrides(root, steps: int = 3, every: int = 2) -> list[str]:
    """A few steps of the tiny VAE on ``root``, checkpointing every ``every`` steps, no logger."""
    return [
        "model/vae=tiny",
        f"data.root={root}",
        "data.sample_length=2048",
        "data.val_fraction=0.2",
        "debug=fast",
        f"trainer.max_steps={steps}",
        f"callbacks.model_checkpoint.every_n_train_steps={every}",
    ]


def train_tiny_vae(root, run, steps: int = 2) -> Path:
    """The tiny VAE trained ``steps`` steps on ``root`` in ``run``; returns its bundle."""
    from latentaudio.apps.train_vae import train

    overrides = ["model/vae=tiny", f"data.root={root}", "data.sample_length=2048", "debug=fast"]
    train(compose_app("train_vae", Path(run), overrides + [f"trainer.max_steps={steps}"]))
    return Path(run) / "export"


def tiny_dit_overrides(root, vae, steps: int = 2, crop_frames: int = 64, batch_size: int = 4) -> list[str]:
    """A few steps of the tiny DiT on the latents of ``vae`` for ``root``, no logger."""
    return [
        "model/dit=tiny",
        f"vae={vae}",
        f"data.root={root}",
        f"data.crop_frames={crop_frames}",
        f"data.batch_size={batch_size}",
        "data.val_fraction=0.2",
        "debug=fast",
        f"trainer.max_steps={steps}",
        "optim.warmup_steps=0",
    ]


def labelled_tones(root: Path, labels_and_frequencies) -> Path:
    """One-second sine tones in ``root`` with a metadata.csv of their labels."""
    from conftest import write_sine

    rows = ["path,label"]
    for i, (label, frequency) in enumerate(labels_and_frequencies):
        write_sine(root / f"tone{i}.wav", frequency=frequency, seconds=1.0)
        rows.append(f"tone{i}.wav,{label}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root
