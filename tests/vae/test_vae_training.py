"""The VAE's LightningModule: compile in place keeps the checkpoint layout; the EMA copy stays eager."""

import pytest
import torch
from apps_helpers import compose_app, tiny_vae_overrides

from latentaudio.apps.common import plain
from latentaudio.vae.training import VAETraining


def module_with(tmp_path, *overrides: str, **kwargs) -> VAETraining:
    """The tiny VAE's training module with these train_vae overrides."""
    cfg = compose_app("train_vae", tmp_path, tiny_vae_overrides(tmp_path) + list(overrides))
    parts = {name: plain(cfg[name]) for name in ("vae", "loss", "discriminator", "optim", "ema")}
    return VAETraining(sample_rate=cfg.data.sample_rate, **parts, **kwargs)


def tiny_module(tmp_path, **kwargs) -> VAETraining:
    return module_with(tmp_path, "ema.decay=0.9", **kwargs)


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


def test_feature_matching_uses_one_discriminator_for_real_and_fake(tmp_path):
    module = tiny_module(tmp_path)
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(2, 1, 2048, generator=generator) * 0.3
    fake = torch.randn(2, 1, 2048, generator=generator) * 0.3
    # the discriminator's step between the two passes must not leave a floor for a perfect reconstruction
    optimizer = torch.optim.SGD(module.discriminator.parameters(), lr=1.0)
    _step(module, optimizer, audio, fake)
    _, fm_perfect = module.adversarial_losses(audio, audio.clone().requires_grad_())
    _, fm_fake = module.adversarial_losses(audio, fake)
    assert float(fm_perfect.detach()) == 0.0 and float(fm_fake) > 0.0


def _step(module, optimizer, real, fake):
    from latentaudio.vae import losses

    loss = losses.discriminator_loss(module.discriminator(real), module.discriminator(fake), kind="hinge")
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def test_the_mel_term_joins_the_generator_loss_only_when_weighted(tmp_path):
    assert tiny_module(tmp_path).mel_loss is None  # loss.mel_weight 0 by default: not even built
    module = module_with(tmp_path, "loss.mel_weight=2")
    from experiments.throughput.steps import Standalone  # a training step without a Trainer

    driver = Standalone(module, torch.device("cpu"))
    driver.step({"audio": torch.randn(2, 1, 2048, generator=torch.Generator().manual_seed(0)) * 0.3})
    assert float(driver.logged["train/mel"]) > 0


def test_the_waveform_l1_sees_what_the_latents_determine_not_the_noise_branch(tmp_path):
    # a noise branch turned far up (gains e^3): the L1 of the samples would be about 10 with its
    # noise in it; the L1 sees the decoder's own output only, the spectral term sees the sum
    module = module_with(tmp_path, "vae.noise_bands=2", "loss.waveform_weight=1")
    with torch.no_grad():
        module.vae.noise_head.proj.bias.fill_(3.0)
    from experiments.throughput.steps import Standalone

    driver = Standalone(module, torch.device("cpu"))
    audio = torch.randn(2, 1, 2048, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.no_grad():
        out = module.vae(audio)
    assert float((out.reconstruction - audio).abs().mean()) > 5  # the noise is there
    driver.step({"audio": audio})
    assert float(driver.logged["train/waveform"]) < 1.0


def test_the_noise_free_spectral_term_scores_the_decoder_without_its_noise(tmp_path):
    module = module_with(tmp_path, "vae.noise_bands=2", "loss.noise_free_stft_weight=1")
    with torch.no_grad():
        module.vae.noise_head.proj.bias.fill_(3.0)  # noise far louder than the decoder's output
    from experiments.throughput.steps import Standalone

    driver = Standalone(module, torch.device("cpu"))
    driver.step({"audio": torch.randn(2, 1, 2048, generator=torch.Generator().manual_seed(0)) * 0.3})
    with_noise, without = float(driver.logged["train/stft"]), float(driver.logged["train/stft_noise_free"])
    assert without > 0 and abs(with_noise - without) > 0.1 * with_noise
