"""One training step of each stage, in plain torch, and an interleaved timer.

The steps mirror the LightningModules' ``training_step`` (``latentaudio.vae.training`` and
``latentaudio.dit.training``) without Lightning: forward, loss, backward, gradient clipping,
AdamW, and for the DiT the EMA update. Only modules that import no soundfile, Lightning or Hydra
are used, so this runs on a bare GPU machine too (auraloss is the one extra package needed).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from latentaudio.dit.conditioning import Conditioner
from latentaudio.dit.denoiser import Denoiser
from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.model import DiT
from latentaudio.vae import losses
from latentaudio.vae.discriminator import MultiScaleSTFTDiscriminator
from latentaudio.vae.model import AudioVAE

# conf/train_vae.yaml's loss windows (16 kHz, crops of about a second)
FFT_SIZES = [2048, 1024, 512, 256, 128, 64]


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
    discriminator_filters: int = 16,
    seed: int = 0,
) -> Variant:
    """The VAE step; ``adversarial``: the phase after ``loss.adversarial_start_step``."""
    torch.manual_seed(seed)
    vae = AudioVAE(**vae_config).to(device)
    reconstruction_loss = losses.SpectralReconstructionLoss(
        sample_rate, vae_config["channels"], FFT_SIZES, [n // 4 for n in FFT_SIZES], FFT_SIZES
    ).to(device)
    disc = MultiScaleSTFTDiscriminator(vae_config["channels"], discriminator_filters, (1024, 512, 256))
    disc = disc.to(device)
    opt_gen = torch.optim.AdamW(vae.parameters(), lr=1.5e-4, betas=(0.8, 0.99), weight_decay=1e-3)
    opt_disc = torch.optim.AdamW(disc.parameters(), lr=3e-4, betas=(0.8, 0.99), weight_decay=1e-3)
    forward_vae = torch.compile(vae) if compile else vae
    forward_disc = torch.compile(disc) if compile else disc
    generator = torch.Generator().manual_seed(seed)
    audio = (0.3 * torch.randn(batch_size, vae_config["channels"], sample_length, generator=generator)).to(
        device
    )  # (B, C, T): a fixed batch, so the loss must fall

    def step() -> torch.Tensor:
        with _autocast(device, bf16):
            out = forward_vae(audio)
            stft_loss, _ = reconstruction_loss(out.reconstruction, audio)
            gen_loss = stft_loss + 1e-4 * out.kl
            if adversarial:
                real = forward_disc(audio)
                fake = forward_disc(out.reconstruction.detach())
                disc_loss = losses.discriminator_loss(real, fake)
        if adversarial:
            opt_disc.zero_grad(set_to_none=True)
            disc_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)
            opt_disc.step()
            with _autocast(device, bf16):
                fake = forward_disc(out.reconstruction)
                real = [(logits.detach(), [f.detach() for f in feats]) for logits, feats in real]
                gen_loss = (
                    gen_loss
                    + 0.1 * losses.generator_adversarial_loss(fake)
                    + 5.0 * losses.feature_matching_loss(real, fake)
                )
        opt_gen.zero_grad(set_to_none=True)
        gen_loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt_gen.step()
        return stft_loss.detach()

    return Variant(
        name=name,
        step=step,
        audio_seconds_per_step=batch_size * sample_length / sample_rate,
        latent_frames_per_step=batch_size * (sample_length // vae.hop),
    )


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
    """The DiT step with timing and label conditioning, v objective, EMA."""
    torch.manual_seed(seed)
    conditioner = Conditioner(global_dim=size["width"], timing=True, num_labels=num_labels, cfg_dropout=0.1)
    dit = DiT(latent_dim=latent_dim, global_cond_dim=conditioner.global_cond_dim, **size)
    denoiser = Denoiser(dit, conditioner).to(device)
    average = copy.deepcopy(denoiser).requires_grad_(False)
    objective = make_objective("v")
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=3e-4, betas=(0.9, 0.99), weight_decay=1e-3)
    # the transformer is compiled; the conditioner's dropout draws stay eager
    denoiser.dit = torch.compile(dit) if compile else dit
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch_size, latent_dim, frames, generator=generator).to(device)  # (B, D, T)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    t = torch.rand(batch_size, generator=generator).to(device)  # fixed noise levels: the loss must fall
    batch = {
        "seconds_start": torch.zeros(batch_size, device=device),
        "seconds_total": torch.full((batch_size,), frames * hop / sample_rate, device=device),
        "label": torch.randint(0, num_labels, (batch_size,), generator=generator).to(device),
    }

    def step() -> torch.Tensor:
        with _autocast(device, bf16):
            out = denoiser(objective.noisy(x0, noise, t), t, batch)
            loss, _ = objective.loss(out, objective.target(x0, noise, t), t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(average.parameters()), list(denoiser.parameters()), 1.0 - ema_decay)
        return loss.detach()

    return Variant(
        name=name,
        step=step,
        audio_seconds_per_step=batch_size * frames * hop / sample_rate,
        latent_frames_per_step=batch_size * frames,
        flops_per_step=3.0 * batch_size * dit.flops(frames),  # forward + backward
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
