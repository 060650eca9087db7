"""The LightningModule that trains the VAE: reconstruction, KL, then an adversarial critic.

Manual optimisation, because the generator and the discriminator take turns. Only the
generator's optimizer step goes through Lightning, so ``trainer.global_step`` counts
training steps (one per ``optim.accumulate_grad_batches`` batches, see
latentaudio/training/speed.py), not optimizer calls. Hyperparameters are plain values, so
``load_from_checkpoint`` needs no YAML.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from latentaudio.bundle import instantiate, save_bundle
from latentaudio.evaluation import reconstruction_metrics
from latentaudio.training.ema import EMA
from latentaudio.training.media import log_audio_examples
from latentaudio.training.schedules import warmup_decay
from latentaudio.training.speed import adamw, compile_in_place, frozen
from latentaudio.training.step import GuardedTraining, clip_gradients
from latentaudio.vae import losses
from latentaudio.vae.discriminator import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from latentaudio.vae.model import kl_divergence

log = logging.getLogger(__name__)


class VAETraining(GuardedTraining):
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
        compile: bool = False,
        compile_mode: str | None = None,
    ):
        super().__init__(optim.get("accumulate_grad_batches", 1), (guard or {}).get("max_bad_steps", 20))
        self.save_hyperparameters()
        if vae.get("spectral_channels"):  # the mel bands' rate is the data's (and stays in the bundle)
            self.hparams.vae = vae = {**vae, "sample_rate": sample_rate}
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
        self.complex_loss = (
            losses.ComplexSTFTLoss(loss["fft_sizes"], loss["hop_sizes"], loss["win_lengths"])
            if loss.get("complex_stft_weight", 0.0) > 0
            else None
        )
        self.mel_loss = losses.MelDistanceLoss(sample_rate) if loss.get("mel_weight", 0.0) > 0 else None
        self.discriminator = _build_discriminator(vae["channels"], discriminator)
        ema_decay = (ema or {}).get("decay", 0.0)
        self.ema = EMA(self.vae, ema_decay, (ema or {}).get("warmup", True)) if ema_decay > 0 else None
        # Running per-channel statistics of the posterior means seen in training: a first
        # estimate of the latent scale, stored in the bundle (encode-dataset measures exactly).
        self.register_buffer("latent_sum", torch.zeros(vae["latent_dim"], dtype=torch.float64))
        self.register_buffer("latent_sq_sum", torch.zeros(vae["latent_dim"], dtype=torch.float64))
        self.register_buffer("latent_count", torch.zeros((), dtype=torch.float64))
        self._group_means: list[torch.Tensor] = []  # counted in the statistics once the step is taken
        if compile:
            compile_in_place([self.vae, self.discriminator], compile_mode)  # after the EMA copy

    @property
    def hop(self) -> int:
        return self.vae.hop

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        o = self.hparams.optim
        betas = tuple(o["betas"])
        gen = adamw(self.vae.parameters(), lr=o["lr"], betas=betas, weight_decay=o["weight_decay"])
        disc = adamw(
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
        w = self.hparams.loss
        audio = batch["audio"]  # (B, C, T)
        accumulation = self.accumulation
        last = accumulation.begin()

        out = self.vae(audio, latent_noise=w["latent_noise"], detail_dropout=w.get("detail_dropout", 0.0))
        stft_loss, parts = self.reconstruction_loss(out.reconstruction, audio)
        gen_loss = w["stft_weight"] * stft_loss + w["kl_weight"] * out.kl
        terms = {"train/stft": stft_loss, "train/kl": out.kl}
        # the decoder's own output, without the noise branch's random part
        determined = out.reconstruction if out.determined is None else out.determined
        if out.determined is not None and w.get("noise_free_stft_weight", 0.0) > 0:
            # the spectral terms on the decoder's own output too, so it stays a whole
            # reconstruction that a use may decode without the noise branch
            clean_loss, _ = self.reconstruction_loss(determined, audio)
            gen_loss = gen_loss + w["noise_free_stft_weight"] * clean_loss
            terms["train/stft_noise_free"] = clean_loss
        if w.get("waveform_weight", 0.0) > 0:
            # a time-domain L1 term pins the phase that spectral losses leave free, which small
            # models otherwise find late; the noise branch's random part has no phase to pin, nor
            # has an item decoded without its detail channels (its decoder makes its own phase)
            kept = slice(None) if out.detail_kept is None else out.detail_kept
            waveform_loss = losses.waveform_l1(
                determined[kept],
                audio[kept],
                w.get("waveform_preemphasis", 0.0),
                w.get("waveform_lowpass", 0.0),
            )
            if out.detail_kept is not None:  # the mean over the batch, as if over every item
                waveform_loss = waveform_loss.nan_to_num(0.0) * out.detail_kept.float().mean()
            gen_loss = gen_loss + w["waveform_weight"] * waveform_loss
            terms["train/waveform"] = waveform_loss
        if self.complex_loss is not None:
            complex_loss = self.complex_loss(out.reconstruction, audio)
            gen_loss = gen_loss + w["complex_stft_weight"] * complex_loss
            terms["train/complex_stft"] = complex_loss
        if self.mel_loss is not None:
            mel_loss = self.mel_loss(out.reconstruction, audio)
            gen_loss = gen_loss + w["mel_weight"] * mel_loss
            terms["train/mel"] = mel_loss

        if self.adversarial_active():
            self._discriminator_phase(audio, out.reconstruction.detach(), last)
            adv_loss, fm_loss = self.adversarial_losses(audio, out.reconstruction)
            gen_loss = gen_loss + w["adversarial_weight"] * adv_loss + w["feature_matching_weight"] * fm_loss
            terms.update({"train/adversarial": adv_loss, "train/feature_matching": fm_loss})

        for name, value in {**terms, "train/loss": gen_loss}.items():
            accumulation.add(name, value)
        self._group_means.append(out.mean.detach())
        if not last:
            self.manual_backward(
                accumulation.scale(gen_loss)
            )  # a non-finite one is caught at the group's end
            return
        try:
            self._generator_step(gen_loss, [*terms, "train/loss"], audio.shape[0])
        finally:
            accumulation.close()
            self._group_means = []

    def adversarial_losses(
        self, audio: torch.Tensor, reconstruction: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's adversarial and feature-matching losses.

        Real and fake features come from the same discriminator (after its step), so a perfect
        reconstruction has a feature-matching loss of exactly zero. Frozen: the generator's loss
        must not add to the discriminator's accumulated gradients.
        """
        with frozen(self.discriminator):
            with torch.no_grad():
                real_outputs = self.discriminator(audio)
            fake_outputs = self.discriminator(reconstruction)
        adv_loss = losses.generator_adversarial_loss(fake_outputs, kind=self.hparams.loss["adversarial_kind"])
        return adv_loss, losses.feature_matching_loss(real_outputs, fake_outputs)

    def _discriminator_phase(self, audio: torch.Tensor, fake: torch.Tensor, last: bool) -> None:
        """Real vs (detached) fake; steps on a group's last batch."""
        accumulation = self.accumulation
        real_outputs = self.discriminator(audio)
        disc_loss = losses.discriminator_loss(
            real_outputs, self.discriminator(fake), kind=self.hparams.loss["adversarial_kind"]
        )
        accumulation.add("train/disc", disc_loss)
        if not last:
            self.manual_backward(accumulation.scale(disc_loss))
        elif self.guard.check(self.global_step, disc_loss=accumulation.mean("train/disc")):
            self.manual_backward(accumulation.scale(disc_loss))
            disc_norm = clip_gradients(self.discriminator, self.hparams.optim["grad_clip"])
            if torch.isfinite(disc_norm):
                _, opt_disc = self.optimizers()
                # the raw optimizer: stepping through Lightning would count a second global step
                opt_disc.optimizer.step()
                self.lr_schedulers()[1].step()
            self.log_dict(
                {"train/disc": accumulation.mean("train/disc"), "train/disc_grad_norm": disc_norm},
                on_step=True,
                batch_size=audio.shape[0],
            )
        if last:
            self.discriminator.zero_grad(set_to_none=True)

    def _generator_step(self, gen_loss: torch.Tensor, names: list[str], size: int) -> None:
        """The last batch of a group: back-propagate it, then step the generator once for the group."""
        sched_gen = self.lr_schedulers()[0]
        accumulation = self.accumulation
        gen_norm = self.guarded_step(
            gen_loss, self.optimizers()[0], sched_gen, self.vae, self.hparams.optim["grad_clip"], self.ema
        )
        if gen_norm is None:
            return
        for mean in self._group_means:
            self._track_latents(mean)
        logs = {name: accumulation.mean(name) for name in names}
        logs.update({"train/grad_norm": gen_norm, "train/lr": sched_gen.get_last_lr()[0]})
        self.log_dict(logs, prog_bar=False, on_step=True, batch_size=size)
        self.log("train/stft_loss", logs["train/stft"], prog_bar=True, batch_size=size)
        self.log_skipped_steps()

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
        learnt = slice(network.spectral_channels, None)
        if self.hparams.loss.get("detail_dropout", 0.0) > 0:  # what generation decodes
            spectral_only = network.decode(mean, length=audio.shape[-1], detail=False)
            metrics = reconstruction_metrics(spectral_only, audio, self.sample_rate)
            quality.update({f"val/spectral_only_{k}": v.mean() for k, v in metrics.items()})
        self.log_dict(
            {
                **quality,
                "val/kl": kl_divergence(mean[:, learnt], scale[:, learnt]),
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
                # read by Autoencoder.generated_detail: >0 decodes generated clips without detail
                "detail_dropout": self.hparams.loss.get("detail_dropout", 0.0),
            },
        )


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
