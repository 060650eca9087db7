"""One training step of each stage, in plain torch, and an interleaved timer.

The steps mirror the LightningModules' ``training_step`` (``latentaudio.vae.training`` and
``latentaudio.dit.training``) without Lightning: forward, loss, backward, gradient clipping,
AdamW, the LR schedule, and for the DiT the EMA update. The throughput scripts here, ``bench.py``
and ``benchmarks/`` all build our steps from this file, so there is one copy of them. Only modules
that import no soundfile, Lightning or Hydra are used, so this runs on a bare GPU machine too
(auraloss and PyYAML are the extra packages needed).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from latentaudio.dit.conditioning import Conditioner
from latentaudio.dit.denoiser import Denoiser
from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.model import DiT
from latentaudio.training.schedules import warmup_decay_lambda
from latentaudio.vae import losses
from latentaudio.vae.discriminator import MultiScaleSTFTDiscriminator
from latentaudio.vae.model import AudioVAE

CONF = Path(__file__).resolve().parents[2] / "conf"


def vae_recipe() -> dict:
    """conf/train_vae.yaml's ``loss``, ``discriminator`` and ``optim`` sections, as plain values.

    Literal values, so plain YAML reads them; an experiment's recipe (composed by Hydra, as
    ``benchmarks/quality.py`` does) has the same three keys and can be passed instead.
    """
    config = yaml.safe_load((CONF / "train_vae.yaml").read_text())
    return {key: config[key] for key in ("loss", "discriminator", "optim")}


@dataclass
class Variant:
    """One configuration to time: a step function and what one step processes."""

    name: str
    step: Callable[[], torch.Tensor]
    audio_seconds_per_step: float
    latent_frames_per_step: int
    flops_per_step: float = 0.0
    times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    peak_bytes: int = 0


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def _schedules(optimizers, optim: dict, total_steps: Callable[[], int] | None) -> list:
    """``optim``'s warm-up and decay over ``total_steps()`` (asked at each step); constant LR without it."""

    def factor(step: int) -> float:
        if total_steps is None:
            return 1.0
        return warmup_decay_lambda(
            optim["warmup_steps"], total_steps(), optim["decay"], optim["min_lr_ratio"]
        )(step)

    return [torch.optim.lr_scheduler.LambdaLR(optimizer, factor) for optimizer in optimizers]


# ------------------------------------------------------------------------------ the VAE


def vae_training(
    vae_config: dict,
    sample_rate: int,
    device: torch.device,
    bf16: bool = False,
    compile: bool = False,
    recipe: dict | None = None,
    adversarial: bool | None = None,
    total_steps: Callable[[], int] | None = None,
    seed: int = 0,
) -> tuple[AudioVAE, Callable[[torch.Tensor], torch.Tensor]]:
    """Our VAE and its training step ``step(audio (B, C, T)) -> MR-STFT loss``, as ``VAETraining`` runs it.

    ``recipe``: the ``loss``, ``discriminator`` and ``optim`` sections (default: ``vae_recipe()``).
    ``adversarial``: None lets the discriminator join at ``loss.adversarial_start_step``; True or
    False holds one phase throughout (the throughput runs time each). ``total_steps``: the LR
    schedule's length, asked at every step so a caller can size it to a time budget; None keeps
    the LR constant (short timing runs on a fixed batch, whose loss must fall from the start).
    Leaves out the non-finite guard and the latent statistics, which change neither the result
    of a finite run nor its speed measurably.
    """
    recipe = recipe or vae_recipe()
    weights, optim, critic = recipe["loss"], recipe["optim"], recipe["discriminator"]
    if critic["kind"] != "stft":
        raise ValueError(f"discriminator.kind={critic['kind']!r}: these steps build the stft one only")
    torch.manual_seed(seed)
    channels = vae_config["channels"]
    vae = AudioVAE(**vae_config).to(device)
    reconstruction_loss = losses.SpectralReconstructionLoss(
        sample_rate,
        channels,
        weights["fft_sizes"],
        weights["hop_sizes"],
        weights["win_lengths"],
        weights["perceptual_weighting"],
        weights["stereo_sum_diff"],
    ).to(device)
    disc = MultiScaleSTFTDiscriminator(channels, critic["filters"], tuple(critic["n_ffts"])).to(device)
    betas, decay = tuple(optim["betas"]), optim["weight_decay"]
    opt_gen = torch.optim.AdamW(vae.parameters(), lr=optim["lr"], betas=betas, weight_decay=decay)
    opt_disc = torch.optim.AdamW(disc.parameters(), lr=optim["disc_lr"], betas=betas, weight_decay=decay)
    sched_gen, sched_disc = _schedules((opt_gen, opt_disc), optim, total_steps)
    clip = optim["grad_clip"] if optim["grad_clip"] > 0 else float("inf")
    kind = weights["adversarial_kind"]
    has_critic_weight = weights["adversarial_weight"] > 0 or weights["feature_matching_weight"] > 0
    forward_vae = torch.compile(vae) if compile else vae
    forward_disc = torch.compile(disc) if compile else disc
    steps_done = 0

    def step(audio: torch.Tensor) -> torch.Tensor:
        nonlocal steps_done
        if adversarial is None:
            critic_on = has_critic_weight and steps_done >= weights["adversarial_start_step"]
        else:
            critic_on = adversarial
        with _autocast(device, bf16):
            out = forward_vae(audio)
            stft_loss, _ = reconstruction_loss(out.reconstruction, audio)
            gen_loss = weights["stft_weight"] * stft_loss + weights["kl_weight"] * out.kl
            if weights["waveform_weight"] > 0:
                waveform_loss = (out.reconstruction - audio).abs().mean()
                gen_loss = gen_loss + weights["waveform_weight"] * waveform_loss
            if critic_on:
                real = forward_disc(audio)
                fake = forward_disc(out.reconstruction.detach())
                disc_loss = losses.discriminator_loss(real, fake, kind=kind)
        if critic_on:
            opt_disc.zero_grad(set_to_none=True)
            disc_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
            opt_disc.step()
            sched_disc.step()  # counts the critic's own steps, as VAETraining's does
            # the generator's loss needs no critic gradients: only the input's (VAETraining freezes it too)
            disc.requires_grad_(False)
            with _autocast(device, bf16):
                fake = forward_disc(out.reconstruction)
                real = [(logits.detach(), [f.detach() for f in feats]) for logits, feats in real]
                gen_loss = (
                    gen_loss
                    + weights["adversarial_weight"] * losses.generator_adversarial_loss(fake, kind=kind)
                    + weights["feature_matching_weight"] * losses.feature_matching_loss(real, fake)
                )
            disc.requires_grad_(True)
        opt_gen.zero_grad(set_to_none=True)
        gen_loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), clip)
        opt_gen.step()
        sched_gen.step()
        steps_done += 1
        return stft_loss.detach()

    return vae, step


def vae_variant(
    name: str,
    vae_config: dict,
    batch_size: int,
    sample_length: int,
    sample_rate: int,
    device: torch.device,
    bf16: bool,
    compile: bool,
    adversarial: bool,
    recipe: dict | None = None,
    seed: int = 0,
) -> Variant:
    """The VAE step on a fixed batch; ``adversarial``: the phase after ``loss.adversarial_start_step``."""
    vae, step = vae_training(vae_config, sample_rate, device, bf16, compile, recipe, adversarial, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    audio = (0.3 * torch.randn(batch_size, vae_config["channels"], sample_length, generator=generator)).to(
        device
    )  # (B, C, T): a fixed batch, so the loss must fall
    return Variant(
        name=name,
        step=lambda: step(audio),
        audio_seconds_per_step=batch_size * sample_length / sample_rate,
        latent_frames_per_step=batch_size * (sample_length // vae.hop),
    )


# ------------------------------------------------------------------------------ the DiT


def demo_denoiser(size: dict, latent_dim: int, num_labels: int = 5) -> Denoiser:
    """A DiT of ``size`` behind timing and label conditioning, as the demo configs build it."""
    conditioner = Conditioner(global_dim=size["width"], timing=True, num_labels=num_labels, cfg_dropout=0.1)
    dit = DiT(latent_dim=latent_dim, global_cond_dim=conditioner.global_cond_dim, **size)
    return Denoiser(dit, conditioner)


def dit_training(
    size: dict,
    latent_dim: int,
    device: torch.device,
    bf16: bool = False,
    compile: bool = False,
    num_labels: int = 5,
    ema_decay: float = 0.999,
    seed: int = 0,
):
    """Our denoiser, its objective and its training step ``step(x0 (B, D, T), conditions, t, noise) -> loss``.

    v objective, AdamW, clipping at 1.0 and (``ema_decay`` > 0) the EMA update, as ``DiTTraining``
    runs them with conf/train_diffusion.yaml. ``t`` and ``noise`` are drawn per call, as in
    training, unless given (a fixed batch, whose loss must fall).
    """
    torch.manual_seed(seed)
    denoiser = demo_denoiser(size, latent_dim, num_labels).to(device)
    average = copy.deepcopy(denoiser).requires_grad_(False) if ema_decay > 0 else None
    objective = make_objective("v")
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=3e-4, betas=(0.9, 0.99), weight_decay=1e-3)
    # the transformer is compiled; the conditioner's dropout draws stay eager
    if compile:
        denoiser.dit = torch.compile(denoiser.dit)

    def step(x0: torch.Tensor, conditions: dict, t=None, noise=None) -> torch.Tensor:
        t = objective.sample_time(x0.shape[0], device=x0.device) if t is None else t
        noise = torch.randn_like(x0) if noise is None else noise
        with _autocast(device, bf16):
            out = denoiser(objective.noisy(x0, noise, t), t, conditions)
            loss, _ = objective.loss(out, objective.target(x0, noise, t), t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        optimizer.step()
        if average is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(average.parameters()), list(denoiser.parameters()), 1.0 - ema_decay)
        return loss.detach()

    return denoiser, objective, step


def dit_variant(
    name: str,
    size: dict,
    latent_dim: int,
    batch_size: int,
    frames: int,
    hop: int,
    sample_rate: int,
    device: torch.device,
    bf16: bool,
    compile: bool,
    num_labels: int = 5,
    ema_decay: float = 0.999,
    seed: int = 0,
) -> Variant:
    """The DiT step with timing and label conditioning on a fixed batch, v objective, EMA."""
    denoiser, _, step = dit_training(size, latent_dim, device, bf16, compile, num_labels, ema_decay, seed)
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch_size, latent_dim, frames, generator=generator).to(device)  # (B, D, T)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    t = torch.rand(batch_size, generator=generator).to(device)  # fixed noise levels: the loss must fall
    batch = {
        "seconds_start": torch.zeros(batch_size, device=device),
        "seconds_total": torch.full((batch_size,), frames * hop / sample_rate, device=device),
        "label": torch.randint(0, num_labels, (batch_size,), generator=generator).to(device),
    }
    return Variant(
        name=name,
        step=lambda: step(x0, batch, t, noise),
        audio_seconds_per_step=batch_size * frames * hop / sample_rate,
        latent_frames_per_step=batch_size * frames,
        flops_per_step=3.0 * batch_size * denoiser.dit.flops(frames),  # forward + backward
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(variants: list[Variant], warmup: int, steps: int, device: torch.device) -> None:
    """Run the variants in turn (A, B, A, B, ...), so load from other processes hits all alike.

    Warm-up steps (torch.compile's first calls among them) are not timed. Every step's loss is kept.
    """
    for index in range(warmup + steps):
        for variant in variants:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            _sync(device)
            start = time.perf_counter()
            loss = variant.step()
            _sync(device)
            elapsed = time.perf_counter() - start
            variant.losses.append(float(loss))
            if device.type == "cuda":
                variant.peak_bytes = max(variant.peak_bytes, torch.cuda.max_memory_allocated(device) - before)
            if index >= warmup:
                variant.times.append(elapsed)


def summarize(variant: Variant, peak_flops: float | None = None) -> dict:
    """Medians of the timed steps, and whether the loss behaved on the fixed batch."""
    median = statistics.median(variant.times)

    def sig(value: float) -> float:
        return float(f"{value:.3g}")

    row = {
        "variant": variant.name,
        "step_ms": sig(1000 * median),
        "audio_s_per_s": sig(variant.audio_seconds_per_step / median),
        "latent_frames_per_s": sig(variant.latent_frames_per_step / median),
        "first_loss": round(variant.losses[0], 4),
        "last_loss": round(variant.losses[-1], 4),
        "loss_finite": all(math.isfinite(v) for v in variant.losses),
        "loss_fell": variant.losses[-1] < variant.losses[0],
    }
    if variant.peak_bytes:
        row["step_peak_gib"] = sig(variant.peak_bytes / 2**30)
    if variant.flops_per_step and peak_flops:
        row["mfu"] = sig(variant.flops_per_step / median / peak_flops)
    return row


def markdown_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
