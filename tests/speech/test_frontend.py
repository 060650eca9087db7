"""The text front end: phonemes through eSpeak NG, the character fallback, the stored state."""

import logging

import pytest

from latentaudio.speech import frontend as frontend_module
from latentaudio.speech.frontend import CHARACTERS, PHONEMES, PhonemizerUnavailable, TextFrontend
from latentaudio.speech.symbols import SymbolVocabulary


@pytest.fixture
def without_phonemizer(monkeypatch):
    def unavailable(language):
        raise PhonemizerUnavailable("phonemizer is not installed (test)")

    monkeypatch.setattr(frontend_module, "espeak_phonemizer", unavailable)


@pytest.fixture(scope="module")
def phonemes():
    pytest.importorskip("phonemizer")
    pytest.importorskip("espeakng_loader")
    frontend = TextFrontend("en-us")
    assert frontend.kind == PHONEMES, "phonemizer and espeakng-loader are installed but eSpeak did not start"
    return frontend


def test_phonemes_with_stress_word_boundaries_and_punctuation(phonemes):
    (string,) = phonemes.phonemes(["Hello, world!"])
    assert string.startswith("h") and "ˈ" in string and string.endswith("!")
    assert "," in string and string.count(" ") == 1  # one word boundary; punctuation kept
    assert set(string) <= set(phonemes.vocabulary.symbols)


def test_phonemes_read_numbers_as_words(phonemes):
    assert phonemes.symbols("I have 3 cats") == phonemes.symbols("i have three cats")


def test_encode_gives_stable_known_ids(phonemes):
    ids = phonemes.encode("The red fox sees four boats.")
    assert ids == phonemes.encode("The red fox sees four boats.")
    assert phonemes.vocabulary.unk_id not in ids and phonemes.vocabulary.pad_id not in ids
    assert phonemes.decode(ids) == phonemes.phonemes(["The red fox sees four boats."])[0]


def test_batches_match_single_texts(phonemes):
    texts = ["One small step.", "Two big boats!"]
    assert phonemes.encode_batch(texts) == [phonemes.encode(t) for t in texts]


def test_fallback_to_characters_warns_once_and_never_raises(without_phonemizer, caplog):
    with caplog.at_level(logging.WARNING, logger="latentaudio.speech.frontend"):
        frontend = TextFrontend("en-us")
    assert frontend.kind == CHARACTERS and frontend.requested_kind == PHONEMES
    assert len(caplog.records) == 1 and "characters" in caplog.records[0].getMessage()
    assert "\n" not in caplog.records[0].getMessage()
    assert frontend.symbols("Dr. Who, 2 times!") == list("doctor who, two times!")


def test_a_text_that_fails_to_phonemize_alone_falls_back(phonemes, monkeypatch, caplog):
    real = phonemes._backend.phonemize

    def flaky(texts, **kwargs):
        if any("boom" in t for t in texts):
            raise RuntimeError("espeak crashed")
        return real(texts, **kwargs)

    monkeypatch.setattr(phonemes._backend, "phonemize", flaky)
    with caplog.at_level(logging.WARNING, logger="latentaudio.speech.frontend"):
        out = phonemes.phonemes(["fine words", "boom here"])
    assert out[1] == "boom here" and out[0] != "fine words"
    assert any("boom here" in r.getMessage() for r in caplog.records)


def test_unknown_symbols_become_unk_with_one_warning(without_phonemizer, caplog):
    frontend = TextFrontend("en-us")
    with caplog.at_level(logging.WARNING, logger="latentaudio.speech.frontend"):
        ids = frontend.encode("snow ☃ and ☃")
        frontend.encode("more ☃")
    assert ids.count(frontend.vocabulary.unk_id) == 2
    assert len([r for r in caplog.records if "☃" in r.getMessage()]) == 1


def test_state_round_trip(tmp_path, without_phonemizer):
    frontend = TextFrontend("en-gb", kind=CHARACTERS)
    path = frontend.save(tmp_path / "text_frontend.json")
    again = TextFrontend.load(path)
    assert again.state() == frontend.state()
    assert again.encode("Hello there.") == frontend.encode("Hello there.")
    assert again.vocabulary == SymbolVocabulary()


def test_a_phoneme_model_loaded_without_phonemizer_warns(tmp_path, without_phonemizer, caplog):
    state = TextFrontend("en-us", kind=CHARACTERS).state() | {"kind": PHONEMES}
    with caplog.at_level(logging.WARNING, logger="latentaudio.speech.frontend"):
        frontend = TextFrontend.from_state(state)
    assert frontend.kind == CHARACTERS
    assert any("trained on phonemes" in r.getMessage() for r in caplog.records)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind="):
        TextFrontend(kind="graphemes")
