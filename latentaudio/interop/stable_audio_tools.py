"""Stability AI's stable-audio-tools format: ``model_config.json`` + ``model.safetensors``/``model.ckpt``.

What maps today is the autoencoder: the Oobleck encoder and decoder with a VAE bottleneck, as the
``autoencoder`` pretransform of a ``diffusion_cond`` model (Stable Audio Open 1.0 and Small) or
as an ``autoencoder`` model of its own. It becomes our `AudioVAE` with these options:

- their ``weight_g``/``weight_v`` weight norm is our parametrisation's ``original0``/``original1``
  (the same computation, renamed);
- their SnakeBeta keeps alpha and beta as logs, as ours does; ours floors beta, so an import
  sets ``snake_beta_floor`` at or below the smallest beta it brings;
- their decoder's ``final_tanh`` is ours;
- their VAE bottleneck (mean, then softplus(scale) + 1e-4) is ours.

Latents keep the scale the peer's diffusion model saw: the pretransform's ``scale`` (1 in both
published models) is stored as the latent statistics (mean 0, std = scale), never re-measured.

    report = import_vae("model.safetensors", "model_config.json", "imported/vae")
    export_vae("imported/vae", "exported")   # model_config.json + model.safetensors they load
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from latentaudio.bundle import load_bundle, save_bundle
from latentaudio.files import atomic_write
from latentaudio.interop.mapping import MappingError, Rule, translate
from latentaudio.vae.model import MIN_SNAKE_BETA, AudioVAE

FORMAT = "stable-audio-tools"
MODEL_CONFIG = "model_config.json"
WEIGHTS = "model.safetensors"
PRETRANSFORM_PREFIX = "pretransform.model."


class FormatError(ValueError):
    """A stable-audio-tools config or checkpoint this importer cannot express exactly; says what."""


# --------------------------------------------------------------------------------------
# The tensor table: Oobleck (theirs) <-> AudioVAE (ours)
# --------------------------------------------------------------------------------------

# (their module, our module, kind): where each weighted module of one sits in the other. Theirs
# nests Sequentials named ``layers``; ours names a block's residual branch ``block`` and wraps
# the strided conv of a block in a Downsample/Upsample (``.conv``).
OOBLECK_MODULES = (
    ("{part}.layers.{i}", "{part}.{i}", "conv"),  # first and last conv
    ("{part}.layers.{i}", "{part}.{i}", "snake"),  # last activation
    ("{part}.layers.{i}.layers.{j}", "{part}.{i}.{j}.conv", "conv"),  # a block's strided conv
    ("{part}.layers.{i}.layers.{j}", "{part}.{i}.{j}", "snake"),  # a block's activation
    ("{part}.layers.{i}.layers.{j}.layers.{k}", "{part}.{i}.{j}.block.{k}", "conv"),  # residual unit
    ("{part}.layers.{i}.layers.{j}.layers.{k}", "{part}.{i}.{j}.block.{k}", "snake"),
)
# each template's {part}: the encoder or the decoder half
PART = "{part:encoder|decoder}"
# (their parameter, ours, reshape) of each kind of module
OOBLECK_PARAMETERS = {
    "conv": (
        ("weight_g", "parametrizations.weight.original0", None),
        ("weight_v", "parametrizations.weight.original1", None),
        ("bias", "bias", None),
    ),
    "snake": (("alpha", "log_alpha", "channel_vector"), ("beta", "log_beta", "channel_vector")),
}
OOBLECK_RULES = tuple(
    Rule(
        f"{theirs}.{their_name}".replace("{part}", PART),
        f"{ours}.{our_name}".replace("{part}", PART),
        reshape,
    )
    for theirs, ours, kind in OOBLECK_MODULES
    for their_name, our_name, reshape in OOBLECK_PARAMETERS[kind]
)

# The DiT's pieces, one option of ours at a time (the whole DiT does not map yet).
# Their FeedForward (glu=True) <-> our SwiGLU: ff.0 is the GLU's projection, ff.2 the output.
FEED_FORWARD_RULES = (
    Rule("ff.0.proj.{p:weight|bias}", "proj.{p:weight|bias}"),
    Rule("ff.2.{p:weight|bias}", "out.{p:weight|bias}"),
)

# --------------------------------------------------------------------------------------
# The config: their autoencoder section <-> AudioVAE's arguments
# --------------------------------------------------------------------------------------

# stable-audio-tools 0.0.19's OobleckEncoder/OobleckDecoder defaults, for keys a config leaves out
ENCODER_DEFAULTS = {
    "in_channels": 2,
    "channels": 128,
    "latent_dim": 32,
    "c_mults": [1, 2, 4, 8],
    "strides": [2, 4, 8, 8],
    "use_snake": False,
    "antialias_activation": False,
}
DECODER_DEFAULTS = {
    "out_channels": 2,
    "channels": 128,
    "latent_dim": 32,
    "c_mults": [1, 2, 4, 8],
    "strides": [2, 4, 8, 8],
    "use_snake": False,
    "antialias_activation": False,
    "use_nearest_upsample": False,
    "final_tanh": True,
}
# Keys of their pretransform section: its type and config, the latent scale, and switches of how
# they run it (half precision, a loop over the batch, chunks) that do not change what it computes
PRETRANSFORM_KEYS = {"type", "config", "scale", "model_half", "iterate_batch", "chunked"}
AUTOENCODER_KEYS = {
    "encoder",
    "decoder",
    "bottleneck",
    "latent_dim",
    "downsampling_ratio",
    "io_channels",
    "in_channels",
    "out_channels",
}
# Keys of an encoder or decoder section beside its type and config: a training switch, and the
# decoder's soft_clip (a tanh after it, as final_tanh)
SECTION_KEYS = {"type", "config", "requires_grad", "soft_clip"}
OOBLECK_DILATIONS = [1, 3, 9]  # fixed in their residual units


def _part(section: dict, name: str, defaults: dict) -> dict:
    if not isinstance(section, dict) or section.get("type") != "oobleck":
        kind = section.get("type") if isinstance(section, dict) else section
        raise FormatError(f"the {name} is {kind!r}: only 'oobleck' maps onto our VAE")
    options = dict(section.get("config") or {})
    unknown = (options.keys() - defaults.keys()) | (section.keys() - SECTION_KEYS)
    if unknown:
        raise FormatError(f"the {name} sets {', '.join(sorted(unknown))}, which this importer does not know")
    return {**defaults, **options, "soft_clip": bool(section.get("soft_clip", False))}


def vae_options(autoencoder: dict) -> dict:
    """Our AudioVAE's arguments for their autoencoder ``model`` section; refuses what differs."""
    unknown = {k for k, v in autoencoder.items() if v is not None} - AUTOENCODER_KEYS
    if unknown:
        raise FormatError(f"the autoencoder sets {', '.join(sorted(unknown))}, which our VAE cannot express")
    encoder = _part(autoencoder.get("encoder"), "encoder", ENCODER_DEFAULTS)
    decoder = _part(autoencoder.get("decoder"), "decoder", DECODER_DEFAULTS)
    bottleneck = autoencoder.get("bottleneck") or {}
    if bottleneck.get("type") != "vae" or bottleneck.get("config"):
        raise FormatError(f"the bottleneck is {bottleneck!r}: only {{'type': 'vae'}} maps onto our VAE")
    for name, options in (("encoder", encoder), ("decoder", decoder)):
        if options["antialias_activation"] or options.get("use_nearest_upsample"):
            raise FormatError(
                f"the {name} uses anti-aliased activations or nearest upsampling; our VAE has neither"
            )
    for key in ("channels", "c_mults", "strides", "use_snake"):
        if encoder[key] != decoder[key]:
            raise FormatError(
                f"encoder and decoder differ in {key} ({encoder[key]} vs {decoder[key]}); ours share it"
            )
    if decoder["final_tanh"] and decoder["soft_clip"]:
        raise FormatError("the decoder has final_tanh and soft_clip: two tanh in a row, which ours cannot do")
    latent_dim = autoencoder.get("latent_dim", decoder["latent_dim"])
    channels = autoencoder.get("io_channels", encoder["in_channels"])
    declared = [autoencoder.get(k) for k in ("in_channels", "out_channels") if autoencoder.get(k) is not None]
    strides = [int(s) for s in encoder["strides"]]
    ratio = autoencoder.get("downsampling_ratio", math.prod(strides))
    checks = {
        "encoder latent_dim = 2 x latent_dim (mean and scale)": encoder["latent_dim"] == 2 * latent_dim,
        "decoder latent_dim = latent_dim": decoder["latent_dim"] == latent_dim,
        "every channel count = io_channels": all(
            c == channels for c in (encoder["in_channels"], decoder["out_channels"], *declared)
        ),
        "downsampling_ratio = the product of the strides": ratio == math.prod(strides),
        # an odd stride is padded differently here and there
        "every stride even": all(s % 2 == 0 for s in strides),
        "as many c_mults as strides": len(encoder["c_mults"]) == len(strides),
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise FormatError(f"the autoencoder breaks what our VAE needs: {'; '.join(failed)}")
    return {
        "channels": int(channels),
        "base_channels": int(encoder["channels"]),
        "channel_mults": [int(m) for m in encoder["c_mults"]],
        "strides": strides,
        "latent_dim": int(latent_dim),
        "dilations": list(OOBLECK_DILATIONS),
        "use_snake": bool(encoder["use_snake"]),
        "final_tanh": bool(decoder["final_tanh"] or decoder["soft_clip"]),
    }


def autoencoder_section(options: dict) -> dict:
    """Their autoencoder ``model`` section for our AudioVAE's arguments; refuses what it cannot express."""
    options = {**_defaults(AudioVAE), **options}
    if list(options["dilations"]) != OOBLECK_DILATIONS:
        raise FormatError(
            f"dilations {options['dilations']}: their residual units are fixed at {OOBLECK_DILATIONS}"
        )
    if any(int(s) % 2 for s in options["strides"]):
        raise FormatError(
            f"strides {options['strides']}: an odd stride is padded differently in their format"
        )
    if int(options.get("bands", 1)) > 1:
        raise FormatError(
            f"bands={options['bands']}: their autoencoder codes the waveform, not pseudo-QMF sub-bands"
        )
    if int(options.get("istft_hop", 0)):
        raise FormatError(
            f"istft_hop={options['istft_hop']}: their decoder has no branch that writes STFT frames"
        )
    if int(options.get("noise_bands", 0)):
        raise FormatError(f"noise_bands={options['noise_bands']}: their decoder has no noise branch")
    if int(options.get("spectral_channels", 0)):
        raise FormatError(
            f"spectral_channels={options['spectral_channels']}: their encoder learns every latent channel"
        )
    shared = {
        "channels": options["base_channels"],
        "c_mults": list(options["channel_mults"]),
        "strides": list(options["strides"]),
        "use_snake": options["use_snake"],
    }
    latent = options["latent_dim"]
    return {
        "encoder": {
            "type": "oobleck",
            "config": {"in_channels": options["channels"], **shared, "latent_dim": 2 * latent},
        },
        "decoder": {
            "type": "oobleck",
            "config": {
                "out_channels": options["channels"],
                **shared,
                "latent_dim": latent,
                "final_tanh": options["final_tanh"],
            },
        },
        "bottleneck": {"type": "vae"},
        "latent_dim": latent,
        "downsampling_ratio": math.prod(options["strides"]),
        "io_channels": options["channels"],
    }


def _defaults(cls) -> dict:
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()}


def find_autoencoder(model_config: dict) -> tuple[dict, str, float]:
    """(their autoencoder section, the prefix of its tensors, the latent scale) of a model config."""
    kind = model_config.get("model_type")
    model = model_config.get("model") or {}
    if kind == "autoencoder":
        return model, "", 1.0
    if kind not in ("diffusion_cond", "diffusion_uncond", "diffusion_cond_inpaint"):
        raise FormatError(f"model_type {kind!r}: expected diffusion_cond (Stable Audio Open) or autoencoder")
    pretransform = model.get("pretransform")
    if not pretransform or pretransform.get("type") != "autoencoder":
        raise FormatError("the model has no autoencoder pretransform: there is no VAE to import")
    unknown = pretransform.keys() - PRETRANSFORM_KEYS
    if unknown:
        raise FormatError(
            f"the pretransform sets {', '.join(sorted(unknown))}, which this importer does not know"
        )
    return pretransform["config"], PRETRANSFORM_PREFIX, float(pretransform.get("scale", 1.0))


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def read_model_config(path: str | os.PathLike) -> dict:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise FormatError(f"cannot read the model config {path}: {error}") from error
    if not isinstance(config, dict) or "model_type" not in config:
        raise FormatError(f"{path} is not a stable-audio-tools model_config.json (no model_type)")
    return config


def _pickled_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a ``model.ckpt``, read with ``weights_only=True`` (under ``state_dict`` or not)."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # refused pickles and damaged files raise many types
        raise FormatError(
            f"cannot read {path} with weights_only=True ({error}); pass its model.safetensors instead"
        ) from error
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FormatError(f"{path} holds no state dict of tensors (nor one under 'state_dict')")
    return state


def read_tensors(path: str | os.PathLike, prefix: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the tensors under ``prefix``, keyed without it; every other key of the checkpoint).
    A safetensors file is opened once and only the tensors under ``prefix`` are read."""
    path = Path(path)
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            tensors = {k[len(prefix) :]: handle.get_tensor(k) for k in keys if k.startswith(prefix)}
    else:
        state = _pickled_state(path)
        keys = list(state)
        tensors = {k[len(prefix) :]: state[k] for k in keys if k.startswith(prefix)}
    return tensors, [k for k in keys if not k.startswith(prefix)]


@dataclass
class ImportReport:
    bundle: Path
    hash: str
    tensors: int  # tensors mapped
    parameters: int
    options: dict  # our VAE's arguments
    # tensors of the checkpoint outside the VAE, by their first name: not imported (the DiT's)
    left: dict[str, int] = field(default_factory=dict)

    def summary(self, with_dit: bool = False) -> str:
        """``with_dit``: the DiT's tensors are imported too, so they are not listed as left out."""
        lines = [
            f"VAE: mapped all {self.tensors} tensors ({self.parameters:,} values) into {self.bundle} "
            f"(hash {self.hash})",
        ]
        if self.left and not with_dit:
            parts = ", ".join(f"{name}.* ({count})" for name, count in sorted(self.left.items()))
            lines.append(
                f"not imported: {parts} (the DiT and conditioners: import them with parts=[vae,dit])"
            )
        return "\n".join(lines)


def import_vae(
    checkpoint: str | os.PathLike, config: str | os.PathLike, output: str | os.PathLike
) -> ImportReport:
    """Write a VAE bundle at ``output`` from their checkpoint and ``model_config.json``."""
    model_config = read_model_config(config)
    section, prefix, _ = find_autoencoder(model_config)
    options = vae_options(section)
    theirs, others = read_tensors(checkpoint, prefix)
    if not theirs:
        roots = sorted({k.split(".")[0] for k in others})
        raise FormatError(
            f"{checkpoint} holds no tensors under {prefix!r} (its tensors start with {', '.join(roots)}): "
            "a training checkpoint must be unwrapped first (stable-audio-tools' unwrap_model.py)"
        )
    with torch.device("meta"):
        skeleton = AudioVAE(**options)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    state = translate(
        theirs, OOBLECK_RULES, to_ours=True, expected=expected, what=f"the autoencoder in {checkpoint}"
    )
    state = {k: v.float() for k, v in state.items()}
    # the floor stays ours unless a beta lies below it: then the floor moves down to the beta
    betas = [v.min() for k, v in state.items() if k.endswith("log_beta")]
    smallest = math.exp(float(torch.stack(betas).min())) if betas else math.inf
    options["snake_beta_floor"] = min(MIN_SNAKE_BETA, smallest)
    vae = AudioVAE(**options)
    vae.load_state_dict(state, strict=True)
    source = {"checkpoint": str(Path(checkpoint).resolve()), "config": str(Path(config).resolve())}
    digest = save_vae_bundle(vae, options, model_config, output, source)
    left = Counter(key.split(".")[0] for key in others)
    parameters = sum(v.numel() for v in state.values())
    return ImportReport(Path(output), digest, len(state), parameters, options, dict(left))


def save_vae_bundle(
    vae: AudioVAE, options: dict, model_config: dict, output: str | os.PathLike, source: dict
) -> str:
    """Write ``vae`` (built from ``vae_options`` of ``model_config``'s autoencoder) as a VAE bundle
    whose latents keep their pretransform's scale; ``source`` (where it came from) goes into the
    meta's ``imported``. Returns the bundle's hash."""
    _, _, scale = find_autoencoder(model_config)
    sample_rate = int(model_config["sample_rate"])
    meta = {
        "sample_rate": sample_rate,
        "channels": options["channels"],
        "hop": vae.hop,
        "latent_dim": options["latent_dim"],
        "latent_rate": sample_rate / vae.hop,
        "latent_statistics": {"mean": [0.0] * vae.latent_dim, "std": [scale] * vae.latent_dim, "frames": 0},
        "imported": {"format": FORMAT, **source, "scale": scale},
    }
    configs = {"vae": {"_target_": "latentaudio.vae.model.AudioVAE", **options}}
    return save_bundle(output, kind="vae", components={"vae": vae}, configs=configs, meta=meta)


def pretransform_section(bundle: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(their autoencoder section, its tensors keyed as an ``autoencoder`` model's, the bundle's meta
    with its hash) of a VAE bundle."""
    loaded = load_bundle(bundle, kind="vae")
    options = {k: v for k, v in loaded.config["vae"].items() if k != "_target_"}
    section = autoencoder_section(options)
    state = loaded.state("vae")
    # theirs has no floor: store the betas our network really uses
    floor = options.get("snake_beta_floor", MIN_SNAKE_BETA)
    log_floor = math.log(floor) if floor > 0 else -math.inf
    state = {k: v.clamp(min=log_floor) if k.endswith("log_beta") else v for k, v in state.items()}
    try:
        tensors = translate(state, OOBLECK_RULES, to_ours=False, what=f"the VAE bundle {bundle}")
    except MappingError as error:
        raise FormatError(str(error)) from error
    return section, tensors, {**loaded.meta, "hash": loaded.hash, "channels": options["channels"]}


def export_vae(
    bundle: str | os.PathLike, output: str | os.PathLike, dit: str | os.PathLike | None = None
) -> Path:
    """Write ``model_config.json`` and ``model.safetensors`` of a VAE bundle: an ``autoencoder``
    model, or with ``dit`` (a DiT bundle on that VAE) the whole ``diffusion_cond`` model."""
    section, tensors, meta = pretransform_section(bundle)
    model_config = {
        "model_type": "autoencoder",
        "sample_rate": meta["sample_rate"],
        "audio_channels": meta["channels"],
        "model": section,
    }
    if dit is not None:
        from latentaudio.interop.sat_dit import export_dit

        sections, dit_tensors = export_dit(load_bundle(dit, kind="dit"), meta)
        scale = sections.pop("scale")
        pretransform = {"type": "autoencoder", "iterate_batch": True, "config": section}
        if scale != 1.0:
            pretransform["scale"] = scale
        model_config = {
            "model_type": "diffusion_cond",
            "sample_size": sections.pop("sample_size"),
            "sample_rate": meta["sample_rate"],
            "audio_channels": meta["channels"],
            "model": {"pretransform": pretransform, **sections, "io_channels": section["latent_dim"]},
        }
        tensors = {f"{PRETRANSFORM_PREFIX}{k}": v for k, v in tensors.items()} | dit_tensors
    output = Path(output)
    with atomic_write(output) as staging:
        staging.mkdir()
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(staging / WEIGHTS))
        (staging / MODEL_CONFIG).write_text(json.dumps(model_config, indent=4))
    return output
