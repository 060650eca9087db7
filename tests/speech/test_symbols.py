"""The symbol vocabulary: fixed ids, a fingerprint, a stored copy that reads back the same."""

import pytest

from latentaudio.speech.symbols import FILLER, PAD, SYMBOLS, UNK, WORD_BOUNDARY, SymbolVocabulary

# The ids of this version of the table. They only change if the table's start is edited, which
# would silently re-map every stored model: append new symbols at the end instead.
PINNED = {
    PAD: 0,
    UNK: 1,
    FILLER: 2,
    WORD_BOUNDARY: 3,
    "!": 4,
    ",": 9,
    "ˈ": 15,
    "ˌ": 16,
    "ː": 17,
    "ə": 43,
    "ʃ": 93,
}


def test_ids_are_pinned():
    vocabulary = SymbolVocabulary()
    assert {s: vocabulary.encode([s])[0] for s in PINNED} == PINNED
    assert len(vocabulary) == len(SYMBOLS) == 139
    assert vocabulary.fingerprint == SymbolVocabulary().fingerprint


def test_encode_decode_and_unknown():
    vocabulary = SymbolVocabulary()
    ids = vocabulary.encode(list("həlˈoʊ wˈɜːld!"))
    assert vocabulary.decode(ids) == list("həlˈoʊ wˈɜːld!")
    assert vocabulary.encode(["☃"]) == [vocabulary.unk_id]
    assert vocabulary.unknown("a☃b☃€") == ["☃", "€"]


def test_stored_vocabulary_reads_back_and_refuses_edits():
    vocabulary = SymbolVocabulary()
    stored = vocabulary.to_dict()
    assert SymbolVocabulary.from_dict(stored) == vocabulary
    stored["symbols"] = stored["symbols"][:-1]
    with pytest.raises(ValueError, match="fingerprint"):
        SymbolVocabulary.from_dict(stored)


def test_a_grown_table_keeps_the_old_ids():
    grown = SymbolVocabulary(SYMBOLS + ("ʘ",))
    assert grown.encode(list("ʃə ")) == SymbolVocabulary().encode(list("ʃə "))
    with pytest.raises(ValueError, match="starts with"):
        SymbolVocabulary(("a",) + SYMBOLS)
