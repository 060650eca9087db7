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


def inputs(config: dict, seed: int, frames: int = FRAMES) -> dict:
    """Noisy latents, times, T5-like prompt tokens (zero past each prompt) and the numbers."""
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    latent = config["model"]["io_channels"]
    cond_dim = config["model"]["conditioning"]["cond_dim"]
    tokens = torch.randn(BATCH, TOKENS, cond_dim, generator=generator)
    mask = torch.arange(TOKENS)[None] < torch.tensor([[TOKENS - 3], [2]])  # (B, S)
    return {
        "x": torch.randn(BATCH, latent, frames, generator=generator),
        "t": torch.tensor([0.3, 0.8]),
        "text_tokens": tokens * mask[..., None],
        "text_mask": mask,
        "seconds_start": torch.tensor([0.0, 10.0]),
        "seconds_total": torch.tensor([30.0, 47.5]),
        "noise": torch.randn(BATCH, latent, frames, generator=generator),
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


# ------------------------------------------------------------------------------ the comparison


def relative_error(ours, theirs) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def compare(name: str, base_config: dict, full: bool = False, frames: int = FRAMES) -> dict:
    """Build one structure on the peer, import its checkpoint with our code, run both, export ours
    back and run the export on the peer; errors, sizes and timings."""
    import gc
    import tempfile
    import time

    import torch
    from safetensors.torch import save_file

    from experiments.interop.fixtures import peer_from_export
    from latentaudio.bundle import load_bundle
    from latentaudio.dit.denoiser import Denoiser
    from latentaudio.interop.sat_dit import import_dit
    from latentaudio.interop.stable_audio_tools import export_vae, import_vae

    config = with_structure(base_config, name, full)
    model = build(config, SEED)
    io = inputs(config, SEED, frames)
    if full:  # T5-base's real length: max_length tokens
        length = config["model"]["conditioning"]["configs"][0]["config"]["max_length"]
        generator = torch.Generator().manual_seed(SEED + 2)
        tokens = torch.randn(BATCH, length, io["text_tokens"].shape[-1], generator=generator)
        io["text_mask"] = torch.arange(length)[None] < torch.tensor([[length // 4], [5]])
        io["text_tokens"] = tokens * io["text_mask"][..., None]
    start = time.perf_counter()
    theirs = run(model, config, io, sampling=False)
    peer_seconds = (time.perf_counter() - start) / 2
    batch = {k: io[k] for k in ("text_tokens", "text_mask", "seconds_start", "seconds_total")}
    result = {"name": name, "full": full, "frames": frames, "tokens": int(io["text_tokens"].shape[1])}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(work / "model.safetensors"))
        (work / "model_config.json").write_text(json.dumps(config))
        result["checkpoint_tensors"] = len(state)
        del model, state
        gc.collect()
        start = time.perf_counter()
        import_vae(work / "model.safetensors", work / "model_config.json", work / "vae")
        report = import_dit(
            work / "model.safetensors", work / "model_config.json", work / "dit", work / "vae"
        )
        result["import_s"] = time.perf_counter() - start
        result.update(tensors=report.tensors, constants=report.constants, parameters=report.parameters)
        gc.collect()
        bundle = load_bundle(work / "dit", kind="dit")
        denoiser = Denoiser(bundle.build("dit"), bundle.build("conditioner")).eval()
        del bundle
        with torch.no_grad():
            cond = denoiser.conditioner(batch)
            start = time.perf_counter()
            out = denoiser(io["x"], io["t"], batch)
            result["our_forward_s"] = time.perf_counter() - start
            guided = denoiser.guided(io["x"], io["t"], batch, cfg_scale=3.0)
        result["peer_forward_s"] = peer_seconds
        result["global_error"] = relative_error(cond["global_cond"], theirs["global_cond"])
        result["cross_error"] = relative_error(cond["cross_cond"], theirs["cross_cond"])
        result["forward_error"] = relative_error(out, theirs["output"])
        result["guided_error"] = relative_error(guided, theirs["guided"])
        del denoiser
        gc.collect()
        export_vae(work / "vae", work / "exported", dit=work / "dit")
        shutil_rmtree(work / "dit")
        stub_t5()
        peer = peer_from_export(work / "exported")
        with torch.no_grad():
            conditioning = peer_conditioning(peer, io)
            again = peer.model(io["x"], io["t"], **conditioning)
        result["export_error"] = relative_error(again, theirs["output"])
    return result


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def results_section(results: list[dict]) -> list[str]:
    rows = [
        "| structure | size | latent frames x cross tokens | tensors mapped + constants checked | parameters "
        "| global cond | cross tokens | forward | guided (cfg 3) | exported, run by the peer "
        "| peer / ours forward s | import s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['name']} | {'full' if r['full'] else 'fixture'} | {r['frames']} x {r['tokens']} "
            f"| {r['tensors']} + {r['constants']} | {r['parameters']:,} | {r['global_error']:.1e} "
            f"| {r['cross_error']:.1e} | {r['forward_error']:.1e} | {r['guided_error']:.1e} "
            f"| {r['export_error']:.1e} | {r['peer_forward_s']:.2f} / {r['our_forward_s']:.2f} | {r['import_s']:.1f} |"
        )
    return [
        "## The DiT and conditioners",
        "",
        "Stable Audio Open 1.0's and Small's `diffusion_cond` models built by the peer's factory with random "
        "weights (seed 0; a stub for the T5, which no checkpoint holds: the inputs carry T5-like tokens, "
        "zero past each prompt), imported with `make import-sat`'s code (`import_vae` + `import_dit`), run "
        "on both sides in fp32 with batch 2. Errors are max |ours - theirs| / max |theirs|; the tests "
        "require below 1e-4. *guided*: their classifier-free guidance (cross tokens zeroed, global kept) "
        "against our `Denoiser.guided`; *exported*: our bundles written back with `export_vae(..., dit=)`, "
        "loaded by the peer's `create_model_from_config` (strict) and run there. Forward times: one "
        "unguided call each.",
        "",
        *rows,
        "",
        "- fixture: the committed `tests/fixtures/interop/sao_1_0` and `sao_small` (width 128, 2 blocks).",
        "- full: the published sizes (1.0: width 1536, 24 blocks, 24 heads, T5 768 x 128 tokens; Small: "
        "1024, 16 blocks, 8 heads, 64 tokens), random weights, with the published autoencoder.",
        "",
    ]
