"""Training throughput and memory, logged every N steps next to the losses.

``train/audio_seconds_per_second``: audio seconds the whole job (all ranks) trains on per
wall-second of training step (data loading and validation excluded). Stage one counts the audio
crops; stage two counts latent frames (``train/latent_frames_per_second``) and converts them
with the VAE's hop and sample rate. Memory: ``train/cpu_rss_gib`` (this process) and, on CUDA,
``train/gpu_max_allocated_gib`` (the peak since the last log).
"""

from __future__ import annotations

import os
import resource
import sys
import time

import pytorch_lightning as pl
import torch


def cpu_rss_bytes() -> int:
    """Resident memory now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def batch_extent(batch: dict, pl_module: pl.LightningModule) -> tuple[float, int]:
    """(audio seconds, latent frames) in one batch of either stage."""
    if "audio" in batch:  # stage one: (B, C, T) audio
        audio = batch["audio"]
        samples = audio.shape[0] * audio.shape[-1]
        return samples / pl_module.sample_rate, samples // pl_module.hop
    latents = batch["latents"]  # stage two: (B, D, F) latents
    frames = latents.shape[0] * latents.shape[-1]
    latent = pl_module.hparams.latent
    return frames * latent["hop"] / latent["sample_rate"], frames


class Throughput(pl.Callback):
    def __init__(self, every_n_steps: int = 50):
        self.every_n_steps = max(1, int(every_n_steps))
        self.last_metrics: dict[str, float] = {}
        self._reset()

    def _reset(self) -> None:
        self.seconds = 0.0
        self.audio_seconds = 0.0
        self.frames = 0
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.seconds += time.perf_counter() - self._start
        audio_seconds, frames = batch_extent(batch, pl_module)
        self.audio_seconds += audio_seconds
        self.frames += frames
        self.steps += 1
        if self.steps < self.every_n_steps:
            return
        ranks = trainer.world_size  # every rank trains on its own batch of the same size
        metrics = {
            "train/audio_seconds_per_second": ranks * self.audio_seconds / self.seconds,
            "train/latent_frames_per_second": ranks * self.frames / self.seconds,
            "train/step_seconds": self.seconds / self.steps,
            "train/cpu_rss_gib": cpu_rss_bytes() / 2**30,
        }
        if pl_module.device.type == "cuda":
            metrics["train/gpu_max_allocated_gib"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        if trainer.is_global_zero:  # straight to the loggers: no step is skipped by log_every_n_steps
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        self.last_metrics = metrics
        self._reset()
