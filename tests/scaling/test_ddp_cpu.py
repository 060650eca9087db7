"""trainer=ddp with two CPU processes (gloo): a tiny VAE trains a few steps and writes one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_checkpoint(sine_folder, tmp_path):
    run = tmp_path / "run"
    args = [
        "model/vae=tiny",
        f"data.root={sine_folder}",
        "data.sample_length=2048",
        "debug=fast",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "trainer.max_steps=4",
        "loss.adversarial_start_step=2",  # both phases: the discriminator idle, then training
        "callbacks.model_checkpoint.every_n_train_steps=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "latentaudio.apps.train_vae", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    assert [c.name for c in checkpoints] == ["last.ckpt", "step0000004.ckpt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert (run / "export" / "model.safetensors").exists()
    assert json.loads((run / "metrics.json").read_text())["step"] == 4  # written once, by rank zero
