import copy

import pytest
import torch

from latentaudio.vae import AudioVAE, MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator, kl_divergence
from latentaudio.vae.model import SnakeBeta


def tiny_vae(channels: int = 1, strides=(2, 4)) -> AudioVAE:
    torch.manual_seed(0)
    return AudioVAE(channels=channels, base_channels=8, channel_mults=(1, 2), strides=strides, latent_dim=4)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("length", [1000, 8191, 12345])
def test_forward_keeps_length_for_any_length(channels, length):
    vae = tiny_vae(channels)
    audio = torch.randn(2, channels, length)
    out = vae(audio)
    frames = -(-length // vae.hop)
    assert out.reconstruction.shape == (2, channels, length)
    assert out.latents.shape == out.mean.shape == out.scale.shape == (2, 4, frames)
    assert out.kl.ndim == 0 and torch.isfinite(out.kl) and out.kl >= 0
    assert (out.scale > 0).all()


def test_odd_strides_and_hop():
    vae = tiny_vae(strides=(3, 5))
    assert vae.hop == 15
    out = vae(torch.randn(1, 1, 1000))
    assert out.reconstruction.shape == (1, 1, 1000) and out.mean.shape == (1, 4, 67)


def test_encode_decode_shapes():
    vae = tiny_vae(2)
    audio = torch.randn(3, 2, 801)
    latents = vae.encode(audio)
    assert latents.shape == (3, 4, 101)
    assert torch.equal(latents, vae.encode_posterior(audio)[0])
    assert not torch.equal(vae.encode(audio, sample=True), latents)
    assert vae.decode(latents).shape == (3, 2, 101 * 8)
    assert vae.decode(latents, length=801).shape == (3, 2, 801)


def test_kl_divergence_is_zero_for_the_prior_and_positive_otherwise():
    zeros, ones = torch.zeros(2, 4, 5), torch.ones(2, 4, 5)
    assert kl_divergence(zeros, ones).item() == pytest.approx(0.0, abs=1e-7)
    # 0.5 * (1 + 1 - 0 - 1) per channel, summed over 4 channels.
    assert kl_divergence(ones, ones).item() == pytest.approx(2.0)
    assert kl_divergence(zeros, 0.1 * ones) > 0


def test_deepcopy_and_state_dict_round_trip():
    vae = tiny_vae(2).eval()
    audio = torch.randn(1, 2, 500)
    with torch.no_grad():
        expected = vae.decode(vae.encode(audio))
        twin = copy.deepcopy(vae)
        assert torch.equal(twin.decode(twin.encode(audio)), expected)
        fresh = AudioVAE(
            channels=2, base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4
        ).eval()
        fresh.load_state_dict(vae.state_dict())
        assert torch.equal(fresh.decode(fresh.encode(audio)), expected)


def test_bf16_autocast_forward_and_backward():
    vae = tiny_vae(2)
    audio = torch.randn(2, 2, 999)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vae(audio)
        loss = (out.reconstruction - audio).abs().mean() + out.kl
    loss.backward()
    assert out.reconstruction.dtype == torch.float32 and out.reconstruction.shape == audio.shape
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in vae.parameters() if p.grad is not None)


def test_snake_beta_is_the_reference_formula_and_bounded():
    snake = SnakeBeta(3)
    with torch.no_grad():
        snake.log_alpha.copy_(torch.tensor([0.0, 0.5, -1.0]).view(1, 3, 1))
        snake.log_beta.copy_(torch.tensor([0.0, -0.3, 1.0]).view(1, 3, 1))
    x = torch.randn(2, 3, 50)
    alpha, beta = snake.log_alpha.exp(), snake.log_beta.exp()
    torch.testing.assert_close(snake(x), x + torch.sin(alpha * x) ** 2 / beta, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        snake.log_beta.fill_(-50.0)  # a collapsed beta must not blow up the activation
    assert torch.isfinite(snake(x)).all() and (snake(x) - x).abs().max() <= 100.0 + 1e-3


@pytest.mark.parametrize("channels", [1, 2])
def test_discriminator_output_structure(channels):
    audio = torch.randn(2, channels, 4096)
    stft = MultiScaleSTFTDiscriminator(channels=channels, filters=4, n_ffts=(256, 128))
    period = MultiPeriodDiscriminator(channels=channels, periods=(2, 3), filters=4, max_filters=16)
    for discriminator, count in ((stft, 2), (period, 2)):
        outputs = discriminator(audio)
        assert len(outputs) == count
        for logits, features in outputs:
            assert logits.shape[:2] == (2, 1) and torch.isfinite(logits).all()
            assert len(features) == 5 and all(f.shape[0] == 2 for f in features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert len(stft(audio)) == 2
