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
import torch.nn.functional as F
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


def _stft(audio: Tensor, n_fft: int, window: Tensor) -> Tensor:
    """(B * C, F, frames): the STFT of (B, C, T) audio with a quarter-window hop; a clip shorter
    than one window is zero-padded to it (the STFT's reflection padding needs n_fft // 2)."""
    flat = audio.reshape(-1, audio.shape[-1])
    flat = F.pad(flat, (0, max(0, n_fft - flat.shape[-1])))
    return torch.stft(flat, n_fft, n_fft // 4, window=window, return_complex=True)


def tempo(audio: Tensor, sample_rate: int, rate: float, n_fft: int | None = None) -> Tensor:
    """``rate`` times faster at the same pitch, ``round(T / rate)`` samples: a phase vocoder
    (``torchaudio.functional.phase_vocoder``) over an STFT with a quarter-window hop."""
    check_rate(rate)
    n_fft = n_fft or vocoder_fft_size(sample_rate)
    hop = n_fft // 4
    batch, channels, samples = audio.shape
    window = torch.hann_window(n_fft, device=audio.device)
    spectrum = _stft(audio, n_fft, window)  # (BC, F, frames)
    advance = torch.linspace(0, math.pi * hop, n_fft // 2 + 1, device=audio.device)[:, None]  # (F, 1)
    stretched = AF.phase_vocoder(spectrum, rate, advance)  # (BC, F, ceil(frames / rate))
    length = round(samples / rate)
    out = torch.istft(stretched, n_fft, hop, window=window, length=max(length, n_fft))[..., :length]
    return out.reshape(batch, channels, length)


def envelope_transfer(
    target: Tensor,
    guide: Tensor,
    guide_reference: Tensor,
    sample_rate: int,
    n_mels: int = 64,
    seconds: float = 0.032,
    limit_db: float = 12.0,
    amount: float = 1.0,
) -> Tensor:
    """``target`` (B, C, T) with the spectral envelope change from ``guide_reference`` to
    ``guide`` (both (B, C, T), time-aligned with it): every STFT frame of ``target`` scaled, band
    by band, by the amplitude ratio of ``guide``'s to ``guide_reference``'s energy in ``n_mels``
    mel bands (within +-``limit_db``; ``amount`` < 1 applies that fraction of the change in
    dB), its phases and fine structure kept.

    ``Pipeline``'s ``stretch="hybrid"`` passes the phase vocoder's output as ``target``, the
    latent stretch as ``guide`` and the VAE's reconstruction of the vocoder's output as
    ``guide_reference``: the ratio is what the model changes about the vocoder's output in the
    VAE's own domain (its attacks, its noise), so the VAE's own error cancels, and what the VAE
    cannot code passes through untouched. ``guide == guide_reference`` gives ``target`` back.
    """
    if not (target.shape == guide.shape == guide_reference.shape and target.dim() == 3):
        raise ValueError(
            f"envelope_transfer needs three (B, C, T) signals of one shape, got {tuple(target.shape)}, "
            f"{tuple(guide.shape)} and {tuple(guide_reference.shape)}"
        )
    n_fft = vocoder_fft_size(sample_rate, seconds)
    batch, channels, samples = target.shape
    window = torch.hann_window(n_fft, device=target.device)
    bands = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate).to(target.device)

    def log_energy(audio: Tensor) -> Tensor:  # (BC, n_mels, frames)
        power = _stft(audio, n_fft, window).abs().square()
        return torch.log(torch.einsum("bft,fm->bmt", power, bands) + 1e-10)

    limit = limit_db / 20.0 * math.log(10.0)
    band_gain = (0.5 * amount * (log_energy(guide) - log_energy(guide_reference))).clamp(-limit, limit)
    weights = bands.clone()  # each bin takes the mean of its bands' gains
    outside = weights.sum(dim=1) == 0  # DC and Nyquist, which no band weighs: the nearest band's
    if bool(outside.any()):
        centres = bands.argmax(dim=0).float()  # (n_mels,) the bin where each band peaks
        bins = torch.arange(bands.shape[0], device=bands.device, dtype=torch.float32)
        weights[outside.nonzero()[:, 0], (bins[outside, None] - centres[None]).abs().argmin(dim=1)] = 1.0
    weights = weights / weights.sum(dim=1, keepdim=True)
    bin_gain = torch.einsum("fm,bmt->bft", weights, band_gain).exp()
    shaped = _stft(target, n_fft, window) * bin_gain
    out = torch.istft(shaped, n_fft, n_fft // 4, window=window, length=max(samples, n_fft))[..., :samples]
    return out.reshape(batch, channels, samples)


def attack_mask(
    audio: Tensor,
    sample_rate: int,
    rise_db: float = 18.0,
    before: float = 0.016,
    after: float = 0.024,
    ramp: float = 0.008,
    floor_db: float = 40.0,
) -> Tensor:
    """(B, C, T) weights in [0, 1] around the attacks of ``audio`` (B, C, T): 1 from ``before``
    seconds ahead of each attack to ``after`` seconds past it, linear ramps of about ``ramp``
    seconds, 0 elsewhere. An attack is a frame (4 ms hop, channels mixed) whose energy is
    ``rise_db`` above the quietest frame of the 40 ms before it and within ``floor_db`` of the
    clip's loudest frame (so the rise of a noise floor is none).

    18 dB marks percussive attacks, where a phase vocoder smears most, and not a tonal
    instrument's next note: at 12 or 6 dB the note changes of orchestral music were spliced too,
    and their seams moved onsets (experiments/editing/results.md, top section)."""
    batch, channels, samples = audio.shape
    power = audio.mean(dim=1, keepdim=True).square()  # (B, 1, T)
    hop = max(1, round(0.004 * sample_rate))
    energy = 10.0 * torch.log10(F.avg_pool1d(power, 2 * hop, hop, padding=hop)[:, 0] + 1e-10)  # (B, frames)
    frames = energy.shape[-1]
    look = max(1, round(0.04 * sample_rate / hop))
    ahead = F.pad(energy, (look, 0), value=1e9)[:, None]  # frame t sees t - look .. t - 1
    quietest = -F.max_pool1d(-ahead, look, 1)[:, 0, :frames]
    loud = energy > energy.amax(dim=-1, keepdim=True) - floor_db
    attacks = ((energy - quietest > rise_db) & loud).float()
    lead, tail = round(before * sample_rate / hop), round(after * sample_rate / hop)
    mask = F.max_pool1d(F.pad(attacks, (tail, lead))[:, None], lead + tail + 1, 1)  # (B, 1, frames)
    width = max(1, round(ramp * sample_rate / hop))
    mask = F.avg_pool1d(F.pad(mask, (width, width), mode="replicate"), 2 * width + 1, 1)
    mask = F.interpolate(mask, size=samples, mode="linear", align_corners=False)
    return mask.expand(batch, channels, samples)


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
