"""The stage-one autoencoder: an Oobleck-style waveform VAE in pure torch.

Encoder: a stem conv, then one block per stride (three dilated residual units, a SnakeBeta and
a strided conv), then a conv to ``2 * latent_dim`` channels: the posterior's mean and scale.
The decoder mirrors it with transposed convs. Every conv is weight-normed. Optionally
(``istft_hop``) a branch beside it writes short-time spectra from the decoder's features and
adds their inverse STFT to its output (`IstftHead`), and (``noise_bands``) another adds noise
shaped by gains it predicts (`NoiseHead`); both live in vae/heads.py.

The network is sized entirely by its constructor arguments, so the demo model, the tests'
tiny model and a Stable-Audio-size model are the same class:

    AudioVAE(channels=1, base_channels=32, channel_mults=(1, 2, 4, 8), strides=(2, 4, 4, 8))
    AudioVAE(channels=2, base_channels=128, channel_mults=(1, 2, 4, 8, 16),
             strides=(2, 4, 4, 8, 8), latent_dim=64)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.parametrizations import weight_norm

from latentaudio.vae.bands import PQMF
from latentaudio.vae.heads import Activation, IstftHead, NoiseHead
from latentaudio.vae.spectral import SpectralChannels

# The posterior scale never reaches zero, so log(scale) in the KL stays finite.
MIN_POSTERIOR_SCALE = 1e-4
# SnakeBeta divides by beta; a floor keeps one collapsing beta from blowing up the activations.
MIN_SNAKE_BETA = 1e-2


#################################################################################
#                                 Building blocks                               #
#################################################################################


def wn_conv1d(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.Conv1d(*args, **kwargs))


def wn_conv_transpose1d(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.ConvTranspose1d(*args, **kwargs))


def _snake_factors(log_alpha: Tensor, log_beta: Tensor, beta_floor: float) -> tuple[Tensor, Tensor]:
    """(2 alpha, 1 / (2 beta)), each (1, C, 1), in the parameters' dtype; beta floored at ``beta_floor``."""
    log_floor = math.log(beta_floor) if beta_floor > 0 else -math.inf
    return 2.0 * log_alpha.exp(), 0.5 * torch.exp(-log_beta.clamp(min=log_floor))


def snake_beta(x: Tensor, log_alpha: Tensor, log_beta: Tensor, beta_floor: float = MIN_SNAKE_BETA) -> Tensor:
    """x + 1/beta * sin^2(alpha * x), written as x + (1 - cos(2 alpha x)) / (2 beta).

    One transcendental and no square; evaluated in the input's dtype so bf16 activations stay
    bf16. Plain autograd: the formula `SnakeBeta` hands to torch.compile and that tests compare with.
    """
    factors = _snake_factors(log_alpha, log_beta, beta_floor)
    two_alpha, half_inv_beta = (factor.to(x.dtype) for factor in factors)
    return torch.addcmul(x + half_inv_beta, torch.cos(x * two_alpha), half_inv_beta, value=-1.0)  # (B, C, T)


class _SnakeBetaFunction(torch.autograd.Function):
    """`snake_beta`'s elementwise part with a hand-written backward.

    Autograd's own backward of the formula makes twelve full-size passes over (B, C, T) (cos
    backward alone is sin, neg, mul) and keeps x, 2 alpha x and cos(2 alpha x) for it; this one
    makes eight and keeps x and the cosine. The activations take 30-40% of the VAE's training
    step on a CPU, and the smaller saved set keeps the allocator from handing pages back
    to the OS between steps (see experiments/throughput/vae_network.md). The per-channel factors
    come in float32 and their gradients are summed in float32, so bf16 activations do not round
    sums over B * T elements to bf16.
    """

    @staticmethod
    def forward(ctx, x: Tensor, two_alpha: Tensor, half_inv_beta: Tensor) -> Tensor:
        # Out of place, unlike the backward: torch.compile (2.11) traces an in-place op on the
        # returned tensor here into wrong gradients (test_snake_beta_under_compile_matches_eager).
        two_alpha_x, half_inv_beta_x = two_alpha.to(x.dtype), half_inv_beta.to(x.dtype)  # (1, C, 1)
        cos = torch.cos(x * two_alpha_x)  # (B, C, T)
        ctx.save_for_backward(x, two_alpha, half_inv_beta, cos)
        return torch.addcmul(x + half_inv_beta_x, cos, half_inv_beta_x, value=-1.0)  # (B, C, T)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, two_alpha, half_inv_beta, cos = ctx.saved_tensors
        sum_dtype = torch.promote_types(x.dtype, two_alpha.dtype)  # bf16 sums in float32
        need_x, need_alpha, need_beta = ctx.needs_input_grad
        grad_x = grad_alpha = grad_beta = None
        if need_x or need_alpha:
            grad_sin = (x * two_alpha.to(x.dtype)).sin_().mul_(grad)  # (B, C, T); -cos' is sin
            if need_x:
                slope = (half_inv_beta * two_alpha).to(x.dtype)  # (1, C, 1)
                grad_x = torch.addcmul(grad, grad_sin, slope)  # (B, C, T)
            if need_alpha:
                grad_alpha = grad_sin.mul_(x).sum((0, 2), keepdim=True, dtype=sum_dtype)  # (1, C, 1)
                grad_alpha = grad_alpha.mul_(half_inv_beta).to(two_alpha.dtype)
        if need_beta:
            grad_one_minus_cos = torch.addcmul(grad, grad, cos, value=-1.0)  # (B, C, T)
            grad_beta = grad_one_minus_cos.sum((0, 2), keepdim=True, dtype=sum_dtype)  # (1, C, 1)
            grad_beta = grad_beta.to(half_inv_beta.dtype)
        return grad_x, grad_alpha, grad_beta


@functools.cache
def _compiled_snake() -> Callable:
    # Made on first use: importing the module must not start the compiler.
    return torch.compile(snake_beta)


class SnakeBeta(nn.Module):
    """x + 1/beta * sin^2(alpha * x), with per-channel alpha and beta stored as logs.

    ``compiled``: evaluate `snake_beta` through torch.compile, which fuses the forward and the
    backward into a pass each. Off by default: the compile time is paid before the first step,
    and a short run does not earn it back (figures: experiments/throughput/vae_network.md).
    ``beta_floor``: the smallest beta used (0: none); an imported network sets it at or below its
    smallest beta, so that the floor changes nothing it computes.
    """

    def __init__(self, channels: int, compiled: bool = False, beta_floor: float = MIN_SNAKE_BETA):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))
        self.log_beta = nn.Parameter(torch.zeros(1, channels, 1))
        self.compiled = compiled
        self.beta_floor = beta_floor

    def forward(self, x: Tensor) -> Tensor:
        if self.compiled:
            return _compiled_snake()(x, self.log_alpha, self.log_beta, self.beta_floor)  # (B, C, T)
        factors = _snake_factors(self.log_alpha, self.log_beta, self.beta_floor)  # (1, C, 1) each
        return _SnakeBetaFunction.apply(x, *factors)  # (B, C, T)


def _activation(dim: int, use_snake: bool, compile_snake: bool, snake_beta_floor: float) -> nn.Module:
    return SnakeBeta(dim, compiled=compile_snake, beta_floor=snake_beta_floor) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    """Snake, dilated k=7 conv, snake, 1x1 conv, plus the input."""

    def __init__(self, dim: int, dilation: int, activation: Activation):
        super().__init__()
        self.block = nn.Sequential(
            activation(dim),
            wn_conv1d(dim, dim, kernel_size=7, dilation=dilation, padding=3 * dilation),
            activation(dim),
            wn_conv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)  # (B, D, T)


class Downsample(nn.Module):
    """Strided conv with kernel 2*stride; output length is exactly input length / stride.

    The input is padded by stride // 2 on the left and the rest on the right. For an even stride
    the two are equal and the conv pads by itself, which spares a padded copy of its input.
    """

    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        even = stride % 2 == 0
        self.pad = None if even else (stride // 2, stride - stride // 2)
        self.conv = wn_conv1d(
            in_dim, out_dim, kernel_size=2 * stride, stride=stride, padding=stride // 2 if even else 0
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)  # (B, D_in, T + stride)
        return self.conv(x)  # (B, D_out, T / stride)


class Upsample(nn.Module):
    """Transposed conv with kernel 2*stride; output length is exactly input length * stride.

    The full output is trimmed by stride // 2 on the left and the rest on the right. For an even
    stride the transposed conv's own padding does that trim, so its output stays contiguous and
    the backward needs no zero-filled copy of the untrimmed gradient.
    """

    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        even = stride % 2 == 0
        self.trim = None if even else (stride // 2, stride - stride // 2)
        self.conv = wn_conv_transpose1d(
            in_dim, out_dim, kernel_size=2 * stride, stride=stride, padding=stride // 2 if even else 0
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)  # (B, D_out, T * stride), or (T + 1) * stride untrimmed
        if self.trim is not None:
            y = y[..., self.trim[0] : y.shape[-1] - self.trim[1]]  # (B, D_out, T * stride)
        return y


class EncoderBlock(nn.Sequential):
    def __init__(self, in_dim: int, out_dim: int, stride: int, dilations, activation: Activation):
        super().__init__(
            *[ResidualUnit(in_dim, d, activation) for d in dilations],
            activation(in_dim),
            Downsample(in_dim, out_dim, stride),
        )


class DecoderBlock(nn.Sequential):
    def __init__(self, in_dim: int, out_dim: int, stride: int, dilations, activation: Activation):
        super().__init__(
            activation(in_dim),
            Upsample(in_dim, out_dim, stride),
            *[ResidualUnit(out_dim, d, activation) for d in dilations],
        )


#################################################################################
#                                   The VAE                                     #
#################################################################################


@dataclass
class VAEOutput:
    reconstruction: Tensor  # (B, C, T), same T as the input
    latents: Tensor  # (B, latent_dim, F), sampled from the posterior
    mean: Tensor  # (B, latent_dim, F)
    scale: Tensor  # (B, latent_dim, F), posterior standard deviation
    kl: Tensor  # scalar, see kl_divergence
    # (B, C, T): the decoder's own output, reconstruction without the noise branch's random part
    # (NoiseHead); None without a noise branch, where it is the reconstruction itself
    determined: Tensor | None = None
    # (B,) bool: the items decoded with their detail channels (AudioVAE.forward's detail
    # dropout); None when every item was
    detail_kept: Tensor | None = None


def kl_divergence(mean: Tensor, scale: Tensor) -> Tensor:
    """KL(N(mean, scale^2) || N(0, 1)) in nats, summed over latent channels and averaged over
    batch and frames: the KL per latent frame.

    stable-audio-tools leaves out the factor 1/2, so its KL weight of 1e-4 is 2e-4 here.
    """
    mean, scale = mean.float(), scale.float()
    var = scale * scale
    return 0.5 * (mean * mean + var - 2.0 * torch.log(scale) - 1.0).sum(dim=1).mean()


class AudioVAE(nn.Module):
    """Waveform VAE: audio (B, channels, T) <-> latents (B, latent_dim, ceil(T / hop)).

    ``final_tanh``: squash the decoder's output into (-1, 1); off here as in Stable Audio Open's
    decoder (stable-audio-tools' Oobleck turns it on unless told). ``snake_beta_floor``: see
    `SnakeBeta`. ``bands`` > 1: code ``bands`` pseudo-QMF sub-bands at 1/bands of the rate
    (`latentaudio.vae.bands`) instead of the waveform; the hop is then bands x the strides.
    ``istft_hop`` > 0: add an `IstftHead` branch fed by the decoder's features at one frame per
    ``istft_hop`` output samples (the hop itself, or the hop after each decoder block: on the
    demo's hop 256 with strides 2, 4, 8, one of 256, 32, 8 or 4); its audio is added to the
    decoder's. ``noise_bands`` > 0: add a `NoiseHead` predicting that many noise gains a frame,
    fed at one frame per ``noise_hop`` output samples (0: the latent rate), none of it below
    ``noise_lowest`` x the Nyquist frequency; decoding is then random.

    ``spectral_channels`` > 0: the first that many of the ``latent_dim`` channels are not learnt
    but the input's log mel powers at the latent rate (`LogMel`): a phase-free description of the
    audio that a diffusion model can average over without turning notes into a wash. The rest
    (the "detail") are learnt as usual and carry what the mel powers lack, the phase among it;
    a decoder trained with detail dropout (`forward`) also decodes the spectral channels alone
    (`drop_detail`), making its own phase. ``spectral_chroma``: the last 12 of them are the pitch
    classes' log powers instead (`LogChroma`), for decodes from them to keep the notes (not learnt
    at the demo's 2400 steps: experiments/vae_fidelity/results.md). ``sample_rate``:
    the audio's, which the mel bands need (unused without spectral channels).
    """

    def __init__(
        self,
        channels: int = 1,
        base_channels: int = 32,
        channel_mults=(1, 2, 4, 8),
        strides=(2, 4, 4, 8),
        latent_dim: int = 16,
        dilations=(1, 3, 9),
        use_snake: bool = True,
        compile_snake: bool = False,
        final_tanh: bool = False,
        snake_beta_floor: float = MIN_SNAKE_BETA,
        bands: int = 1,
        istft_hop: int = 0,
        noise_bands: int = 0,
        noise_hop: int = 0,
        noise_lowest: float = 0.0,
        spectral_channels: int = 0,
        spectral_chroma: bool = False,
        sample_rate: int = 0,
    ):
        super().__init__()
        if not 0 <= spectral_channels < latent_dim:
            raise ValueError(
                f"spectral_channels={spectral_channels}: must be at least 0 and below latent_dim={latent_dim} "
                "(the rest are the learnt detail channels)"
            )
        if len(channel_mults) != len(strides):
            raise ValueError(
                f"channel_mults and strides need one entry per block, got {len(channel_mults)} and {len(strides)}"
            )
        self.channels = channels
        self.latent_dim = latent_dim
        self.strides = tuple(int(s) for s in strides)
        self.bands = int(bands)
        self.pqmf = PQMF(self.bands) if self.bands > 1 else None
        self.hop = self.bands * math.prod(self.strides)
        self.spectral_channels = int(spectral_channels)
        self.spectral = (
            SpectralChannels(sample_rate, self.hop, self.spectral_channels, chroma=spectral_chroma)
            if self.spectral_channels
            else None
        )
        learnt = latent_dim - self.spectral_channels
        coded = channels * self.bands  # the waveform's channels, or its sub-bands
        # Block i maps widths[i] -> widths[i + 1]; the stem keeps base_channels, as in Oobleck.
        widths = [base_channels] + [base_channels * m for m in channel_mults]
        activation = functools.partial(
            _activation, use_snake=use_snake, compile_snake=compile_snake, snake_beta_floor=snake_beta_floor
        )

        self.encoder = nn.Sequential(
            wn_conv1d(coded, widths[0], kernel_size=7, padding=3),
            *[
                EncoderBlock(widths[i], widths[i + 1], s, dilations, activation)
                for i, s in enumerate(self.strides)
            ],
            activation(widths[-1]),
            wn_conv1d(widths[-1], 2 * learnt, kernel_size=3, padding=1),
        )
        self.decoder = nn.Sequential(
            wn_conv1d(latent_dim, widths[-1], kernel_size=7, padding=3),
            *[
                DecoderBlock(widths[i + 1], widths[i], s, dilations, activation)
                for i, s in reversed(list(enumerate(self.strides)))
            ],
            activation(widths[0]),
            wn_conv1d(widths[0], coded, kernel_size=7, padding=3, bias=False),
            *([nn.Tanh()] if final_tanh else []),
        )
        self.istft_tap, self.istft_head = None, None
        if istft_hop:
            self.istft_tap = self._tap("istft_hop", int(istft_hop), final_tanh)
            tapped = widths[len(self.strides) - self.istft_tap]  # the stem's width at tap 0
            self.istft_head = IstftHead(tapped, channels, int(istft_hop), activation)
        self.noise_tap, self.noise_head = None, None
        if noise_bands:
            noise_hop = int(noise_hop) or self.hop
            self.noise_tap = self._tap("noise_hop", noise_hop, final_tanh)
            tapped = widths[len(self.strides) - self.noise_tap]
            self.noise_head = NoiseHead(
                tapped, channels, noise_hop, int(noise_bands), activation, float(noise_lowest)
            )

    def _tap(self, key: str, hop: int, final_tanh: bool) -> int:
        """The index of the decoder layer whose output a branch at ``hop`` output samples per
        frame reads: its stem (0) or one of its blocks."""
        taps, frame = {self.hop: 0}, self.hop
        for i, s in enumerate(reversed(self.strides)):
            frame //= s
            taps.setdefault(frame, i + 1)
        if hop not in taps or final_tanh:
            raise ValueError(
                f"{key}={hop}: the decoder has features at one frame per "
                f"{', '.join(map(str, sorted(taps, reverse=True)))} output samples; choose one of those"
                + (" (and final_tanh off: the branch adds after it)" if final_tanh else "")
            )
        return taps[hop]

    def encode_posterior(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and scale, each (B, latent_dim, ceil(T / hop)); zero-pads the end."""
        frames = math.ceil(audio.shape[-1] / self.hop)
        audio = F.pad(audio, (0, frames * self.hop - audio.shape[-1]))  # (B, C, F * hop)
        unbanded = audio
        if self.pqmf is not None:
            audio = self.pqmf.analysis(audio)  # (B, C * bands, F * hop / bands)
        h = self.encoder(audio).float()  # (B, 2 * learnt, F)
        mean, raw_scale = h.chunk(2, dim=1)  # (B, learnt, F) each
        scale = F.softplus(raw_scale) + MIN_POSTERIOR_SCALE
        if self.spectral is None:
            return mean, scale
        spectral = self.spectral(unbanded)  # (B, spectral_channels, F): fixed, so the least scale
        return torch.cat([spectral, mean], dim=1), torch.cat(
            [torch.full_like(spectral, MIN_POSTERIOR_SCALE), scale], dim=1
        )

    def encode(self, audio: Tensor, sample: bool = False) -> Tensor:
        mean, scale = self.encode_posterior(audio)
        return mean + scale * torch.randn_like(mean) if sample else mean  # (B, latent_dim, F)

    def drop_detail(self, latents: Tensor) -> Tensor:
        """The latents with their learnt detail channels zeroed (what `forward`'s detail dropout
        trains the decoder on): decoding them makes audio from the spectral channels alone."""
        if self.spectral is None:
            raise ValueError("drop_detail: this VAE has no spectral channels (vae.spectral_channels=0)")
        kept = torch.zeros_like(latents)
        kept[:, : self.spectral_channels] = latents[:, : self.spectral_channels]
        return kept

    def decode(
        self,
        latents: Tensor,
        length: int | None = None,
        generator: torch.Generator | None = None,
        detail: bool = True,
    ) -> Tensor:
        """latents (B, latent_dim, F) -> audio (B, C, length or F * hop). ``generator``: the
        noise branch's random source (`NoiseHead`), for repeatable output; unused without one.
        ``detail=False``: from the spectral channels alone (`drop_detail`). With spectral channels
        the noise branch only serves those decodes: the detail codes what its noise would guess."""
        if not detail:
            latents = self.drop_detail(latents)
        audio, noise = self.decode_parts(latents, length, generator)
        if noise is None or (self.spectral is not None and detail):
            return audio
        return audio + noise

    def decode_parts(
        self, latents: Tensor, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """`decode`'s audio as what the latents determine and the noise branch's random part
        (None without one), each (B, C, length or F * hop): the training losses that need a
        phase (the waveform L1) see the first only."""
        branches, noise = [], None
        if self.istft_head is None and self.noise_head is None:
            audio = self.decoder(latents)
        else:
            audio = latents
            for i, layer in enumerate(self.decoder):
                audio = layer(audio)
                if i == self.istft_tap:
                    branches.append(self.istft_head(audio))  # (B, C, F * hop)
                if i == self.noise_tap:
                    noise = self.noise_head(audio, generator)  # (B, C, F * hop)
        audio = audio.float()  # (B, C, F * hop), float32 even under autocast
        if self.pqmf is not None:
            audio = self.pqmf.synthesis(audio)  # from (B, C * bands, F * hop / bands)
        for branch in branches:
            audio = audio + branch
        if length is not None:
            audio, noise = audio[..., :length], None if noise is None else noise[..., :length]
        return audio, noise  # (B, C, length) each

    def forward(self, audio: Tensor, latent_noise: float = 0.0, detail_dropout: float = 0.0) -> VAEOutput:
        """``latent_noise`` > 0: the decoder sees the latents plus Gaussian noise of a random
        level in [0, latent_noise] times each item's latent standard deviation, so it learns to
        decode the imperfect latents a diffusion model makes (a regulariser of the latent space).
        ``detail_dropout`` > 0 (with spectral channels): that share of the items is decoded from
        its spectral channels alone (`drop_detail`); `VAEOutput.detail_kept` says which were not."""
        mean, scale = self.encode_posterior(audio)
        latents = mean + scale * torch.randn_like(mean)  # (B, latent_dim, F)
        decoded_from = latents
        if latent_noise > 0:
            level = latent_noise * torch.rand(latents.shape[0], 1, 1, device=latents.device)  # (B, 1, 1)
            spread = latents.detach().std(dim=(1, 2), keepdim=True)  # (B, 1, 1)
            decoded_from = latents + level * spread * torch.randn_like(latents)
        kept = None
        if detail_dropout > 0:
            if self.spectral is None:
                raise ValueError("detail_dropout needs spectral channels (vae.spectral_channels > 0)")
            kept = torch.rand(latents.shape[0], device=latents.device) >= detail_dropout  # (B,)
            decoded_from = torch.where(kept.view(-1, 1, 1), decoded_from, self.drop_detail(decoded_from))
        kl = kl_divergence(mean[:, self.spectral_channels :], scale[:, self.spectral_channels :])
        determined, noise = self.decode_parts(decoded_from, length=audio.shape[-1])  # (B, C, T) each
        if noise is not None and self.spectral is not None:  # noise only where the detail was dropped
            noise = noise * (0.0 if kept is None else (~kept).view(-1, 1, 1).to(noise))
        if noise is None:
            return VAEOutput(determined, latents, mean, scale, kl, detail_kept=kept)
        return VAEOutput(determined + noise, latents, mean, scale, kl, determined, kept)
