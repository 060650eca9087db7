"""Seeds: the same initial network on every rank, different random draws on each.

``seed_run(seed)`` seeds every generator before the network is built, so every rank builds the
same weights. ``SeedEachRank`` (``build_trainer`` adds it) seeds them again once the processes
exist, from ``(seed, global rank)``: otherwise every rank draws the same diffusion times, noise,
condition dropout, masks and crops, and N GPUs train on one GPU's randomness N times over.
DataLoader workers are seeded from their process, worker id and rank by Lightning's
``pl_worker_init_function`` (``workers=True``). ``PL_GLOBAL_SEED`` stays the run's seed, so
distributed samplers keep agreeing on one order of the data across ranks.
"""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch


def seed_run(seed: int) -> None:
    """Seed torch, numpy and ``random`` from the run's ``seed``, before anything is built."""
    pl.seed_everything(seed, workers=True)


def rank_seed(seed: int, rank: int) -> int:
    """A seed for ``rank`` of the run seeded ``seed``: distinct per rank, and from other runs' seeds."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


class SeedEachRank(pl.Callback):
    """Reseed each process from ``(seed, global rank)`` once the strategy has started the processes.

    ``setup`` runs after the strategy's own reset to the run seed and before any batch is drawn.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        seed = rank_seed(self.seed, trainer.global_rank)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # every CUDA device too
