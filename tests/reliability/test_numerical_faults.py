"""A VAE that goes NaN: the bad steps are skipped and logged, then training stops with a checkpoint."""

import logging

import pytest
import torch
from apps_helpers import compose_app
from conftest import write_sine

from latentaudio.apps.train_vae import train
from latentaudio.training.guard import NonFiniteError
from latentaudio.vae import losses

from .helpers import vae_overrides

GOOD_STEPS = 3
MAX_BAD_STEPS = 3


@pytest.mark.parametrize("accumulate", [1, 2])  # 2: two batches a step; the guard counts steps
def test_non_finite_steps_are_skipped_then_training_stops_with_a_checkpoint_from_before(
    tmp_path, monkeypatch, caplog, accumulate
):
    for i in range(6):
        write_sine(tmp_path / "audio" / f"a{i}.wav", frequency=200.0 + 50 * i, seconds=0.5)
    calls = []
    original = losses.SpectralReconstructionLoss.forward

    def goes_nan_after_a_while(self, prediction, target):
        loss, parts = original(self, prediction, target)
        calls.append(len(calls))
        return (loss * float("nan") if len(calls) > GOOD_STEPS * accumulate else loss), parts

    monkeypatch.setattr(losses.SpectralReconstructionLoss, "forward", goes_nan_after_a_while)
    run = tmp_path / "run"
    overrides = vae_overrides(tmp_path / "audio", steps=50, every=2) + [
        f"guard.max_bad_steps={MAX_BAD_STEPS}",
        f"optim.accumulate_grad_batches={accumulate}",
    ]
    with caplog.at_level(logging.WARNING), pytest.raises(NonFiniteError) as caught:
        train(compose_app("train_vae", run, overrides))

    message = str(caught.value)
    assert f"{MAX_BAD_STEPS} consecutive steps" in message and "before-fault.ckpt" in message
    skipped = [r.getMessage() for r in caplog.records if "step skipped" in r.getMessage()]
    assert len(skipped) == MAX_BAD_STEPS and all("non-finite loss" in m for m in skipped)
    assert len(calls) == (GOOD_STEPS + MAX_BAD_STEPS) * accumulate  # it stopped at once, after the limit

    before = torch.load(run / "checkpoints" / "before-fault.ckpt", weights_only=True)
    assert before["global_step"] == GOOD_STEPS  # skipped steps do not count
    weights = {k: v for k, v in before["state_dict"].items() if k.startswith("vae.")}
    assert all(torch.isfinite(v).all() for v in weights.values())
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2  # the interval checkpoint is further behind
    assert before["optimizer_states"][0]["state"][0]["step"] == GOOD_STEPS


def test_a_resumed_run_starts_a_new_streak_of_bad_steps():
    from latentaudio.training.guard import NonFiniteGuard

    guard = NonFiniteGuard(max_bad_steps=2)
    assert guard.check(0, loss=1.0) and not guard.check(1, loss=float("inf"))
    resumed = NonFiniteGuard(max_bad_steps=2)
    resumed.load_state_dict({"consecutive": 1, "total": 1})
    assert not resumed.check(2, loss=float("nan"))  # one bad step: skipped, not yet fatal
    assert resumed.total == 2
