"""LJSpeech and LibriTTS folders listed in our metadata.csv, on tiny fake corpora."""

import csv
import os
from pathlib import Path

import pytest
from conftest import write_sine

from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import scan_audio_folder
from latentaudio.speech.layouts import CorpusLayoutError, convert_corpus


@pytest.fixture
def ljspeech(tmp_path) -> Path:
    root = tmp_path / "LJSpeech-1.1"
    lines = [
        "LJ001-0001|Printing, in the only sense with which we are at present concerned|Printing, in the only sense",
        'LJ001-0002|In 1878 he paid "$5"|In eighteen seventy-eight he paid "five dollars"',
        "LJ001-0003|No normalised column",
        "LJ001-0004|Listed but missing|Listed but missing",
    ]
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for i, name in enumerate(["LJ001-0001", "LJ001-0002", "LJ001-0003"]):
        write_sine(root / "wavs" / f"{name}.wav", frequency=220 * (i + 1), seconds=0.3, sample_rate=22050)
    return root


@pytest.fixture
def libritts(tmp_path) -> Path:
    root = tmp_path / "LibriTTS"
    for speaker, chapter, index in [("19", "198", 0), ("19", "198", 1), ("84", "121123", 0)]:
        folder = root / "train-clean-100" / speaker / chapter
        stem = f"{speaker}_{chapter}_000000_{index:06d}"
        write_sine(folder / f"{stem}.wav", frequency=200 + index * 50, seconds=0.3, sample_rate=24000)
        (folder / f"{stem}.normalized.txt").write_text(f"Speaker {speaker} says line {index}.\n")
        (folder / f"{stem}.original.txt").write_text(f"Speaker {speaker} says line #{index}.")
    write_sine(root / "train-clean-100" / "84" / "121123" / "untranscribed.wav", seconds=0.2)
    return root


def _rows(listing: Path) -> list[dict]:
    with open(listing, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_ljspeech_is_listed_with_normalised_text_and_linked_audio(ljspeech, tmp_path, caplog):
    output = tmp_path / "ours"
    listing = convert_corpus("ljspeech", ljspeech, output)
    rows = _rows(listing)
    assert [r["path"] for r in rows] == [f"audio/wavs/LJ001-000{i}.wav" for i in (1, 2, 3)]
    assert rows[1]["text"] == 'In eighteen seventy-eight he paid "five dollars"'
    assert rows[1]["raw_text"] == 'In 1878 he paid "$5"'
    assert rows[2]["text"] == rows[2]["raw_text"] == "No normalised column"
    assert "speaker" not in rows[0]
    assert all(os.path.islink(output / r["path"]) for r in rows)
    assert "1 listed recordings have no file" in caplog.text
    # the house's own readers see the corpus: the scan finds the links, the metadata their text
    files = [f.path for f in scan_audio_folder(output, cache_dir=tmp_path / "cache", progress=False).files]
    assert sorted(files) == sorted(r["path"] for r in rows)
    metadata = load_metadata(output, files)
    assert metadata["audio/wavs/LJ001-0001.wav"]["text"] == "Printing, in the only sense"


def test_ljspeech_copy_mode_and_refusals(ljspeech, tmp_path):
    output = tmp_path / "copied"
    rows = _rows(convert_corpus("ljspeech", ljspeech, output, audio="copy"))
    assert not any(os.path.islink(output / r["path"]) for r in rows)
    assert (output / rows[0]["path"]).read_bytes() == (ljspeech / "wavs" / "LJ001-0001.wav").read_bytes()
    with pytest.raises(ValueError, match="its own metadata.csv"):
        convert_corpus("ljspeech", ljspeech, ljspeech)
    with pytest.raises(CorpusLayoutError, match="LJSpeech layout"):
        convert_corpus("ljspeech", tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(ValueError, match="layout="):
        convert_corpus("vctk", ljspeech, output)


def test_libritts_in_place_keeps_speakers(libritts, caplog):
    listing = convert_corpus("libritts", libritts, libritts)
    rows = _rows(listing)
    assert listing == libritts / "metadata.csv"
    assert [r["speaker"] for r in rows] == ["19", "19", "84"]
    assert rows[0]["path"] == "train-clean-100/19/198/19_198_000000_000000.wav"
    assert rows[0]["text"] == "Speaker 19 says line 0." and rows[0]["raw_text"] == "Speaker 19 says line #0."
    assert "1 .wav files have no .normalized.txt" in caplog.text
    metadata = load_metadata(libritts, [r["path"] for r in rows])
    assert metadata[rows[2]["path"]] == {
        "text": "Speaker 84 says line 0.",
        "speaker": "84",
        "raw_text": rows[2]["raw_text"],
    }


def test_libritts_elsewhere_links_audio(libritts, tmp_path):
    output = tmp_path / "libri-ours"
    rows = _rows(convert_corpus("libritts", libritts, output))
    assert rows[0]["path"] == "audio/train-clean-100/19/198/19_198_000000_000000.wav"
    assert all((output / r["path"]).is_file() for r in rows)
    with pytest.raises(CorpusLayoutError, match="LibriTTS layout"):
        convert_corpus("libritts", tmp_path / "empty", tmp_path / "out2")


def test_the_app_converts(ljspeech, tmp_path):
    from apps_helpers import compose_app

    from latentaudio.apps.speech_data import convert

    overrides = ["layout=ljspeech", f"source={ljspeech}", f"output={tmp_path / 'app-out'}"]
    listing = convert(compose_app("speech_data", tmp_path / "run", overrides))
    assert len(_rows(listing)) == 3
