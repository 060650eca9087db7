"""Two DDP processes (gloo on the CPU) draw different diffusion noise, the same on every rerun."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from latentaudio.training.seeding import SeedEachRank, seed_run

# The trainer the apps build (build_trainer) fits the real DiT module on two CPU processes; each
# rank records the times and noise its training steps drew, and the weights it started from.
SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from hydra import compose, initialize_config_dir
    from torch.utils.data import DataLoader
    from latentaudio.apps.common import CONFIG_PATH, build_trainer
    from latentaudio.dit.training import DiTTraining
    from latentaudio.training.seeding import seed_run

    class Recording(DiTTraining):
        def training_noise(self, latents):
            t, noise = super().training_noise(latents)
            self.drawn.append((t, noise))
            return t, noise

    out = sys.argv[1]
    overrides = [
        "seed=7", f"paths.output_dir={out}", "trainer.devices=2", "+trainer.strategy=ddp",
        "trainer.max_steps=2", "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false", "+trainer.use_distributed_sampler=false",
    ]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train_diffusion", overrides=overrides)
    seed_run(cfg.seed)
    module = Recording(
        dit={"_target_": "latentaudio.dit.model.DiT", "width": 16, "depth": 1, "heads": 2},
        conditioner={"global_dim": 16, "timing": True, "num_labels": 0, "cfg_dropout": 0.0},
        objective={"name": "v"},
        optim={"lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.0, "warmup_steps": 0,
               "decay": "constant", "min_lr_ratio": 1.0, "grad_clip": 1.0},
        latent={"latent_dim": 2, "mean": [0.0, 0.0], "std": [1.0, 1.0]},
    )
    module.drawn = []
    initial = {k: v.clone() for k, v in module.denoiser.state_dict().items()}
    batch = {"latents": torch.zeros(3, 2, 8), "seconds_start": torch.zeros(3), "seconds_total": torch.ones(3)}
    trainer = build_trainer(cfg, [], [])
    trainer.fit(module, train_dataloaders=DataLoader([batch] * 2, batch_size=None))
    torch.save({"drawn": module.drawn, "initial": initial}, f"{out}/rank{trainer.global_rank}.pt")
    """
)


def run_twice_two_ranks(folder) -> list[list[dict]]:
    runs = []
    for attempt in range(2):
        out = folder / f"run{attempt}"
        out.mkdir()
        script = folder / "ddp_noise.py"
        script.write_text(SCRIPT)
        result = subprocess.run(
            [sys.executable, str(script), str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        runs.append([torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)])
    return runs


def test_each_rank_is_reseeded_from_the_run_seed_and_its_rank():
    draws: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    for rank in (0, 1, 1, 0):
        seed_run(7)
        torch.rand(rank + 1)  # whatever the process drew before training starts does not matter
        SeedEachRank(7).setup(SimpleNamespace(global_rank=rank), None, "fit")
        draws[rank].append(torch.rand(4))
    assert torch.equal(*draws[0]) and torch.equal(*draws[1]) and not torch.equal(draws[0][0], draws[1][0])
    seed_run(8)
    SeedEachRank(8).setup(SimpleNamespace(global_rank=0), None, "fit")
    assert not torch.equal(torch.rand(4), draws[0][0])  # another run seed, other draws


@pytest.mark.slow  # about a minute: two runs of two processes
def test_ranks_draw_different_noise_and_a_rerun_draws_the_same(tmp_path):
    (first0, first1), (again0, again1) = run_twice_two_ranks(tmp_path)
    assert len(first0["drawn"]) == len(first1["drawn"]) == 2  # one draw per step
    for (t0, noise0), (t1, noise1) in zip(first0["drawn"], first1["drawn"]):
        assert not torch.equal(t0, t1) and not torch.equal(noise0, noise1)
    for first, again in ((first0, again0), (first1, again1)):
        for (t, noise), (t_again, noise_again) in zip(first["drawn"], again["drawn"]):
            assert torch.equal(t, t_again) and torch.equal(noise, noise_again)
    # the network starts from the same weights on both ranks, as the run's seed made them
    assert all(torch.equal(first0["initial"][k], first1["initial"][k]) for k in first0["initial"])
