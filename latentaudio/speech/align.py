"""Phoneme timings for a recording and its transcript, with no trained aligner: by synthesis.

eSpeak NG speaks the transcript and reports when each of its phonemes starts; dynamic time
warping of the two mel cepstra (normalised per utterance, so that neither voice nor level
matters) maps each of those times onto the recording. This is the classic synthesis-based
alignment: it needs no model and no training, works sentence by sentence, and is the speech
DiT's aligner for corpora that come without timings (LJSpeech, LibriTTS, a user's folder):
``make speech-data ARGS="... align=true"`` writes the ``phonemes`` column with it.
Its error, measured on eSpeak renderings in voices other than the default (tests/speech/test_align.py),
is 3 to 12 ms per boundary, under one latent frame at hop 256 and 16 kHz; on human speech it is
not measured here.
"""

from __future__ import annotations

import numpy as np
import torch

from latentaudio.speech.evaluation import dtw, mel_cepstrum
from latentaudio.speech.units import Timing, render_text

FRAME_SECONDS = 0.01  # mel_cepstrum's hop: 10 ms


def normalised_cepstrum(audio: torch.Tensor, sample_rate: int) -> np.ndarray:
    """(frames, 24): mel cepstrum without c0, each coefficient at zero mean and unit variance."""
    cepstrum = mel_cepstrum(audio, sample_rate)[:, 1:].double()
    return ((cepstrum - cepstrum.mean(0)) / cepstrum.std(0).clamp_min(1e-6)).numpy()


def align_by_synthesis(audio: torch.Tensor, sample_rate: int, text: str, voice=None) -> Timing:
    """``[(ipa, start_s, end_s), ...]`` of ``text`` in ``audio`` (channels, samples) or (samples,).

    The last phoneme ends with the recording. Raises ValueError for an empty transcript.
    """
    rendering = render_text(text, voice)
    timing = rendering.timing()
    if not timing:
        raise ValueError(f"nothing to align: {text!r} has no phonemes")
    seconds = audio.shape[-1] / sample_rate
    synthetic = normalised_cepstrum(torch.from_numpy(rendering.audio), rendering.sample_rate)
    recorded = normalised_cepstrum(audio, sample_rate)
    _, path = dtw(synthetic, recorded)
    # each synthetic frame's recorded frame: the mean of those the path pairs it with
    sums = np.bincount(path[:, 0], weights=path[:, 1], minlength=len(synthetic))
    counts = np.maximum(np.bincount(path[:, 0], minlength=len(synthetic)), 1)
    mapped = np.maximum.accumulate(sums / counts)  # monotonic, in recorded frames

    def where(t: float) -> float:
        position = min(max(t / FRAME_SECONDS, 0.0), len(mapped) - 1.0)
        frame = float(np.interp(position, np.arange(len(mapped)), mapped))
        return min(frame * FRAME_SECONDS, seconds)

    starts = [where(start) for _, start, _ in timing]
    ends = starts[1:] + [seconds]
    return [
        (unit, round(start, 3), round(max(end, start), 3))
        for (unit, _, _), start, end in zip(timing, starts, ends)
    ]
