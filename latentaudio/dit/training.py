"""The LightningModule that trains the DiT on pre-encoded latents.

Latents are scaled to zero mean and unit variance per channel by statistics measured on the
training set (stored in the bundle; never a hand-set constant). The VAE is never trained
here: it is loaded from its bundle only to decode samples for logging, and is kept out of
the state dict. Hyperparameters are plain values, so ``load_from_checkpoint`` needs no YAML.

Continued training (``init=``): the network starts from a DiT bundle's weights and all of them
train, as they would from scratch.

Fine-tuning (``finetune=``): the network starts from a DiT bundle, frozen, and trains low-rank
adapters (latentaudio/dit/lora.py) and the rows of new labels; checkpoints then hold only what
trains (the base is read again from its bundle, hash-checked), and the export is an adapter bundle.

Manual optimisation with ``optim.accumulate_grad_batches`` micro-batches per optimizer step
(see latentaudio/training/speed.py): ``global_step`` and ``max_steps`` count optimizer steps.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from latentaudio.bundle import check_same_vae, instantiate, save_bundle
from latentaudio.dit.aligned import (
    PairPool,
    add_noise_at_snr,
    aligned_input,
    check_task,
    nothing_known,
    random_keep_masks,
)
from latentaudio.dit.conditioning import BATCH_KEYS, voice_statistics
from latentaudio.dit.denoiser import Denoiser
from latentaudio.dit.diffusion import make_objective, objective_args
from latentaudio.dit.lora import (
    AdapterSpec,
    load_base_weights,
    prepare_training,
    save_adapter,
    trainable_count,
)
from latentaudio.dit.samplers import default_sampler, sample
from latentaudio.speech.symbols import SymbolVocabulary
from latentaudio.training.ema import EMA
from latentaudio.training.media import log_audio_examples
from latentaudio.training.schedules import warmup_decay
from latentaudio.training.speed import adamw, compile_in_place
from latentaudio.training.step import GuardedTraining

# validation noise levels: the loss is reported separately at each, on fixed noise
NOISE_LEVELS = {"low": 0.15, "mid": 0.5, "high": 0.85}
CONDITIONER_TARGET = "latentaudio.dit.conditioning.Conditioner"
log = logging.getLogger(__name__)


class DiTTraining(GuardedTraining):
    def __init__(
        self,
        dit: dict,
        conditioner: dict,
        objective: dict,
        optim: dict,
        latent: dict,
        labels: list[str] | None = None,
        ema: dict | None = None,
        guard: dict | None = None,
        sampling: dict | None = None,
        media: dict | None = None,
        max_steps: int = 10_000,
        aligned: dict | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
        finetune: dict | None = None,
        init: dict | None = None,
    ):
        super().__init__(optim.get("accumulate_grad_batches", 1), (guard or {}).get("max_bad_steps", 20))
        self.save_hyperparameters()
        conditioner_spec = {k: v for k, v in conditioner.items() if k != "_target_"}
        self.conditioner_config = {"_target_": CONDITIONER_TARGET, **conditioner_spec}
        conditioner_module = instantiate(self.conditioner_config)
        self.dit_config = {
            **dit,
            "latent_dim": latent["latent_dim"],
            "global_cond_dim": conditioner_module.global_cond_dim,
            "cross_attn_dim": conditioner_module.cross_attn_dim,
            "aligned_cond_channels": conditioner_module.aligned_dim,  # phoneme features (speech)
        }
        self.aligned = dict(aligned or {}) if (aligned or {}).get("enabled") else {}
        if self.aligned:
            check_task(self.aligned["task"])
            # masked normalised latents plus the mask, frame by frame, before the phoneme features
            self.dit_config["aligned_cond_channels"] += latent["latent_dim"] + 1
        fresh = self.aligned.get("fresh_per_step")
        self.pair_pool = (
            PairPool(self.aligned["pool_size"], fresh)
            if self.aligned.get("task") == "enhance" and fresh
            else None
        )
        self.denoiser = Denoiser(instantiate(self.dit_config), conditioner_module)
        self.finetune = dict(finetune or {})
        self.objective = make_objective(**objective_args(objective))
        self.start_from_base()  # before the EMA copy, so the average starts from the base
        ema_decay = (ema or {}).get("decay", 0.0)
        self.ema = EMA(self.denoiser, ema_decay, (ema or {}).get("warmup", True)) if ema_decay > 0 else None
        shape = (1, latent["latent_dim"], 1)
        self.register_buffer("latent_mean", torch.tensor(latent["mean"], dtype=torch.float32).view(shape))
        self.register_buffer("latent_std", torch.tensor(latent["std"], dtype=torch.float32).view(shape))
        self._vae = None  # loaded on first use for media; a list keeps it out of the state dict
        if compile:
            # the transformer only, after the EMA copy; the conditioner's dropout draws stay eager
            compile_in_place([self.denoiser.dit], compile_mode)

    def start_from_base(self) -> None:
        """Fine-tuning: load the base DiT's weights and put adapters on them. Subclasses that
        start from a trained DiT (distillation) override this; it runs before the EMA copy."""
        init = self.hparams.get("init")
        if init:  # continued training: every weight from the bundle {"path", "hash"}, all of them train
            load_base_weights(self.denoiser, init["path"], init["hash"])
            return
        if not self.finetune:
            return
        # {"base_path", "base_hash", "base_labels": count, "lora": AdapterSpec fields}
        self.adapter_spec = AdapterSpec.from_config(self.finetune["lora"], "lora")
        load_base_weights(self.denoiser, self.finetune["base_path"], self.finetune["base_hash"])
        prepare_training(self.denoiser, self.adapter_spec, self.finetune["base_labels"])
        log.info(
            "fine-tuning %d adapter values on a frozen DiT of %d",
            trainable_count(self.denoiser, self.adapter_spec),
            sum(p.numel() for p in self.denoiser.parameters() if not p.requires_grad),
        )
        self.strict_loading = False  # checkpoints leave the frozen base out

    # ------------------------------------------------------------------ checkpoints
    def frozen_weights(self) -> set[str]:
        """Fine-tuning: the frozen base lives in its bundle, so checkpoints keep only what trains."""
        if not self.finetune:
            return set()
        frozen = {name for name, p in self.denoiser.named_parameters() if not p.requires_grad}
        return {f"{prefix}{name}" for name in frozen for prefix in ("denoiser.", "ema.averaged.module.")}

    # ------------------------------------------------------------------ data scaling
    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.latent_mean) / self.latent_std.clamp_min(1e-6)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        o = self.hparams.optim
        decay, no_decay = [], []
        for name, parameter in self.denoiser.named_parameters():
            if parameter.requires_grad:
                (no_decay if parameter.dim() < 2 or "embedding" in name else decay).append(parameter)
        optimizer = adamw(
            [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o["lr"],
            betas=tuple(o["betas"]),
        )
        schedule = warmup_decay(
            optimizer, o["warmup_steps"], self.hparams.max_steps, o["decay"], o["min_lr_ratio"]
        )
        return [optimizer], [schedule]

    def diffusion_loss(self, batch: dict, t: torch.Tensor, noise: torch.Tensor, network=None, generator=None):
        network = network or self.denoiser
        x0 = self.normalize(batch["latents"])  # (B, D, T)
        if self.denoiser.conditioner.voice is not None and "voice" not in batch:
            # the clip's own voice; at inference a prompt's (Pipeline.speak)
            batch = {**batch, "voice": voice_statistics(x0, batch.get("padding_mask"))}
        x_t = self.objective.noisy(x0, noise, t)
        out = network(x_t, t, batch, aligned_cond=self.aligned_condition(batch, x0, generator))
        target = self.objective.target(x0, noise, t)
        weighting = self.hparams.objective.get("weighting", "uniform")
        return self.objective.loss(out, target, t, weighting=weighting, mask=batch.get("padding_mask"))

    # ------------------------------------------------------------------ aligned conditioning
    def aligned_condition(self, batch: dict, x0: torch.Tensor, generator=None) -> torch.Tensor | None:
        """(B, D + 1, T) known latents and mask for a DiT with aligned conditioning, else None.

        inpaint: random masks over the clean latents (nothing known, a prefix, or spans
        regenerated). enhance: the latents of a degraded copy of the clip, all frames known
        (nothing known for a ``drop`` fraction, so plain generation keeps working).
        """
        if not self.aligned:
            return None
        a = self.aligned
        size, frames = x0.shape[0], x0.shape[-1]
        if a["task"] == "inpaint":
            keep = random_keep_masks(size, frames, generator, a["drop"], a["prefix"], a["max_spans"])
            return aligned_input(x0, keep.to(x0))
        keep = (torch.rand(size, generator=generator) >= a["drop"]).float().view(-1, 1, 1)
        degraded = batch.get("degraded")  # made by the pair pool in training
        if degraded is None:
            degraded = self.degraded_latents(batch["latents"], generator)
        known = self.normalize(degraded)
        return aligned_input(known, keep.expand(size, 1, frames).to(x0))

    def degraded_latents(self, latents: torch.Tensor, generator=None) -> torch.Tensor:
        """Latents of a degraded copy: decode, add noise at a random SNR (and clip), encode.

        Made in audio space through the frozen VAE, so training sees what inference sees
        (the latents of real noisy audio); it costs one VAE decode and encode per step.
        """
        vae = self.vae()
        clean = vae.decode(latents)  # (B, C, S)
        noisy = add_noise_at_snr(
            clean,
            tuple(self.aligned["snr_db"]),
            generator,
            self.aligned["clip_probability"],
        )
        # clone: tensors made under inference_mode cannot enter autograd
        return vae.encode(noisy, vae.sample_rate)[..., : latents.shape[-1]].clone()

    def training_noise(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Diffusion times (B,) and noise like ``latents`` for one training batch."""
        t = self.objective.sample_time(latents.shape[0], device=latents.device)
        return t, torch.randn_like(latents)

    def training_step(self, batch: dict, batch_index: int) -> None:
        if self.pair_pool is not None:
            batch = self.pair_pool.mix(batch, self.degraded_latents)
        latents = batch["latents"]
        size = latents.shape[0]
        t, noise = self.training_noise(latents)
        loss, _ = self.diffusion_loss(batch, t, noise)
        accumulation = self.accumulation
        last = accumulation.begin()
        accumulation.add("train/loss", loss)
        if not last:
            self.manual_backward(accumulation.scale(loss))  # a non-finite one is caught at the group's end
            return
        try:
            self._optimizer_step(loss, size)
        finally:
            accumulation.close()

    def _optimizer_step(self, loss: torch.Tensor, size: int) -> None:
        """The last micro-batch of a group: back-propagate it, then step once for the whole group."""
        schedule = self.lr_schedulers()
        grad_norm = self.guarded_step(
            loss, self.optimizers(), schedule, self.denoiser, self.hparams.optim["grad_clip"], self.ema
        )
        if grad_norm is None:
            return
        self.log("train/loss", self.accumulation.mean("train/loss"), prog_bar=True, batch_size=size)
        self.log_dict(
            {
                "train/grad_norm": grad_norm,
                "train/lr": schedule.get_last_lr()[0],
                "train/skipped_steps": float(self.guard.total),
            },
            batch_size=size,
        )

    # ------------------------------------------------------------------ validation
    def inference_network(self) -> Denoiser:
        return self.ema.average if self.ema is not None else self.denoiser

    def validation_step(self, batch: dict, batch_index: int) -> None:
        latents = batch["latents"]
        generator = torch.Generator(device="cpu").manual_seed(batch_index)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        network = self.inference_network()
        losses = {}
        for name, level in NOISE_LEVELS.items():
            t = torch.full((latents.shape[0],), level, device=latents.device)
            masks = torch.Generator(device="cpu").manual_seed(batch_index)  # the same masks every time
            losses[f"val/loss_{name}"], _ = self.diffusion_loss(batch, t, noise, network, masks)
        losses["val/loss"] = sum(losses.values()) / len(losses)
        self.log_dict(losses, batch_size=latents.shape[0], sync_dist=True)
        if batch_index == 0:
            self._log_media(batch)

    def _log_media(self, batch: dict) -> None:
        media = self.hparams.media or {}
        every = media.get("every_n_steps", 0)
        due = every and (self.global_step % every == 0 or self.global_step >= self.trainer.max_steps)
        if not due or not self.trainer.is_global_zero or not self.hparams.latent.get("vae_path"):
            return
        count = min(media.get("n_examples", 2), batch["latents"].shape[0])
        conditions = {k: v[:count] for k, v in batch.items() if k in BATCH_KEYS}
        sampling = self.sampling_settings()
        generator = torch.Generator(device="cpu").manual_seed(0)
        noise = torch.randn(batch["latents"][:count].shape, generator=generator).to(batch["latents"])
        network = self.inference_network()
        aligned = nothing_known(noise) if self.aligned else None
        x0 = sample(
            lambda x, t: network.guided(
                x, t, conditions, sampling.get("cfg_scale", 1.0), aligned_cond=aligned
            ),
            noise,
            self.objective,
            sampling.get("sampler", default_sampler(self.objective.name)),
            sampling.get("steps", 50),
        )
        vae = self.vae()
        audio = vae.decode(self.denormalize(x0), as_generated=True)  # (n, C, T), as generate() decodes
        examples = {f"generated{i}": audio[i] for i in range(count)}
        log_audio_examples(
            self.loggers,
            self.trainer.default_root_dir,
            self.global_step,
            examples,
            vae.sample_rate,
            "samples",
        )

    def sampling_settings(self) -> dict:
        """The sampler, steps and guidance the bundle records as its defaults."""
        return dict(self.hparams.sampling or {})

    def extra_meta(self) -> dict:
        """What a subclass adds to the bundle's meta.json (a distilled DiT: its teacher's hash)."""
        return {}

    def vae(self):
        if self._vae is None:
            from latentaudio.autoencoder import Autoencoder

            latent = self.hparams.latent
            path = latent["vae_path"]
            autoencoder = Autoencoder.from_bundle(path, device=self.device)
            check_same_vae(
                latent.get("vae_hash"),
                autoencoder.hash,
                "the DiT being trained",
                fix=f"{path} (latent.vae_path) was overwritten since training began, e.g. by a later export "
                f"of its VAE run: pass vae= a copy of VAE {latent.get('vae_hash')} in a folder no run writes to",
            )
            # the clips of the media decode as generate() decodes this DiT's (sampling.decode_detail)
            autoencoder.choose_generated_decode(self.sampling_settings().get("decode_detail"))
            self._vae = [autoencoder]
        return self._vae[0]

    # ------------------------------------------------------------------ export
    def export(self, directory: str | Path) -> str:
        network = self.inference_network()
        latent = self.hparams.latent
        if self.finetune:
            return save_adapter(
                directory,
                network,
                self.adapter_spec,
                self.finetune["base_labels"],
                meta={
                    "base_hash": self.finetune["base_hash"],
                    "vae_hash": latent["vae_hash"],
                    "step": self.global_step,
                    "ema": self.ema is not None,
                },
            )
        return save_bundle(
            directory,
            kind="dit",
            components={"dit": network.dit, "conditioner": network.conditioner},
            configs={"dit": self.dit_config, "conditioner": self.conditioner_config},
            meta={
                "vae_hash": latent["vae_hash"],
                "sample_rate": latent["sample_rate"],
                "hop": latent["hop"],
                "latent_dim": latent["latent_dim"],
                # the buffers the network was trained with: a resume loads them from its checkpoint
                "latent_statistics": {
                    "mean": self.latent_mean.flatten().tolist(),
                    "std": self.latent_std.flatten().tolist(),
                },
                "crop_frames": latent["crop_frames"],
                "train_seconds": latent["crop_frames"] * latent["hop"] / latent["sample_rate"],
                "objective": dict(self.hparams.objective),
                "sampling": self.sampling_settings(),
                "labels": list(self.hparams.labels or []),
                "conditioning": self.conditioner_config,
                "step": self.global_step,
                "ema": self.ema is not None,
                "aligned": {"enabled": True, **self.aligned} if self.aligned else {"enabled": False},
                # speech: the symbol table the phoneme ids index, so a later, longer table keeps them
                "phoneme_symbols": SymbolVocabulary().to_dict() if network.conditioner.phonemes else None,
                **self.extra_meta(),
            },
        )
