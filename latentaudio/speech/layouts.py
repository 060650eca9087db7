"""Transcribed speech corpora in the LJSpeech and LibriTTS layouts, written in ours.

Ours is any audio folder with a ``metadata.csv`` at its root (``latentaudio.data.metadata``):
``path`` (relative to the root) and ``text``, and ``speaker`` where the corpus has speakers.

- LJSpeech: ``metadata.csv`` with ``id|text|normalized_text`` lines (no header) and ``wavs/<id>.wav``.
  ``text`` is the normalised transcript (numbers spelled out), ``raw_text`` the original.
- LibriTTS (and LibriTTS-R): ``<speaker>/<chapter>/<id>.wav`` beside ``<id>.normalized.txt``
  (and ``<id>.original.txt``), any number of subsets (``train-clean-100/...``) above them.

LJSpeech keeps its own ``metadata.csv`` at its root, so a converted corpus lives in a folder of
its own: each audio file is linked there (a symlink: no copy, the scan keeps the link's name),
or copied with ``audio=copy``. A LibriTTS corpus can be converted in place (``output`` = the
corpus), which writes only ``metadata.csv``.

``align=True`` adds the ``phonemes`` column that the speech DiT trains on: each transcript's
phonemes with their times in its recording, by :func:`latentaudio.speech.align.align_by_synthesis`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from latentaudio.data.metadata import METADATA_CSV
from latentaudio.files import atomic_write

log = logging.getLogger(__name__)

LAYOUTS = ("ljspeech", "libritts")
AUDIO_MODES = ("link", "copy")


@dataclass(frozen=True)
class Utterance:
    """One recording: its audio file, its transcript, and the optional columns."""

    audio: Path
    text: str
    speaker: str = ""
    raw_text: str = ""


class CorpusLayoutError(ValueError):
    """A folder that is not in the layout it was said to be in."""


def read_ljspeech(root: str | os.PathLike) -> list[Utterance]:
    """The utterances of an LJSpeech folder whose audio exists (missing files are counted, skipped)."""
    root = Path(root)
    listing = root / "metadata.csv"
    if not listing.is_file() or not (root / "wavs").is_dir():
        raise CorpusLayoutError(f"{root} is not in the LJSpeech layout: it needs metadata.csv and wavs/")
    utterances, missing = [], 0
    with open(listing, encoding="utf-8", newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise CorpusLayoutError(f"{listing} line {line_number}: expected id|text|normalized_text")
            name, raw = row[0].strip(), row[1].strip()
            normalised = row[2].strip() if len(row) > 2 and row[2].strip() else raw
            audio = root / "wavs" / f"{name}.wav"
            if not audio.is_file():
                missing += 1
                continue
            utterances.append(Utterance(audio, normalised, raw_text=raw))
    if missing:
        log.warning("%s: %d listed recordings have no file in wavs/, left out", root, missing)
    return utterances


def read_libritts(root: str | os.PathLike) -> list[Utterance]:
    """The utterances under a LibriTTS folder (any depth): every ``<id>.wav`` with an
    ``<id>.normalized.txt``; the speaker is the folder two levels up from the file."""
    root = Path(root)
    utterances, untranscribed = [], 0
    for audio in sorted(root.rglob("*.wav")):
        transcript = audio.with_name(audio.stem + ".normalized.txt")
        if not transcript.is_file():
            untranscribed += 1
            continue
        original = audio.with_name(audio.stem + ".original.txt")
        relative = audio.relative_to(root).parts
        speaker = relative[-3] if len(relative) >= 3 else ""
        utterances.append(
            Utterance(
                audio,
                _one_line(transcript.read_text(encoding="utf-8")),
                speaker=speaker,
                raw_text=_one_line(original.read_text(encoding="utf-8")) if original.is_file() else "",
            )
        )
    if not utterances:
        raise CorpusLayoutError(
            f"{root} is not in the LibriTTS layout: no <speaker>/<chapter>/<id>.wav with <id>.normalized.txt"
        )
    if untranscribed:
        log.warning("%s: %d .wav files have no .normalized.txt, left out", root, untranscribed)
    return utterances


READERS = {"ljspeech": read_ljspeech, "libritts": read_libritts}


def convert_corpus(
    layout: str,
    source: str | os.PathLike,
    output: str | os.PathLike,
    audio: str = "link",
    align: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``output/metadata.csv`` (``path``, ``text``, [``speaker``], ``raw_text``, and with
    ``align`` ``phonemes``) for the corpus at ``source``; audio outside ``output`` is linked or
    copied under ``output/audio/``. Returns the metadata file."""
    if layout not in READERS:
        raise ValueError(f"layout={layout!r}: use one of {', '.join(LAYOUTS)}")
    if audio not in AUDIO_MODES:
        raise ValueError(f"audio={audio!r}: use one of {', '.join(AUDIO_MODES)}")
    source, output = Path(source).expanduser(), Path(output).expanduser()
    if layout == "ljspeech" and output.resolve() == source.resolve():
        raise ValueError(
            "an LJSpeech folder keeps its own metadata.csv: convert it into another folder (output=...)"
        )
    utterances = READERS[layout](source)
    output.mkdir(parents=True, exist_ok=True)
    rows = [_row(u, source, output, audio) for u in utterances]
    columns = ["path", "text"] + (["speaker"] if any(r["speaker"] for r in rows) else []) + ["raw_text"]
    if align:
        add_phonemes(rows, output, progress)
        columns.append("phonemes")
    listing = output / METADATA_CSV
    with atomic_write(listing) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    log.info("%s corpus %s: %d utterances listed in %s", layout, source, len(rows), listing)
    return listing


def add_phonemes(rows: list[dict], root: Path, progress: bool = True) -> None:
    """Each row's ``phonemes`` (JSON timings) aligned by synthesis; a recording that cannot be
    read or aligned keeps an empty cell (the DiT then sees no text for it), named in one warning."""
    from tqdm import tqdm

    from latentaudio.audio import AudioDecodeError, read_audio
    from latentaudio.speech.align import align_by_synthesis

    for row in tqdm(rows, desc="aligning phonemes", unit="utterance", disable=not progress):
        try:
            audio, rate = read_audio(root / row["path"])
            row["phonemes"] = json.dumps(align_by_synthesis(audio, rate, row["text"]), ensure_ascii=False)
        except (AudioDecodeError, ValueError) as error:
            log.warning("%s: no phoneme timings (%s)", row["path"], error)
            row["phonemes"] = ""


def _row(utterance: Utterance, source: Path, output: Path, audio_mode: str) -> dict:
    inside = _relative_inside(utterance.audio, output)
    if inside is None:
        inside = Path("audio") / utterance.audio.relative_to(source)
        _place(utterance.audio, output / inside, audio_mode)
    return {
        "path": inside.as_posix(),
        "text": utterance.text,
        "speaker": utterance.speaker,
        "raw_text": utterance.raw_text,
    }


def _relative_inside(path: Path, root: Path) -> Path | None:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _place(audio: Path, target: Path, mode: str) -> None:
    """Link (absolute symlink) or copy ``audio`` to ``target``; an existing target is replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if mode == "copy":
        shutil.copy2(audio, target)
    else:
        target.symlink_to(audio.resolve())


def _one_line(text: str) -> str:
    return " ".join(text.split())
