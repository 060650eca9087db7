"""Bundles: the inference export of a trained model.

A bundle is a folder with ``model.safetensors`` (the weights), ``config.yaml`` (each
component's constructor arguments under a ``_target_``) and ``meta.json`` (kind, version,
sample rate, channels, latent statistics, the content hash of the weights...). Loading
never unpickles anything and only builds classes from an allow-list, so a crafted
``config.yaml`` cannot run code. No Hydra is needed to load one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

import latentaudio
from latentaudio.files import atomic_write

BUNDLE_FORMAT = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
META = "meta.json"

# The only classes a bundle may name: everything else is refused before any import.
ALLOWED_TARGETS = frozenset(
    {
        "latentaudio.vae.model.AudioVAE",
        "latentaudio.dit.model.DiT",
        "latentaudio.dit.conditioning.Conditioner",
    }
)


class BundleError(ValueError):
    """A folder that is not a usable bundle; the message says which and what to do."""


class VAEMismatchError(BundleError):
    """Latents, a DiT or a checkpoint used with a VAE other than the one whose latents they hold."""


def check_same_vae(expected_hash: str | None, actual_hash: str, what: str, fix: str | None = None) -> None:
    """Refuse ``what`` (made with the VAE ``expected_hash``) beside the VAE ``actual_hash``.

    ``what`` names the thing in a message ("the latents in data/x"); ``fix`` replaces the
    generic advice when the caller knows a better one.
    """
    if expected_hash == actual_hash:
        return
    fix = fix or (
        f"use the VAE bundle whose hash is {expected_hash}, or make {what} again with VAE {actual_hash}"
    )
    raise VAEMismatchError(f"{what} belongs to VAE {expected_hash}, but the VAE here is {actual_hash}: {fix}")


@dataclass
class Bundle:
    path: Path
    config: dict
    meta: dict
    tensors: dict[str, torch.Tensor]

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def hash(self) -> str:
        return self.meta["hash"]

    def build(self, component: str, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Instantiate ``component`` from its config and load its weights, in eval mode."""
        if component not in self.config:
            raise BundleError(
                f"bundle {self.path} has no component {component!r} (has: {', '.join(self.config)})"
            )
        module = instantiate(self.config[component])
        prefix = f"{component}."
        state = {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state, strict=True)
        return module.to(device).eval()


def instantiate(config: dict) -> torch.nn.Module:
    """Build ``config['_target_'](**rest)`` for an allow-listed target only."""
    target = config.get("_target_")
    if target not in ALLOWED_TARGETS:
        raise BundleError(
            f"refusing to build {target!r}: bundles may only name {', '.join(sorted(ALLOWED_TARGETS))}"
        )
    module_name, class_name = target.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**{k: v for k, v in config.items() if k != "_target_"})


def save_bundle(
    directory: str | os.PathLike,
    kind: str,
    components: dict[str, torch.nn.Module],
    configs: dict[str, dict],
    meta: dict,
) -> str:
    """Write a bundle atomically (a reader sees the old bundle or the new one, never half of one).

    Returns the content hash of the weights, which is also stored in ``meta.json``.
    """
    directory = Path(directory)
    tensors = {
        f"{name}.{key}": value.detach().to("cpu").contiguous()
        for name, module in components.items()
        for key, value in module.state_dict().items()
    }
    with atomic_write(directory) as staging:
        staging.mkdir()
        save_file(tensors, str(staging / WEIGHTS), metadata={"kind": kind})
        weights_hash = content_hash(tensors)
        (staging / CONFIG).write_text(yaml.safe_dump(_plain(configs), sort_keys=False))
        full_meta = {
            **_plain(meta),
            "kind": kind,
            "format": BUNDLE_FORMAT,
            "latentaudio_version": latentaudio.__version__,
            "hash": weights_hash,
        }
        (staging / META).write_text(json.dumps(full_meta, indent=2))
    return weights_hash


def load_bundle(directory: str | os.PathLike, kind: str | None = None, verify: bool = True) -> Bundle:
    """Read a bundle; ``kind`` ('vae' or 'dit') is checked when given."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise BundleError(
            f"{directory} is not a bundle folder: pass the export/ folder of a training run "
            "(outputs/<app>/<date>/<time>/export)"
        )
    missing = [name for name in (WEIGHTS, CONFIG, META) if not (directory / name).exists()]
    if missing:
        raise BundleError(
            f"{directory} is not a bundle: {', '.join(missing)} missing. A bundle is the export/ folder "
            "of a training run, not its checkpoints/ folder or a .ckpt file"
        )
    try:
        meta = json.loads((directory / META).read_text())
        config = yaml.safe_load((directory / CONFIG).read_text())
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise BundleError(f"{directory}: unreadable {META} or {CONFIG}: {error}") from error
    if not isinstance(meta, dict) or not isinstance(config, dict) or "kind" not in meta:
        raise BundleError(f"{directory}: {META} or {CONFIG} does not describe a latentaudio bundle")
    if kind is not None and meta["kind"] != kind:
        raise BundleError(f"{directory} is a {meta['kind']} bundle, but a {kind} bundle is needed here")
    try:
        tensors = load_file(str(directory / WEIGHTS))
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise BundleError(f"{directory / WEIGHTS} is damaged ({error}): re-export the bundle") from error
    if verify and content_hash(tensors) != meta.get("hash"):
        raise BundleError(
            f"{directory / WEIGHTS} does not match the hash in {META}: the file is damaged or was replaced; "
            "re-export the bundle"
        )
    return Bundle(path=directory, config=config, meta=meta, tensors=tensors)


def content_hash(tensors: dict[str, torch.Tensor], length: int = 16) -> str:
    """A hash of the weights themselves (names, dtypes, shapes, values), not of the file's bytes,
    so saving the same weights twice gives the same hash."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:length]


def _plain(value):
    """Containers of builtins only (OmegaConf nodes, tuples and tensors converted)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value
