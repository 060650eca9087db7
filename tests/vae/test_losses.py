import pytest
import torch

from latentaudio.vae import (
    ComplexSTFTLoss,
    MelDistanceLoss,
    SpectralReconstructionLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from latentaudio.vae.losses import waveform_l1

FFT_SIZES = (512, 128, 32)


def tone(channels: int, length: int = 8000) -> torch.Tensor:
    torch.manual_seed(0)
    t = torch.arange(length) / 16000
    left = 0.5 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(length)
    right = 0.3 * torch.sin(2 * torch.pi * 660 * t) + 0.05 * torch.randn(length)
    return torch.stack([left, right][:channels]).expand(2, channels, length).clone()


@pytest.mark.parametrize("channels", [1, 2])
def test_reconstruction_loss_zero_for_identical_and_penalises_loud_output(channels):
    loss_fn = SpectralReconstructionLoss(16000, channels, fft_sizes=FFT_SIZES)
    target = tone(channels)
    same, parts = loss_fn(target.clone(), target)
    assert same.item() == pytest.approx(0.0, abs=1e-5)
    assert set(parts) == ({"mrstft"} if channels == 1 else {"mrstft_sum", "mrstft_diff", "mrstft_left_right"})
    # With the reference second, a 2x-loud prediction costs more than a 2x-quiet one of the
    # same log distance; swapped arguments would reward the loud one.
    loud, _ = loss_fn(2.0 * target, target)
    quiet, _ = loss_fn(0.5 * target, target)
    assert loud > quiet > 0.1


def test_complex_loss_sees_the_phase_the_magnitude_loss_leaves_free():
    """A copy with its polarity flipped has exactly the same magnitude spectra (and an SI-SDR of
    minus infinity): the MR-STFT loss scores it 0, the phase-aware complex term 2 (|-1 - 1|)."""
    magnitude = SpectralReconstructionLoss(16000, 1, fft_sizes=FFT_SIZES)
    complex_loss = ComplexSTFTLoss(fft_sizes=FFT_SIZES)
    target = tone(1)
    assert complex_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-6)
    assert magnitude(-target, target)[0].item() == pytest.approx(0.0, abs=1e-5)
    assert complex_loss(-target, target).item() == pytest.approx(2.0, rel=1e-4)
    # a quieter copy in phase costs little; a delayed one nearly as much as noise
    assert complex_loss(0.5 * target, target) < 0.3 < 1.0 < complex_loss(torch.roll(target, 20, -1), target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert complex_loss(target.to(torch.bfloat16), target).dtype == torch.float32


def test_reconstruction_loss_folds_extra_channels_and_handles_bf16():
    loss_fn = SpectralReconstructionLoss(16000, 2, fft_sizes=FFT_SIZES, stereo_sum_diff=False)
    target = tone(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, parts = loss_fn(target.to(torch.bfloat16), target)
    assert set(parts) == {"mrstft"} and loss.dtype == torch.float32 and torch.isfinite(loss)


def test_perceptual_weighting_runs_on_stereo():
    pytest.importorskip("scipy")  # auraloss's A-weighting filter is designed with scipy
    loss_fn = SpectralReconstructionLoss(16000, 2, fft_sizes=FFT_SIZES, perceptual_weighting=True)
    target = tone(2)
    assert loss_fn(target, target)[0].item() == pytest.approx(0.0, abs=1e-5)
    assert loss_fn(0.5 * target, target)[0] > 0.1


def outputs(logit_value: float, n: int = 2):
    return [
        (torch.full((2, 1, 5, 3), logit_value), [torch.full((2, 4, 5, 3), logit_value)]) for _ in range(n)
    ]


@pytest.mark.parametrize("kind", ["hinge", "lsgan"])
def test_adversarial_loss_signs(kind):
    confident = discriminator_loss(outputs(2.0), outputs(-2.0), kind)
    fooled = discriminator_loss(outputs(-2.0), outputs(2.0), kind)
    assert confident < fooled
    assert discriminator_loss(outputs(1.0), outputs(-1.0 if kind == "hinge" else 0.0), kind).item() == 0.0
    # The generator wants the discriminator to call its output real.
    assert generator_adversarial_loss(outputs(2.0), kind) < generator_adversarial_loss(outputs(-2.0), kind)
    with pytest.raises(ValueError):
        discriminator_loss(outputs(1.0), outputs(1.0), "wasserstein")


def test_feature_matching():
    real = outputs(3.0)
    assert feature_matching_loss(real, outputs(3.0)).item() == 0.0
    # Relative L1: |1 - 3| / |3| on every layer.
    assert feature_matching_loss(real, outputs(1.0)).item() == pytest.approx(2.0 / 3.0)
    fake = [(logits, [f.clone().requires_grad_() for f in feats]) for logits, feats in outputs(1.0)]
    feature_matching_loss(real, fake).backward()
    assert fake[0][1][0].grad is not None


def test_mel_loss_sees_quiet_energy_where_the_reference_has_none():
    """A 3 kHz tone plus a hum 50 dB down: invisible to the waveform L1, plain in the log-mel term."""
    t = torch.arange(16000) / 16000
    target = (0.5 * torch.sin(2 * torch.pi * 3000 * t))[None, None]
    hummed = (target + 0.0015 * torch.sin(2 * torch.pi * 120 * t)).requires_grad_()
    loss_fn = MelDistanceLoss(16000)
    assert loss_fn(target.clone(), target).item() == pytest.approx(0.0, abs=1e-6)
    assert (hummed - target).abs().mean() < 1e-3
    loss = loss_fn(hummed, target)
    assert loss > 0.1
    loss.backward()
    assert torch.isfinite(hummed.grad).all() and hummed.grad.abs().sum() > 0


def test_preemphasised_waveform_l1_weighs_high_errors_over_low_ones():
    t = torch.arange(16000) / 16000
    reference = torch.zeros(1, 1, 16000)
    low = 0.1 * torch.sin(2 * torch.pi * 150 * t)[None, None]  # the same error, at 150 Hz ...
    high = 0.1 * torch.sin(2 * torch.pi * 3000 * t)[None, None]  # ... and at 3 kHz
    plain_low, plain_high = waveform_l1(low, reference).item(), waveform_l1(high, reference).item()
    assert plain_low == pytest.approx(plain_high, rel=0.02)  # the mean |sin| of sampled tones
    assert waveform_l1(low, reference, 0.0).item() == plain_low
    ratio = waveform_l1(high, reference, 0.9).item() / waveform_l1(low, reference, 0.9).item()
    gain = lambda f: abs(1 - 0.9 * complex(torch.exp(torch.tensor(-2j * torch.pi * f / 16000))))  # noqa: E731
    assert ratio == pytest.approx(gain(3000) / gain(150), rel=0.02) and ratio > 8


def test_lowpassed_waveform_l1_sees_only_errors_below_the_cut():
    t = torch.arange(16000) / 16000
    reference = torch.zeros(1, 1, 16000)
    low = 0.1 * torch.sin(2 * torch.pi * 150 * t)[None, None]
    high = 0.1 * torch.sin(2 * torch.pi * 3000 * t)[None, None]
    cut = 1000 / 8000  # 1 kHz at 16 kHz
    assert waveform_l1(low, reference, lowpass=cut).item() == pytest.approx(
        waveform_l1(low, reference).item(), rel=1e-3
    )
    assert (
        waveform_l1(high, reference, lowpass=cut).item() < 1e-3 * waveform_l1(high, reference).item()
    )  # float32 FFT
    assert waveform_l1(low + high, reference, lowpass=cut).item() == pytest.approx(
        waveform_l1(low, reference).item(), rel=1e-3
    )
    prediction = (low + high).requires_grad_(True)  # nothing pushes on the upper partial
    waveform_l1(prediction, reference, lowpass=cut).backward()
    spectrum = torch.fft.rfft(prediction.grad[0, 0]).abs().pow(2)  # bins 1 Hz apart
    assert spectrum[1001:].sum() < 1e-9 * spectrum.sum() and spectrum[150] > 0.1 * spectrum.sum()
