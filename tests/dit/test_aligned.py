"""The pair pool that makes enhancement training affordable: fresh pairs each step, the rest reused."""

import pytest
import torch

from latentaudio.dit.aligned import PairPool


def batch_of(values: list[float]) -> dict:
    """A batch whose item i has latents filled with values[i], so every field names its item."""
    return {
        "latents": torch.stack([torch.full((3, 5), v) for v in values]),  # (B, D, T)
        "label": torch.tensor([int(v) for v in values]),
        "caption": [f"item {v:g}" for v in values],
    }


class CountingDegrader:
    """Negates the latents and remembers how many items it was asked to degrade."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        self.calls.append(latents.shape[0])
        return -latents


def assert_pairs_consistent(mixed: dict) -> None:
    for i in range(mixed["latents"].shape[0]):
        value = float(mixed["latents"][i, 0, 0])
        assert torch.equal(mixed["degraded"][i], -mixed["latents"][i])
        assert int(mixed["label"][i]) == int(value) and mixed["caption"][i] == f"item {value:g}"


def test_the_pool_degrades_whole_batches_until_full_then_only_the_fresh_items():
    pool, degrade = PairPool(size=8, fresh=1), CountingDegrader()
    for step in range(2):  # 2 x 4 items fill the pool of 8
        mixed = pool.mix(batch_of([4 * step + i for i in range(4)]), degrade)
        assert_pairs_consistent(mixed)
    assert degrade.calls == [4, 4] and len(pool.items) == 8
    generator = torch.Generator().manual_seed(0)
    mixed = pool.mix(batch_of([100, 101, 102, 103]), degrade, generator)
    assert degrade.calls[-1] == 1  # the cost of one item, not four
    assert mixed["latents"].shape == (4, 3, 5) and len(mixed["caption"]) == 4
    assert float(mixed["latents"][0, 0, 0]) == 100  # the fresh item leads
    assert_pairs_consistent(mixed)  # pooled items keep their own degraded copy and conditions


def test_the_pool_replaces_its_oldest_pairs_first():
    pool, degrade = PairPool(size=4, fresh=2), CountingDegrader()
    pool.mix(batch_of([0, 1, 2, 3]), degrade)
    pool.mix(batch_of([10, 11, 12, 13]), degrade)
    kept = sorted(float(item["latents"][0, 0]) for item in pool.items)
    assert kept == [2, 3, 10, 11]


def test_a_pool_needs_a_positive_size_and_fresh_count():
    with pytest.raises(ValueError, match="size >= 1 and fresh >= 1"):
        PairPool(size=0, fresh=1)
    with pytest.raises(ValueError, match="size >= 1 and fresh >= 1"):
        PairPool(size=4, fresh=0)
