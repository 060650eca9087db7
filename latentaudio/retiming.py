"""The pitch, tempo and speed modes of ``Pipeline`` (``Pipeline.pitch``, ``.tempo``, ``.speed``,
``.latent_tempo``): the transform (latents stretched in time, a phase vocoder, the two combined
by :func:`hybrid_tempo`, or resampling: ``latentaudio.editing``), then, with ``strength`` > 0, the model regenerating that much of it
through ``Pipeline._edit``. Each function takes the pipeline first, as a method does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from latentaudio import editing

if TYPE_CHECKING:
    from latentaudio.pipeline import Pipeline


def pitch(
    pipeline: Pipeline,
    audio: torch.Tensor,
    sample_rate: int,
    semitones: float,
    strength: float = 0.0,
    stretch: str = "hybrid",
    **options,
) -> torch.Tensor:
    """Transpose by ``semitones`` at the same duration: stretched in time by the pitch factor
    (``stretch``, see :func:`tempo`) and resampled back to its length (``editing.pitch``).

    ``strength`` > 0 then regenerates that much of it with the model (as ``vary``). The
    default, 0, keeps the transform alone: on the demo models regenerating moved the result
    away from real audio (``experiments/editing/results.md``); a DiT that generates better
    than its VAE reconstructs may do better."""
    stretch_by = stretcher(pipeline, stretch)
    return transformed(
        pipeline,
        audio,
        sample_rate,
        lambda x: editing.pitch(x, pipeline.sample_rate, semitones, stretch_by),
        strength,
        **options,
    )


def tempo(
    pipeline: Pipeline,
    audio: torch.Tensor,
    sample_rate: int,
    rate: float,
    strength: float = 0.0,
    stretch: str = "hybrid",
    **options,
) -> torch.Tensor:
    """``rate`` times faster (0.8: slower) at the same pitch; ``strength`` as in :func:`pitch`.

    ``stretch="latent"`` stretches the clip's latents in time and decodes them
    (:func:`latent_tempo`: the decoder makes new waveform detail, so attacks stay sharp);
    ``"vocoder"`` runs a phase vocoder on the waveform (``editing.tempo``: no VAE in the
    way, but attacks smear); ``"hybrid"`` keeps the vocoder's waveform and gives it the latent
    stretch's spectral envelope (:func:`hybrid_tempo`)."""
    editing.check_rate(rate)
    stretch_by = stretcher(pipeline, stretch)
    return transformed(pipeline, audio, sample_rate, lambda x: stretch_by(x, rate), strength, **options)


def speed(
    pipeline: Pipeline, audio: torch.Tensor, sample_rate: int, rate: float, strength: float = 0.0, **options
) -> torch.Tensor:
    """Tape-style: ``rate`` times faster and ``12 log2(rate)`` semitones higher, by resampling
    (``editing.speed``); ``strength`` as in :func:`pitch` (0: the resampling alone)."""
    return transformed(pipeline, audio, sample_rate, lambda x: editing.speed(x, rate), strength, **options)


STRETCHES = {
    "latent": "stretch the latents",
    "vocoder": "phase vocoder",
    "hybrid": "the vocoder's waveform, the latent stretch's envelope",
}


def stretcher(pipeline: Pipeline, stretch: str) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """``stretch(audio, rate)`` at the model's rate: one of :data:`STRETCHES` (see :func:`tempo`)."""
    if stretch == "latent":
        return lambda audio, rate: latent_tempo(pipeline, audio, rate)
    if stretch == "vocoder":
        return lambda audio, rate: editing.tempo(audio, pipeline.sample_rate, rate)
    if stretch == "hybrid":
        return lambda audio, rate: hybrid_tempo(pipeline, audio, rate)
    raise ValueError(f"stretch={stretch!r}: {stretch_choices()}")


def stretch_choices() -> str:
    return "choose " + ", ".join(f"{name} ({what})" for name, what in STRETCHES.items())


def latent_tempo(pipeline: Pipeline, audio: torch.Tensor, rate: float) -> torch.Tensor:
    """(B, C, T) at the model's rate played ``rate`` times faster at the same pitch, as
    ``round(T / rate)`` samples: its latents stretched in time (``editing.stretch_latents``)
    and decoded."""
    editing.check_rate(rate)
    length = round(audio.shape[-1] / rate)
    latents = pipeline.encode(audio, pipeline.sample_rate)
    frames = max(1, math.ceil(length / pipeline.autoencoder.hop))
    return pipeline.decode(editing.stretch_latents(latents, frames), length=length)


# how much of the model's envelope change the hybrid stretch applies (in dB): half was as close to
# the real clips as all of it on the demo's and closer on real music, where all of it sharpened
# attacks past the original's and moved onsets (experiments/editing/results.md, top section)
ENVELOPE_AMOUNT = 0.5


def hybrid_tempo(pipeline: Pipeline, audio: torch.Tensor, rate: float, **attacks) -> torch.Tensor:
    """(B, C, T) at the model's rate ``rate`` times faster, ``round(T / rate)`` samples: the phase
    vocoder's output (``editing.tempo``) given the spectral envelope change that the model makes
    of it (``editing.envelope_transfer``: the latent stretch of the clip against the VAE's
    reconstruction of the vocoder's output), and the latent stretch itself around its attacks
    (``editing.attack_mask``, options ``attacks``), which the vocoder smears. The vocoder keeps
    the pitch and whatever the VAE cannot code; the model brings the texture and the attacks."""
    rate_hz = pipeline.sample_rate
    vocoded = editing.tempo(audio, rate_hz, rate)
    guide = latent_tempo(pipeline, audio, rate)
    # through the very path the guide takes (latent_tempo), so that the VAE's error cancels in the ratio
    reference = pipeline.decode(pipeline.encode(vocoded, rate_hz), length=vocoded.shape[-1])
    shaped = editing.envelope_transfer(vocoded, guide, reference, rate_hz, amount=ENVELOPE_AMOUNT)
    mask = editing.attack_mask(guide, rate_hz, **attacks)
    return shaped * (1.0 - mask) + guide * mask


def transformed(
    pipeline: Pipeline,
    audio: torch.Tensor,
    sample_rate: int,
    transform: Callable[[torch.Tensor], torch.Tensor],
    strength: float,
    n: int = 1,
    **options,
) -> torch.Tensor:
    """``transform`` of the input at the model's rate, noised to t = ``strength`` and sampled back."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(
            f"strength={strength}: it must be in [0, 1] (0: the transform alone, 1: ignore the input)"
        )
    if strength == 0.0:
        return transform(pipeline.autoencoder.prepare(audio, sample_rate)).repeat_interleave(n, dim=0)
    return pipeline._edit(
        audio,
        sample_rate,
        lambda x, length: editing.vary(x, length, strength),
        transform=transform,
        n=n,
        **options,
    )
