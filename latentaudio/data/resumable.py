"""A shuffling DataLoader that a restart continues mid-epoch, instead of starting the epoch again.

Lightning stores a loader's ``state_dict()`` in the checkpoint and hands it back through
``load_state_dict()`` on resume. The order of each epoch is drawn from ``(seed, epoch)``
alone, so the state is just two numbers: the epoch and how many batches of it were served.
A resumed run skips those batch indices without loading them and then sees exactly the
files the uninterrupted run would have seen. (Random crop offsets come from the global RNG,
which Lightning does not restore: the files match, the offsets inside them may not.)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(size)`` drawn from ``(seed, epoch)``, starting at ``start``."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        yield from order[self.start :].tolist()


class ResumableLoader(DataLoader):
    """A shuffled DataLoader with Lightning's ``state_dict``/``load_state_dict`` interface.

    ``seed`` defaults to the global torch seed (``pl.seed_everything``). If Lightning swaps in
    a sampler of its own (distributed training), the loader stays correct but is not resumable.
    """

    def __init__(self, dataset, *args, seed: int | None = None, sampler=None, **kwargs):
        self.resumable = sampler is None and not args
        if self.resumable:
            seed = torch.initial_seed() % 2**32 if seed is None else seed
            sampler = EpochShuffleSampler(len(dataset), seed)
        kwargs.pop("shuffle", None)
        super().__init__(dataset, *args, sampler=sampler, **kwargs)
        self.epoch = -1  # the epoch of the pass served last; the first pass is epoch 0
        self.served = 0  # batches of that pass handed out so far
        self._resume_at: int | None = None

    def __iter__(self):
        if not self.resumable:
            return super().__iter__()
        if self._resume_at is not None:
            skip, self._resume_at = self._resume_at, None
        else:
            self.epoch, skip = self.epoch + 1, 0
        self.sampler.epoch = self.epoch
        self.sampler.start = skip * self.batch_size
        self.served = skip
        return self._count(super().__iter__())

    def _count(self, batches) -> Iterator:
        for batch in batches:
            self.served += 1
            yield batch

    def state_dict(self) -> dict:
        if not self.resumable:
            return {}
        return {"epoch": self.epoch, "served": self.served, "seed": self.sampler.seed}

    def load_state_dict(self, state: dict) -> None:
        if not self.resumable or not state:
            return
        self.sampler.seed = state["seed"]
        self.epoch = state["epoch"]
        if self.epoch >= 0 and state["served"] < len(self):
            self._resume_at = state["served"]  # the next pass finishes this epoch
        else:
            self._resume_at = None  # that epoch was complete: the next pass starts a new one
