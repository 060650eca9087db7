"""The procedural speech demo corpus: short English sentences spoken by eSpeak NG in a few voices.

``generate_demo_speech(root)`` writes two data folders and a list:

- ``root/train/``: ``n_sentences`` generated sentences ("The red fox sees four old boats."),
  sentence ``i`` spoken by voice ``i mod len(voices)`` (``voices_per_sentence`` > 1 adds the next ones);
- ``root/heldout/``: :data:`HELDOUT_SENTENCES`, which the generator never makes, each in every
  voice: references for "which sentence was said" and for speaker similarity;
- ``root/heldout.txt``: those sentences, one a line.

Each folder has clips (16 kHz mono, 16-bit) and a ``metadata.csv`` with ``path``, ``text``,
``speaker`` and ``phonemes``: eSpeak's own phonemes as JSON ``[[ipa, start_s, end_s], ...]`` (``_`` a pause),
ground-truth durations for the speech demo. Sentence ``i``'s text depends only on ``(seed, i)``;
the corpus is spoken in a fixed order by a fresh synthesizer, so the same parameters give the
same bytes, and a second call with them writes nothing.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import torch
import torchaudio

from latentaudio.audio import write_audio
from latentaudio.data.demo import read_manifest
from latentaudio.speech.espeak import EspeakSynthesizer, Voice

DEFAULT_ROOT = "data/demo-speech"
FORMAT_VERSION = 1
# Speakers: an eSpeak variant (male/female formant sets) at its own pitch and rate.
VOICES = {
    "m1": Voice("en-us+m1", pitch=42, rate=165),
    "f2": Voice("en-us+f2", pitch=60, rate=175),
    "m3": Voice("en+m3", pitch=35, rate=185),
    "f4": Voice("en-us+f4", pitch=72, rate=155),
}

ADJECTIVES = (
    "red blue green small big old young quiet happy brave lazy bright dark warm cold tall soft quick "
    "gentle noisy clever tired"
).split()
NOUNS = (
    ("fox", "foxes"),
    ("dog", "dogs"),
    ("cat", "cats"),
    ("bird", "birds"),
    ("boat", "boats"),
    ("farmer", "farmers"),
    ("teacher", "teachers"),
    ("horse", "horses"),
    ("tree", "trees"),
    ("car", "cars"),
    ("girl", "girls"),
    ("boy", "boys"),
    ("rabbit", "rabbits"),
    ("baker", "bakers"),
    ("train", "trains"),
    ("house", "houses"),
)
VERBS = (  # base, third person, past
    ("see", "sees", "saw"),
    ("find", "finds", "found"),
    ("like", "likes", "liked"),
    ("follow", "follows", "followed"),
    ("paint", "paints", "painted"),
    ("carry", "carries", "carried"),
    ("watch", "watches", "watched"),
    ("help", "helps", "helped"),
    ("count", "counts", "counted"),
    ("draw", "draws", "drew"),
    ("hear", "hears", "heard"),
    ("visit", "visits", "visited"),
)
NUMBERS = "two three four five six seven eight nine ten eleven twelve".split()
PLACES = (
    "near the river",
    "in the garden",
    "by the old mill",
    "on the hill",
    "under the bridge",
    "at the market",
    "behind the school",
    "across the field",
)
TIMES = ("every morning", "at night", "today", "in the spring", "after lunch", "on Sunday", "before dinner")
NAMES = "anna tom maria james lucy peter sara david".split()

HELDOUT_SENTENCES = (
    "The green horse watches seven small birds.",
    "Anna painted a bright boat after lunch.",
    "Does the lazy cat hear the farmer?",
    "Four tall teachers count the trains by the old mill.",
    "The quiet rabbit follows the baker across the field.",
    "Peter carried a warm house on the hill.",
    "Nine brave dogs visit the market every morning.",
    "The clever girl draws three blue cars.",
    "Does the young fox find the rabbit?",
    "Lucy heard a noisy train under the bridge.",
    "The old baker helps twelve tired boys.",
    "Six gentle cats hear the teacher in the garden at night.",
    "James liked a dark tree before dinner.",
    "The cold farmer sees eleven soft horses.",
    "Does the happy boy paint the house?",
    "Two quick birds follow the car behind the school.",
    "Sara found a small rabbit in the spring.",
    "The big teacher watches eight young foxes.",
    "David counted the red boats on Sunday.",
    "Ten bright trains carry the bakers near the river.",
)


def make_sentence(rng: random.Random) -> str:
    """One sentence from the word lists, on one of five templates."""
    adjective, adjective2 = rng.sample(ADJECTIVES, 2)
    (noun, _), (noun2, nouns2) = rng.sample(NOUNS, 2)
    base, third, past = rng.choice(VERBS)
    template = rng.randrange(5)
    if template == 0:
        words = f"the {adjective} {noun} {third} {rng.choice(NUMBERS)} {adjective2} {nouns2}."
    elif template == 1:
        words = f"the {adjective} {noun} {third} the {adjective2} {noun2} {rng.choice(PLACES)}."
    elif template == 2:
        words = f"{rng.choice(NUMBERS)} {adjective} {nouns2} {base} the {noun} {rng.choice(TIMES)}."
    elif template == 3:
        words = f"does the {adjective} {noun} {base} the {noun2}?"
    else:
        words = f"{rng.choice(NAMES)} {past} a {adjective} {noun} {rng.choice(TIMES)}."
    return words[0].upper() + words[1:]


def demo_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences, none of them held out; the first ``k`` of any ``n`` are the same."""
    rng = random.Random(seed)
    held_out = {s.lower() for s in HELDOUT_SENTENCES}
    seen: set[str] = set()
    sentences: list[str] = []
    for _ in range(200 * n + 1000):  # the lists allow far more sentences than any demo asks
        if len(sentences) == n:
            return sentences
        sentence = make_sentence(rng)
        if sentence.lower() not in held_out and sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    raise ValueError(f"the word lists make fewer than {n} distinct sentences")


def render(
    synthesizer: EspeakSynthesizer, text: str, voice: Voice, sample_rate: int
) -> tuple[torch.Tensor, list[list]]:
    """``[1, samples]`` float32 speech at ``sample_rate`` and ``[[ipa, start_s, end_s], ...]``."""
    speech = synthesizer.speak(text, voice)
    audio = torch.from_numpy(speech.audio)[None]
    if speech.sample_rate != sample_rate:
        audio = torchaudio.functional.resample(audio, speech.sample_rate, sample_rate)
    return audio, [[name, round(start, 3), round(end, 3)] for name, start, end in speech.timing()]


def _write_folder(
    synthesizer: EspeakSynthesizer, folder: Path, items: list[tuple[str, str, str]], sample_rate: int
) -> list[str]:
    """Render ``(file name, text, speaker)`` items into ``folder``; returns the relative paths."""
    rows = []
    for name, text, speaker in items:
        audio, timings = render(synthesizer, text, VOICES[speaker], sample_rate)
        path = f"clips/{name}.wav"
        write_audio(folder / path, audio, sample_rate, subtype="PCM_16")
        rows.append({"path": path, "text": text, "speaker": speaker, "phonemes": json.dumps(timings)})
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return [row["path"] for row in rows]


def generate_demo_speech(
    root: str | Path = DEFAULT_ROOT,
    n_sentences: int = 300,
    voices: list[str] | tuple[str, ...] = tuple(VOICES),
    voices_per_sentence: int = 1,
    sample_rate: int = 16000,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Write the demo corpus (see the module's doc); returns the clips of ``train`` and ``heldout``."""
    voices = [str(v) for v in voices]
    unknown = [v for v in voices if v not in VOICES]
    if unknown or not voices:
        raise ValueError(f"demo voices {unknown or '[]'} unknown: choose from {', '.join(VOICES)}")
    if not 1 <= voices_per_sentence <= len(voices):
        raise ValueError(f"voices_per_sentence={voices_per_sentence}: give 1 to {len(voices)}")
    if n_sentences < 1:
        raise ValueError(f"n_sentences must be at least 1, got {n_sentences}")
    root = Path(root)
    params = {
        "version": FORMAT_VERSION,
        "n_sentences": int(n_sentences),
        "voices": voices,
        "voices_per_sentence": int(voices_per_sentence),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
    }
    manifest_path = root / ".demo-speech.json"
    train_items = [
        (f"{i:04d}_{voices[(i + k) % len(voices)]}", text, voices[(i + k) % len(voices)])
        for i, text in enumerate(demo_sentences(n_sentences, seed))
        for k in range(voices_per_sentence)
    ]
    heldout_items = [
        (f"h{i:02d}_{voice}", text, voice) for i, text in enumerate(HELDOUT_SENTENCES) for voice in voices
    ]
    files = {
        "train": [f"clips/{name}.wav" for name, _, _ in train_items],
        "heldout": [f"clips/{name}.wav" for name, _, _ in heldout_items],
    }
    if read_manifest(manifest_path).get("params") == params and all(
        (root / split / path).is_file() for split, paths in files.items() for path in paths
    ):
        return files
    manifest_path.unlink(missing_ok=True)
    for split in files:
        for stale in (root / split / "clips").glob("*.wav"):  # only our own names live there
            stale.unlink()
    synthesizer = EspeakSynthesizer()  # a fresh one: the same corpus gives the same bytes
    _write_folder(synthesizer, root / "train", train_items, sample_rate)
    _write_folder(synthesizer, root / "heldout", heldout_items, sample_rate)
    (root / "heldout.txt").write_text("\n".join(HELDOUT_SENTENCES) + "\n", encoding="utf-8")
    manifest_path.write_text(json.dumps({"params": params}, indent=1) + "\n")
    return files
