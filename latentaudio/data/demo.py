"""Built-in procedural demo audio: small, structured, music-like clips made from a seed.

Five classes, each a few instruments playing in a key and on a tempo grid:

- ``pluck``: a Karplus-Strong plucked-string melody,
- ``bell``: FM bell arpeggios over a chord progression,
- ``organ``: additive organ/pad chords with an ADSR envelope and tremolo,
- ``drums``: kick (pitch-swept sine), snare (noise burst plus tone), hi-hat (high-passed noise),
- ``band``: a plucked melody over organ chords and drums.

One more instrument is left out of the default set, so that a model trained on it has never
heard it (the fine-tuning demo teaches it): ``marimba``, struck wooden bars (a few inharmonic
modes, the upper ones dying fast) playing a melody in thirds.

Clip ``i`` depends only on ``(seed, i)``, so the first clips of a large set equal those of a
small one, and a second run writes the same bytes. Everything is numpy on one core.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import torch

from latentaudio.audio import write_audio
from latentaudio.data.metadata import NOTE_NAMES

DEFAULT_ROOT = "data/demo"
CLASSES = ("pluck", "bell", "organ", "drums", "band")
UNSEEN_CLASSES = ("marimba",)  # not in the default set: new sounds for the fine-tuning demo
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
TEMPOS = (80, 90, 100, 110, 120, 130, 140)
# Triads on these scale degrees, one per half bar; the first column is the tonic.
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 0, 4), (5, 3, 0, 4))
PEAK_DBFS = -1.0
# Written to .demo.json; bump it whenever the synthesis changes so old folders are rebuilt.
FORMAT_VERSION = 1
_CLIP_NAME = re.compile(r"clips/\d{4,}_[a-z]+\.wav")


# --------------------------------------------------------------------------------------
# Musical helpers
# --------------------------------------------------------------------------------------


def _midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _degree_to_midi(degree: int, tonic_midi: int, mode: str) -> int:
    """Scale degree (any integer, 7 = the octave) to a MIDI note."""
    octave, step = divmod(degree, 7)
    return tonic_midi + SCALES[mode][step] + 12 * octave


def _melody(rng: np.random.Generator, n_steps: int) -> list[tuple[int, int, int]]:
    """A stepwise random walk on scale degrees: ``(start_step, length_steps, degree)`` notes."""
    notes, step, degree = [], 0, int(rng.choice([0, 2, 4]))
    while step < n_steps:
        if rng.random() < 0.08:  # an occasional short rest
            step += 1
            continue
        length = int(rng.choice([1, 1, 1, 2, 2, 3]))
        notes.append((step, length, degree))
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2, 3]), -2, 9))
        step += length
    return notes


def _add(buffer: np.ndarray, start: int, signal: np.ndarray) -> None:
    end = min(len(buffer), start + len(signal))
    if end > start:
        buffer[start:end] += signal[: end - start]


def _adsr(
    n: int, fs: int, attack: float, decay: float, sustain: float, release: float, held: int
) -> np.ndarray:
    """Envelope of ``n`` samples for a note held ``held`` samples, then released."""
    t = np.arange(n) / fs
    rise = np.minimum(t / attack, 1.0)
    fall = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / decay)
    envelope = np.where(t < attack, rise, fall)
    released = np.clip(1.0 - (t - held / fs) / release, 0.0, 1.0)
    return envelope * released


# --------------------------------------------------------------------------------------
# Instruments: each returns one note as a float64 array
# --------------------------------------------------------------------------------------


def _pluck(rng: np.random.Generator, freq: float, n: int, fs: int, t60: float) -> np.ndarray:
    """Karplus-Strong string, tuned exactly by reading the integer-delay loop at a fractional rate."""
    delay = max(int(fs / freq - 0.5), 2)  # the averaging filter adds half a sample to the loop
    native = fs / (delay + 0.5)
    ratio = freq / native
    length = int(np.ceil(n * ratio)) + 2
    gain = 0.001 ** (1.0 / (native * t60))  # per trip round the loop, so the note rings t60 seconds
    loop = np.zeros(length + delay + 1)
    burst = rng.uniform(-1.0, 1.0, delay + 1)
    loop[: delay + 1] = burst - burst.mean()
    # y[k] = gain/2 (y[k-d] + y[k-d-1]); a block of d samples only needs the block before it.
    for start in range(delay + 1, len(loop), delay):
        stop = min(start + delay, len(loop))
        loop[start:stop] = (
            0.5 * gain * (loop[start - delay : stop - delay] + loop[start - delay - 1 : stop - delay - 1])
        )
    return np.interp(np.arange(n) * ratio, np.arange(len(loop)), loop)


def _bell(freq: float, n: int, fs: int, ratio: float, index: float, t60: float) -> np.ndarray:
    """Two-operator FM with an inharmonic ratio; brightness (the index) dies faster than loudness."""
    t = np.arange(n) / fs
    modulation = index * np.exp(-t * 6.9 / (0.4 * t60)) * np.sin(2 * np.pi * freq * ratio * t)
    attack = np.minimum(t / 0.002, 1.0)
    return attack * np.exp(-t * 6.9 / t60) * np.sin(2 * np.pi * freq * t + modulation)


def _organ(freq: float, n: int, fs: int, held: int, attack: float, tremolo: float) -> np.ndarray:
    """Additive drawbar organ: harmonics 1, 2, 3, 4, 6, 8 below Nyquist."""
    t = np.arange(n) / fs
    tone = np.zeros(n)
    for harmonic, weight in zip((1, 2, 3, 4, 6, 8), (1.0, 0.6, 0.4, 0.25, 0.15, 0.1)):
        if freq * harmonic < 0.45 * fs:
            tone += weight * np.sin(2 * np.pi * freq * harmonic * t)
    envelope = _adsr(n, fs, attack, 0.15, 0.7, 0.12, held)
    return tone * envelope * (1.0 + 0.15 * np.sin(2 * np.pi * tremolo * t))


def _marimba(freq: float, n: int, fs: int, t60: float, hardness: float) -> np.ndarray:
    """A struck bar: modes at 1, 3.9 and 9.2 times the fundamental (a tuned bar's), each higher
    one brighter with a harder mallet and dying faster, plus the mallet's short knock."""
    t = np.arange(n) / fs
    tone = np.zeros(n)
    for ratio, weight, life in ((1.0, 1.0, 1.0), (3.9, 0.35 * hardness, 0.3), (9.2, 0.12 * hardness, 0.12)):
        if freq * ratio < 0.45 * fs:
            tone += weight * np.exp(-t * 6.9 / (t60 * life)) * np.sin(2 * np.pi * freq * ratio * t)
    knock = np.sin(2 * np.pi * 2.5 * freq * t) * np.exp(-t / 0.004) * 0.3 * hardness
    return (tone + knock) * np.minimum(t / 0.001, 1.0)


def _kick(fs: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.4 * fs)) / fs
    freq = 45.0 + 110.0 * np.exp(-t / 0.04)
    body = np.sin(2 * np.pi * np.cumsum(freq) / fs) * np.exp(-t / 0.22)
    click = rng.standard_normal(len(t)) * np.exp(-t / 0.003) * 0.3
    return body + click


def _snare(fs: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * fs)) / fs
    noise = np.diff(rng.standard_normal(len(t) + 1)) * 0.5  # a first difference tilts it bright
    return noise * np.exp(-t / 0.07) + 0.6 * np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)


def _hat(fs: int, rng: np.random.Generator, open_hat: bool) -> np.ndarray:
    t = np.arange(int((0.3 if open_hat else 0.08) * fs)) / fs
    noise = np.diff(rng.standard_normal(len(t) + 2), n=2) * 0.25  # second difference: a high-pass
    return noise * np.exp(-t / (0.09 if open_hat else 0.015))


# --------------------------------------------------------------------------------------
# Parts: each renders a whole clip-length track
# --------------------------------------------------------------------------------------


def _pluck_part(rng, n, fs, tonic, mode, beat) -> np.ndarray:
    track, step = np.zeros(n), beat / 2
    t60 = rng.uniform(0.8, 2.0)
    for start, length, degree in _melody(rng, int(np.ceil(n / fs / step))):
        held = int(length * step * fs)
        note = _pluck(rng, _midi_to_hz(_degree_to_midi(degree, tonic, mode)), held + int(0.05 * fs), fs, t60)
        note *= np.clip((held + int(0.05 * fs) - np.arange(len(note))) / (0.05 * fs), 0.0, 1.0)  # damping
        _add(track, int(start * step * fs), note * rng.uniform(0.7, 1.0))
    return track


def _bell_part(rng, n, fs, tonic, mode, beat) -> np.ndarray:
    track, step = np.zeros(n), beat / 2
    ratio, index, t60 = rng.choice([1.4, 3.5]), rng.uniform(1.5, 4.0), rng.uniform(0.8, 1.6)
    progression, pattern = PROGRESSIONS[rng.integers(len(PROGRESSIONS))], rng.permutation([0, 2, 4, 7])
    for k in range(int(np.ceil(n / fs / step))):
        root = progression[(k // 4) % len(progression)]
        midi = _degree_to_midi(root + int(pattern[k % 4]), tonic + 12, mode)
        note = _bell(_midi_to_hz(midi), int(t60 * fs), fs, ratio, index, t60)
        _add(track, int(k * step * fs), note * rng.uniform(0.6, 1.0))
    return track


def _organ_part(rng, n, fs, tonic, mode, beat) -> np.ndarray:
    track, bar_half = np.zeros(n), 2 * beat
    attack, tremolo = rng.uniform(0.02, 0.3), rng.uniform(4.5, 6.5)
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    for k in range(int(np.ceil(n / fs / bar_half))):
        root = progression[k % len(progression)]
        held = int(bar_half * fs)
        for degree in (root - 7, root, root + 2, root + 4):  # bass note and triad
            note = _organ(
                _midi_to_hz(_degree_to_midi(degree, tonic, mode)),
                held + int(0.12 * fs),
                fs,
                held,
                attack,
                tremolo,
            )
            _add(track, k * held, note * (0.8 if degree < root else 0.5))
    return track


def _marimba_part(rng, n, fs, tonic, mode, beat) -> np.ndarray:
    track, step = np.zeros(n), beat / 2
    t60, hardness = rng.uniform(0.35, 0.7), rng.uniform(0.5, 1.0)
    for start, _, degree in _melody(rng, int(np.ceil(n / fs / step))):  # struck bars ring on
        for third in (0, 2) if rng.random() < 0.6 else (0,):  # mostly two mallets, a third apart
            midi = _degree_to_midi(degree + third, tonic + 12, mode)
            note = _marimba(_midi_to_hz(midi), int(t60 * 1.5 * fs), fs, t60, hardness)
            _add(track, int(start * step * fs), note * rng.uniform(0.6, 1.0) * (0.7 if third else 1.0))
    return track


def _drum_part(rng, n, fs, beat) -> np.ndarray:
    track, sixteenth = np.zeros(n), beat / 4
    kicks = {0, 8} | {int(s) for s in rng.choice([3, 6, 10, 11, 14], size=rng.integers(0, 3), replace=False)}
    snares = {4, 12} | ({15} if rng.random() < 0.3 else set())
    hats = range(0, 16, 1 if rng.random() < 0.4 else 2)
    open_step = 14 if rng.random() < 0.4 else None
    for k in range(int(np.ceil(n / fs / sixteenth))):
        start, pos = int(k * sixteenth * fs), k % 16
        if pos in kicks:
            _add(track, start, _kick(fs, rng) * (1.0 if pos in (0, 8) else 0.7))
        if pos in snares:
            _add(track, start, _snare(fs, rng) * (0.8 if pos != 15 else 0.4))
        if pos in hats:
            _add(track, start, _hat(fs, rng, pos == open_step) * (0.5 if pos % 4 == 0 else 0.3))
    return track


# --------------------------------------------------------------------------------------
# Clips and the dataset
# --------------------------------------------------------------------------------------


def make_demo_clip(
    index: int,
    seed: int = 0,
    sample_rate: int = 16000,
    seconds: float = 2.0,
    classes: tuple[str, ...] = CLASSES,
) -> tuple[torch.Tensor, dict[str, str]]:
    """Synthesize clip ``index`` (of label ``classes[index % len(classes)]``):
    ``(audio [1, samples] float32, metadata)``.

    The metadata holds ``caption``, ``label``, ``instrument``, ``key`` (empty for drums) and
    ``bpm``. The audio peaks at -1 dBFS.
    """
    rng = np.random.default_rng([seed, index])
    fs, n = int(sample_rate), int(round(seconds * sample_rate))
    label = classes[index % len(classes)]
    root, mode = int(rng.integers(12)), str(rng.choice(list(SCALES)))
    bpm = int(rng.choice(TEMPOS))
    tonic, beat, key = 48 + root, 60.0 / bpm, f"{NOTE_NAMES[root]} {mode}"

    if label == "pluck":
        audio, what, instrument = (
            _pluck_part(rng, n, fs, tonic, mode, beat),
            "plucked melody",
            "plucked string",
        )
    elif label == "bell":
        audio, what, instrument = _bell_part(rng, n, fs, tonic, mode, beat), "bell arpeggio", "fm bell"
    elif label == "organ":
        audio, what, instrument = _organ_part(rng, n, fs, tonic, mode, beat), "organ chords", "organ"
    elif label == "marimba":
        audio, what, instrument = _marimba_part(rng, n, fs, tonic, mode, beat), "marimba melody", "marimba"
    elif label == "drums":
        audio, what, instrument, key = _drum_part(rng, n, fs, beat), "drum beat", "drum kit", ""
    elif label == "band":
        melody = _pluck_part(rng, n, fs, tonic, mode, beat)
        chords = _organ_part(rng, n, fs, tonic, mode, beat)
        drums = _drum_part(rng, n, fs, beat)
        audio = _unit_peak(melody) + 0.35 * _unit_peak(chords) + 0.6 * _unit_peak(drums)
        what, instrument = "plucked melody with organ chords and drums", "plucked string, organ, drum kit"
    else:
        raise ValueError(f"unknown demo class {label!r}: choose from {', '.join(CLASSES + UNSEEN_CLASSES)}")

    rms = float(np.sqrt(np.mean(audio**2)))
    noise_db = rng.uniform(30.0, 45.0)  # background hiss this far below the music
    audio = audio + rng.standard_normal(n) * rms * 10.0 ** (-noise_db / 20.0)
    audio = _unit_peak(audio) * 10.0 ** (PEAK_DBFS / 20.0)

    caption = f"{what} in {key} at {bpm} bpm" if key else f"{what} at {bpm} bpm"
    metadata = {"caption": caption, "label": label, "instrument": instrument, "key": key, "bpm": str(bpm)}
    return torch.from_numpy(audio.astype(np.float32))[None], metadata


def _unit_peak(audio: np.ndarray) -> np.ndarray:
    return audio / max(float(np.abs(audio).max()), 1e-9)


def _clip_name(index: int, classes: tuple[str, ...] = CLASSES) -> str:
    return f"clips/{index:04d}_{classes[index % len(classes)]}.wav"


def generate_demo_dataset(
    root: str | Path = DEFAULT_ROOT,
    n_clips: int = 320,
    sample_rate: int = 16000,
    seconds: float = 2.0,
    seed: int = 0,
    progress: bool = False,
    classes: tuple[str, ...] | list[str] = CLASSES,
) -> list[Path]:
    """Write ``n_clips`` demo clips to ``root/clips/`` plus ``root/metadata.csv``; return the paths.

    Clips are 16-bit mono WAV at -1 dBFS peak, ``classes`` in turn (balanced; any of
    ``CLASSES`` and ``UNSEEN_CLASSES``). A folder that
    already holds the complete set for the same parameters is left as it is (the parameters
    live in ``root/.demo.json``, written last, so an interrupted run is redone).
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be at least 1, got {n_clips}")
    classes = tuple(str(c) for c in classes)
    unknown = [c for c in classes if c not in CLASSES + UNSEEN_CLASSES]
    if unknown or not classes:
        raise ValueError(
            f"demo classes {unknown or '[]'} unknown: choose from {', '.join(CLASSES + UNSEEN_CLASSES)}"
        )
    root = Path(root)
    manifest_path = root / ".demo.json"
    params = {
        "version": FORMAT_VERSION,
        "n_clips": int(n_clips),
        "sample_rate": int(sample_rate),
        "seconds": float(seconds),
        "seed": int(seed),
    }
    if classes != CLASSES:  # only then, so folders written before the option stay valid
        params["classes"] = list(classes)
    names = [_clip_name(index, classes) for index in range(n_clips)]
    paths = [root / name for name in names]

    old = read_manifest(manifest_path)
    if old.get("params") == params and (root / "metadata.csv").is_file() and all(p.is_file() for p in paths):
        return paths
    manifest_path.unlink(missing_ok=True)
    for stale in set(old.get("files", [])) - set(names):
        if isinstance(stale, str) and _CLIP_NAME.fullmatch(stale):  # never a path a manifest could smuggle in
            (root / stale).unlink(missing_ok=True)

    indices = range(n_clips)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="demo clips", unit="clip")
    rows = []
    for index in indices:
        audio, metadata = make_demo_clip(index, seed, sample_rate, seconds, classes)
        write_audio(root / names[index], audio, sample_rate, subtype="PCM_16")
        rows.append({"path": names[index], **metadata})

    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    manifest_path.write_text(json.dumps({"params": params, "files": names}, indent=1) + "\n")
    return paths


def read_manifest(path: Path) -> dict:
    """A generator's manifest JSON (what it last wrote); empty when missing or unreadable."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}
