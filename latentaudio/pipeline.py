"""Generate audio with a trained VAE and DiT, from Python, without Hydra.

from latentaudio.pipeline import Pipeline
pipe = Pipeline.from_bundles("outputs/demo/vae/export", "outputs/demo/dit/export")
audio = pipe.generate(seconds=4, n=2, label="pluck", seed=0)   # (2, channels, samples) at pipe.sample_rate
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tqdm import tqdm

from latentaudio.autoencoder import Autoencoder
from latentaudio.bundle import Bundle, BundleError, load_bundle
from latentaudio.dit.denoiser import Denoiser
from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.samplers import check_sampler, sample
from latentaudio.dit.training import default_sampler, objective_args


class BundleMismatchError(BundleError):
    """A DiT and a VAE that were not trained together."""


class Pipeline:
    def __init__(self, autoencoder: Autoencoder, dit_bundle: Bundle, device: str | torch.device = "cpu"):
        meta = dit_bundle.meta
        if meta["vae_hash"] != autoencoder.hash:
            raise BundleMismatchError(
                f"the DiT bundle {dit_bundle.path} was trained on the latents of VAE {meta['vae_hash']}, "
                f"but the VAE bundle {autoencoder.bundle.path} has hash {autoencoder.hash}: pass the VAE "
                "bundle the DiT was trained with"
            )
        self.autoencoder = autoencoder
        self.bundle = dit_bundle
        self.device = torch.device(device)
        self.denoiser = Denoiser(
            dit_bundle.build("dit", device), dit_bundle.build("conditioner", device)
        ).eval()
        self.objective = make_objective(**objective_args(meta["objective"]))
        stats = meta["latent_statistics"]
        shape = (1, -1, 1)
        self.latent_mean = torch.tensor(stats["mean"], device=self.device).view(shape)
        self.latent_std = torch.tensor(stats["std"], device=self.device).view(shape)
        self.labels: list[str] = list(meta.get("labels") or [])
        self.defaults: dict = {"sampler": default_sampler(self.objective.name), "steps": 50, "cfg_scale": 3.0}
        self.defaults.update(meta.get("sampling") or {})
        self.train_seconds: float = meta["train_seconds"]

    @classmethod
    def from_bundles(cls, vae: str | Path, dit: str | Path, device: str | torch.device = "cpu") -> Pipeline:
        return cls(Autoencoder.from_bundle(vae, device), load_bundle(dit, kind="dit"), device)

    @property
    def sample_rate(self) -> int:
        return self.autoencoder.sample_rate

    def frames_for(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * self.sample_rate / self.autoencoder.hop))

    def conditions(
        self, n: int, seconds: float, prompt: str | None = None, label: str | int | None = None
    ) -> dict:
        batch: dict = {
            "seconds_start": torch.zeros(n, device=self.device),
            "seconds_total": torch.full((n,), float(seconds), device=self.device),
            "caption": [prompt or ""] * n,
            "label": torch.full((n,), self.label_index(label), dtype=torch.long, device=self.device),
        }
        return batch

    def label_index(self, label: str | int | None) -> int:
        if label is None or label == "":
            return -1
        if isinstance(label, int):
            if not -1 <= label < len(self.labels):
                raise ValueError(f"label {label} out of range: the model knows {len(self.labels)} labels")
            return label
        if label not in self.labels:
            known = ", ".join(self.labels) if self.labels else "none (trained without labels)"
            raise ValueError(f"unknown label {label!r}; the model knows: {known}")
        return self.labels.index(label)

    @torch.inference_mode()
    def sample_latents(
        self,
        frames: int,
        batch: dict,
        n: int,
        sampler: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        cfg_rescale: float = 0.0,
        seed: int = 0,
        init: torch.Tensor | None = None,
        t_start: float = 1.0,
        on_step=None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Normalised latents (n, latent_dim, frames) from noise (or from ``init`` noised to ``t_start``)."""
        sampler = sampler or self.defaults["sampler"]
        steps = int(steps or self.defaults["steps"])
        cfg_scale = float(self.defaults["cfg_scale"] if cfg_scale is None else cfg_scale)
        check_sampler(self.objective, sampler)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        shape = (n, self.autoencoder.latent_dim, frames)
        noise = torch.randn(shape, generator=generator).to(self.device)
        bar = tqdm(total=steps, desc=f"sampling ({sampler})", unit="step", disable=not progress)
        x0 = sample(
            lambda x, t: self.denoiser.guided(x, t, batch, cfg_scale, cfg_rescale),
            noise,
            self.objective,
            sampler,
            steps,
            t_start=t_start,
            init=init,
            generator=generator,
            on_step=on_step,
            progress=lambda _: bar.update(1),
        )
        bar.close()
        return x0

    def decode(self, x0: torch.Tensor, length: int | None = None) -> torch.Tensor:
        return self.autoencoder.decode(x0 * self.latent_std + self.latent_mean, length=length)

    def encode(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Normalised latents of ``audio`` (any rate and channel count)."""
        return (self.autoencoder.encode(audio, sample_rate) - self.latent_mean) / self.latent_std

    def generate(
        self,
        seconds: float | None = None,
        n: int = 1,
        prompt: str | None = None,
        label: str | int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        cfg_rescale: float = 0.0,
        seed: int = 0,
        progress: bool = False,
    ) -> torch.Tensor:
        """``n`` clips of ``seconds`` (default: the training window) as (n, channels, samples)."""
        seconds = float(seconds or self.train_seconds)
        batch = self.conditions(n, seconds, prompt, label)
        x0 = self.sample_latents(
            self.frames_for(seconds),
            batch,
            n,
            sampler,
            steps,
            cfg_scale,
            cfg_rescale,
            seed,
            progress=progress,
        )
        return self.decode(x0, length=round(seconds * self.sample_rate))
