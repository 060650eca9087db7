"""The LightningModule that trains the VAE: reconstruction, KL, then an adversarial critic.

Manual optimisation, because the generator and the discriminator take turns. Only the
generator's optimizer step goes through Lightning, so ``trainer.global_step`` counts
training steps (one per batch), not optimizer calls. Hyperparameters are plain values,
so ``load_from_checkpoint`` needs no YAML.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from latentaudio.bundle import instantiate, save_bundle
from latentaudio.evaluation import reconstruction_metrics
from latentaudio.training.ema import EMA
from latentaudio.training.guard import NonFiniteGuard
from latentaudio.training.media import log_audio_examples
from latentaudio.training.schedules import warmup_decay
from latentaudio.vae import losses
from latentaudio.vae.discriminator import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from latentaudio.vae.model import kl_divergence

log = logging.getLogger(__name__)


class VAETraining(pl.LightningModule):
    def __init__(
        self,
        vae: dict,
        sample_rate: int,
        loss: dict,
        discriminator: dict,
        optim: dict,
        ema: dict | None = None,
        guard: dict | None = None,
        media: dict | None = None,
        max_steps: int = 10_000,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.vae = instantiate(vae)
        self.sample_rate = sample_rate
        self.reconstruction_loss = losses.SpectralReconstructionLoss(
            sample_rate=sample_rate,
            channels=vae["channels"],
            fft_sizes=loss["fft_sizes"],
            hop_sizes=loss["hop_sizes"],
            win_lengths=loss["win_lengths"],
            perceptual_weighting=loss.get("perceptual_weighting", False),
            stereo_sum_diff=loss.get("stereo_sum_diff", True),
        )
        self.discriminator = _build_discriminator(vae["channels"], discriminator)
        ema_decay = (ema or {}).get("decay", 0.0)
        self.ema = EMA(self.vae, ema_decay) if ema_decay > 0 else None
        self.guard = NonFiniteGuard((guard or {}).get("max_bad_steps", 20))
        # Running per-channel statistics of the posterior means seen in training: a first
        # estimate of the latent scale, stored in the bundle (encode-dataset measures exactly).
        self.register_buffer("latent_sum", torch.zeros(vae["latent_dim"], dtype=torch.float64))
        self.register_buffer("latent_sq_sum", torch.zeros(vae["latent_dim"], dtype=torch.float64))
        self.register_buffer("latent_count", torch.zeros((), dtype=torch.float64))

    @property
    def hop(self) -> int:
        return self.vae.hop

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        o = self.hparams.optim
        betas = tuple(o["betas"])
        gen = torch.optim.AdamW(
            self.vae.parameters(), lr=o["lr"], betas=betas, weight_decay=o["weight_decay"]
        )
        disc = torch.optim.AdamW(
            self.discriminator.parameters(), lr=o["disc_lr"], betas=betas, weight_decay=o["weight_decay"]
        )
        total = self.hparams.max_steps
        schedules = [
            warmup_decay(opt, o["warmup_steps"], total, o["decay"], o["min_lr_ratio"]) for opt in (gen, disc)
        ]
        return [gen, disc], schedules

    def adversarial_active(self) -> bool:
        weights = self.hparams.loss
        has_weight = weights["adversarial_weight"] > 0 or weights["feature_matching_weight"] > 0
        return has_weight and self.global_step >= weights["adversarial_start_step"]

    def training_step(self, batch: dict, batch_index: int) -> None:
        opt_gen, opt_disc = self.optimizers()
        sched_gen, sched_disc = self.lr_schedulers()
        w = self.hparams.loss
        grad_clip = self.hparams.optim["grad_clip"]
        audio = batch["audio"]  # (B, C, T)
        step = self.global_step
        adversarial = self.adversarial_active()

        out = self.vae(audio)
        stft_loss, parts = self.reconstruction_loss(out.reconstruction, audio)
        gen_loss = w["stft_weight"] * stft_loss + w["kl_weight"] * out.kl
        logs = {"train/stft": stft_loss.detach(), "train/kl": out.kl.detach()}
        if w.get("waveform_weight", 0.0) > 0:
            # a time-domain L1 term pins the phase that spectral losses leave free: it speeds up
            # early training of small models (measured in experiments/vae_demo)
            waveform_loss = (out.reconstruction - audio).abs().mean()
            gen_loss = gen_loss + w["waveform_weight"] * waveform_loss
            logs["train/waveform"] = waveform_loss.detach()

        if adversarial:
            # discriminator: real vs (detached) fake
            real_outputs = self.discriminator(audio)
            fake_outputs = self.discriminator(out.reconstruction.detach())
            disc_loss = losses.discriminator_loss(real_outputs, fake_outputs, kind=w["adversarial_kind"])
            if self.guard.check(step, disc_loss=disc_loss):
                opt_disc.zero_grad(set_to_none=True)
                self.manual_backward(disc_loss)
                disc_norm = _clip(self.discriminator, grad_clip)
                if torch.isfinite(disc_norm):
                    # the raw optimizer: stepping through Lightning would count a second global step
                    opt_disc.optimizer.step()
                    sched_disc.step()
                logs.update({"train/disc": disc_loss.detach(), "train/disc_grad_norm": disc_norm})
            fake_outputs = self.discriminator(out.reconstruction)
            real_outputs = [(logits.detach(), [f.detach() for f in feats]) for logits, feats in real_outputs]
            adv_loss = losses.generator_adversarial_loss(fake_outputs, kind=w["adversarial_kind"])
            fm_loss = losses.feature_matching_loss(real_outputs, fake_outputs)
            gen_loss = gen_loss + w["adversarial_weight"] * adv_loss + w["feature_matching_weight"] * fm_loss
            logs.update({"train/adversarial": adv_loss.detach(), "train/feature_matching": fm_loss.detach()})

        if not self.guard.check(step, loss=gen_loss):
            self._log_guard()
            return
        opt_gen.zero_grad(set_to_none=True)
        self.manual_backward(gen_loss)
        gen_norm = _clip(self.vae, grad_clip)
        if not self.guard.check(step, grad_norm=gen_norm):
            opt_gen.zero_grad(set_to_none=True)
            self._log_guard()
            return
        opt_gen.step()
        sched_gen.step()
        if self.ema is not None:
            self.ema.update(self.vae)
        self._track_latents(out.mean.detach())
        logs.update(
            {
                "train/loss": gen_loss.detach(),
                "train/grad_norm": gen_norm,
                "train/lr": sched_gen.get_last_lr()[0],
            }
        )
        self.log_dict(logs, prog_bar=False, on_step=True, batch_size=audio.shape[0])
        self.log("train/stft_loss", stft_loss.detach(), prog_bar=True, batch_size=audio.shape[0])
        self._log_guard()

    def _log_guard(self) -> None:
        self.log("train/skipped_steps", float(self.guard.total), on_step=True)

    @torch.no_grad()
    def _track_latents(self, mean: torch.Tensor) -> None:
        flat = mean.double().transpose(0, 1).reshape(mean.shape[1], -1)  # (D, B*F)
        self.latent_sum += flat.sum(1)
        self.latent_sq_sum += flat.pow(2).sum(1)
        self.latent_count += flat.shape[1]

    def latent_statistics(self) -> dict:
        count = self.latent_count.clamp_min(1)
        mean = self.latent_sum / count
        std = (self.latent_sq_sum / count - mean.pow(2)).clamp_min(1e-12).sqrt()
        return {"mean": mean.float().tolist(), "std": std.float().tolist(), "frames": int(self.latent_count)}

    # ------------------------------------------------------------------ validation
    def inference_network(self) -> torch.nn.Module:
        """The weights used for validation and export: the EMA when there is one."""
        return self.ema.average if self.ema is not None else self.vae

    def validation_step(self, batch: dict, batch_index: int) -> None:
        audio = batch["audio"]
        network = self.inference_network()
        mean, scale = network.encode_posterior(audio)
        reconstruction = network.decode(mean, length=audio.shape[-1])
        size = audio.shape[0]
        quality = {
            f"val/{k}": v.mean()
            for k, v in reconstruction_metrics(reconstruction, audio, self.sample_rate).items()
        }
        self.log_dict(
            {
                **quality,
                "val/kl": kl_divergence(mean, scale),
                "val/latent_std": mean.std(),
                "val/latent_mean_abs": mean.mean(dim=(0, 2)).abs().mean(),
            },
            batch_size=size,
            sync_dist=True,
        )
        if batch_index == 0:
            self._log_media(audio, reconstruction)

    def _log_media(self, audio: torch.Tensor, reconstruction: torch.Tensor) -> None:
        media = self.hparams.media or {}
        every = media.get("every_n_steps", 0)
        due = every and (self.global_step % every == 0 or self.global_step >= self.trainer.max_steps)
        if not due or not self.trainer.is_global_zero:
            return
        examples = {}
        for i in range(min(media.get("n_examples", 2), audio.shape[0])):
            examples[f"input{i}"] = audio[i]
            examples[f"reconstruction{i}"] = reconstruction[i]
        output_dir = self.trainer.default_root_dir
        log_audio_examples(self.loggers, output_dir, self.global_step, examples, self.sample_rate, "samples")

    # ------------------------------------------------------------------ export
    def export(self, directory: str | Path) -> str:
        network = self.inference_network()
        config = dict(self.hparams.vae)
        return save_bundle(
            directory,
            kind="vae",
            components={"vae": network},
            configs={"vae": config},
            meta={
                "sample_rate": self.sample_rate,
                "channels": config["channels"],
                "hop": network.hop,
                "latent_dim": config["latent_dim"],
                "latent_rate": self.sample_rate / network.hop,
                "latent_statistics": self.latent_statistics(),
                "step": self.global_step,
                "ema": self.ema is not None,
            },
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["nonfinite_guard"] = self.guard.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.guard.load_state_dict(checkpoint.get("nonfinite_guard", {}))


def _build_discriminator(channels: int, config: dict) -> torch.nn.Module:
    kind = config.get("kind", "stft")
    if kind == "stft":
        return MultiScaleSTFTDiscriminator(
            channels=channels, filters=config["filters"], n_ffts=tuple(config["n_ffts"])
        )
    if kind == "period":
        return MultiPeriodDiscriminator(
            channels=channels, periods=tuple(config["periods"]), filters=config["filters"]
        )
    raise ValueError(f"discriminator.kind={kind!r}: choose stft or period")


def _clip(network: torch.nn.Module, max_norm: float) -> torch.Tensor:
    parameters = [p for p in network.parameters() if p.grad is not None]
    if not parameters:
        return torch.zeros(())
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm > 0 else float("inf"))
