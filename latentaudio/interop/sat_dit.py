"""The DiT and conditioners of a stable-audio-tools ``diffusion_cond`` model, as our DiT bundle.

Their ``DiffusionTransformer`` (``model.model.*``) with a ``continuous_transformer`` and the
conditioners (``conditioner.conditioners.*``) of Stable Audio Open 1.0 and Small become our one
`DiT` and `Conditioner` with these options (``conf/model/dit/sao_open_*.yaml``):

- global conditioning (the number conditioners, concatenated, plus the time) prepended as a token
  (``global_cond_mode="prepend"``), rotary positions on ``max(head_dim // 2, 32)`` channels of
  each head, Q/K LayerNorm where their ``attn_kwargs.qk_norm`` is "ln", bias-free projections and
  LayerNorms (their norms' zero ``beta`` buffers are checked and not stored), the 1x1 residual
  convs around the transformer, a plain output projection, learned Fourier time features, the
  cross-token MLP (``to_cond_embed``), grouped key/value heads when the tokens are narrower than
  the width, LayerNorm eps 1e-5;
- number conditioners (min/max normalised, learned Fourier features) for ``seconds_start`` and
  ``seconds_total``; the T5 prompt padded to ``max_length``, attended padding included, and the
  unconditional branch of guidance: every cross-attention token zeroed, the global kept.

The T5 encoder is not in their checkpoints: the bundle records its name (``text_model``) and,
when given, the local folder (``text_path``) it is read from.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from latentaudio.interop.mapping import MappingError, Rule, translate
from latentaudio.interop.stable_audio_tools import FormatError

DIT_PREFIX = "model.model."
CONDITIONER_PREFIX = "conditioner.conditioners."
TEXT_TYPES = {"t5"}
# the batch keys our pipeline fills; a number condition must be one of them
NUMBER_KEYS = ("seconds_start", "seconds_total")
# their DiffusionTransformer's arguments we map, and the values of the ones we only accept as is
DIT_KEYS = {"io_channels", "embed_dim", "depth", "num_heads", "cond_token_dim", "global_cond_dim"}
DIT_FIXED = {
    "patch_size": 1,
    "project_global_cond": True,
    "input_concat_dim": 0,
    "prepend_cond_dim": 0,
    "transformer_type": "continuous_transformer",
    "global_cond_type": "prepend",
    "timestep_cond_type": "global",
}
OBJECTIVES = {"v": "v", "rectified_flow": "rectified_flow", "rf_denoiser": "rectified_flow"}
# their sampling defaults (stable_audio_tools.inference.generation), as our sampler names
SAMPLING = {
    "v": {
        "sampler": "dpmpp_3m_sde",
        "steps": 100,
        "cfg_scale": 7.0,
        "schedule": "polyexponential",
        "sigma_min": 0.3,
        "sigma_max": 500.0,
    },
    "rectified_flow": {"sampler": "pingpong", "steps": 8, "cfg_scale": 1.0, "schedule": "logsnr"},
}


# --------------------------------------------------------------------------------------
# The tensor table
# --------------------------------------------------------------------------------------

WB = "{p:weight|bias}"
BLOCK = DIT_PREFIX + "transformer.layers.{i}."
OURS = "dit.blocks.{i}."
DIT_RULES = (
    Rule(DIT_PREFIX + "timestep_features.weight", "dit.t_embedder.frequencies"),
    Rule(DIT_PREFIX + "to_timestep_embed.{j}." + WB, "dit.t_embedder.mlp.{j}." + WB),
    Rule(DIT_PREFIX + "to_global_embed.{j}.weight", "dit.global_embedder.{j}.weight"),
    Rule(DIT_PREFIX + "to_cond_embed.{j}.weight", "dit.cross_embedder.{j}.weight"),
    Rule(DIT_PREFIX + "preprocess_conv.weight", "dit.input_conv.weight"),
    Rule(DIT_PREFIX + "postprocess_conv.weight", "dit.output_conv.weight"),
    Rule(DIT_PREFIX + "transformer.project_in.weight", "dit.x_embedder.weight"),
    Rule(DIT_PREFIX + "transformer.project_out.weight", "dit.final_layer.linear.weight"),
    Rule(BLOCK + "pre_norm.gamma", OURS + "norm1.weight"),
    Rule(BLOCK + "cross_attend_norm.gamma", OURS + "norm_cross.weight"),
    Rule(BLOCK + "ff_norm.gamma", OURS + "norm2.weight"),
    Rule(BLOCK + "self_attn.to_qkv.weight", OURS + "attn.qkv.weight"),
    Rule(BLOCK + "self_attn.to_out.weight", OURS + "attn.proj.weight"),
    Rule(BLOCK + "self_attn.{n:q_norm|k_norm}." + WB, OURS + "attn.qk_norm.{n:q_norm|k_norm}." + WB),
    Rule(BLOCK + "cross_attn.to_q.weight", OURS + "cross_attn.q.weight"),
    Rule(BLOCK + "cross_attn.to_kv.weight", OURS + "cross_attn.kv.weight"),
    Rule(BLOCK + "cross_attn.to_out.weight", OURS + "cross_attn.proj.weight"),
    Rule(BLOCK + "cross_attn.{n:q_norm|k_norm}." + WB, OURS + "cross_attn.qk_norm.{n:q_norm|k_norm}." + WB),
    Rule(BLOCK + "ff.ff.0.proj." + WB, OURS + "mlp.proj." + WB),
    Rule(BLOCK + "ff.ff.2." + WB, OURS + "mlp.out." + WB),
)
# Buffers of theirs that hold no learned value: the norms' zero biases and the rotary frequencies
NORM_BETA = BLOCK + "{n:pre_norm|cross_attend_norm|ff_norm}.beta"
ROTARY_BUFFER = DIT_PREFIX + "transformer.rotary_pos_emb.inv_freq"


def number_rules(names: list[str]) -> tuple[Rule, ...]:
    if not names:
        return ()
    field = "{name:" + "|".join(names) + "}"
    embedding = CONDITIONER_PREFIX + field + ".embedder.embedding."
    return (
        Rule(embedding + "0.weights", "conditioner.numbers." + field + ".frequencies"),
        Rule(embedding + "1." + WB, "conditioner.numbers." + field + ".linear." + WB),
    )


# --------------------------------------------------------------------------------------
# The config
# --------------------------------------------------------------------------------------


def rotary_dim(head_dim: int) -> int:
    """Their ContinuousTransformer's rotary width: max(head_dim // 2, 32), on each head's first channels."""
    return max(head_dim // 2, 32)


def dit_options(model_config: dict, text_path: str | None = None) -> tuple[dict, dict, str]:
    """(our DiT's arguments, our Conditioner's arguments, our objective's name) for their
    ``diffusion_cond`` config; refuses what our options cannot express."""
    model = model_config.get("model") or {}
    diffusion = model.get("diffusion") or {}
    if diffusion.get("type") != "dit":
        raise FormatError(f"the diffusion model is {diffusion.get('type')!r}: only 'dit' maps onto our DiT")
    config = dict(diffusion.get("config") or {})
    attn = dict(config.pop("attn_kwargs", None) or {})
    qk_norm = attn.pop("qk_norm", "none")
    if attn or qk_norm not in ("none", "ln"):
        raise FormatError(
            f"attn_kwargs {attn or {'qk_norm': qk_norm}}: only qk_norm none or ln map onto our DiT"
        )
    project_cond_tokens = bool(config.pop("project_cond_tokens", True))
    for key, value in DIT_FIXED.items():
        if config.pop(key, value) != value:
            raise FormatError(f"the DiT sets {key}, which our options cannot express (only {value!r} maps)")
    unknown = config.keys() - DIT_KEYS
    if unknown:
        raise FormatError(f"the DiT sets {', '.join(sorted(unknown))}, which this importer does not know")
    width, heads = int(config.get("embed_dim", 768)), int(config.get("num_heads", 8))
    head_dim = width // heads
    if width % heads or rotary_dim(head_dim) > head_dim:
        raise FormatError(
            f"embed_dim {width} / num_heads {heads}: heads of {head_dim} channels are narrower than their "
            f"rotary width {rotary_dim(head_dim)}"
        )
    token_dim = int(config.get("cond_token_dim", 0))
    if token_dim <= 0:
        raise FormatError("the DiT has no cross-attention (cond_token_dim 0): Stable Audio Open's have")
    context_dim = width if project_cond_tokens else token_dim
    if context_dim % head_dim or heads % (context_dim // head_dim):
        raise FormatError(
            f"cross-attention tokens of {context_dim} channels do not split into heads of {head_dim}"
        )
    objective = diffusion.get("diffusion_objective", "v")
    if objective not in OBJECTIVES:
        raise FormatError(f"diffusion_objective {objective!r}: only {', '.join(OBJECTIVES)} map")
    conditioner = conditioner_options(model, diffusion, token_dim, text_path)
    global_dim = int(config.get("global_cond_dim", 0))
    if global_dim != conditioner["global_dim"]:
        raise FormatError(
            f"global_cond_dim {global_dim} is not the {len(conditioner['numbers'])} global conditions x cond_dim"
        )
    dit = {
        "_target_": "latentaudio.dit.model.DiT",
        "latent_dim": int(config.get("io_channels", 32)),
        "width": width,
        "depth": int(config.get("depth", 12)),
        "heads": heads,
        "mlp_ratio": 4.0,
        "patch_size": 1,
        "global_cond_dim": global_dim,
        "cross_attn_dim": token_dim,
        "aligned_cond_channels": 0,
        "dropout": 0.0,
        "checkpoint_blocks": False,
        "feed_forward": "swiglu",
        "global_cond_mode": "prepend",
        "rotary_dim": rotary_dim(head_dim),
        "qk_norm": qk_norm == "ln",
        "bias": False,
        "io_convs": True,
        "timestep_features": "learned",
        "cross_embed_dim": context_dim,
        "cross_kv_heads": context_dim // head_dim,
        "norm_eps": 1e-5,
    }
    return dit, conditioner, OBJECTIVES[objective]


def conditioner_options(model: dict, diffusion: dict, token_dim: int, text_path: str | None) -> dict:
    conditioning = model.get("conditioning") or {}
    cond_dim = int(conditioning.get("cond_dim", 0))
    if cond_dim != token_dim:
        raise FormatError(f"cond_dim {cond_dim} differs from the DiT's cond_token_dim {token_dim}")
    extra = {k: v for k, v in conditioning.items() if k not in ("configs", "cond_dim") and v}
    if extra or diffusion.get("input_concat_ids") or diffusion.get("prepend_cond_ids"):
        raise FormatError(
            f"conditioning sets {sorted(extra) or 'input_concat/prepend ids'}, which we do not map"
        )
    text, numbers = None, {}
    for entry in conditioning.get("configs") or []:
        kind, name, options = entry.get("type"), entry.get("id"), dict(entry.get("config") or {})
        if kind == "t5" and text is None:
            model_name = options.pop("t5_model_name", "t5-base")
            max_length = int(options.pop("max_length", 128))
            # a T5 of another width than cond_dim has a projection (proj_out), which we refuse
            # below as a tensor no rule maps
            if options.pop("project_out", False) or options:
                raise FormatError(
                    f"the {name!r} conditioner ({entry.get('config')}): only a T5 without projection or "
                    "other options maps"
                )
            text = (name, model_name, max_length)
        elif kind == "number" and name in NUMBER_KEYS:
            low, high = float(options.pop("min_val", 0.0)), float(options.pop("max_val", 1.0))
            if options:
                raise FormatError(
                    f"the number conditioner {name!r} sets {sorted(options)}, which we do not map"
                )
            numbers[name] = [low, high]
        else:
            raise FormatError(
                f"the conditioner {name!r} of type {kind!r}: only one t5 prompt and number conditioners for "
                f"{', '.join(NUMBER_KEYS)} map onto our Conditioner"
            )
    global_ids = list(diffusion.get("global_cond_ids") or [])
    cross_ids = list(diffusion.get("cross_attention_cond_ids") or [])
    expected = ([text[0]] if text else []) + global_ids
    if global_ids != list(numbers) or cross_ids != expected:
        raise FormatError(
            f"global_cond_ids {global_ids} and cross_attention_cond_ids {cross_ids}: ours concatenates every number "
            f"condition into the global condition and appends them after the prompt ({expected})"
        )
    return {
        "_target_": "latentaudio.dit.conditioning.Conditioner",
        "global_dim": len(numbers) * cond_dim,
        "cross_dim": cond_dim,
        "timing": False,
        "text": "t5" if text else None,
        "text_path": text_path if text else None,
        "text_model": text[1] if text else None,
        "text_max_length": text[2] if text else 128,
        "text_padding": "max_length",
        "text_projection": False,
        "mask_padding": False,
        "uncond": "zero_context",
        "numbers": numbers,
        "cfg_dropout": {"text": 0.1},
    }


def diffusion_section(dit: dict, conditioner: dict, objective: str) -> dict:
    """Their ``model.conditioning`` and ``model.diffusion`` sections for our DiT and Conditioner
    arguments; refuses a DiT or conditioner that their format cannot express."""
    sao_dit, sao_conditioner, _ = _expected_for(dit, conditioner, objective)
    ours = {k: v for k, v in dit.items() if k != "checkpoint_blocks"}
    theirs = {k: v for k, v in sao_dit.items() if k not in ("checkpoint_blocks", "_sections")}
    differing = sorted(k for k in theirs if ours.get(k) != theirs[k])
    if differing:
        raise FormatError(
            f"the DiT's {', '.join(differing)} differ from what stable-audio-tools' DiT computes "
            f"({', '.join(f'{k}={theirs[k]!r}' for k in differing)}): only a DiT made as in conf/model/dit/sao_open_*.yaml exports"
        )
    keys = (
        "global_dim",
        "cross_dim",
        "text",
        "text_max_length",
        "numbers",
        "text_projection",
        "mask_padding",
        "uncond",
    )
    differing = sorted(k for k in keys if conditioner.get(k) != sao_conditioner.get(k))
    if differing or any(
        conditioner.get(k) for k in ("num_labels", "label_tokens", "tempo", "key", "phonemes", "voice")
    ):
        raise FormatError(
            f"the conditioner ({differing or 'labels, tempo, key or speech'}) has no stable-audio-tools form"
        )
    return sao_dit["_sections"]


def _expected_for(dit: dict, conditioner: dict, objective: str) -> tuple[dict, dict, str]:
    """The sections our DiT/Conditioner would have come from, and what importing them gives back."""
    numbers = dict(conditioner.get("numbers") or {})
    if conditioner.get("text") not in (None, "t5") or not numbers:
        raise FormatError("only a DiT conditioned on a T5 prompt and number conditions (seconds) exports")
    cond_dim = int(conditioner["cross_dim"])
    configs = []
    if conditioner.get("text") == "t5":
        configs.append(
            {
                "id": "prompt",
                "type": "t5",
                "config": {
                    "t5_model_name": conditioner.get("text_model") or "t5-base",
                    "max_length": int(conditioner.get("text_max_length", 128)),
                },
            }
        )
    configs += [
        {"id": n, "type": "number", "config": {"min_val": lo, "max_val": hi}}
        for n, (lo, hi) in numbers.items()
    ]
    width, heads = int(dit["width"]), int(dit["heads"])
    diffusion_config = {
        "io_channels": int(dit["latent_dim"]),
        "embed_dim": width,
        "depth": int(dit["depth"]),
        "num_heads": heads,
        "cond_token_dim": cond_dim,
        "global_cond_dim": int(dit["global_cond_dim"]),
        "project_cond_tokens": int(dit.get("cross_embed_dim", 0)) == width,
        "transformer_type": "continuous_transformer",
    }
    if dit.get("qk_norm"):
        diffusion_config["attn_kwargs"] = {"qk_norm": "ln"}
    their_objective = {"v": "v", "rectified_flow": "rf_denoiser"}[objective]
    sections = {
        "conditioning": {"configs": configs, "cond_dim": cond_dim},
        "diffusion": {
            "cross_attention_cond_ids": (["prompt"] if conditioner.get("text") else []) + list(numbers),
            "global_cond_ids": list(numbers),
            "diffusion_objective": their_objective,
            "type": "dit",
            "config": diffusion_config,
        },
    }
    sao_dit, sao_conditioner, _ = dit_options({"model": sections}, conditioner.get("text_path"))
    sao_dit["_sections"] = sections
    return sao_dit, sao_conditioner, objective


# --------------------------------------------------------------------------------------
# The tensors
# --------------------------------------------------------------------------------------


def _pop_constants(tensors: dict[str, torch.Tensor], dit: dict, what: str) -> int:
    """Remove (and check) their buffers that hold no learned value; how many there were."""
    from latentaudio.interop.mapping import _pattern

    beta, constants = _pattern(NORM_BETA), 0
    for key in [k for k in tensors if beta.fullmatch(k)]:
        if torch.count_nonzero(tensors.pop(key)):
            raise FormatError(
                f"{what}: {key} is not zero, and our bias-free LayerNorm has no bias to hold it"
            )
        constants += 1
    if ROTARY_BUFFER in tensors:
        stored = tensors.pop(ROTARY_BUFFER).float()
        width = int(dit["rotary_dim"])
        expected = 10000.0 ** (-torch.arange(0, width, 2, dtype=torch.float32) / width)
        # within fp16's rounding: a checkpoint saved in half precision holds these too
        if stored.shape != expected.shape or not torch.allclose(stored, expected, rtol=1e-3):
            raise FormatError(
                f"{what}: {ROTARY_BUFFER} holds other rotary frequencies than base 10000 on {width} channels"
            )
        constants += 1
    return constants


def dit_state(tensors: dict[str, torch.Tensor], dit: dict, conditioner: dict, what: str) -> tuple[dict, int]:
    """Their ``model.model.*`` and ``conditioner.*`` tensors as ours (``dit.*``, ``conditioner.*``),
    every one accounted for; and how many constant buffers were checked and left out."""
    from latentaudio.dit.conditioning import Conditioner
    from latentaudio.dit.model import DiT

    tensors = dict(tensors)
    constants = _pop_constants(tensors, dit, what)
    rules = DIT_RULES + number_rules(list(conditioner.get("numbers") or {}))
    with torch.device("meta"):
        skeletons = {
            "dit": DiT(**{k: v for k, v in dit.items() if k != "_target_"}),
            "conditioner": Conditioner(
                **{k: v for k, v in conditioner.items() if k not in ("_target_", "text_path")}
            ),
        }
    expected = {
        f"{name}.{k}": tuple(v.shape)
        for name, module in skeletons.items()
        for k, v in module.state_dict().items()
    }
    try:
        state = translate(tensors, rules, to_ours=True, expected=expected, what=what)
    except MappingError as error:
        raise FormatError(str(error)) from error
    return {k: v.float() for k, v in state.items()}, constants


def their_tensors(state: dict[str, torch.Tensor], dit: dict, conditioner: dict, what: str) -> dict:
    """Our ``dit.*`` and ``conditioner.*`` tensors in their layout, with their constant buffers."""
    rules = DIT_RULES + number_rules(list(conditioner.get("numbers") or {}))
    try:
        tensors = translate(state, rules, to_ours=False, what=what)
    except MappingError as error:
        raise FormatError(str(error)) from error
    width = int(dit["width"])
    for i in range(int(dit["depth"])):
        for norm in ("pre_norm", "cross_attend_norm", "ff_norm"):
            tensors[f"{DIT_PREFIX}transformer.layers.{i}.{norm}.beta"] = torch.zeros(width)
    rotary = int(dit["rotary_dim"])
    tensors[ROTARY_BUFFER] = 1.0 / (10000.0 ** (torch.arange(0, rotary, 2).float() / rotary))
    return tensors


def sampling_defaults(objective: str) -> dict:
    return dict(SAMPLING[objective])


def frames_of(model_config: dict, hop: int) -> int:
    return max(1, math.ceil(int(model_config.get("sample_size", hop)) / hop))


def resolve_text_path(text_path: str | os.PathLike | None) -> str | None:
    if text_path in (None, ""):
        return None
    path = Path(text_path).expanduser().resolve()
    if not path.is_dir():
        raise FormatError(f"text_path={text_path}: no such folder (a local T5 saved with save_pretrained)")
    return str(path)


# --------------------------------------------------------------------------------------
# Import and export
# --------------------------------------------------------------------------------------


@dataclass
class DiTImportReport:
    bundle: Path
    hash: str
    tensors: int  # tensors mapped
    parameters: int
    constants: int  # their constant buffers (zero norm biases, rotary frequencies), checked
    dit: dict
    conditioner: dict

    def summary(self) -> str:
        text = self.conditioner.get("text_model")
        return "\n".join(
            [
                f"DiT: mapped all {self.tensors} tensors ({self.parameters:,} values) into {self.bundle} "
                f"(hash {self.hash}); {self.constants} constant buffers checked (zero LayerNorm biases, "
                "rotary frequencies)",
                f"text encoder: {text} (not in the checkpoint; give generate text_path=<a local {text} folder>)"
                if text
                else "no text encoder",
            ]
        )


def read_dit_tensors(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Their ``model.model.*`` and ``conditioner.*`` tensors, full keys; refuses a checkpoint holding
    tensors that neither these nor the VAE (``pretransform.*``) account for."""
    from latentaudio.interop.stable_audio_tools import PRETRANSFORM_PREFIX, read_tensors

    dit, others = read_tensors(checkpoint, DIT_PREFIX)
    conditioner, _ = read_tensors(checkpoint, "conditioner.")
    tensors = {DIT_PREFIX + k: v for k, v in dit.items()} | {
        "conditioner." + k: v for k, v in conditioner.items()
    }
    unknown = [k for k in others if not k.startswith(("conditioner.", PRETRANSFORM_PREFIX))]
    if unknown:
        listed = ", ".join(sorted(unknown)[:5])
        raise FormatError(f"{checkpoint}: {len(unknown)} tensors belong to no part we import ({listed})")
    return tensors


def import_dit(
    checkpoint: str | os.PathLike,
    config: str | os.PathLike,
    output: str | os.PathLike,
    vae: str | os.PathLike,
    text_path: str | os.PathLike | None = None,
) -> DiTImportReport:
    """Write a DiT bundle at ``output`` from their checkpoint and ``model_config.json``, tied to the
    VAE bundle ``vae`` (imported from the same checkpoint)."""
    from latentaudio.dit.conditioning import Conditioner
    from latentaudio.dit.model import DiT
    from latentaudio.interop.stable_audio_tools import read_model_config

    model_config = read_model_config(config)
    text_folder = resolve_text_path(text_path)
    dit_config, conditioner_config, objective = dit_options(model_config)
    what = f"the DiT in {checkpoint}"
    state, constants = dit_state(read_dit_tensors(checkpoint), dit_config, conditioner_config, what)
    dit = DiT(**{k: v for k, v in dit_config.items() if k != "_target_"})
    dit.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("dit.")}, strict=True)
    conditioner = Conditioner(**{k: v for k, v in conditioner_config.items() if k != "_target_"})
    conditioner.load_state_dict(
        {k[12:]: v for k, v in state.items() if k.startswith("conditioner.")}, strict=True
    )
    source = {"checkpoint": str(Path(checkpoint).resolve()), "config": str(Path(config).resolve())}
    options = (dit_config, conditioner_config, objective)
    digest = save_dit_bundle(dit, conditioner, options, model_config, output, vae, source, text_folder)
    parameters = sum(v.numel() for v in state.values())
    return DiTImportReport(
        Path(output), digest, len(state), parameters, constants, dit_config, conditioner_config
    )


def save_dit_bundle(
    dit,
    conditioner,
    options: tuple[dict, dict, str],
    model_config: dict,
    output: str | os.PathLike,
    vae: str | os.PathLike,
    source: dict,
    text_path: str | None = None,
) -> str:
    """Write ``dit`` and ``conditioner`` (built from ``options``, the ``dit_options`` of
    ``model_config``) as a DiT bundle tied to the VAE bundle ``vae``, with their sampling defaults;
    ``source`` (where they came from) goes into the meta's ``imported``, ``text_path`` (the local
    T5 folder, resolved) into its ``text_encoder``. Returns the bundle's hash."""
    from latentaudio.bundle import load_bundle, save_bundle
    from latentaudio.interop.stable_audio_tools import FORMAT

    dit_config, conditioner_config, objective = options
    vae_bundle = load_bundle(vae, kind="vae")
    if vae_bundle.meta["latent_dim"] != dit.latent_dim:
        raise FormatError(
            f"the DiT reads {dit.latent_dim} latent channels, the VAE {vae} makes {vae_bundle.meta['latent_dim']}"
        )
    hop, sample_rate = int(vae_bundle.meta["hop"]), int(vae_bundle.meta["sample_rate"])
    frames = frames_of(model_config, hop)
    meta = {
        "vae_hash": vae_bundle.hash,
        "sample_rate": sample_rate,
        "hop": hop,
        "latent_dim": dit.latent_dim,
        "latent_statistics": {k: vae_bundle.meta["latent_statistics"][k] for k in ("mean", "std")},
        "crop_frames": frames,
        "train_seconds": frames * hop / sample_rate,
        "objective": {"name": objective},
        "sampling": sampling_defaults(objective),
        "labels": [],
        "conditioning": conditioner_config,
        "step": 0,
        "ema": False,
        "aligned": {"enabled": False},
        "phoneme_symbols": None,
        "text_encoder": {"model": conditioner_config["text_model"], "path": text_path},
        "imported": {"format": FORMAT, **source},
    }
    return save_bundle(
        output,
        kind="dit",
        components={"dit": dit, "conditioner": conditioner},
        configs={"dit": dit_config, "conditioner": conditioner_config},
        meta=meta,
    )


def export_dit(dit_bundle, vae_meta: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    """(their ``model`` sections ``conditioning`` and ``diffusion`` plus ``sample_size``, their tensors)
    of a loaded DiT bundle."""
    dit_config = dict(dit_bundle.config["dit"])
    conditioner_config = dict(dit_bundle.config["conditioner"])
    if dit_bundle.meta.get("vae_hash") != vae_meta["hash"]:
        raise FormatError(
            f"the DiT bundle {dit_bundle.path} belongs to VAE {dit_bundle.meta.get('vae_hash')}, not {vae_meta['hash']}"
        )
    std = set(vae_meta["latent_statistics"]["std"]) | set(dit_bundle.meta["latent_statistics"]["std"])
    mean = set(vae_meta["latent_statistics"]["mean"]) | set(dit_bundle.meta["latent_statistics"]["mean"])
    if len(std) != 1 or mean != {0.0}:
        raise FormatError(
            "their pretransform has one scale and no shift: the DiT's latent statistics must be mean 0, one std"
        )
    sections = diffusion_section(dit_config, conditioner_config, dit_bundle.meta["objective"]["name"])
    state = {f"dit.{k}": v for k, v in dit_bundle.state("dit").items()}
    state.update({f"conditioner.{k}": v for k, v in dit_bundle.state("conditioner").items()})
    tensors = their_tensors(state, dit_config, conditioner_config, f"the DiT bundle {dit_bundle.path}")
    sample_size = int(dit_bundle.meta["crop_frames"]) * int(dit_bundle.meta["hop"])
    return {**sections, "sample_size": sample_size, "scale": std.pop()}, tensors
