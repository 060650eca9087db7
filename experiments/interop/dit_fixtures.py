"""The DiT side of ``experiments.interop.fixtures``: Stable Audio Open's DiTs, built by the peer.

Runs inside the peer's venv (``fixtures.main`` sees to it). For each of ``STRUCTURES`` (SAO 1.0's
and Small's DiT and conditioners, scaled down in width and depth), the peer's own factory builds
the ``diffusion_cond`` model with random weights (seed 0; the small autoencoder of
``sao_vae_small`` as its pretransform) and runs its conditioners and DiT forward on fixed inputs
(with and without its classifier-free guidance), and two sampling runs: its deterministic sampler
and a stochastic one, the noise drawn from a seeded generator that ``tests/interop`` replays.
The checkpoint (DiT parameters rounded to fp16 to keep the file small; both sides compute in fp32
from the rounded values), its config, the inputs and the peer's outputs go to
``tests/fixtures/interop/<name>/``. The T5 encoder is not part of the checkpoints: a stub stands in
for it (the inputs carry T5-like token embeddings, padded to ``max_length`` and zeroed past each
prompt, as its conditioner makes them).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "interop"
SEED = 0
BATCH, FRAMES, TOKENS = 2, 6, 8
SAMPLING_STEPS = 4
STRUCTURES = ("sao_1_0", "sao_small")


def structure(name: str, latent: int, full: bool = False) -> dict:
    """The ``conditioning`` and ``diffusion`` sections of SAO 1.0 (``sao_1_0``) or Small
    (``sao_small``): as published with ``full``, else scaled down (heads of 64 channels and more,
    as their rotary width needs; 1.0's cross-attention keeps fewer key/value heads than query heads)."""
    if name == "sao_1_0":
        cond_dim, width, depth, heads, max_length = (
            (768, 1536, 24, 24, 128) if full else (64, 128, 2, 2, TOKENS)
        )
        numbers = {"seconds_start": 512, "seconds_total": 512}
        diffusion = {"project_cond_tokens": False}
        objective = "v"
    else:
        cond_dim, width, depth, heads, max_length = (
            (768, 1024, 16, 8, 64) if full else (64, 128, 2, 1, TOKENS)
        )
        numbers = {"seconds_total": 256}
        diffusion = {"attn_kwargs": {"qk_norm": "ln"}}
        objective = "rf_denoiser"
    configs = [
        {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": max_length}}
    ]
    configs += [
        {"id": n, "type": "number", "config": {"min_val": 0, "max_val": hi}} for n, hi in numbers.items()
    ]
    return {
        "conditioning": {"configs": configs, "cond_dim": cond_dim},
        "diffusion": {
            "cross_attention_cond_ids": ["prompt", *numbers],
            "global_cond_ids": list(numbers),
            "diffusion_objective": objective,
            "type": "dit",
            "config": {
                "io_channels": latent,
                "embed_dim": width,
                "depth": depth,
                "num_heads": heads,
                "cond_token_dim": cond_dim,
                "global_cond_dim": len(numbers) * cond_dim,
                "transformer_type": "continuous_transformer",
                **diffusion,
            },
        },
    }


def with_structure(config: dict, name: str, full: bool = False) -> dict:
    config = copy.deepcopy(config)
    config["model"].update(structure(name, config["model"]["io_channels"], full))
    return config


def stub_t5() -> None:
    """Let the peer's factory build its T5 conditioner without the T5 (not in the checkpoints and
    not downloadable here): a conditioner as wide as ``cond_dim`` with no weights, like theirs."""
    import stable_audio_tools.models.conditioners as conditioners

    class T5Stub(conditioners.Conditioner):
        def __init__(
            self, output_dim, t5_model_name="t5-base", max_length=128, enable_grad=False, project_out=False
        ):
            super().__init__(output_dim, output_dim, project_out=project_out)
            self.max_length = max_length

    conditioners.T5Conditioner = T5Stub


def randomise(module, seed: int) -> None:
    """Random weights everywhere (their init zeroes several output layers): matrices at 1/sqrt(fan-in),
    norm gains near 1, other vectors small; then every DiT parameter rounded to fp16."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.startswith("pretransform."):
                continue
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.dim() >= 2:
                value = noise / math.sqrt(parameter[0].numel())
            elif name.endswith(("gamma", "norm.weight")):
                value = 1.0 + 0.2 * noise
            elif name.endswith("weights"):  # learned Fourier frequencies, as their init
                value = noise
            else:
                value = 0.2 * noise
            parameter.copy_(value.half().float())


def inputs(config: dict, seed: int) -> dict:
    """Noisy latents, times, T5-like prompt tokens (zero past each prompt) and the numbers."""
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    latent = config["model"]["io_channels"]
    cond_dim = config["model"]["conditioning"]["cond_dim"]
    tokens = torch.randn(BATCH, TOKENS, cond_dim, generator=generator)
    mask = torch.arange(TOKENS)[None] < torch.tensor([[TOKENS - 3], [2]])  # (B, S)
    return {
        "x": torch.randn(BATCH, latent, FRAMES, generator=generator),
        "t": torch.tensor([0.3, 0.8]),
        "text_tokens": tokens * mask[..., None],
        "text_mask": mask,
        "seconds_start": torch.tensor([0.0, 10.0]),
        "seconds_total": torch.tensor([30.0, 47.5]),
        "noise": torch.randn(BATCH, latent, FRAMES, generator=generator),
    }


def peer_conditioning(model, io: dict) -> dict:
    conditioner = model.conditioner
    cond = {"prompt": (io["text_tokens"], io["text_mask"])}
    for name in conditioner.conditioners:
        if name != "prompt":
            cond[name] = conditioner.conditioners[name](io[name].tolist(), "cpu")
    return model.get_conditioning_inputs(cond)


def peer_sampling(model, io: dict, objective: str, conditioning: dict) -> dict:
    """Their samplers from ``io['noise']`` with guidance 3: a deterministic one and a stochastic one
    whose noise comes from ``torch.Generator().manual_seed(SEED)``, which the tests replay.

    v (SAO 1.0): k-diffusion's DPM-Solver++(2M) and (3M) SDE on the polyexponential schedule from
    sigma 500 to 0.3, rho 1, as ``sample_k`` runs them (the SDE given a noise sampler instead of its
    Brownian tree); rectified flow (Small): ``sample_rf``'s Euler and ping-pong on the logSNR schedule.
    """
    import k_diffusion as K
    import torch
    from stable_audio_tools.inference.sampling import sample_rf

    def model_fn(x, t, **kwargs):
        return model.model(x, t, **conditioning, cfg_scale=3.0, **kwargs)

    out = {}
    with torch.no_grad():
        if objective == "v":
            denoiser = K.external.VDenoiser(model_fn)
            sigmas = K.sampling.get_sigmas_polyexponential(SAMPLING_STEPS, 0.3, 500.0, 1.0)
            x = io["noise"] * sigmas[0]
            out["sample_deterministic"] = K.sampling.sample_dpmpp_2m(denoiser, x, sigmas, disable=True)
            generator = torch.Generator().manual_seed(SEED)

            def noise_sampler(sigma, sigma_next):
                return torch.randn(x.shape, generator=generator)

            out["sample_stochastic"] = K.sampling.sample_dpmpp_3m_sde(
                denoiser, x, sigmas, disable=True, noise_sampler=noise_sampler
            )
        else:
            out["sample_deterministic"] = sample_rf(
                model_fn,
                io["noise"],
                steps=SAMPLING_STEPS,
                sampler_type="euler",
                device="cpu",
                disable_tqdm=True,
            )
            torch.manual_seed(SEED)  # ping-pong draws with randn_like
            out["sample_stochastic"] = sample_rf(
                model_fn, io["noise"], steps=SAMPLING_STEPS, sampler_type="pingpong", device="cpu"
            )
    return out


def build(config: dict, seed: int, full: bool = False):
    """The peer's model for ``config``, random weights; the pretransform as the VAE fixture's."""
    import torch
    from stable_audio_tools.models.factory import create_model_from_config

    stub_t5()
    torch.manual_seed(seed)
    model = create_model_from_config(config)
    randomise(model, seed)
    return model.eval()


def run(model, config: dict, io: dict, sampling: bool = True) -> dict:
    import torch

    objective = config["model"]["diffusion"].get("diffusion_objective", "v")
    with torch.no_grad():
        conditioning = peer_conditioning(model, io)
        out = {
            "global_cond": conditioning["global_cond"],
            "cross_cond": conditioning["cross_attn_cond"],
            "output": model.model(io["x"], io["t"], **conditioning),
            "guided": model.model(io["x"], io["t"], **conditioning, cfg_scale=3.0),
        }
    if sampling:
        out.update(peer_sampling(model, io, objective, conditioning))
    return out


def write(name: str, base_config: dict, pretransform_tensors: dict) -> dict:
    """Build, run and save one structure's fixture; returns the outputs."""
    import torch
    from safetensors.torch import save_file

    config = with_structure(base_config, name)
    model = build(config, SEED)
    io = inputs(config, SEED)
    out = run(model, config, io)
    folder = FIXTURES / name
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    parameters = {name for name, _ in model.named_parameters()}
    tensors = {
        k: v.half() if k in parameters else v for k, v in state.items() if not k.startswith("pretransform.")
    }
    tensors.update(pretransform_tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    (folder / "model_config.json").write_text(json.dumps(config, indent=4) + "\n")
    save_file(
        {k: v.contiguous().float() for k, v in {**io, **out}.items() if v.dtype != torch.bool}
        | {"text_mask": io["text_mask"].contiguous()},
        str(folder / "io.safetensors"),
    )
    return out
