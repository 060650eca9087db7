"""The DiT's LightningModule: gradient accumulation steps once per N batches, like one N-times batch."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from latentaudio.dit.training import DiTTraining

# the EMA copy is evaluated only, by design (the apps silence this too)
pytestmark = pytest.mark.filterwarnings(r"ignore:Found \d+ module\(s\) in eval mode")

LATENT_DIM = 4
BATCH, FRAMES = 4, 12


def tiny_module(accumulate: int = 1, **kwargs) -> DiTTraining:
    torch.manual_seed(0)
    return DiTTraining(
        dit={"_target_": "latentaudio.dit.model.DiT", "width": 32, "depth": 2, "heads": 2},
        conditioner={"global_dim": 32, "timing": True, "num_labels": 0, "cfg_dropout": 0.0},
        objective={"name": "v"},
        optim={
            "lr": 1e-3,
            "betas": [0.9, 0.99],
            "weight_decay": 0.0,
            "warmup_steps": 0,
            "decay": "constant",
            "min_lr_ratio": 1.0,
            "grad_clip": 0.0,  # off: a clipped norm would hide a wrongly scaled gradient
            "accumulate_grad_batches": accumulate,
        },
        latent={"latent_dim": LATENT_DIM, "mean": [0.0] * LATENT_DIM, "std": [1.0] * LATENT_DIM},
        ema={"decay": 0.9},
        max_steps=2,
        **kwargs,
    )


class GradientsAtEachStep(pl.Callback):
    def __init__(self):
        self.steps = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append({n: p.grad.clone() for n, p in pl_module.denoiser.named_parameters()})


def train(accumulate: int, batches: list[dict], t: torch.Tensor, noise: torch.Tensor, **kwargs):
    module = tiny_module(accumulate, **kwargs)
    drawn = [0]

    def fixed_noise(latents):
        # the same time and noise per item however the items are split into batches
        start = drawn[0] % BATCH
        drawn[0] += latents.shape[0]
        return t[start : start + latents.shape[0]], noise[start : start + latents.shape[0]]

    module.training_noise = fixed_noise
    gradients = GradientsAtEachStep()
    trainer = pl.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        val_check_interval=1,  # also between two accumulated batches: the gradients must survive it
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[gradients],
    )
    loader = DataLoader(batches, batch_size=None)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    return module, trainer, gradients.steps


def batches(count: int = 2) -> list[dict]:
    torch.manual_seed(1)
    return [
        {
            "latents": torch.randn(BATCH, LATENT_DIM, FRAMES),
            "seconds_start": torch.rand(BATCH) * 10,
            "seconds_total": torch.full((BATCH,), 20.0),
        }
        for _ in range(count)
    ]


def test_two_half_batches_accumulated_make_the_step_of_one_full_batch():
    full = batches()
    halves = [{k: v[part] for k, v in batch.items()} for batch in full for part in (slice(0, 2), slice(2, 4))]
    t, noise = torch.rand(BATCH), torch.randn(BATCH, LATENT_DIM, FRAMES)

    whole, whole_trainer, whole_grads = train(1, full, t, noise)
    accumulated, trainer, accumulated_grads = train(2, halves, t, noise)

    # max_steps counts optimizer steps: four half batches made two of them
    assert trainer.global_step == whole_trainer.global_step == 2
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 4
    assert len(accumulated_grads) == len(whole_grads) == 2
    for step_grads, reference in zip(accumulated_grads, whole_grads):
        for name, grad in reference.items():
            torch.testing.assert_close(step_grads[name], grad, rtol=1e-4, atol=1e-7, msg=name)
    for name, value in whole.state_dict().items():  # weights, EMA (updated once per step) and buffers
        torch.testing.assert_close(accumulated.state_dict()[name], value, rtol=1e-4, atol=1e-6, msg=name)
    assert accumulated.optimizers().optimizer.state_dict()["state"][0]["step"] == 2


def test_compile_keeps_the_state_dict_layout_and_leaves_the_ema_eager():
    eager, compiled = tiny_module(), tiny_module(compile=True, compile_mode="reduce-overhead")
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefixes
    assert compiled.denoiser.dit._compiled_call_impl is not None  # compiled lazily, on the first call
    assert eager.denoiser.dit._compiled_call_impl is None
    assert compiled.ema.average.dit._compiled_call_impl is None  # the copy calls its own weights


@pytest.mark.slow
def test_a_compiled_dit_trains_and_matches_the_eager_one():
    t, noise = torch.rand(BATCH), torch.randn(BATCH, LATENT_DIM, FRAMES)
    eager, _, _ = train(1, batches(), t, noise)
    compiled, trainer, _ = train(1, batches(), t, noise, compile=True)
    assert trainer.global_step == 2
    assert list(compiled.state_dict()) == list(eager.state_dict())
    for name, value in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[name], value, rtol=1e-3, atol=1e-5, msg=name)


def test_both_modules_take_the_guarded_step_and_its_hooks_from_one_place():
    from latentaudio.training.step import GuardedTraining
    from latentaudio.vae.training import VAETraining

    for module_class in (DiTTraining, VAETraining):
        assert issubclass(module_class, GuardedTraining)
        for shared in ("guarded_step", "on_validation_model_zero_grad", "on_save_checkpoint"):
            assert shared not in vars(module_class), f"{module_class.__name__} repeats {shared}"
