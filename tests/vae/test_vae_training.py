"""The VAE's LightningModule: compile in place keeps the checkpoint layout; the EMA copy stays eager."""

import pytest
from apps_helpers import compose_app, tiny_vae_overrides

from latentaudio.apps.common import plain
from latentaudio.vae.training import VAETraining


def tiny_module(tmp_path, **kwargs) -> VAETraining:
    cfg = compose_app("train_vae", tmp_path, tiny_vae_overrides(tmp_path) + ["ema.decay=0.9"])
    parts = {name: plain(cfg[name]) for name in ("vae", "loss", "discriminator", "optim", "ema")}
    return VAETraining(sample_rate=cfg.data.sample_rate, **parts, **kwargs)


def test_compile_keeps_the_state_dict_layout_and_leaves_the_ema_eager(tmp_path):
    eager, compiled = tiny_module(tmp_path), tiny_module(tmp_path, compile=True)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefixes
    for network in (compiled.vae, compiled.discriminator):
        assert network._compiled_call_impl is not None  # compiled lazily, on the first call
    assert eager.vae._compiled_call_impl is None and compiled.ema.average._compiled_call_impl is None


def test_a_bad_compile_mode_or_accumulation_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compile_mode='fast'"):
        tiny_module(tmp_path, compile=True, compile_mode="fast")
    cfg = compose_app(
        "train_vae", tmp_path, tiny_vae_overrides(tmp_path) + ["optim.accumulate_grad_batches=0"]
    )
    with pytest.raises(ValueError, match="accumulate_grad_batches must be an integer of 1 or more"):
        VAETraining(
            sample_rate=16000, **{k: plain(cfg[k]) for k in ("vae", "loss", "discriminator", "optim")}
        )
