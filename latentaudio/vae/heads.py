"""The stage-one decoder's optional branches beside its transposed convs, both fed the decoder's
features at one frame per ``hop`` output samples and both running in float32: `IstftHead` writes
short-time spectra (``vae.istft_hop``), `NoiseHead` shapes white noise (``vae.noise_bands``).
`AudioVAE` (vae/model.py) builds them and adds their output to the decoder's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

Activation = Callable[[int], nn.Module]


class IstftHead(nn.Module):
    """A decoder branch that writes short-time spectra instead of samples: a snake, a k=3 conv
    to the real and imaginary parts of ``4 hop // 2 + 1`` bins per channel and frame, then an
    inverse STFT (Hann window of 4 hops), as Vocos does. A tone is then one slowly turning
    complex value in its bin, whatever its frequency, where the transposed convs must build every
    cycle of it. Its conv starts at zero, so the branch adds nothing until training gives it a
    use. Runs in float32. On the demo (fed at the latent rate) it raised SI-SDR and lost more of
    the upper bands (experiments/vae_fidelity/results.md), so no recipe turns it on.
    """

    OVERLAP = 4  # window / hop

    def __init__(self, in_dim: int, channels: int, hop: int, activation: Activation):
        super().__init__()
        self.channels, self.hop, self.n_fft = channels, int(hop), self.OVERLAP * int(hop)
        self.bins = self.n_fft // 2 + 1
        self.activation = activation(in_dim)
        self.proj = nn.Conv1d(in_dim, 2 * channels * self.bins, kernel_size=3, padding=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        """features (B, D, F) at one frame per ``hop`` output samples -> audio (B, channels, F * hop)."""
        x = self.proj(self.activation(features)).float()  # (B, 2 * C * bins, F)
        batch, _, frames = x.shape
        with torch.autocast(x.device.type, enabled=False):
            real, imag = x.reshape(batch * self.channels, 2, self.bins, frames).unbind(1)  # (B * C, bins, F)
            audio = torch.istft(
                torch.complex(real, imag),
                self.n_fft,
                self.hop,
                window=self.window.float(),
                center=True,
                normalized=True,  # bins of order the samples, not n_fft times them
                length=frames * self.hop,
            )  # (B * C, F * hop)
        return audio.reshape(batch, self.channels, frames * self.hop)


class NoiseHead(nn.Module):
    """A decoder branch that adds shaped noise (DDSP's filtered noise): a snake, a k=3 conv to
    ``bands`` log-gains per channel and frame, and white noise whose STFT (window of 4 hops) is
    scaled, bin by bin, by those gains spread over ``bands`` equal-width bands. What the latents
    cannot pin down sample by sample (hiss, the fast-changing sidebands of a bell, a breath) the
    waveform L1 answers with its conditional mean, silence; this branch gives the spectral terms
    a random source to fill it with at the right level (the L1 sees only the decoder's own output:
    `VAEOutput.determined`). The conv's weights start at zero and its bias at ``INIT_LOG_GAIN``: a flat
    floor below any signal. Decoding with it is random; pass a ``generator`` for repeatable output.
    Runs in float32. On the demo (64 bands at the latent rate) it lifts the label judge through the
    VAE from 84% to 99% and the demo DiT's labels from 78% to 100%, and costs SI-SDR (+5.4 to -5.4
    dB) and mel distance (0.266 to 0.311), so no recipe turns it on yet
    (experiments/vae_fidelity/results.md).
    """

    OVERLAP = 4  # window / hop
    # exp(-4): noise about 20 dB below a demo clip. Small enough not to hurt the first steps, and
    # large enough to be trained: a noise far below the decoder's own output moves the spectral
    # losses only to second order (its phase is random), so a branch started at exp(-7), 40 dB
    # down, stayed there for all 2400 steps of the demo recipe (experiments/vae_fidelity)
    INIT_LOG_GAIN = -4.0
    MAX_LOG_GAIN = 4.0  # a bound on the gains, so one diverging step cannot blow up the output

    def __init__(
        self, in_dim: int, channels: int, hop: int, bands: int, activation: Activation, lowest: float = 0.0
    ):
        super().__init__()
        self.channels, self.hop, self.n_fft, self.bands = (
            channels,
            int(hop),
            self.OVERLAP * int(hop),
            int(bands),
        )
        self.bins = self.n_fft // 2 + 1
        if not 1 <= self.bands <= self.bins:
            raise ValueError(
                f"noise_bands={bands}: a noise branch at hop {hop} has {self.bins} STFT bins; "
                f"choose 1 to {self.bins}"
            )
        self.activation = activation(in_dim)
        self.proj = nn.Conv1d(in_dim, channels * self.bands, kernel_size=3, padding=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.constant_(self.proj.bias, self.INIT_LOG_GAIN)
        # which band each STFT bin belongs to: equal-width bands from 0 Hz to Nyquist
        self.register_buffer(
            "band_of_bin", (torch.arange(self.bins) * self.bands // self.bins).long(), persistent=False
        )
        if not 0.0 <= float(lowest) < 1.0:
            raise ValueError(f"noise_lowest={lowest}: a fraction of the Nyquist frequency in [0, 1)")
        # the bins below ``lowest`` x Nyquist get no noise: the tonal lows stay the decoder's alone
        in_range = torch.arange(self.bins) >= float(lowest) * (self.bins - 1)
        self.register_buffer("in_range", in_range.float()[:, None], persistent=False)  # (bins, 1)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def gains(self, features: Tensor) -> Tensor:
        """features (B, D, F) -> per-band gains (B, channels, bands, F), float32."""
        log_gain = (
            self.proj(self.activation(features)).float().clamp(max=self.MAX_LOG_GAIN)
        )  # (B, C * bands, F)
        return log_gain.exp().reshape(features.shape[0], self.channels, self.bands, -1)

    def forward(self, features: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """features (B, D, F) at one frame per ``hop`` output samples -> noise (B, channels, F * hop)."""
        gains = self.gains(features)  # (B, C, bands, F)
        batch, _, _, frames = gains.shape
        with torch.autocast(gains.device.type, enabled=False):
            per_bin = gains[:, :, self.band_of_bin].reshape(batch * self.channels, self.bins, frames)
            per_bin = per_bin * self.in_range
            shape = (batch * self.channels, self.bins, frames, 2)
            white = torch.randn(
                shape, generator=generator, device=gains.device if generator is None else "cpu"
            )
            white = torch.view_as_complex(white.to(gains.device)) * math.sqrt(0.5)  # unit power per bin
            noise = torch.istft(
                white * per_bin,
                self.n_fft,
                self.hop,
                window=self.window.float(),
                center=True,
                normalized=True,
                length=frames * self.hop,
            )  # (B * C, F * hop)
        return noise.reshape(batch, self.channels, frames * self.hop)
