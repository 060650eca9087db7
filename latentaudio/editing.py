"""What each editing mode asks of the sampler, as plain functions of the input's latents, and
the signal-processing transforms that the pitch, tempo and speed modes start from.

Every editing mode of ``Pipeline`` (vary, inpaint, extend, enhance, pitch, tempo, speed)
encodes its input (pitch, tempo and speed first transform it), turns the latents into an
``Edit`` with one of these functions, and hands it to the one routine that samples and decodes
(``Pipeline._edit``). Pure torch: no model is called here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
import torchaudio.functional as AF
from torch import Tensor

from latentaudio.dit.aligned import aligned_input


@dataclass(frozen=True)
class Edit:
    """One edit: ``frames`` latent frames to sample, decoded to ``length`` samples.

    known, keep: latents (B, D, frames) kept where ``keep`` (1, 1, frames) is 1 (RePaint).
    init, t_start: latents (B, D, frames) noised to ``t_start`` as the starting state (SDEdit).
    aligned_cond: (B, D + 1, frames) input of a DiT trained with aligned conditioning.
    """

    frames: int
    length: int
    known: Tensor | None = None
    keep: Tensor | None = None
    init: Tensor | None = None
    t_start: float = 1.0
    aligned_cond: Tensor | None = None


def vary(latents: Tensor, length: int, strength: float) -> Edit:
    """Noise the input's latents to t = ``strength`` (0: unchanged, 1: new) and sample them back."""
    return Edit(latents.shape[-1], length, init=latents, t_start=strength)


def inpaint(latents: Tensor, length: int, keep: Tensor) -> Edit:
    """Regenerate the frames where ``keep`` is 0; the others come back as the input's latents."""
    return Edit(latents.shape[-1], length, known=latents, keep=keep)


def keep_mask(ranges: list[tuple[float, float]], frames: int, seconds: float, frame_seconds: float) -> Tensor:
    """(1, 1, frames): 0 on every frame that overlaps one of ``ranges`` (seconds), 1 elsewhere."""
    if not ranges:
        raise ValueError("give at least one (start, end) range to inpaint")
    keep = torch.ones(1, 1, frames)
    for start, end in ranges:
        if not 0.0 <= start < end <= seconds + 1e-9:
            raise ValueError(
                f"range ({start}, {end}) s: need 0 <= start < end <= {seconds:.3f} (the clip's length)"
            )
        first = math.floor(start / frame_seconds)
        last = min(frames, math.ceil(end / frame_seconds - 1e-9))
        keep[..., first : max(last, first + 1)] = 0.0
    return keep


def extend(latents: Tensor, length: int, hop: int, added_frames: int, added_samples: int) -> Edit:
    """The input cut to whole latent frames as the known prefix, ``added_frames`` new ones after it.

    The output is the cut input (``length // hop`` frames) followed by ``added_samples`` samples.
    """
    whole = length // hop
    prefix = latents[..., :whole]
    known = torch.cat([prefix, prefix.new_zeros(*prefix.shape[:2], added_frames)], dim=-1)
    keep = torch.cat([torch.ones(1, 1, whole), torch.zeros(1, 1, added_frames)], dim=-1).to(latents.device)
    return Edit(whole + added_frames, whole * hop + added_samples, known=known, keep=keep)


def enhance(latents: Tensor, length: int) -> Edit:
    """Generate from noise with the degraded input's latents as the aligned input (all known)."""
    everything = torch.ones(1, 1, latents.shape[-1], device=latents.device)
    return Edit(latents.shape[-1], length, aligned_cond=aligned_input(latents, everything))


# --------------------------------------------------------------------------------------
# Signal-processing transforms: (B, C, T) at ``sample_rate`` in, (B, C, T') out
# --------------------------------------------------------------------------------------


def _fit_length(audio: Tensor, length: int) -> Tensor:
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))


def check_rate(rate: float, what: str = "rate") -> None:
    if not (math.isfinite(rate) and 0.25 <= rate <= 4.0):
        raise ValueError(f"{what}={rate}: give a factor between 0.25 and 4 (1 leaves the clip as it is)")


def speed(audio: Tensor, rate: float) -> Tensor:
    """Tape-style: ``rate`` times faster and higher, ``round(T / rate)`` samples (band-limited
    resampling; the factor is taken as a fraction with a denominator up to 200, which is
    within 0.001 semitone)."""
    check_rate(rate)
    fraction = Fraction(rate).limit_denominator(200)
    played = AF.resample(audio, fraction.numerator, fraction.denominator)
    return _fit_length(played, round(audio.shape[-1] / rate))


def vocoder_fft_size(sample_rate: int, seconds: float = 0.064) -> int:
    """The phase vocoder's FFT size: the power of two nearest to ``seconds`` (1024 at 16 kHz)."""
    return 2 ** round(math.log2(seconds * sample_rate))


def tempo(audio: Tensor, sample_rate: int, rate: float, n_fft: int | None = None) -> Tensor:
    """``rate`` times faster at the same pitch, ``round(T / rate)`` samples: a phase vocoder
    (``torchaudio.functional.phase_vocoder``) over an STFT with a quarter-window hop."""
    check_rate(rate)
    n_fft = n_fft or vocoder_fft_size(sample_rate)
    hop = n_fft // 4
    batch, channels, samples = audio.shape
    window = torch.hann_window(n_fft, device=audio.device)
    flat = audio.reshape(batch * channels, samples)
    if samples < n_fft:  # shorter than one window: the STFT's reflection padding needs n_fft // 2
        flat = torch.nn.functional.pad(flat, (0, n_fft - samples))
    spectrum = torch.stft(flat, n_fft, hop, window=window, return_complex=True)  # (BC, F, frames)
    advance = torch.linspace(0, math.pi * hop, n_fft // 2 + 1, device=audio.device)[:, None]  # (F, 1)
    stretched = AF.phase_vocoder(spectrum, rate, advance)  # (BC, F, ceil(frames / rate))
    length = round(samples / rate)
    out = torch.istft(stretched, n_fft, hop, window=window, length=max(length, n_fft))[..., :length]
    return out.reshape(batch, channels, length)


def pitch(
    audio: Tensor,
    sample_rate: int,
    semitones: float,
    stretch: Callable[[Tensor, float], Tensor] | None = None,
) -> Tensor:
    """Transposed by ``semitones`` at the same length: slowed by the pitch factor with
    ``stretch(audio, rate)`` (default: the phase vocoder, :func:`tempo`), then played that much
    faster (:func:`speed`)."""
    if not (math.isfinite(semitones) and abs(semitones) <= 24):
        raise ValueError(f"semitones={semitones}: give a shift between -24 and +24")
    if semitones == 0:
        return audio.clone()
    factor = 2.0 ** (semitones / 12.0)
    stretch = stretch or (lambda x, rate: tempo(x, sample_rate, rate))
    return _fit_length(speed(stretch(audio, 1.0 / factor), factor), audio.shape[-1])


def stretch_latents(latents: Tensor, frames: int) -> Tensor:
    """(B, D, F) -> (B, D, ``frames``): the latent sequence stretched in time by linear
    interpolation between frames, first and last frames kept. Decoded, it plays the clip's
    events at the new pace with the decoder's own waveform detail, so attacks stay sharp."""
    return torch.nn.functional.interpolate(latents, size=frames, mode="linear", align_corners=True)
