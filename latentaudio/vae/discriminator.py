"""Discriminators for stage one.

Both return, for audio (B, C, T), a list with one ``(logits, feature_maps)`` entry per
sub-discriminator; ``feature_maps`` are the activations after each hidden layer, for the
feature-matching loss.

The defaults are small on purpose: the EnCodec reference (64 filters, 5 STFT scales) costs
about 20 s per step on 2 CPU cores, far more than the generator it trains. Scale filters and
scales up for GPU runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

LEAKY_SLOPE = 0.2


def _wn_conv2d(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.Conv2d(*args, **kwargs))


#################################################################################
#                       Multi-scale STFT (EnCodec style)                        #
#################################################################################


class STFTDiscriminator(nn.Module):
    """2-D convs over a complex spectrogram, real and imaginary parts as input channels.

    Layers: a stem conv, one conv per dilation with stride 2 along frequency and that dilation
    along time, a 3x3 conv, and a 3x3 conv to one logit channel.
    """

    def __init__(
        self,
        channels: int,
        n_fft: int,
        hop_length: int,
        win_length: int,
        filters: int,
        max_filters: int,
        filters_scale: int = 1,
        dilations: Sequence[int] = (1, 2, 4),
        kernel_size: tuple[int, int] = (3, 9),
    ):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        padding = (kernel_size[0] // 2, kernel_size[1] // 2)

        widths = [min(filters * filters_scale**i, max_filters) for i in range(len(dilations) + 1)]
        layers = [_wn_conv2d(2 * channels, widths[0], kernel_size, padding=padding)]
        for i, dilation in enumerate(dilations):
            layers.append(
                _wn_conv2d(
                    widths[i],
                    widths[i + 1],
                    kernel_size,
                    stride=(1, 2),
                    dilation=(dilation, 1),
                    padding=(dilation * padding[0], padding[1]),
                )
            )
        layers.append(_wn_conv2d(widths[-1], widths[-1], (3, 3), padding=(1, 1)))
        self.layers = nn.ModuleList(layers)
        self.conv_post = _wn_conv2d(widths[-1], 1, (3, 3), padding=(1, 1))

    def spectrogram(self, x: Tensor) -> Tensor:
        batch, channels, length = x.shape
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(
                x.float().reshape(batch * channels, length),
                self.n_fft,
                self.hop_length,
                self.win_length,
                self.window,
                center=False,
                normalized=True,
                return_complex=True,
            )  # (B * C, n_fft // 2 + 1, frames)
        spec = torch.view_as_real(spec).reshape(batch, channels, *spec.shape[1:], 2)  # (B, C, W, T, 2)
        return spec.permute(0, 1, 4, 3, 2).reshape(batch, 2 * channels, spec.shape[3], spec.shape[2])

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = self.spectrogram(x)  # (B, 2C, frames, bins)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), LEAKY_SLOPE)  # (B, D, frames, bins')
            features.append(h)
        return self.conv_post(h), features  # (B, 1, frames, bins')


class MultiScaleSTFTDiscriminator(nn.Module):
    """One STFTDiscriminator per FFT size; hops default to a quarter of the window, windows to
    the FFT size."""

    def __init__(
        self,
        channels: int = 1,
        filters: int = 16,
        n_ffts: Sequence[int] = (1024, 512, 256),
        hop_lengths: Sequence[int] | None = None,
        win_lengths: Sequence[int] | None = None,
        max_filters: int = 256,
        filters_scale: int = 1,
    ):
        super().__init__()
        win_lengths = list(win_lengths) if win_lengths is not None else list(n_ffts)
        hop_lengths = list(hop_lengths) if hop_lengths is not None else [w // 4 for w in win_lengths]
        if not len(n_ffts) == len(hop_lengths) == len(win_lengths):
            raise ValueError("n_ffts, hop_lengths and win_lengths need the same length")
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(channels, n_fft, hop, win, filters, max_filters, filters_scale)
            for n_fft, hop, win in zip(n_ffts, hop_lengths, win_lengths)
        )

    def forward(self, x: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        return [discriminator(x) for discriminator in self.discriminators]


#################################################################################
#                         Multi-period (HiFi-GAN style)                         #
#################################################################################


class PeriodDiscriminator(nn.Module):
    """Folds audio (B, C, T) into (B, C, T / period, period) and convolves along time only."""

    def __init__(self, channels: int, period: int, filters: int, max_filters: int, kernel_size: int = 5):
        super().__init__()
        self.period = period
        widths = [channels] + [min(filters * 4**i, max_filters) for i in range(4)]
        layers = [
            _wn_conv2d(
                widths[i], widths[i + 1], (kernel_size, 1), stride=(3, 1), padding=(kernel_size // 2, 0)
            )
            for i in range(4)
        ]
        layers.append(_wn_conv2d(widths[-1], widths[-1], (kernel_size, 1), padding=(kernel_size // 2, 0)))
        self.layers = nn.ModuleList(layers)
        self.conv_post = _wn_conv2d(widths[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        batch, channels, length = x.shape
        pad = (-length) % self.period
        x = F.pad(x, (0, pad), mode="reflect" if pad < length else "constant")  # (B, C, T')
        h = x.reshape(batch, channels, -1, self.period)  # (B, C, T' / period, period)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), LEAKY_SLOPE)  # (B, D, T'', period)
            features.append(h)
        return self.conv_post(h), features  # (B, 1, T'', period)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self,
        channels: int = 1,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        filters: int = 16,
        max_filters: int = 256,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(channels, period, filters, max_filters) for period in periods
        )

    def forward(self, x: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        return [discriminator(x) for discriminator in self.discriminators]
