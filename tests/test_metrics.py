import math

import auraloss
import pytest
import torch
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from latentaudio.metrics import (
    SI_SDR_CAP_DB,
    frechet_distance,
    kernel_distance,
    mel_distance,
    mel_statistics_features,
    mfcc_features,
    mrstft_distance,
    si_sdr,
)

RATE = 16000


def _tones(n: int, seed: int, noise: float = 0.01, seconds: float = 0.5) -> torch.Tensor:
    """``(n, 1, T)`` decaying harmonic tones of random pitch plus white noise at ``noise`` RMS."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * RATE)) / RATE
    freqs = 220.0 * 2.0 ** torch.rand(n, 1, generator=generator)
    tone = sum(torch.sin(2 * math.pi * k * freqs * t) / k for k in (1, 2, 3)) * torch.exp(-3.0 * t)
    tone = 0.3 * tone / tone.pow(2).mean(dim=-1, keepdim=True).sqrt()
    return (tone + noise * torch.randn(n, t.numel(), generator=generator))[:, None]


def _with_noise_at_snr(reference: torch.Tensor, snr_db: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(seed))
    noise = noise * reference.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True)
    return reference + noise * 10 ** (-snr_db / 20)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These tensors are small: with two threads on a busy 2-core machine the ops wait on
    # each other and run tens of times slower than on one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def music():
    return _tones(3, seed=0, noise=0.0, seconds=1.0)  # (3, 1, T)


def test_identical_audio(music):
    assert torch.allclose(si_sdr(music, music), torch.full((3,), SI_SDR_CAP_DB))
    assert torch.allclose(si_sdr(1e-4 * music, 1e-4 * music), torch.full((3,), SI_SDR_CAP_DB))  # quiet too
    assert torch.equal(mrstft_distance(music, music), torch.zeros(3))
    assert torch.equal(mrstft_distance(music, music, sample_rate=RATE), torch.zeros(3))
    assert torch.equal(mel_distance(music, music, RATE), torch.zeros(3))


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_si_sdr_matches_known_snr(music, snr_db):
    estimate = _with_noise_at_snr(music, snr_db)
    assert torch.allclose(si_sdr(estimate, music), torch.full((3,), snr_db), atol=0.5)
    # (B, T) input and a stereo item give the same per-item values
    assert torch.allclose(si_sdr(estimate[:, 0], music[:, 0]), si_sdr(estimate, music))
    stereo = si_sdr(estimate.repeat(1, 2, 1), music.repeat(1, 2, 1))
    assert stereo.shape == (3,) and torch.allclose(stereo, si_sdr(estimate, music))


def test_the_metrics_are_the_libraries_per_item(music):
    """SI-SDR is torchmetrics', MR-STFT auraloss's with its default resolutions, item by item
    (auraloss alone takes one spectral-convergence norm over a whole batch)."""
    estimate = torch.cat([_with_noise_at_snr(music, 10.0)[:2], 0.5 * music[2:]])  # items differ
    expected_sisdr = scale_invariant_signal_distortion_ratio(
        estimate.double(), music.double(), zero_mean=True
    )
    # the scaled copy is exact: clamped to 100 dB
    expected_sisdr = expected_sisdr[:, 0].clamp(-SI_SDR_CAP_DB, SI_SDR_CAP_DB).float()
    assert torch.allclose(si_sdr(estimate, music), expected_sisdr, atol=1e-5)
    peer = auraloss.freq.MultiResolutionSTFTLoss(eps=1e-16)  # power floor: magnitudes >= 1e-8
    expected_mrstft = torch.stack([peer(e[None], r[None]) for e, r in zip(estimate, music)])
    assert torch.allclose(mrstft_distance(estimate, music), expected_mrstft, rtol=1e-5)
    assert not torch.allclose(peer(estimate, music), expected_mrstft.mean(), rtol=1e-3)


def test_scaling_changes_spectral_distances_but_not_si_sdr(music):
    estimate = _with_noise_at_snr(music, 20.0)
    assert torch.allclose(si_sdr(2 * estimate, music), si_sdr(estimate, music), atol=1e-4)
    assert (mrstft_distance(2 * estimate, music) > mrstft_distance(estimate, music)).all()
    assert (mel_distance(2 * estimate, music, RATE) > mel_distance(estimate, music, RATE)).all()


def test_distances_grow_with_noise(music):
    distances = [mrstft_distance(_with_noise_at_snr(music, snr), music) for snr in (30.0, 20.0, 10.0)]
    assert (distances[0] < distances[1]).all() and (distances[1] < distances[2]).all()
    mels = [mel_distance(_with_noise_at_snr(music, snr), music, RATE) for snr in (30.0, 20.0, 10.0)]
    assert (mels[0] < mels[1]).all() and (mels[1] < mels[2]).all()


def test_si_sdr_of_silence_is_the_floor(music):
    floor = torch.full((3,), -SI_SDR_CAP_DB)
    assert torch.equal(si_sdr(torch.zeros_like(music), music), floor)
    assert torch.equal(si_sdr(music, torch.zeros_like(music)), floor)


def test_shape_mismatch_is_refused(music):
    with pytest.raises(ValueError, match="differ in shape"):
        si_sdr(music[:, :, :-1], music)


def test_feature_shapes_and_variable_lengths():
    batch = _tones(4, seed=0)
    assert mel_statistics_features(batch, RATE).shape == (4, 128)
    assert mfcc_features(batch, RATE).shape == (4, 80)
    clips = [batch[0], batch[1, :, :6000], batch[2, 0]]  # (C, T) clips of any length, or (T,)
    assert mel_statistics_features(clips, RATE).shape == (3, 128)
    assert torch.isfinite(mfcc_features(clips, RATE)).all()


def test_features_do_not_depend_on_the_sample_rate():
    batch = _tones(2, seed=0)
    upsampled = torch.nn.functional.interpolate(batch, scale_factor=2, mode="linear")  # crude 32 kHz copy
    low, high = mel_statistics_features(batch, RATE), mel_statistics_features(upsampled, 2 * RATE)
    assert (low - high)[:, :40].abs().mean() < 0.1  # means of the bands below about 2 kHz agree


@pytest.mark.parametrize("features", [mel_statistics_features, mfcc_features])
def test_frechet_distance_is_zero_to_itself_and_grows_with_shift(features):
    base = features(_tones(16, seed=0), RATE)
    assert frechet_distance(base, base) < 1e-6 * torch.cov(base.double().T).trace().item()
    distances = [
        frechet_distance(base, features(_tones(16, seed=1, noise=level), RATE))
        for level in (0.01, 0.03, 0.1, 0.3)
    ]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_frechet_distance_handles_tiny_sets():
    a, b = torch.randn(3, 50, dtype=torch.float64), torch.randn(3, 50, dtype=torch.float64) + 1.0
    value = frechet_distance(a, b)
    assert math.isfinite(value) and value > 0
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_kernel_distance_is_unbiased():
    same_a = mel_statistics_features(_tones(24, seed=0), RATE)
    same_b = mel_statistics_features(_tones(24, seed=1), RATE)
    shifted = mel_statistics_features(_tones(24, seed=2, noise=0.1), RATE)
    different = kernel_distance(same_a, shifted)
    assert different > 0
    assert abs(kernel_distance(same_a, same_b)) < 0.05 * different
    subsets = kernel_distance(same_a, shifted, subsets=5, subset_size=12)
    assert subsets > 0 and math.isclose(subsets, different, rel_tol=0.5)
