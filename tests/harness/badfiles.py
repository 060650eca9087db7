"""A folder of good audio mixed with the broken and odd files users really have.

The reliability tests and `make stress` (``harness.stress``) both write it, so every
file is made on the spot with numpy and soundfile (no binaries in the repository):

- unusable, each must be skipped with one warning: a truncated wav, a zero-length file,
  a text file named ``.wav``, a float wav full of NaN and Inf, a one-sample file;
- odd but usable, each must be converted and trained on: an 8 kHz mono file, a 96 kHz
  six-channel file, a file whose name is not valid UTF-8.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

# "café.wav" in Latin-1: the byte 0xE9 is not valid UTF-8; Python spells it with a surrogate.
NON_UTF8_NAME = os.fsdecode(b"caf\xe9.wav")


@dataclass
class BadCorpus:
    root: Path
    good: list[str] = field(default_factory=list)  # ordinary files at the target rate and channels
    odd: list[str] = field(default_factory=list)  # usable after conversion (rate, channels, name)
    unusable: dict[str, str] = field(default_factory=dict)  # relative path -> what is wrong with it

    @property
    def usable(self) -> list[str]:
        return self.good + self.odd


def tone(seconds: float, sample_rate: int, channels: int = 1, frequency: float = 440.0) -> np.ndarray:
    """(samples, channels) float32: a decaying tone with a little noise, each channel detuned."""
    rng = np.random.default_rng(int(frequency * 10) + channels)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    columns = [
        0.4 * np.sin(2 * math.pi * frequency * (1 + 0.01 * c) * t) * np.exp(-1.5 * t)
        + 0.02 * rng.standard_normal(t.shape)
        for c in range(channels)
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _write(path: Path, data: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), data, sample_rate, subtype=subtype)


def write_bad_corpus(
    root: str | os.PathLike, good_files: int = 8, seconds: float = 0.5, sample_rate: int = 16000
) -> BadCorpus:
    """Write ``good_files`` ordinary mono files plus the broken and odd ones under ``root``."""
    root = Path(root)
    corpus = BadCorpus(root)
    for i in range(good_files):
        name = f"good/tone{i:03d}.wav"
        _write(root / name, tone(seconds, sample_rate, frequency=180.0 * (1 + i / 4)), sample_rate)
        corpus.good.append(name)

    odd = {
        "odd/rate_8k_mono.wav": (tone(seconds, 8000, 1, 330.0), 8000),
        "odd/rate_96k_six_channels.wav": (tone(seconds, 96000, 6, 550.0), 96000),
        f"odd/{NON_UTF8_NAME}": (tone(seconds, sample_rate, 1, 660.0), sample_rate),
    }
    for name, (data, rate) in odd.items():
        _write(root / name, data, rate)
        corpus.odd.append(name)

    bad = root / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    whole = root / "bad" / "truncated.wav"
    _write(whole, tone(seconds, sample_rate), sample_rate)
    whole.write_bytes(whole.read_bytes()[:30])  # cut inside the header
    (bad / "empty.wav").write_bytes(b"")
    (bad / "not_audio.wav").write_text("this is a text file with a .wav name\n")
    non_finite = tone(seconds, sample_rate)
    non_finite[::7] = np.nan
    non_finite[3::7] = np.inf
    _write(bad / "nan_inf.wav", non_finite, sample_rate, subtype="FLOAT")
    _write(bad / "one_sample.wav", np.full((1, 1), 0.5, dtype=np.float32), sample_rate)
    corpus.unusable = {
        "bad/truncated.wav": "truncated",
        "bad/empty.wav": "zero-length",
        "bad/not_audio.wav": "text named .wav",
        "bad/nan_inf.wav": "NaN/Inf samples",
        "bad/one_sample.wav": "one sample",
    }
    return corpus
