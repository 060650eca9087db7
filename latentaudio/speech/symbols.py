"""The fixed symbol vocabulary of the text front end: one id per symbol, the same in every run.

One symbol is one unicode character of the phoneme string (IPA as eSpeak NG writes it, with
stress and length marks as symbols of their own) or of the normalised text in the character
fallback, plus four specials: ``<pad>`` (batch padding, id 0), ``<unk>``, ``<filler>`` (text
padded to the length of its audio, the F5/E2 way) and the word boundary ``" "``.

A speech model stores its vocabulary (:meth:`SymbolVocabulary.to_dict`) and reads it back
from there, not from this module, so a model keeps its ids even if this table grows. The table
only ever grows at its end: ``tests/speech/test_symbols.py`` pins the ids of this version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

PAD, UNK, FILLER, WORD_BOUNDARY = "<pad>", "<unk>", "<filler>", " "
SPECIALS = (PAD, UNK, FILLER, WORD_BOUNDARY)
PUNCTUATION = tuple("!'\"(),-.:;?")
STRESS = ("ˈ", "ˌ")  # primary, secondary: before the stressed syllable
# length, then combining and modifier marks: nasal, syllabic, non-syllabic, tie, aspiration,
# palatalisation, labialisation, rhoticity, velarisation
MARKS = ("ː", "ˑ", "\u0303", "\u0329", "\u032f", "\u0361", "ʰ", "ʲ", "ʷ", "˞", "ˠ")
IPA_VOWELS = tuple("iyɨʉɯuɪʏʊeøɘɵɤoəɛœɜɞʌɔæɐaɶɑɒᵻɚɝ")
IPA_CONSONANTS = tuple("pbtdʈɖcɟkɡqɢʔmɱnɳɲŋɴʙrʀⱱɾɽɸβfvθðszʃʒʂʐçʝxɣχʁħʕhɦɬɮʋɹɻjɰlɭʎʟɕʑɧʍwɥʜʢʡɫ")
# The character fallback: Latin letters missing above, then digits (normalisation spells
# numbers out, but a language without number rules may leave some).
LATIN = tuple(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in IPA_VOWELS + IPA_CONSONANTS)
DIGITS = tuple("0123456789")

SYMBOLS: tuple[str, ...] = (
    SPECIALS + PUNCTUATION + STRESS + MARKS + IPA_VOWELS + IPA_CONSONANTS + LATIN + DIGITS
)


@dataclass(frozen=True)
class SymbolVocabulary:
    """Symbols to ids and back. ``SymbolVocabulary()`` is this version's table."""

    symbols: tuple[str, ...] = SYMBOLS

    def __post_init__(self) -> None:
        if tuple(self.symbols[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a symbol vocabulary starts with {SPECIALS}, got {tuple(self.symbols[:4])}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("a symbol vocabulary lists each symbol once")
        object.__setattr__(self, "_ids", {s: i for i, s in enumerate(self.symbols)})

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._ids

    # the specials' ids, fixed by the check above
    pad_id: ClassVar[int] = 0
    unk_id: ClassVar[int] = 1
    filler_id: ClassVar[int] = 2
    word_boundary_id: ClassVar[int] = 3

    def encode(self, symbols: Iterable[str]) -> list[int]:
        """Ids of ``symbols``; one not in the table is ``<unk>``."""
        return [self._ids.get(s, self.unk_id) for s in symbols]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.symbols[i] for i in ids]

    def unknown(self, symbols: Iterable[str]) -> list[str]:
        """The distinct symbols this table does not know, in order of appearance."""
        return list(dict.fromkeys(s for s in symbols if s not in self._ids))

    @property
    def fingerprint(self) -> str:
        """A short hash of the table: two vocabularies with one fingerprint give the same ids."""
        return hashlib.sha256("\u0000".join(self.symbols).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"symbols": list(self.symbols), "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: dict) -> SymbolVocabulary:
        vocabulary = cls(tuple(data["symbols"]))
        stored = data.get("fingerprint")
        if stored is not None and stored != vocabulary.fingerprint:
            raise ValueError(
                f"symbol vocabulary fingerprint {stored} does not match its symbols "
                f"({vocabulary.fingerprint}): the stored table was edited"
            )
        return vocabulary
