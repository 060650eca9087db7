"""The speech demo corpus: eSpeak NG through ctypes, in a few voices, deterministic."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader")

from latentaudio.speech.demo import HELDOUT_SENTENCES, VOICES, demo_sentences, generate_demo_speech, render  # noqa: E402
from latentaudio.speech.espeak import EspeakSynthesizer, Voice  # noqa: E402

N_SENTENCES = 6


@pytest.fixture(scope="module")
def synthesizer():
    return EspeakSynthesizer()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-speech")
    files = generate_demo_speech(root, n_sentences=N_SENTENCES, voices=["m1", "f4"])
    return root, files


def _rows(folder):
    with open(folder / "metadata.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_sentences_are_distinct_deterministic_and_never_held_out():
    sentences = demo_sentences(300)
    assert len(set(sentences)) == 300 and sentences[:20] == demo_sentences(20)
    assert not {s.lower() for s in sentences} & {s.lower() for s in HELDOUT_SENTENCES}
    assert demo_sentences(5, seed=1) != demo_sentences(5)
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)


def test_speech_is_audible_and_longer_for_longer_text(synthesizer):
    short = synthesizer.speak("Hello.", Voice("en-us+m1"))
    long = synthesizer.speak("Hello, the red fox sees four old boats near the river.", Voice("en-us+m1"))
    assert short.sample_rate == 22050
    assert 0.2 < short.seconds < long.seconds < 6.0
    assert long.seconds > 2 * short.seconds
    assert np.sqrt(np.mean(long.audio**2)) > 0.01 and np.abs(long.audio).max() <= 1.0


def test_voices_differ_and_rate_changes_duration(synthesizer):
    text = "The quiet rabbit follows the baker."
    slow = synthesizer.speak(text, Voice("en-us", rate=120))
    fast = synthesizer.speak(text, Voice("en-us", rate=260))
    assert slow.seconds > 1.5 * fast.seconds
    a, _ = render(synthesizer, text, VOICES["m1"], 16000)
    b, _ = render(synthesizer, text, VOICES["f4"], 16000)
    assert a.shape != b.shape or not np.allclose(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="no voice"):
        synthesizer.speak(text, Voice("xx-nonexistent"))


def test_phoneme_timings_cover_the_clip_in_order(synthesizer):
    audio, timings = render(synthesizer, "Four tall teachers count the trains.", VOICES["f2"], 16000)
    seconds = audio.shape[-1] / 16000
    assert len(timings) > 15
    starts = [start for _, start, _ in timings]
    assert starts == sorted(starts) and all(end >= start for _, start, end in timings)
    assert timings[0][1] < 0.3 and timings[-1][1] <= seconds
    assert ["t", "ɹ", "ˈeɪ", "n", "z"] == [name for name, _, _ in timings if name != "_"][-5:]
    assert timings[-1][2] == pytest.approx(seconds, abs=1e-3)
    assert 0.5 * seconds < sum(end - start for _, start, end in timings) <= seconds + 1e-3


def test_corpus_layout_and_metadata(corpus):
    root, files = corpus
    train, heldout = _rows(root / "train"), _rows(root / "heldout")
    assert len(train) == N_SENTENCES and len(heldout) == 2 * len(HELDOUT_SENTENCES)
    assert [r["path"] for r in train] == files["train"]
    assert {r["speaker"] for r in train} == {"m1", "f4"} == {r["speaker"] for r in heldout}
    assert (root / "heldout.txt").read_text().splitlines() == list(HELDOUT_SENTENCES)
    for row in train[:3] + heldout[:3]:
        folder = root / ("train" if row in train else "heldout")
        info = sf.info(folder / row["path"])
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        timings = json.loads(row["phonemes"])
        assert timings[-1][2] == pytest.approx(info.frames / 16000, abs=1e-3)


def test_a_second_call_is_a_no_op_and_bytes_repeat(corpus, tmp_path):
    root, files = corpus
    stamp = (root / "train" / files["train"][0]).stat().st_mtime_ns
    assert generate_demo_speech(root, n_sentences=N_SENTENCES, voices=["m1", "f4"]) == files
    assert (root / "train" / files["train"][0]).stat().st_mtime_ns == stamp
    again = tmp_path / "again"
    generate_demo_speech(again, n_sentences=2, voices=["m1", "f4"])
    for name in files["train"][:2]:
        assert (again / "train" / name).read_bytes() == (root / "train" / name).read_bytes()


def test_the_app_writes_the_corpus(tmp_path):
    from apps_helpers import compose_app

    from latentaudio.apps.demo_speech_data import write

    cfg = compose_app(
        "demo_speech_data", tmp_path / "run", [f"output={tmp_path / 'c'}", "n_sentences=2", "voices=[m3]"]
    )
    files = write(cfg)
    assert files["train"] == ["clips/0000_m3.wav", "clips/0001_m3.wav"]
    assert len(files["heldout"]) == len(HELDOUT_SENTENCES)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="voices"):
        generate_demo_speech(tmp_path, n_sentences=2, voices=["zz"])
    with pytest.raises(ValueError, match="voices_per_sentence"):
        generate_demo_speech(tmp_path, n_sentences=2, voices=["m1"], voices_per_sentence=2)
