"""Audio metrics that need no download: reconstruction distances and distribution distances.

Reconstruction metrics take ``(estimate, reference)`` shaped ``(B, C, T)`` or ``(B, T)`` and
return one value per item, shape ``(B,)``; channels are averaged within an item. The
reference always goes second (the spectral-convergence term divides by its norm).

Distribution metrics compare two sets of per-clip features ``(N, D)``, for instance
:func:`mel_statistics_features` or :func:`mfcc_features` of real and generated audio.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import auraloss
import torch
import torchaudio.transforms as T
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from latentaudio.audio import resample

SI_SDR_CAP_DB = 100.0
# auraloss's default resolutions, given at 44.1 kHz: (n_fft, hop, window).
STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
MEL_WINDOWS = (512, 1024, 2048)
FEATURE_RATE = 16000  # features resample to this, so sets at different rates compare


def _as_items(audio: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` or ``(B, C, T)`` to ``(B, C, T)``."""
    if audio.dim() == 2:
        return audio[:, None]
    if audio.dim() != 3:
        raise ValueError(f"expected audio shaped (B, T) or (B, C, T), got {tuple(audio.shape)}")
    return audio


def _check_pair(estimate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    estimate, reference = _as_items(estimate), _as_items(reference)
    if estimate.shape != reference.shape:
        raise ValueError(
            f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape"
        )
    return estimate, reference


# --------------------------------------------------------------------------------------
# Reconstruction
# --------------------------------------------------------------------------------------


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, per item ``(B,)``.

    torchmetrics' SI-SDR on zero-mean channels (Le Roux et al., 2019), computed in float64
    and averaged over channels. Values are clamped to ``[-100, 100]`` dB (``SI_SDR_CAP_DB``),
    so identical audio gives 100 dB; a silent (or constant) estimate gives -100 dB, where
    torchmetrics' absolute epsilon alone would give 0 dB, as if half the signal were right.
    """
    estimate, reference = _check_pair(estimate, reference)
    estimate, reference = estimate.double(), reference.double()
    value = scale_invariant_signal_distortion_ratio(estimate, reference, zero_mean=True)  # (B, C)
    silent = (estimate - estimate.mean(dim=-1, keepdim=True)).abs().amax(dim=-1) == 0
    value = value.masked_fill(silent, -SI_SDR_CAP_DB).clamp(-SI_SDR_CAP_DB, SI_SDR_CAP_DB)
    return value.mean(dim=-1).float()


@functools.lru_cache(maxsize=8)
def _mrstft_loss(sample_rate: int | None) -> auraloss.freq.MultiResolutionSTFTLoss:
    resolutions = STFT_RESOLUTIONS
    if sample_rate is not None:
        factor = sample_rate / 44100
        resolutions = []
        for n_fft, hop, window in STFT_RESOLUTIONS:
            n_fft = max(16, 2 ** round(math.log2(n_fft * factor)))
            resolutions.append(
                (n_fft, max(1, round(hop * factor)), min(n_fft, max(4, round(window * factor))))
            )
    fft_sizes, hops, windows = (list(column) for column in zip(*resolutions))
    # eps bounds the power, so 1e-16 floors magnitudes at 1e-8 before the log
    return auraloss.freq.MultiResolutionSTFTLoss(fft_sizes, hops, windows, eps=1e-16)


def mrstft_distance(
    estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int | None = None
) -> torch.Tensor:
    """Multi-resolution STFT distance per item ``(B,)``: auraloss's spectral convergence plus L1
    log magnitude, averaged over ``STFT_RESOLUTIONS`` (auraloss's defaults) and channels.

    Identical audio gives exactly 0. When ``sample_rate`` is given the window and hop lengths
    are scaled from 44.1 kHz so each resolution spans the same time at any rate; left
    ``None``, the sample counts are used as they are (auraloss's behaviour).
    """
    estimate, reference = _check_pair(estimate, reference)
    batch, channels, samples = reference.shape
    loss = _mrstft_loss(None if sample_rate is None else int(sample_rate))
    # one call per channel: auraloss's spectral convergence is one norm over its whole input
    rows = [
        loss(e[None, None], r[None, None])
        for e, r in zip(estimate.reshape(-1, samples).float(), reference.reshape(-1, samples).float())
    ]
    return torch.stack(rows).reshape(batch, channels).mean(dim=1)


@functools.lru_cache(maxsize=32)
def _mel_transform(sample_rate: int, n_fft: int, n_mels: int, device: str) -> T.MelSpectrogram:
    with warnings.catch_warnings():  # a tiny window can leave a low mel band empty; harmless here
        warnings.simplefilter("ignore", UserWarning)
        transform = T.MelSpectrogram(
            sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, power=1.0, pad_mode="constant"
        )
    return transform.to(device)


def _log_mel(audio: torch.Tensor, sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    transform = _mel_transform(int(sample_rate), n_fft, n_mels, str(audio.device))
    return torch.log10(transform(audio.float()).clamp_min(1e-5))  # (..., n_mels, frames)


def mel_distance(
    estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int, n_mels: int = 80
) -> torch.Tensor:
    """Mean L1 distance between log10 mel magnitudes, per item ``(B,)``.

    Averaged over windows of ``MEL_WINDOWS`` samples (hop a quarter window); the largest
    window uses ``n_mels`` bands and each halving of the window halves them, so no band of a
    short window is empty.
    """
    estimate, reference = _check_pair(estimate, reference)
    total = torch.zeros(reference.shape[0], device=reference.device)
    for n_fft in MEL_WINDOWS:
        bands = max(8, n_mels * n_fft // MEL_WINDOWS[-1])
        est, ref = (
            _log_mel(estimate, sample_rate, n_fft, bands),
            _log_mel(reference, sample_rate, n_fft, bands),
        )
        total += (est - ref).abs().mean(dim=(1, 2, 3))
    return total / len(MEL_WINDOWS)


# --------------------------------------------------------------------------------------
# Per-clip features for distribution metrics
# --------------------------------------------------------------------------------------


def mono_clips(audio: torch.Tensor | Sequence[torch.Tensor], sample_rate: int) -> list[torch.Tensor]:
    """Mono ``(T,)`` clips at ``FEATURE_RATE``, from a batch or a list of clips of any length."""
    if isinstance(audio, torch.Tensor):
        audio = _as_items(audio) if audio.dim() > 1 else audio[None, None]
        items = list(audio)
    else:
        items = [clip if clip.dim() > 1 else clip[None] for clip in audio]  # each (C, T)
    return [resample(clip.float().mean(dim=0), int(sample_rate), FEATURE_RATE) for clip in items]


def _mean_and_std(frames: torch.Tensor) -> torch.Tensor:
    """``(D, frames)`` to ``(2 D,)``."""
    return torch.cat([frames.mean(dim=-1), frames.std(dim=-1, unbiased=False)])


def mel_statistics_features(
    audio: torch.Tensor | Sequence[torch.Tensor], sample_rate: int, n_mels: int = 64
) -> torch.Tensor:
    """Per-clip mean and standard deviation over time of 16 kHz log-mel frames: ``(N, 2 n_mels)``.

    ``audio`` is ``(N, C, T)``, ``(N, T)`` or a list of ``(C, T)`` clips of any lengths;
    channels are averaged.
    """
    features = [
        _mean_and_std(_log_mel(clip, FEATURE_RATE, 1024, n_mels)) for clip in mono_clips(audio, sample_rate)
    ]
    return torch.stack(features)


@functools.lru_cache(maxsize=8)
def _mfcc_transform(n_mfcc: int, device: str) -> T.MFCC:
    melkwargs = {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "pad_mode": "constant"}
    return T.MFCC(FEATURE_RATE, n_mfcc=n_mfcc, log_mels=True, melkwargs=melkwargs).to(device)


def mfcc_features(
    audio: torch.Tensor | Sequence[torch.Tensor], sample_rate: int, n_mfcc: int = 20
) -> torch.Tensor:
    """Per-clip mean and standard deviation over time of MFCCs and their deltas: ``(N, 4 n_mfcc)``."""
    features = []
    for clip in mono_clips(audio, sample_rate):
        mfcc = _mfcc_transform(n_mfcc, str(clip.device))(clip)  # (n_mfcc, frames)
        deltas = torch.diff(mfcc, dim=-1) if mfcc.shape[-1] > 1 else torch.zeros_like(mfcc)
        features.append(torch.cat([_mean_and_std(mfcc), _mean_and_std(deltas)]))
    return torch.stack(features)


# --------------------------------------------------------------------------------------
# Distribution distances
# --------------------------------------------------------------------------------------


def _check_features(features_a: torch.Tensor, features_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(features_a).double().cpu(), torch.as_tensor(features_b).double().cpu()
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"features must be (N, D) with the same D, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError("each set needs at least 2 feature vectors")
    return a, b


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor, ridge: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``(N, D)``.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)``, in float64: the
    matrix square roots come from symmetric eigendecompositions (round-off negative
    eigenvalues set to 0) and the last trace is the sum of singular values of
    ``S_a^1/2 S_b^1/2``, so it stays finite and accurate when a covariance is singular. With fewer clips than
    dimensions (N <= D) the covariances are rank-deficient, so ``ridge`` times the mean
    variance is added to both diagonals; the distance of a set to itself stays 0. Values
    from small sets are biased upwards: compare them only at equal set sizes.
    """
    a, b = _check_features(features_a, features_b)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    if min(a.shape[0], b.shape[0]) <= a.shape[1]:
        scale = 0.5 * (cov_a.diagonal().mean() + cov_b.diagonal().mean())
        identity = torch.eye(a.shape[1], dtype=a.dtype) * ridge * scale.clamp_min(1e-12)
        cov_a, cov_b = cov_a + identity, cov_b + identity
    # tr((S_a^1/2 S_b S_a^1/2)^1/2) is the nuclear norm of S_a^1/2 S_b^1/2; singular values
    # keep the small directions accurate, where square roots of eigenvalues would not.
    cross = torch.linalg.svdvals(_psd_sqrt(cov_a) @ _psd_sqrt(cov_b)).sum()
    distance = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(distance), 0.0)


def _polynomial_mmd(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 (diagonals of the within-set kernels left out)."""
    m, n = x.shape[0], y.shape[0]
    k_xx = (gamma * x @ x.T + coef0) ** degree
    k_yy = (gamma * y @ y.T + coef0) ** degree
    k_xy = (gamma * x @ y.T + coef0) ** degree
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_distance(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    subsets: int = 1,
    subset_size: int | None = None,
    seed: int = 0,
) -> float:
    """Kernel (KID-style) distance: unbiased MMD^2 with ``k(x, y) = (gamma x.y + coef0)^degree``.

    ``gamma`` defaults to ``1 / D``. Unbiased, so two samples of one distribution give about
    0 (slightly negative is possible) at any set size. With ``subsets > 1`` the value is
    the mean over that many random subsets of ``subset_size`` clips per set (default: the
    smaller set's size), drawn with ``seed``, as KID does for large sets.
    """
    a, b = _check_features(features_a, features_b)
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    if subsets <= 1 and subset_size is None:
        return _polynomial_mmd(a, b, degree, gamma, coef0)
    size = min(subset_size or min(a.shape[0], b.shape[0]), a.shape[0], b.shape[0])
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(max(1, subsets)):
        pick_a = torch.randperm(a.shape[0], generator=generator)[:size]
        pick_b = torch.randperm(b.shape[0], generator=generator)[:size]
        values.append(_polynomial_mmd(a[pick_a], b[pick_b], degree, gamma, coef0))
    return sum(values) / len(values)
