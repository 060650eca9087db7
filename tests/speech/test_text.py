"""Text normalisation: unicode, punctuation, whitespace, case and the English number rules."""

import pytest

from latentaudio.speech.text import (
    expand_english_numbers,
    normalise_text,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (42, "forty two"),
        (100, "one hundred"),
        (115, "one hundred fifteen"),
        (1000, "one thousand"),
        (2026, "two thousand twenty six"),
        (1_000_001, "one million one"),
        (-3, "minus three"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (12, "twelfth"), (21, "twenty first"), (40, "fortieth")],
)
def test_ordinal_to_words(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1984, "nineteen eighty four"),
        (1900, "nineteen hundred"),
        (1905, "nineteen oh five"),
        (2005, "two thousand five"),
        (2026, "twenty twenty six"),
        (1066, "one thousand sixty six"),
    ],
)
def test_year_to_words(year, words):
    assert year_to_words(year) == words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 1984 he was 7", "in nineteen eighty four he was seven"),
        ("it cost $3.50", "it cost three dollars and fifty cents"),
        ("$1", "one dollar"),
        ("25% more", "twenty five percent more"),
        ("the 3rd day", "the third day"),
        ("pi is 3.14", "pi is three point one four"),
        ("1,500 people", "one thousand five hundred people"),
    ],
)
def test_english_number_rules(text, expected):
    assert expand_english_numbers(text) == expected


def test_normalise_text_folds_unicode_case_whitespace_and_punctuation():
    text = "  Dr.\u00a0Smith\u2019s  \u201cfirst\u201d   talk\u2014in 1984 \u2026\nNo. 5!\u200b"
    assert normalise_text(text) == 'doctor smith\'s "first" talk, in nineteen eighty four... number five!'


def test_normalise_text_keeps_case_on_request_and_leaves_other_languages_digits():
    assert normalise_text("Hello  World", lowercase=False) == "Hello World"
    assert normalise_text("Ich habe 3 Katzen", language="de") == "ich habe 3 katzen"


def test_full_width_and_compatibility_forms_become_plain():
    assert normalise_text("\uff21\uff22\uff23 \ufb01ne") == "abc fine"
