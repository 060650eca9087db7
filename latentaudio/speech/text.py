"""Text normalisation before phonemes: unicode, punctuation, whitespace, case, English numbers.

``normalise_text("Dr. Smith paid $3.50 in 1984 — 25% more!")``
-> ``"doctor smith paid three dollars and fifty cents in nineteen eighty four, twenty five percent more!"``

The English rules are deliberately modest (integers, years, ordinals, decimals, money,
percentages and a few abbreviations): enough that a number never reaches the phonemizer or
the character fallback as digits, readable in one sitting, and tested rule by rule.
Other languages get the language-independent steps only.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence")}
_CURRENCIES["€"] = ("euro", "euros", "cent", "cents")
_ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miss",
    "dr": "doctor",
    "st": "saint",
    "prof": "professor",
    "jr": "junior",
    "sr": "senior",
    "vs": "versus",
    "etc": "et cetera",
    "no": "number",
}
# Typographic marks folded to the plain ones the phonemizer and the vocabulary know.
_PUNCTUATION_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": ", ",  # en and em dashes read as a pause
        "\u2014": ", ",
        "\u2015": ", ",
        "\u2026": "...",
        "\u00a0": " ",
    }
)


# --------------------------------------------------------------------------------------
# Numbers to words
# --------------------------------------------------------------------------------------


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] if not ones else f"{_TENS[tens]} {_ONES[ones]}")
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Cardinal English words: ``2026`` -> ``"two thousand twenty six"``; below a quadrillion,
    larger numbers are read digit by digit."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))
    words: list[str] = []
    for scale, name in _SCALES:
        count, n = divmod(n, scale)
        if count:
            words += [number_to_words(count), name]
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """``21`` -> ``"twenty first"``, ``40`` -> ``"fortieth"``."""
    head, _, last = number_to_words(n).rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def year_to_words(year: int) -> str:
    """How a year is read aloud: ``1984`` -> ``"nineteen eighty four"``, ``1900`` ->
    ``"nineteen hundred"``, ``2005`` -> ``"two thousand five"``, ``2026`` -> ``"twenty twenty six"``."""
    if not 1100 <= year <= 2099 or 2000 <= year <= 2009:
        return number_to_words(year)
    century, rest = divmod(year, 100)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    if rest < 10:
        return f"{number_to_words(century)} oh {_ONES[rest]}"
    return f"{number_to_words(century)} {number_to_words(rest)}"


def _money(match: re.Match) -> str:
    one, many, small_one, small_many = _CURRENCIES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    cents = int(match.group(3) or 0)
    parts = []
    if whole or not cents:
        parts.append(f"{number_to_words(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{number_to_words(cents)} {small_one if cents == 1 else small_many}")
    return " and ".join(parts)


def _decimal(match: re.Match) -> str:
    digits = " ".join(_ONES[int(d)] for d in match.group(2))
    return f"{number_to_words(int(match.group(1)))} point {digits}"


def _integer(match: re.Match) -> str:
    text = match.group(0)
    if "," not in text and len(text) == 4 and 1100 <= int(text) <= 2099:
        return year_to_words(int(text))
    return number_to_words(int(text.replace(",", "")))


def expand_english_numbers(text: str) -> str:
    """Money, percentages, ordinals, decimals, years and integers spelled out in words."""
    text = re.sub(r"([$£€])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b", _money, text)
    text = re.sub(r"(\d)\s?%", r"\1 percent", text)
    text = re.sub(
        r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_to_words(int(m.group(1))), text, flags=re.IGNORECASE
    )
    text = re.sub(r"\b(\d+)\.(\d+)\b", _decimal, text)
    text = re.sub(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b", _integer, text)
    return text


def expand_english_abbreviations(text: str) -> str:
    """``Dr.`` -> ``doctor`` and the like; only with the full stop, so "no" and "st" stay words.
    ``No.`` becomes "number" only before a digit."""

    def replace(match: re.Match) -> str:
        word = match.group(1)
        return _ABBREVIATIONS[word.lower()] if word.lower() != "no" else "number"

    text = re.sub(r"\b(No)\.(?=\s*\d)", replace, text, flags=re.IGNORECASE)
    names = "|".join(k for k in _ABBREVIATIONS if k != "no")
    return re.sub(rf"\b({names})\.", replace, text, flags=re.IGNORECASE)


# --------------------------------------------------------------------------------------
# The whole normalisation
# --------------------------------------------------------------------------------------


def _plain_character(c: str) -> str:
    """Separators and control characters become a space; format characters (zero-width) go."""
    category = unicodedata.category(c)
    if category[0] == "Z" or category == "Cc":
        return " "
    return "" if category[0] == "C" else c


def normalise_text(text: str, language: str = "en-us", lowercase: bool = True) -> str:
    """Text as the phonemizer should see it: NFKC unicode, plain quotes and dashes, no control
    characters, English numbers and abbreviations in words, lower case, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_PUNCTUATION_MAP)
    text = "".join(_plain_character(c) for c in text)
    if language.lower().startswith("en"):
        text = expand_english_abbreviations(text)
        text = expand_english_numbers(text.replace("&", " and "))
    if lowercase:
        text = text.lower()
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()
