"""Timed phonemes to frame-level features: what the speech DiT reads, one row per latent frame.

A *timing* is the phonemes of an utterance with their times, ``[(unit, start_s, end_s), ...]``:
the ``phonemes`` column of the speech demo's metadata (eSpeak's own timings), or what
:func:`speech_timings` predicts for a new sentence. A *unit* is one phoneme as eSpeak writes it
in IPA, with its stress and length marks (``"ˈaɪ"``, ``"tʃ"``, ``"n"``); ``"_"`` is a pause.

Frame ``i`` (its centre at ``(i + 0.5) / frame_rate`` seconds) gets the unit that covers it:
- ``ids`` (frames, UNIT_SLOTS) long: the unit's symbols in the fixed
  :class:`~latentaudio.speech.symbols.SymbolVocabulary`, one per slot, ``<pad>`` (0) after the
  last; a pause is the word boundary; a frame that no unit covers (before the first one,
  after the last, or padding) is all ``<pad>``;
- ``progress`` (frames, 2) float: how far through its unit the frame is (0 to 1), and the
  unit's log duration in seconds (0 where no unit): the network knows where it is in a phoneme
  and how long the phoneme lasts, which is what explicit durations give a TTS model.

Pure torch, no Lightning: the latent dataset, the conditioner and the pipeline share it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from latentaudio.speech.symbols import SymbolVocabulary

UNIT_SLOTS = 4  # symbols kept per unit: "ˈaɪɚ" is the longest eSpeak English writes
PAUSE = "_"
PROGRESS_FEATURES = 2
Timing = list[tuple[str, float, float]]


def parse_timings(value: str | Sequence | None) -> Timing:
    """A timing from a metadata cell (JSON ``[[unit, start, end], ...]``) or a list; ``[]`` for none.

    Raises ValueError naming what is wrong with a malformed cell.
    """
    if value is None or value == "":
        return []
    rows = json.loads(value) if isinstance(value, str) else value
    timing: Timing = []
    for row in rows:
        if len(row) != 3:
            raise ValueError(f"a phoneme timing row is [unit, start, end], got {row!r}")
        unit, start, end = str(row[0]), float(row[1]), float(row[2])
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"phoneme {unit!r} has times {start}..{end}: give start <= end, both finite")
        timing.append((unit, start, end))
    return timing


def unit_symbols(unit: str, vocabulary: SymbolVocabulary) -> list[int]:
    """The unit's symbol ids in ``UNIT_SLOTS`` slots (``<pad>`` after the last, extra ones dropped)."""
    if unit == PAUSE:
        ids = [vocabulary.word_boundary_id]
    else:
        ids = vocabulary.encode(list(unit))[:UNIT_SLOTS]
    return ids + [vocabulary.pad_id] * (UNIT_SLOTS - len(ids))


def frame_features(
    timing: Timing, frames: int, frame_rate: float, vocabulary: SymbolVocabulary | None = None
) -> tuple[Tensor, Tensor]:
    """``ids`` (frames, UNIT_SLOTS) long and ``progress`` (frames, 2) float for a timing (see module doc)."""
    vocabulary = vocabulary or SymbolVocabulary()
    ids = torch.zeros(frames, UNIT_SLOTS, dtype=torch.long)
    progress = torch.zeros(frames, PROGRESS_FEATURES)
    for unit, start, end in timing:
        if end <= start:
            continue  # eSpeak writes zero-length markers; nothing to hear
        first = max(math.ceil(start * frame_rate - 0.5), 0)  # frames whose centre lies in [start, end)
        last = min(math.ceil(end * frame_rate - 0.5), frames)
        if last <= first:
            continue
        centres = (torch.arange(first, last, dtype=torch.float32) + 0.5) / frame_rate
        ids[first:last] = torch.tensor(unit_symbols(unit, vocabulary))
        progress[first:last, 0] = ((centres - start) / (end - start)).clamp(0.0, 1.0)
        progress[first:last, 1] = math.log(end - start)
    return ids, progress


def scale_timing(timing: Timing, factor: float, offset: float = 0.0) -> Timing:
    """Every time multiplied by ``factor`` (slower speech above 1), then shifted by ``offset`` seconds."""
    return [(unit, start * factor + offset, end * factor + offset) for unit, start, end in timing]


def timing_seconds(timing: Timing) -> float:
    """Where the timing ends (its last unit's end), 0 for an empty one."""
    return max((end for _, _, end in timing), default=0.0)


def speech_timings(text: str, voice=None) -> Timing:
    """The phonemes of ``text`` with eSpeak NG's own durations: the speech models' duration prior.

    eSpeak's rule-based timing is what a duration predictor would learn on the demo corpus
    exactly, and a fair prior on real speech; the pipeline scales it to a prompt's speaking
    rate or to an asked length. Needs the ``speech`` extra (PhonemizerUnavailable without it).
    Deterministic: each new text is spoken by a fresh synthesizer (:func:`render_text`, about
    12 ms), since the library's state carries timing differences of a millisecond from one text
    to the next.
    """
    from latentaudio.speech.espeak import Voice

    return list(_spoken_timing(text, voice or Voice()))


def render_text(text: str, voice=None):
    """``text`` spoken by eSpeak NG (a :class:`~latentaudio.speech.espeak.Speech`: audio and
    phoneme times) from a fresh synthesizer, so the same text always gives the same result."""
    from latentaudio.speech.espeak import EspeakSynthesizer, Voice

    return EspeakSynthesizer().speak(text, voice or Voice())


@functools.lru_cache(maxsize=4096)
def _spoken_timing(text: str, voice) -> tuple:
    return tuple(render_text(text, voice).timing())


def plan_utterance(
    text: str,
    prompt_seconds: float = 0.0,
    prompt_text: str | None = None,
    seconds: float | None = None,
    timings=speech_timings,
    prompt_timing: Timing | None = None,
) -> tuple[Timing, float]:
    """The timing of a prompt followed by ``text``, and where the text's speech ends (seconds).

    Durations come from ``timings`` (eSpeak's, by default), scaled to the speaking rate asked:
    to ``seconds`` for the text alone when given, else to the prompt's rate (its length over
    the predicted length of ``prompt_text``), else as predicted. The prompt's own phonemes are
    ``prompt_timing`` when given (found in the recording: :mod:`latentaudio.speech.align`), else
    the predicted ones laid over its length when its text is known; without text the prompt
    frames carry none.
    """
    spoken = timings(text)
    predicted = timing_seconds(spoken)
    if predicted <= 0:
        raise ValueError(f"nothing to say in {text!r}: the text has no phonemes")
    timing: Timing = []
    rate = 1.0
    if prompt_text and prompt_seconds > 0:
        said = timings(prompt_text)
        if timing_seconds(said) > 0:
            rate = prompt_seconds / timing_seconds(said)
            timing += list(prompt_timing) if prompt_timing else scale_timing(said, rate)
    if seconds is not None:
        if seconds <= 0:
            raise ValueError(f"seconds={seconds}: give a positive length for the speech, or none")
        rate = seconds / predicted
    timing += scale_timing(spoken, rate, offset=prompt_seconds)
    return timing, prompt_seconds + predicted * rate
