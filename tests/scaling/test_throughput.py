"""The throughput callback: audio seconds and latent frames per second, and memory, every N steps."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from latentaudio.training.throughput import Throughput, batch_extent


class FakeLogger:
    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, metrics))


def test_stage_one_and_two_batches_count_audio_seconds_and_frames():
    vae_module = SimpleNamespace(sample_rate=16000, hop=256)
    assert batch_extent({"audio": torch.zeros(8, 1, 8192)}, vae_module) == (4.096, 256)
    dit_module = SimpleNamespace(hparams=SimpleNamespace(latent={"hop": 256, "sample_rate": 16000}))
    seconds, frames = batch_extent({"latents": torch.zeros(16, 16, 128)}, dit_module)
    assert frames == 2048 and abs(seconds - 2048 * 256 / 16000) < 1e-9


def test_callback_logs_every_n_steps_for_the_whole_job():
    logger = FakeLogger()
    trainer = SimpleNamespace(world_size=2, is_global_zero=True, loggers=[logger], global_step=0)
    module = SimpleNamespace(sample_rate=16000, hop=256, device=torch.device("cpu"))
    callback = Throughput(every_n_steps=3)
    batch = {"audio": torch.zeros(4, 1, 16000)}
    for step in range(1, 7):
        callback.on_train_batch_start(trainer, module, batch, step)
        trainer.global_step = step
        callback.on_train_batch_end(trainer, module, None, batch, step)
    assert [step for step, _ in logger.logged] == [3, 6]
    metrics = logger.logged[-1][1]
    per_step = metrics["train/step_seconds"]
    assert (
        abs(metrics["train/audio_seconds_per_second"] - 2 * 4.0 / per_step)
        < 1e-6 * metrics["train/audio_seconds_per_second"]
    )
    assert metrics["train/latent_frames_per_second"] > 0 and metrics["train/cpu_rss_gib"] > 0.01
