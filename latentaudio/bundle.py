"""Bundles: the inference export of a trained model.

A bundle is a folder with ``model.safetensors`` (the weights), ``config.yaml`` (each
component's constructor arguments under a ``_target_``) and ``meta.json`` (kind, version,
sample rate, channels, latent statistics, the content hash of the weights...). Loading
never unpickles anything and only builds classes from an allow-list, so a crafted
``config.yaml`` cannot run code. Each class's arguments are allow-listed too: a size past a
sane bound, a size that does not match the stored weights, or a local path (the T5 folder of
a text conditioner) is refused before anything is allocated or read, unless the caller says
so (``load_bundle(..., size_limits={"dit.depth": 512}, trust_paths=True)``). No Hydra is
needed to load one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
from dataclasses import dataclass, field
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
    trust_paths: bool = False
    size_limits: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def hash(self) -> str:
        return self.meta["hash"]

    def state(self, component: str) -> dict[str, torch.Tensor]:
        """The stored tensors of ``component`` (a dotted path inside the weights), keyed without it."""
        prefix = f"{component}."
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def build(self, component: str, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Instantiate ``component`` from its config and load its weights, in eval mode."""
        if component not in self.config:
            raise BundleError(
                f"bundle {self.path} has no component {component!r} (has: {', '.join(self.config)})"
            )
        config = self.config[component]
        where = f"{self.path / CONFIG}, {component}"
        check_arguments(config, component, where, self.trust_paths, self.size_limits)
        state = self.state(component)
        if not any(config.get(key) for key in _PATH_ARGUMENTS):
            check_shapes(config, state, where)
        module = instantiate(config)
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


# --------------------------------------------------------------------------------------
# Argument checks: what a bundle's config may ask of an allowed class
# --------------------------------------------------------------------------------------

# Every argument a bundle may pass to each allowed class, with the bound of a size (an int, or
# each entry of a list; None: not a size). The bounds lie far above every preset in
# conf/model/, so only a damaged or crafted config meets them; they keep the shape check
# below (which builds the module on the meta device) cheap.
ARGUMENTS: dict[str, dict[str, float | None]] = {
    "latentaudio.vae.model.AudioVAE": {
        "channels": 16,
        "base_channels": 4096,
        "channel_mults": 256,
        "strides": 64,
        "latent_dim": 4096,
        "dilations": 1024,
        "use_snake": None,
        "compile_snake": None,
        "final_tanh": None,
        "snake_beta_floor": None,
        "bands": 64,
        "istft_hop": 1_000_000,
        "noise_bands": 1_000_000,
        "noise_hop": 1_000_000,
        "noise_lowest": 1.0,
        "spectral_channels": 4096,
        "spectral_chroma": None,
        "sample_rate": 10_000_000,
    },
    "latentaudio.dit.model.DiT": {
        "latent_dim": 4096,
        "width": 16384,
        "depth": 512,
        "heads": 512,
        "mlp_ratio": 64,
        "patch_size": 1024,
        "global_cond_dim": 16384,
        "cross_attn_dim": 16384,
        "aligned_cond_channels": 4097,
        "dropout": None,
        "checkpoint_blocks": None,
        "feed_forward": None,
        "global_cond_mode": None,
        "rotary_dim": 16384,
        "qk_norm": None,
        "bias": None,
        "io_convs": None,
        "timestep_features": None,
        "cross_embed_dim": 16384,
        "cross_kv_heads": 512,
        "norm_eps": None,
    },
    "latentaudio.dit.conditioning.Conditioner": {
        "global_dim": 16384,
        "cross_dim": 16384,
        "timing": None,
        "num_labels": 1_000_000,
        "text": None,
        "text_path": None,
        "cfg_dropout": None,
        "max_seconds": None,
        "text_depth": 512,
        "text_heads": 512,
        "text_max_length": 65536,
        "label_tokens": None,
        "tempo": None,
        "tempo_grid": None,
        "frame_rate": None,
        "key": None,
        "key_encoding": None,
        "phonemes": None,
        "phoneme_dim": 16384,
        "phoneme_symbols": 1_000_000,
        "phoneme_depth": 512,
        "voice": None,
        "voice_latent_dim": 4096,
        "numbers": None,
        "text_model": None,
        "text_padding": None,
        "text_projection": None,
        "mask_padding": None,
        "uncond": None,
    },
}
# Arguments that point the loader at local files: refused unless the caller trusts the bundle.
_PATH_ARGUMENTS = ("text_path",)
MAX_LIST_LENGTH = 32


def check_arguments(
    config: dict,
    component: str,
    where: str,
    trust_paths: bool = False,
    size_limits: dict[str, float] | None = None,
) -> None:
    """Refuse an argument the class does not allow, a size past its bound, or an untrusted path."""
    target = config.get("_target_")
    if target not in ARGUMENTS:
        raise BundleError(
            f"refusing to build {target!r} ({where}): bundles may only name {', '.join(sorted(ARGUMENTS))}"
        )
    allowed = ARGUMENTS[target]
    size_limits = size_limits or {}
    for key, value in config.items():
        if key == "_target_":
            continue
        name = f"{component}.{key}"
        if key not in allowed:
            raise BundleError(
                f"{where}: {name} is not an argument a bundle may set for {target} "
                f"(allowed: {', '.join(allowed)}); re-export the bundle"
            )
        if key in _PATH_ARGUMENTS and value is not None and not trust_paths:
            raise BundleError(
                f"{where}: {name}={value!r} points the loader at a local folder, which a bundle may only "
                "do when you trust it: pass load_bundle(..., trust_paths=True) if you do"
            )
        bound = size_limits.get(name, allowed[key])
        if bound is None or value is None:
            continue
        sizes = value if isinstance(value, list) else [value]
        if len(sizes) > MAX_LIST_LENGTH or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in sizes
        ):
            raise BundleError(f"{where}: {name}={value!r} is not a size (a number, or a short list of them)")
        if any(not 0 <= v <= bound for v in sizes):
            raise BundleError(
                f"{where}: {name}={value!r} is outside [0, {bound}], far above any shipped model; if you "
                f"really mean it, pass load_bundle(..., size_limits={{{name!r}: {max(sizes)}}})"
            )


def check_shapes(config: dict, state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse a config whose module would not hold exactly the stored tensors, before allocating it.

    The module is built on the meta device (no memory), so a config asking for far more than
    the weights file holds fails here rather than in the allocator.
    """
    with torch.device("meta"):
        skeleton = instantiate(config)
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    stored = {key: tuple(value.shape) for key, value in state.items()}
    if expected == stored:
        return
    differing = sorted(k for k in expected.keys() & stored.keys() if expected[k] != stored[k])
    missing, extra = sorted(expected.keys() - stored.keys()), sorted(stored.keys() - expected.keys())
    parts = [f"{k}: config {expected[k]}, weights {stored[k]}" for k in differing[:3]]
    parts += [f"{len(missing)} tensors missing from the weights (e.g. {missing[0]})"] if missing else []
    parts += [f"{len(extra)} tensors the config does not make (e.g. {extra[0]})"] if extra else []
    count = sum(math.prod(shape) for shape in expected.values())
    raise BundleError(
        f"{where}: the config does not describe the stored weights ({'; '.join(parts)}; the config asks "
        f"for {count:,} values): the bundle is damaged or its config.yaml was edited; re-export it"
    )


def save_bundle(
    directory: str | os.PathLike,
    kind: str,
    components: dict[str, torch.nn.Module | dict[str, torch.Tensor]],
    configs: dict[str, dict],
    meta: dict,
) -> str:
    """Write a bundle atomically (a reader sees the old bundle or the new one, never half of one).

    Each component is a module (its state dict is stored) or a dict of tensors (an adapter's).

    Returns the content hash of the weights, which is also stored in ``meta.json``.
    """
    directory = Path(directory)
    tensors = {
        f"{name}.{key}": value.detach().to("cpu").contiguous()
        for name, module in components.items()
        for key, value in (module.state_dict() if isinstance(module, torch.nn.Module) else module).items()
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


def load_bundle(
    directory: str | os.PathLike,
    kind: str | None = None,
    verify: bool = True,
    trust_paths: bool = False,
    size_limits: dict[str, float] | None = None,
) -> Bundle:
    """Read a bundle; ``kind`` ('vae' or 'dit') is checked when given.

    ``trust_paths=True`` lets the bundle's config name local folders (a T5 ``text_path``);
    ``size_limits`` raises the bound of a size argument, keyed ``"<component>.<argument>"``
    (see :data:`ARGUMENTS`). Both take effect when a component is built.
    """
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
    return Bundle(
        path=directory,
        config=config,
        meta=meta,
        tensors=tensors,
        trust_paths=trust_paths,
        size_limits=dict(size_limits or {}),
    )


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
