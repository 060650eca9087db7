"""The spectral latent channels: an input's log mel powers at the latent rate, fixed, not learnt.

``AudioVAE(spectral_channels=K)`` puts these K values a frame first in its latents and learns
only the rest. They describe the audio without its phase, so a diffusion model unsure of a
note's phase still generates its power in the right bands; averaging learnt, phase-coded
latents over phase decodes to a wash instead (experiments/vae_fidelity/results.md, "Phase in
the latents"). Frame f looks at a Hann window of 4 hops centred on the f-th hop of the input,
the span the encoder's frame f codes.
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


class LogMel(nn.Module):
    """Audio (B, C, F * hop) -> (B, bands, F): log mel powers of the channels' mean."""

    def __init__(self, sample_rate: int, hop: int, bands: int):
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(
                "spectral channels need the audio's sample rate for their mel bands: pass AudioVAE("
                "sample_rate=...) (training sets it from data.sample_rate)"
            )
        self.hop, self.n_fft = hop, 4 * hop
        with torch.device("cpu"):  # fixed filters, also when the module is built on the meta device
            window = torch.hann_window(self.n_fft)
            banks = torchaudio.functional.melscale_fbanks(
                self.n_fft // 2 + 1, 0.0, sample_rate / 2, bands, sample_rate, norm=None, mel_scale="htk"
            )  # (n_fft / 2 + 1, bands)
        self.register_buffer("window", window / window.sum(), persistent=False)
        self.register_buffer("banks", banks, persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        mono = audio.float().mean(dim=1)  # (B, F * hop)
        left = (self.n_fft - self.hop) // 2
        padded = F.pad(mono.unsqueeze(1), (left, self.n_fft - self.hop - left)).squeeze(1)
        spectrum = torch.stft(
            padded, self.n_fft, self.hop, window=self.window, center=False, return_complex=True
        )  # (B, n_fft / 2 + 1, F)
        power = torch.einsum("bkf,km->bmf", spectrum.abs().pow(2), self.banks)  # (B, bands, F)
        return LOG_SCALE * torch.log(power + POWER_FLOOR) + LOG_SHIFT
