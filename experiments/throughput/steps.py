"""The LightningModules' own training steps, driven one batch at a time for timing.

``VAETraining`` and ``DiTTraining`` are built from the composed demo experiments
(``conf/experiment/demo_vae.yaml``, ``demo_dit.yaml``: loss, optimiser, schedule, clipping, EMA
and guard), and ``Standalone`` calls their ``training_step`` outside a Trainer. There is no copy
of a step here: what is timed is what ``make train-vae`` / ``make train-diffusion`` runs, minus
Lightning's loop, callbacks and logger.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from experiments.common import Variant, compose
from latentaudio.dit.training import DiTTraining
from latentaudio.training.schedules import warmup_decay_lambda
from latentaudio.vae.training import VAETraining

VAE_SECTIONS = ("vae", "data", "loss", "discriminator", "optim", "ema", "guard", "trainer")
DIT_SECTIONS = ("dit", "conditioning", "objective", "optim", "ema", "guard", "trainer")


def vae_recipe(overrides: list[str] = ()) -> dict:
    """The demo VAE experiment's config sections (``experiment=demo_vae`` plus ``overrides``)."""
    return compose("train_vae", ["experiment=demo_vae", *overrides], VAE_SECTIONS)


def dit_recipe(overrides: list[str] = ()) -> dict:
    """The demo DiT experiment's config sections (``experiment=demo_dit`` plus ``overrides``)."""
    return compose("train_diffusion", ["experiment=demo_dit", *overrides], DIT_SECTIONS)


class _Optimizer:
    """An optimizer as Lightning shows it to a manually optimised module: ``.optimizer`` is the raw one."""

    def __init__(self, optimizer: torch.optim.Optimizer, driver: Standalone):
        self.optimizer = optimizer
        self.driver = driver

    def step(self) -> None:
        self.optimizer.step()
        self.driver.global_step += 1  # Lightning counts every step taken through its wrapper

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)


class Standalone:
    """Runs a LightningModule's own ``training_step`` outside a Trainer, one batch per ``step``.

    The module gets what its manual optimisation asks of a Trainer: the optimizers and schedulers
    of its ``configure_optimizers``, ``global_step``, backward, and logging (the last values are
    kept in ``logged``). bf16: the whole step under autocast, as Lightning's ``bf16-mixed``
    precision runs a manually optimised ``training_step``.
    """

    def __init__(self, module: VAETraining | DiTTraining, device: torch.device, bf16: bool = False):
        self.module = module.to(device).train()
        self.device, self.bf16 = device, bf16
        self.global_step = 0
        self.logged: dict[str, torch.Tensor | float] = {}
        optimizers, self.schedulers = module.configure_optimizers()
        self.optimizers = [_Optimizer(optimizer, self) for optimizer in optimizers]
        module.trainer = self  # global_step
        module.optimizers = lambda: self.optimizers[0] if len(self.optimizers) == 1 else self.optimizers
        module.lr_schedulers = lambda: self.schedulers[0] if len(self.schedulers) == 1 else self.schedulers
        module.manual_backward = lambda loss: loss.backward()
        module.log = lambda name, value, **_: self.logged.__setitem__(name, value)
        module.log_dict = lambda values, **_: self.logged.update(values)

    def step(self, batch: dict) -> dict:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            self.module.training_step(batch, self.global_step)
        return self.logged

    def schedule_over(self, total_steps: Callable[[], int]) -> None:
        """Stretch the schedules' decay to ``total_steps()``, asked at every step (a time budget)."""
        o = self.module.hparams.optim
        factor = lambda step: warmup_decay_lambda(  # noqa: E731
            o["warmup_steps"], total_steps(), o["decay"], o["min_lr_ratio"]
        )(step)
        for scheduler in self.schedulers:  # one factor per parameter group
            scheduler.lr_lambdas = [factor] * len(scheduler.optimizer.param_groups)


# ------------------------------------------------------------------------------ the VAE


def vae_training(
    vae_config: dict | None,
    device: torch.device,
    bf16: bool = False,
    compile: bool = False,
    recipe: dict | None = None,
    adversarial: bool | None = None,
    total_steps: Callable[[], int] | None = None,
    seed: int = 0,
    sample_rate: int | None = None,
) -> tuple[VAETraining, Callable[[torch.Tensor], torch.Tensor]]:
    """``VAETraining`` and its training step ``step(audio (B, C, T)) -> MR-STFT loss``.

    ``vae_config``: the network's size over the recipe's (None: the recipe's). ``recipe``: the
    sections of ``vae_recipe()`` (default: the demo's). ``adversarial``: None lets the critic join
    at ``loss.adversarial_start_step``; True or False holds one phase throughout (the throughput
    runs time each). ``total_steps``: the LR schedule's length, asked at every step so a caller can
    size it to a time budget; None keeps the recipe's ``trainer.max_steps``. ``sample_rate``: the
    audio's rate over the recipe's ``data.sample_rate``.
    """
    recipe = recipe or vae_recipe()
    loss = dict(recipe["loss"])
    vae = {**recipe["vae"], **(vae_config or {})}
    if not vae.get("spectral_channels"):  # the recipe's detail dropout is of its spectral channels
        loss["detail_dropout"] = 0.0
    if adversarial is not None:
        loss["adversarial_start_step"] = 0 if adversarial else float("inf")
    torch.manual_seed(seed)
    module = VAETraining(
        vae=vae,
        sample_rate=sample_rate or recipe["data"]["sample_rate"],
        loss=loss,
        discriminator=recipe["discriminator"],
        optim=recipe["optim"],
        ema=recipe["ema"],
        guard=recipe["guard"],
        max_steps=recipe["trainer"]["max_steps"],
        compile=compile,
    )
    driver = Standalone(module, device, bf16)
    if total_steps is not None:
        driver.schedule_over(total_steps)
    return module, lambda audio: driver.step({"audio": audio})["train/stft"]


def vae_variant(
    name: str,
    vae_config: dict,
    batch_size: int,
    sample_length: int,
    device: torch.device,
    bf16: bool,
    compile: bool,
    adversarial: bool,
    recipe: dict | None = None,
    seed: int = 0,
    sample_rate: int | None = None,
) -> Variant:
    """The VAE step on a fixed batch; ``adversarial``: the phase after ``loss.adversarial_start_step``."""
    module, step = vae_training(
        vae_config, device, bf16, compile, recipe, adversarial, seed=seed, sample_rate=sample_rate
    )
    channels, sample_rate = module.hparams.vae["channels"], module.sample_rate
    generator = torch.Generator().manual_seed(seed)
    audio = (0.3 * torch.randn(batch_size, channels, sample_length, generator=generator)).to(device)
    # (B, C, T): a fixed batch, so the loss must fall
    return Variant(
        name=name,
        step=lambda: step(audio),
        audio_seconds_per_step=batch_size * sample_length / sample_rate,
        latent_frames_per_step=batch_size * (sample_length // module.hop),
    )


# ------------------------------------------------------------------------------ the DiT


def dit_training(
    size: dict | None,
    latent_dim: int,
    device: torch.device,
    bf16: bool = False,
    compile: bool = False,
    num_labels: int = 5,
    overrides: list[str] = (),
    seed: int = 0,
    total_steps: Callable[[], int] | None = None,
) -> tuple[DiTTraining, Callable]:
    """``DiTTraining`` (timing and ``num_labels`` labels, as the demo) and its step.

    ``step(x0 (B, D, T), conditions, t=None, noise=None) -> loss``: ``t`` and ``noise`` are drawn
    per call, as in training, unless given (a fixed batch, whose loss must fall). ``size``: the
    DiT's size over the recipe's; ``overrides``: Hydra overrides of ``experiment=demo_dit``.
    """
    recipe = dit_recipe(list(overrides))
    c = recipe["conditioning"]
    torch.manual_seed(seed)
    module = DiTTraining(
        dit={**recipe["dit"], **(size or {})},
        conditioner={
            "global_dim": (size or recipe["dit"]).get("width", c["global_dim"]),
            "cross_dim": c["cross_dim"],
            "timing": c["timing"],
            "num_labels": num_labels if c["labels"] else 0,
            "label_tokens": c["label_tokens"],
            "text": c["text"],
            "cfg_dropout": c["cfg_dropout"],
            "max_seconds": c["max_seconds"],
        },
        objective=recipe["objective"],
        optim=recipe["optim"],
        latent={"latent_dim": latent_dim, "mean": [0.0] * latent_dim, "std": [1.0] * latent_dim},
        ema=recipe["ema"],
        guard=recipe["guard"],
        max_steps=recipe["trainer"]["max_steps"],
        compile=compile,
    )
    driver = Standalone(module, device, bf16)
    if total_steps is not None:  # the LR schedule's length, asked at every step (a time budget)
        driver.schedule_over(total_steps)
    drawn = module.training_noise

    def step(x0: torch.Tensor, conditions: dict, t=None, noise=None) -> torch.Tensor:
        module.training_noise = drawn if t is None else (lambda latents: (t, noise))
        return driver.step({"latents": x0, **conditions})["train/loss"]

    return module, step


def dit_batch(
    batch_size: int,
    latent_dim: int,
    frames: int,
    seconds: float,
    device: torch.device,
    num_labels: int = 5,
    seed: int = 0,
) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    """A fixed DiT batch ``(x0 (B, D, T), conditions, t, noise)``: timing and a label per clip,
    fixed noise levels and noise, so the loss of repeated steps on it must fall."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch_size, latent_dim, frames, generator=generator).to(device)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    t = torch.rand(batch_size, generator=generator).to(device)
    conditions = {
        "seconds_start": torch.zeros(batch_size, device=device),
        "seconds_total": torch.full((batch_size,), seconds, device=device),
        "label": torch.randint(0, num_labels, (batch_size,), generator=generator).to(device),
    }
    return x0, conditions, t, noise


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
    seed: int = 0,
) -> Variant:
    """The DiT step with timing and label conditioning on a fixed batch and fixed noise."""
    module, step = dit_training(size, latent_dim, device, bf16, compile, num_labels, seed=seed)
    x0, batch, t, noise = dit_batch(
        batch_size, latent_dim, frames, frames * hop / sample_rate, device, num_labels, seed
    )
    return Variant(
        name=name,
        step=lambda: step(x0, batch, t, noise),
        audio_seconds_per_step=batch_size * frames * hop / sample_rate,
        latent_frames_per_step=batch_size * frames,
        flops_per_step=3.0 * batch_size * module.denoiser.dit.flops(frames),  # forward + backward
    )
