"""Text to speech with a phoneme-trained DiT: :func:`speak`, which is ``Pipeline.speak``.

The utterance is planned by :mod:`latentaudio.speech.units` (phonemes and durations); a voice
prompt gives the known frames before the text (its end) and the voice's latent statistics (all
of it); then the pipeline samples the window(s) and decodes.
"""

from __future__ import annotations

import torch

from latentaudio.dit.conditioning import voice_statistics
from latentaudio.speech import units
from latentaudio.speech.symbols import SymbolVocabulary


def speak(
    pipe,
    text: str,
    prompt: torch.Tensor | None = None,
    sample_rate: int | None = None,
    prompt_text: str | None = None,
    seconds: float | None = None,
    n: int = 1,
    seed: int = 0,
    progress: bool = False,
    prompt_window: float = 0.25,
    phoneme_guidance: bool = False,
    **settings,
) -> torch.Tensor:
    """``text`` spoken, as (n, channels, samples), by ``pipe`` (a :class:`~latentaudio.pipeline.Pipeline`
    whose DiT was trained with ``conditioning.phonemes``).

    The phonemes and their durations come from :func:`latentaudio.speech.units.plan_utterance`
    (eSpeak NG's timing, scaled to ``seconds`` if given, else to the prompt's speaking rate).
    ``prompt`` (channels, samples) or (1, channels, samples) at ``sample_rate``: a recording of
    the voice to continue: its end (``prompt_window`` of a training window at most: a quarter
    left room for the text in one window, and said 88% of sentences right against 78% with
    half, on 8 held-out sentences) gives the known frames before the text, and the whole of
    it the voice's statistics (a DiT trained with ``conditioning.voice``). ``prompt_text``:
    what it says (its phonemes are found in it by :func:`latentaudio.speech.align.align_by_synthesis`).
    The prompt is not in the output. ``phoneme_guidance``: guidance contrasts the text with no
    text, the voice and the timing kept in both branches (default: every condition is dropped in
    the unconditional branch).
    """
    if pipe.denoiser.conditioner.phonemes is None:
        raise ValueError(
            f"the DiT bundle {pipe.bundle.path} was not trained on phonemes "
            "(conditioning.phonemes=true, e.g. make demo-speech): it cannot speak"
        )
    hop = pipe.autoencoder.hop
    known_frames, latents, prompt_timing = 0, None, None
    if prompt is not None:
        if sample_rate is None:
            raise ValueError("a prompt needs its sample_rate")
        prepared = pipe.autoencoder.prepare(prompt if prompt.dim() == 3 else prompt[None], sample_rate)
        whole = prepared.shape[-1] // hop  # a whole number of frames: the text starts on a frame
        if whole < 1:
            raise ValueError(
                f"the prompt is shorter than one latent frame ({hop} samples at {pipe.sample_rate} Hz)"
            )
        latents = pipe.encode(prepared[..., : whole * hop], pipe.sample_rate)[..., :whole]  # (1, D, P)
        known_frames = whole
        if prompt_text:
            from latentaudio.speech.align import align_by_synthesis

            prompt_timing = align_by_synthesis(
                prepared[0, :, : whole * hop].cpu(), pipe.sample_rate, prompt_text
            )
    prompt_seconds = known_frames * hop / pipe.sample_rate
    timing, end = units.plan_utterance(
        text, prompt_seconds, prompt_text, seconds, prompt_timing=prompt_timing
    )
    frames = pipe.frames_for(end)
    vocabulary = SymbolVocabulary.from_dict(pipe.bundle.meta["phoneme_symbols"])
    ids, position = units.frame_features(timing, frames, pipe.sample_rate / hop, vocabulary)
    first = max(0, known_frames - int(pipe.window_frames * prompt_window))  # the prompt's end is enough
    kept = known_frames - first
    known = keep = None
    if latents is not None:
        known = torch.zeros(n, latents.shape[1], frames - first, device=pipe.device)
        known[..., :kept] = latents[..., first:]
        keep = torch.zeros(1, 1, frames - first, device=pipe.device)
        keep[..., :kept] = 1.0
    features = {
        "phoneme_ids": ids[None, first:].expand(n, -1, -1).to(pipe.device),
        "phoneme_progress": position[None, first:].expand(n, -1, -1).to(pipe.device),
    }
    voice = None  # without a prompt: the learned "no voice given"
    if latents is not None and pipe.denoiser.conditioner.voice is not None:
        voice = voice_statistics(latents).expand(n, -1)  # (n, 2D): the whole prompt's voice
    x0 = pipe.sample_windows(
        frames - first,
        n,
        (frames - first) * hop / pipe.sample_rate,
        known=known,
        keep=keep,
        frame_conditions=features,
        item_conditions={} if voice is None else {"voice": voice},
        negative_frames=_null_phonemes(features) if phoneme_guidance else None,
        seed=seed,
        progress=progress,
        **settings,
    )
    audio = pipe.decode(x0, length=(frames - first) * hop)
    return audio[..., kept * hop : round((end - first * hop / pipe.sample_rate) * pipe.sample_rate)]


def _null_phonemes(features: dict) -> dict:
    """The phoneme features of no text (all ``<pad>``, no progress): the conditioner's null."""
    return {
        "phoneme_ids": torch.full_like(features["phoneme_ids"], SymbolVocabulary.pad_id),
        "phoneme_progress": torch.zeros_like(features["phoneme_progress"]),
    }
