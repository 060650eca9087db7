"""The spectral latent channels: an input's log mel powers at the latent rate, fixed, not learnt.

``AudioVAE(spectral_channels=K)`` puts these K values a frame first in its latents and learns
only the rest. They describe the audio without its phase, so a diffusion model unsure of a
note's phase still generates its power in the right bands; averaging learnt, phase-coded
latents over phase decodes to a wash instead (experiments/vae_fidelity/results.md, "Phase in
the latents"). Frame f looks at a Hann window of 4 hops centred on the f-th hop of the input,
the span the encoder's frame f codes.

Mel bands this coarse (32 over 8 kHz) do not resolve semitones below a kilohertz, so a clip
decoded from them alone keeps its timbre and loses its notes (the demo caption DiT's clips: 5% in
the asked key, against 59% decoded with their detail). ``chroma`` makes the last 12 channels the
pitch classes' log powers from a longer window (`LogChroma`), the notes without their phase; at
the demo's 2400 steps the decoder did not learn to use them (experiments/vae_fidelity/results.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

# Powers are of the STFT scaled by the window's sum (a sine of amplitude A peaks at A^2 / 4),
# floored at -60 dB below that of a full-scale sine, then mapped to about [-1.5, 1.5].
POWER_FLOOR = 1e-6
LOG_SCALE, LOG_SHIFT = 0.25, 2.0


class LogPowers(nn.Module):
    """Audio (B, C, F * hop) -> (B, filters, F): log powers of the channels' mean through fixed
    filters over the bins of an ``n_fft`` STFT, frame f on a Hann window centred on the f-th hop."""

    def __init__(self, hop: int, n_fft: int, banks: Tensor):
        super().__init__()
        self.hop, self.n_fft = hop, n_fft
        with torch.device("cpu"):
            window = torch.hann_window(n_fft)
        self.register_buffer("window", window / window.sum(), persistent=False)
        self.register_buffer("banks", banks, persistent=False)  # (n_fft / 2 + 1, filters)

    def forward(self, audio: Tensor) -> Tensor:
        mono = audio.float().mean(dim=1)  # (B, F * hop)
        left = (self.n_fft - self.hop) // 2
        padded = F.pad(mono.unsqueeze(1), (left, self.n_fft - self.hop - left)).squeeze(1)
        spectrum = torch.stft(
            padded, self.n_fft, self.hop, window=self.window, center=False, return_complex=True
        )  # (B, n_fft / 2 + 1, F)
        power = torch.einsum("bkf,km->bmf", spectrum.abs().pow(2), self.banks)  # (B, filters, F)
        return LOG_SCALE * torch.log(power + POWER_FLOOR) + LOG_SHIFT


def _need_rate(sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ValueError(
            "spectral channels need the audio's sample rate for their mel bands: pass AudioVAE("
            "sample_rate=...) (training sets it from data.sample_rate)"
        )


class LogMel(LogPowers):
    """Audio (B, C, F * hop) -> (B, bands, F): log mel powers (HTK) on a window of 4 hops."""

    def __init__(self, sample_rate: int, hop: int, bands: int):
        _need_rate(sample_rate)
        n_fft = 4 * hop
        with torch.device("cpu"):  # fixed filters, also when the module is built on the meta device
            banks = torchaudio.functional.melscale_fbanks(
                n_fft // 2 + 1, 0.0, sample_rate / 2, bands, sample_rate, norm=None, mel_scale="htk"
            )
        super().__init__(hop, n_fft, banks)


CHROMA_FFT_HOPS = 8  # the chroma window: 8 hops (128 ms at the demo's 16 kHz, 7.8 Hz bins)
# the notes and their first partials, not the bells' inharmonic upper ones
CHROMA_LOWEST_HZ = 100.0
CHROMA_HIGHEST_HZ = 2000.0


class LogChroma(LogPowers):
    """Audio (B, C, F * hop) -> (B, 12, F): log powers of the 12 pitch classes (C first).

    Each STFT bin between ``CHROMA_LOWEST_HZ`` and ``CHROMA_HIGHEST_HZ`` adds its power to the
    two pitch classes nearest its frequency, weighted by closeness in semitones, so a tone between
    two classes does not flicker between them; the window is ``CHROMA_FFT_HOPS`` hops."""

    def __init__(self, sample_rate: int, hop: int):
        _need_rate(sample_rate)
        n_fft = CHROMA_FFT_HOPS * hop
        with torch.device("cpu"):
            hz = torch.arange(n_fft // 2 + 1) * sample_rate / n_fft
            semitones = 12 * torch.log2(hz.clamp(min=1.0) / 440.0) + 9  # 0 at C, 9 at A
            distance = (semitones[:, None] - torch.arange(12)[None, :] + 6) % 12 - 6  # (bins, 12)
            banks = (1 - distance.abs()).clamp(min=0)
            banks[(hz < CHROMA_LOWEST_HZ) | (hz > min(CHROMA_HIGHEST_HZ, sample_rate / 2))] = 0
        super().__init__(hop, n_fft, banks)


class SpectralChannels(nn.Module):
    """Audio -> (B, channels, F): log mel powers, and with ``chroma`` the last 12 the pitch classes'."""

    def __init__(self, sample_rate: int, hop: int, channels: int, chroma: bool = False):
        super().__init__()
        if chroma and channels <= 12:
            raise ValueError(
                f"spectral_chroma needs more than 12 spectral channels (12 are the pitch classes), got {channels}"
            )
        self.mel = LogMel(sample_rate, hop, channels - 12 if chroma else channels)
        self.chroma = LogChroma(sample_rate, hop) if chroma else None

    def forward(self, audio: Tensor) -> Tensor:
        mel = self.mel(audio)
        return mel if self.chroma is None else torch.cat([mel, self.chroma(audio)], dim=1)
