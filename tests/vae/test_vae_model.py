import copy
import math

import pytest
import torch
import torch.nn.functional as F

from latentaudio.interop.stable_audio_tools import FormatError, autoencoder_section
from latentaudio.vae import AudioVAE, MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator, kl_divergence
from latentaudio.vae.model import Downsample, SnakeBeta, Upsample, _SnakeBetaFunction, snake_beta


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


def test_a_lower_snake_floor_leaves_a_small_beta_alone():
    # an imported network's smallest beta sets its floor, so nothing it computes is clamped
    low = SnakeBeta(2, beta_floor=1e-3)
    with torch.no_grad():
        low.log_beta.copy_(torch.tensor([2e-3, 5e-3]).log().view(1, 2, 1))
    x = torch.randn(2, 2, 50)
    reference = x + torch.sin(x) ** 2 / low.log_beta.exp()
    # 1/beta is 500 here: (1 - cos 2x) / 2 and sin^2 x differ by rounding of about 1e-5
    torch.testing.assert_close(low(x), reference, atol=1e-4, rtol=1e-5)
    default = copy.deepcopy(low)
    default.beta_floor = SnakeBeta(1).beta_floor  # 1e-2: both betas clamped up to it
    torch.testing.assert_close(default(x), x + torch.sin(x) ** 2 / 1e-2, atol=1e-4, rtol=1e-5)


def test_final_tanh_bounds_the_decoder_and_adds_no_weights():
    plain = tiny_vae()
    torch.manual_seed(0)
    squashed = AudioVAE(base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4, final_tanh=True)
    assert squashed.state_dict().keys() == plain.state_dict().keys()
    squashed.load_state_dict(plain.state_dict())
    latents = 10.0 * torch.randn(1, 4, 16)
    with torch.no_grad():
        torch.testing.assert_close(squashed.decode(latents), torch.tanh(plain.decode(latents)))


def random_snake(channels: int, compiled: bool = False) -> SnakeBeta:
    snake = SnakeBeta(channels, compiled=compiled)
    with torch.no_grad():
        snake.log_alpha.normal_(0.0, 0.5)
        snake.log_beta.normal_(0.0, 0.5)
    return snake


def snake_gradients(snake: SnakeBeta, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    snake.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    out = snake(x)
    out.backward(grad)
    return [out.detach(), x.grad, snake.log_alpha.grad, snake.log_beta.grad]


def test_snake_beta_hand_written_backward_matches_autograd():
    torch.manual_seed(0)
    snake = random_snake(4)
    x, grad = torch.randn(2, 4, 300), torch.randn(2, 4, 300)
    reference = copy.deepcopy(snake)
    reference.forward = lambda x: snake_beta(x, reference.log_alpha, reference.log_beta)  # plain autograd
    for got, expected in zip(snake_gradients(snake, x, grad), snake_gradients(reference, x, grad)):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # In float64 against finite differences, and with only some inputs needing a gradient.
    inputs = (torch.randn(2, 3, 20), 2.0 * torch.rand(1, 3, 1) + 0.1, torch.rand(1, 3, 1) + 0.1)
    for needs in ((True, True, True), (True, False, False), (False, True, True)):
        args = [t.double().requires_grad_(n) for t, n in zip(inputs, needs)]
        assert torch.autograd.gradcheck(_SnakeBetaFunction.apply, args)


def test_compile_snake_reaches_every_activation():
    vae = AudioVAE(base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4, compile_snake=True)
    snakes = [m for m in vae.modules() if isinstance(m, SnakeBeta)]
    assert snakes and all(m.compiled for m in snakes)
    assert not any(m.compiled for m in tiny_vae().modules() if isinstance(m, SnakeBeta))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["compile_snake", "torch.compile"])
def test_snake_beta_under_compile_matches_eager(how):
    """The opt-in compiled formula, and the eager path (hand-written backward) traced by
    torch.compile as a compiled VAE training does: same output and gradients as eager."""
    torch.manual_seed(0)
    eager = random_snake(4)
    compiled = copy.deepcopy(eager)
    if how == "compile_snake":
        compiled.compiled = True
    else:
        compiled = torch.compile(compiled)
    x, grad = torch.randn(2, 4, 300), torch.randn(2, 4, 300)
    for got, expected in zip(snake_gradients(compiled, x, grad), snake_gradients(eager, x, grad)):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride", [2, 3, 4, 5, 8])
def test_resampling_pads_and_trims_by_half_the_stride(stride):
    """Even strides pad inside the conv, odd ones outside: both must match one formula."""
    torch.manual_seed(0)
    down, up = Downsample(3, 5, stride), Upsample(5, 3, stride)
    left, right = stride // 2, stride - stride // 2
    x = torch.randn(2, 3, 10 * stride)
    expected = F.conv1d(F.pad(x, (left, right)), down.conv.weight, down.conv.bias, stride=stride)
    torch.testing.assert_close(down(x), expected)
    z = torch.randn(2, 5, 10)
    full = F.conv_transpose1d(z, up.conv.weight, up.conv.bias, stride=stride)  # (2, 3, 11 * stride)
    torch.testing.assert_close(up(z), full[..., left : full.shape[-1] - right])


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


def test_latent_noise_perturbs_only_what_the_decoder_sees():
    from latentaudio.vae.model import AudioVAE

    vae = AudioVAE(channels=1, base_channels=4, channel_mults=(1, 2), strides=(2, 2), latent_dim=3).eval()
    audio = torch.randn(4, 1, 256, generator=torch.Generator().manual_seed(0)) * 0.3
    torch.manual_seed(1)
    plain = vae(audio)
    torch.manual_seed(1)
    noisy = vae(audio, latent_noise=0.5)
    assert torch.equal(plain.mean, noisy.mean) and torch.equal(plain.latents, noisy.latents)
    assert not torch.allclose(plain.reconstruction, noisy.reconstruction)
    torch.manual_seed(1)
    assert torch.equal(vae(audio, latent_noise=0.0).reconstruction, plain.reconstruction)


def _branched(channels: int = 1, **branches) -> AudioVAE:
    """tiny_vae's network with a decoder branch (istft_hop=, noise_bands= ...)."""
    torch.manual_seed(0)
    return AudioVAE(
        channels=channels, base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4, **branches
    )


def _with_istft(istft_hop: int, channels: int = 1) -> AudioVAE:
    return _branched(channels, istft_hop=istft_hop)


@pytest.mark.parametrize("istft_hop", [8, 2, 1])
def test_istft_branch_adds_nothing_until_trained_and_then_learns(istft_hop):
    plain, branched = tiny_vae(), _with_istft(istft_hop)
    missing, unexpected = branched.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(name.startswith("istft_head.") for name in missing)
    audio = torch.randn(2, 1, 999)
    with torch.no_grad():
        assert torch.equal(branched.decode(branched.encode(audio)), plain.decode(plain.encode(audio)))
    out = branched(audio)
    (out.reconstruction - audio).abs().mean().backward()
    assert branched.istft_head.proj.weight.grad.abs().sum() > 0  # the zero conv still gets a gradient


def test_istft_hop_must_be_a_rate_the_decoder_has():
    with pytest.raises(ValueError, match=r"istft_hop=3: .*8, 2, 1"):
        _with_istft(3)
    with pytest.raises(ValueError, match="final_tanh"):
        AudioVAE(
            base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4, istft_hop=8, final_tanh=True
        )
    with pytest.raises(
        FormatError, match="STFT frames"
    ):  # make export-sat: Stable Audio's format has no such branch
        autoencoder_section({"istft_hop": 8, "strides": [2, 4], "channel_mults": [1, 2]})


def test_istft_head_writes_a_tone_in_its_bin_in_float32():
    # hop 32, window 128 at 16 kHz: bin 12 is 1.5 kHz, which turns 3 full cycles a hop, so one
    # constant complex value in it is a steady 1.5 kHz tone (a high tone, as cheap as a low one).
    vae = _with_istft(8, channels=2)
    head = vae.istft_head
    assert (head.hop, head.n_fft, head.bins) == (8, 32, 17)
    head = type(head)(in_dim=3, channels=1, hop=32, activation=lambda dim: torch.nn.Identity())
    with torch.no_grad():
        head.proj.bias[12] = 1.0  # the real part of bin 12 of the one channel
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        audio = head(torch.randn(1, 3, 40))[0, 0]
    assert audio.dtype == torch.float32 and audio.shape == (40 * 32,)
    middle = audio[256:-256]
    spectrum = torch.fft.rfft(middle * torch.hann_window(len(middle), periodic=False)).abs()
    peak = int(spectrum.argmax())
    assert peak * 16000 / len(middle) == pytest.approx(1500, abs=16000 / len(middle))
    far = torch.cat([spectrum[: peak - 8], spectrum[peak + 8 :]])
    assert far.max() < 1e-3 * spectrum[peak]  # nothing but the tone, 60 dB down
    assert float(middle.std()) == pytest.approx(float(middle[:64].std()), rel=0.05)  # steady, not framed


def _with_noise(noise_bands: int, noise_hop: int = 0, channels: int = 1) -> AudioVAE:
    return _branched(channels, noise_bands=noise_bands, noise_hop=noise_hop)


@pytest.mark.parametrize("noise_hop", [0, 2])
def test_noise_branch_starts_as_a_flat_floor_whatever_the_latents_and_then_learns(noise_hop):
    from latentaudio.vae.heads import NoiseHead

    plain, branched = tiny_vae(), _with_noise(4, noise_hop)
    missing, unexpected = branched.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(name.startswith("noise_head.") for name in missing)
    # unit-power bins at gain g through a normalised inverse STFT with a Hann window at 4x
    # overlap (window sum of squares 1.5): samples of variance g^2 / 1.5, for any latents
    expected = math.exp(NoiseHead.INIT_LOG_GAIN) / math.sqrt(1.5)
    for scale in (0.1, 10.0):
        latents = scale * torch.randn(2, 4, 250)
        with torch.no_grad():
            noise = branched.decode(latents) - plain.decode(latents)  # (2, 1, 2000)
        assert float(noise[..., 64:-64].std()) == pytest.approx(expected, rel=0.1)
    audio = torch.randn(2, 1, 999)
    out = branched(audio)
    (out.reconstruction - audio).abs().mean().backward()
    assert branched.noise_head.proj.weight.grad.abs().sum() > 0  # the zero conv still gets a gradient


def test_noise_branch_is_repeatable_with_a_generator():
    vae = _with_noise(4, channels=2)
    latents = torch.randn(1, 4, 12)
    with torch.no_grad():
        first = vae.decode(latents, generator=torch.Generator().manual_seed(3))
        again = vae.decode(latents, generator=torch.Generator().manual_seed(3))
        other = vae.decode(latents, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_noise_head_puts_noise_in_the_bands_its_gains_name_at_their_level_in_float32():
    # hop 64, window 256 at 16 kHz: 129 bins in 8 bands of 1 kHz; band 5 (5-6 kHz) alone at gain e^0
    from latentaudio.vae.heads import NoiseHead

    head = NoiseHead(in_dim=3, channels=1, hop=64, bands=8, activation=lambda dim: torch.nn.Identity())
    with torch.no_grad():
        head.proj.bias.fill_(-30.0)
        head.proj.bias[5] = 0.0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        noise = head(torch.randn(1, 3, 250), generator=torch.Generator().manual_seed(0))[0, 0]
    assert noise.dtype == torch.float32 and noise.shape == (250 * 64,)
    power = torch.fft.rfft(noise[512:-512]).abs().pow(2)
    frequency = torch.fft.rfftfreq(len(noise) - 1024, 1 / 16000)
    inside = power[(frequency > 5100) & (frequency < 5900)].mean()
    outside = power[(frequency < 4500) | (frequency > 6500)].mean()
    assert 10 * torch.log10(inside / outside) > 40
    # unit-power bins at unit gain: samples of the band's share of the bins' power, / 1.5 (above)
    in_band = int(((torch.arange(129) * 8 // 129) == 5).sum())  # 16 of the 129 bins
    assert float(noise[512:-512].pow(2).mean()) == pytest.approx(in_band / 128 / 1.5, rel=0.15)


def test_noise_hop_and_bands_must_fit_the_decoder():
    with pytest.raises(ValueError, match=r"noise_hop=3: .*8, 2, 1"):
        _with_noise(4, noise_hop=3)
    with pytest.raises(ValueError, match=r"noise_bands=64: .*17 STFT bins"):
        _with_noise(64, noise_hop=8)
    with pytest.raises(FormatError, match="noise branch"):  # make export-sat
        autoencoder_section({"noise_bands": 8, "strides": [2, 4], "channel_mults": [1, 2]})


def test_noise_head_adds_nothing_below_its_lowest_frequency():
    from latentaudio.vae.heads import NoiseHead

    head = NoiseHead(
        in_dim=3, channels=1, hop=64, bands=8, activation=lambda d: torch.nn.Identity(), lowest=0.25
    )
    with torch.no_grad():
        head.proj.bias.fill_(0.0)  # every band at unit gain
        noise = head(torch.randn(1, 3, 250), generator=torch.Generator().manual_seed(0))[0, 0]
    power = torch.fft.rfft(noise[512:-512]).abs().pow(2)
    frequency = torch.fft.rfftfreq(len(noise) - 1024, 1 / 16000)
    below, above = power[frequency < 1700].mean(), power[frequency > 2300].mean()  # Nyquist / 4 = 2 kHz
    assert 10 * torch.log10(above / below) > 40
    with pytest.raises(ValueError, match=r"noise_lowest=1\.0"):
        NoiseHead(in_dim=3, channels=1, hop=64, bands=8, activation=lambda d: torch.nn.Identity(), lowest=1.0)
