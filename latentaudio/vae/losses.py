"""Stage-one losses: multi-resolution STFT reconstruction, adversarial, feature matching.

Discriminator outputs everywhere are lists with one ``(logits, feature_maps)`` entry per
sub-discriminator, as the discriminators in ``latentaudio.vae.discriminator`` return them.
"""

from __future__ import annotations

from collections.abc import Sequence

import auraloss
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentaudio.metrics import mel_distance

DiscriminatorOutputs = Sequence[tuple[Tensor, Sequence[Tensor]]]


def resolutions(
    fft_sizes: Sequence[int], hop_sizes: Sequence[int] | None, win_lengths: Sequence[int] | None
) -> tuple[list[int], list[int], list[int]]:
    """(fft sizes, hops, windows) of a multi-resolution loss: windows default to the FFT sizes,
    hops to a quarter window."""
    fft_sizes = [int(n) for n in fft_sizes]
    win_lengths = [int(n) for n in win_lengths] if win_lengths is not None else fft_sizes
    hop_sizes = [int(n) for n in hop_sizes] if hop_sizes is not None else [w // 4 for w in win_lengths]
    return fft_sizes, hop_sizes, win_lengths


def waveform_l1(prediction: Tensor, target: Tensor, preemphasis: float = 0.0, lowpass: float = 0.0) -> Tensor:
    """Mean L1 between the samples, (B, C, T) each. With ``preemphasis`` a in (0, 1), between
    x[t] - a x[t-1] of each instead: a first-order high-pass (gain 1 - a at 0 Hz, 1 + a at
    Nyquist) that weighs upper partials over the lows, as speech codecs do. With ``lowpass`` in
    (0, 1), between the parts of each below that fraction of the Nyquist frequency (a brick-wall
    filter on the FFT of the error): the phase is pinned where it is learnt early and the upper
    partials are left to the spectral terms, which reward them at any phase."""
    error = prediction - target
    if lowpass:  # the filters are linear: filtering the error filters both signals
        spectrum = torch.fft.rfft(error.float(), dim=-1)  # (B, C, T // 2 + 1)
        kept = torch.arange(spectrum.shape[-1], device=error.device) <= lowpass * (spectrum.shape[-1] - 1)
        error = torch.fft.irfft(spectrum * kept, n=error.shape[-1], dim=-1)  # (B, C, T)
    if preemphasis:
        error = error[..., 1:] - preemphasis * error[..., :-1]
    return error.abs().mean()


class SpectralReconstructionLoss(nn.Module):
    """Multi-resolution STFT distance (spectral convergence + log magnitude), after auraloss.

    Mono: one MR-STFT loss. Stereo with ``stereo_sum_diff``: the mean of the MR-STFT losses of
    the sum (L+R) and difference (L-R) signals, plus the left/right MR-STFT loss at half weight,
    as in Stable Audio. Other channel counts: channels are folded into the batch.

    auraloss divides the spectral-convergence term by the norm of its second argument, so the
    reference always goes second; passing the prediction there rewards loud output.

    The defaults suit 16 kHz crops of 0.5 s and up: windows from 2 ms to 128 ms, hop a quarter
    of the window. Perceptual (A-)weighting needs scipy, which auraloss imports lazily.
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int = 1,
        fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64, 32),
        hop_sizes: Sequence[int] | None = None,
        win_lengths: Sequence[int] | None = None,
        perceptual_weighting: bool = False,
        stereo_sum_diff: bool = True,
    ):
        super().__init__()
        fft_sizes, hop_sizes, win_lengths = resolutions(fft_sizes, hop_sizes, win_lengths)
        self.channels = channels
        self.use_sum_diff = stereo_sum_diff and channels == 2
        self.stft_loss = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=fft_sizes,
            hop_sizes=hop_sizes,
            win_lengths=win_lengths,
            sample_rate=sample_rate,
            perceptual_weighting=perceptual_weighting,
        )

    def _mrstft(self, prediction: Tensor, target: Tensor) -> Tensor:
        # (B, C, T) -> (B * C, 1, T): auraloss's A-weighting filter is mono.
        prediction = prediction.reshape(-1, 1, prediction.shape[-1])
        target = target.reshape(-1, 1, target.shape[-1])
        return self.stft_loss(prediction, target)  # the reference goes second, see the class doc

    def forward(self, prediction: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """prediction, target: (B, C, T). Returns the loss and its named parts (detached)."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} vs target {tuple(target.shape)}")
        # STFTs in float32: bf16 spectra are too coarse for a log-magnitude distance.
        with torch.autocast(prediction.device.type, enabled=False):
            prediction, target = prediction.float(), target.float()
            if not self.use_sum_diff:
                loss = self._mrstft(prediction, target)
                return loss, {"mrstft": loss.detach()}
            sum_loss = self._mrstft(prediction.sum(1, keepdim=True), target.sum(1, keepdim=True))
            diff_loss = self._mrstft(prediction[:, :1] - prediction[:, 1:], target[:, :1] - target[:, 1:])
            left_right_loss = self._mrstft(prediction, target)
            loss = 0.5 * (sum_loss + diff_loss) + 0.5 * left_right_loss
            parts = {"mrstft_sum": sum_loss, "mrstft_diff": diff_loss, "mrstft_left_right": left_right_loss}
            return loss, {name: value.detach() for name, value in parts.items()}


class ComplexSTFTLoss(nn.Module):
    """Phase-aware multi-resolution distance: L1 between power-law compressed complex STFTs.

    Each spectrum X becomes |X|^power * X / |X| (magnitude compressed, phase kept), and the term
    at each resolution is mean|X_pred - X_ref| / mean|X_ref|, averaged over resolutions. The
    magnitude-only MR-STFT loss leaves the phase free, so a reconstruction can sound close and
    still score far below 0 dB SI-SDR; this term pins the phase at every resolution, and the
    compression (0.3, as in speech enhancement) keeps quiet partials from vanishing under loud
    ones. Channels are folded into the batch.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64),
        hop_sizes: Sequence[int] | None = None,
        win_lengths: Sequence[int] | None = None,
        power: float = 0.3,
        eps: float = 1e-8,
    ):
        super().__init__()
        self.fft_sizes, self.hop_sizes, self.win_lengths = resolutions(fft_sizes, hop_sizes, win_lengths)
        if not len(self.fft_sizes) == len(self.hop_sizes) == len(self.win_lengths):
            raise ValueError("fft_sizes, hop_sizes and win_lengths need one entry per resolution")
        self.power = power
        self.eps = eps

    def _compressed(self, signal: Tensor, n_fft: int, hop: int, win: int) -> Tensor:
        window = torch.hann_window(win, device=signal.device)
        spectrum = torch.stft(
            signal, n_fft, hop, win, window=window, return_complex=True
        )  # (N, bins, frames)
        magnitude = spectrum.abs().clamp_min(self.eps)
        return torch.view_as_real(spectrum * magnitude.pow(self.power - 1.0))  # (N, bins, frames, 2)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        """prediction, target: (B, C, T); the reference goes second. Float32 under autocast."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} vs target {tuple(target.shape)}")
        with torch.autocast(prediction.device.type, enabled=False):
            prediction = prediction.float().reshape(-1, prediction.shape[-1])  # (B * C, T)
            target = target.float().reshape(-1, target.shape[-1])
            terms = []
            for n_fft, hop, win in zip(self.fft_sizes, self.hop_sizes, self.win_lengths):
                predicted = self._compressed(prediction, n_fft, hop, win)
                reference = self._compressed(target, n_fft, hop, win)
                terms.append((predicted - reference).abs().mean() / (reference.abs().mean() + self.eps))
            return torch.stack(terms).mean()


class MelDistanceLoss(nn.Module):
    """The evaluation's mel distance as a training term: mean L1 of log10 mel magnitudes
    (floor 1e-5) at windows of 512, 1024 and 2048 samples, as in DAC's mel loss.

    The MR-STFT term's log magnitudes weigh every linear-frequency bin alike; on the demo bells
    the decoder leaves energy 30 dB too loud in the lowest mel bands, where the bell has almost
    none, and neither that term nor the waveform L1 sees it (experiments/vae_fidelity).
    """

    def __init__(self, sample_rate: int):
        super().__init__()
        self.sample_rate = sample_rate

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        """prediction, target: (B, C, T); float32 under autocast. Returns the batch mean."""
        with torch.autocast(prediction.device.type, enabled=False):
            return mel_distance(prediction.float(), target.float(), self.sample_rate).mean()


#################################################################################
#                                 Adversarial                                   #
#################################################################################


def _check_kind(kind: str) -> None:
    if kind not in ("hinge", "lsgan"):
        raise ValueError(f"adversarial loss kind must be 'hinge' or 'lsgan', got {kind!r}")


def discriminator_loss(
    real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs, kind: str = "hinge"
) -> Tensor:
    """Summed over sub-discriminators, each term a mean over its logits.

    hinge: relu(1 - D(real)) + relu(1 + D(fake)); lsgan: (D(real) - 1)^2 + D(fake)^2.
    Pass fake audio detached when training the discriminator.
    """
    _check_kind(kind)
    total = 0.0
    for (real_logits, _), (fake_logits, _) in zip(real_outputs, fake_outputs, strict=True):
        if kind == "hinge":
            total = total + F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        else:
            total = total + (real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean()
    return total


def generator_adversarial_loss(fake_outputs: DiscriminatorOutputs, kind: str = "hinge") -> Tensor:
    """Summed over sub-discriminators. hinge: -D(fake) (unclipped, as in EnCodec and
    Stable Audio); lsgan: (D(fake) - 1)^2."""
    _check_kind(kind)
    total = 0.0
    for fake_logits, _ in fake_outputs:
        if kind == "hinge":
            total = total - fake_logits.mean()
        else:
            total = total + (fake_logits - 1).pow(2).mean()
    return total


def feature_matching_loss(
    real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs, eps: float = 1e-8
) -> Tensor:
    """Mean over all feature maps of L1(fake, real) / mean|real| (EnCodec's relative L1).

    Dividing by the real features' mean magnitude puts every layer on the same footing, so deep
    layers with small activations count as much as the first. Real features are detached; the
    result is a mean over layers, not a sum, so its scale does not grow with the layer count.
    """
    terms = []
    for (_, real_features), (_, fake_features) in zip(real_outputs, fake_outputs, strict=True):
        for real, fake in zip(real_features, fake_features, strict=True):
            real = real.detach()
            terms.append(F.l1_loss(fake, real) / (real.abs().mean() + eps))
    return torch.stack(terms).mean()
