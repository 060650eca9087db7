"""Text to symbol ids: normalise, then phonemes through eSpeak NG, or characters as a fallback.

Phonemes come from ``phonemizer``'s eSpeak backend, pointed at the eSpeak NG library and data
that the ``espeakng-loader`` wheel ships, so no system package is needed
(``pip install 'latentaudio[speech]'``). Where either package is missing, or the library will
not load, the front end says so in one warning and uses the normalised characters instead;
one sentence that eSpeak fails on falls back alone. A front end never raises on text.

``TextFrontend.state()`` is what a speech model stores beside its weights (kind, language,
vocabulary); ``TextFrontend.from_state`` rebuilds the same front end from it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from latentaudio.speech.symbols import WORD_BOUNDARY, SymbolVocabulary
from latentaudio.speech.text import normalise_text

log = logging.getLogger(__name__)

PHONEMES, CHARACTERS = "phonemes", "characters"
INSTALL_HINT = "pip install 'latentaudio[speech]'"
# What phonemizer keeps between words: the symbols of the vocabulary that it treats as punctuation.
PUNCTUATION_MARKS = ';:,.!?"()-'


class PhonemizerUnavailable(RuntimeError):
    """``phonemizer`` or the eSpeak NG library from ``espeakng-loader`` cannot be used here."""


def espeak_paths() -> tuple[str, str]:
    """(the eSpeak NG shared library, its ``espeak-ng-data`` folder) from ``espeakng-loader``."""
    try:
        import espeakng_loader
    except ImportError as error:
        raise PhonemizerUnavailable(f"espeakng-loader is not installed ({INSTALL_HINT})") from error
    return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())


@functools.lru_cache(maxsize=8)
def espeak_phonemizer(language: str):
    """A phonemizer eSpeak backend for ``language`` (cached: building one loads the library)."""
    try:
        from phonemizer.backend import EspeakBackend
        from phonemizer.backend.espeak.wrapper import EspeakWrapper
    except ImportError as error:
        raise PhonemizerUnavailable(f"phonemizer is not installed ({INSTALL_HINT})") from error
    library, data = espeak_paths()
    EspeakWrapper.set_library(library)
    EspeakWrapper.set_data_path(data)
    quiet = logging.getLogger("latentaudio.speech.phonemizer")  # its per-call notes are not ours to show
    quiet.setLevel(logging.ERROR)
    try:
        return EspeakBackend(
            language,
            punctuation_marks=PUNCTUATION_MARKS,
            preserve_punctuation=True,
            with_stress=True,
            language_switch="remove-flags",
            words_mismatch="ignore",
            logger=quiet,
        )
    except (RuntimeError, OSError) as error:
        raise PhonemizerUnavailable(f"eSpeak NG could not start for {language!r}: {error}") from error


class TextFrontend:
    """``encode(text) -> ids`` for a speech model; ``kind`` is ``"phonemes"`` or ``"characters"``.

    Asking for phonemes where they cannot be made gives a character front end and one warning.
    """

    def __init__(
        self,
        language: str = "en-us",
        kind: str = PHONEMES,
        lowercase: bool = True,
        vocabulary: SymbolVocabulary | None = None,
    ):
        if kind not in (PHONEMES, CHARACTERS):
            raise ValueError(f"kind={kind!r}: use {PHONEMES!r} or {CHARACTERS!r}")
        self.language = language
        self.lowercase = lowercase
        self.vocabulary = vocabulary or SymbolVocabulary()
        self.requested_kind = kind
        self._backend = None
        if kind == PHONEMES:
            try:
                self._backend = espeak_phonemizer(language)
            except PhonemizerUnavailable as error:
                log.warning("phonemes unavailable, the text front end spells characters instead: %s", error)
        self.kind = PHONEMES if self._backend is not None else CHARACTERS
        self._warned_unknown: set[str] = set()

    # ----------------------------------------------------------------------------------

    def normalise(self, text: str) -> str:
        return normalise_text(text, self.language, lowercase=self.lowercase)

    def phonemes(self, texts: list[str]) -> list[str]:
        """Normalised ``texts`` as phoneme strings (words parted by one space, punctuation kept);
        characters for any text eSpeak fails on, and for all of them without a phonemizer."""
        normal = [self.normalise(t) for t in texts]
        if self._backend is None:
            return normal
        try:
            return [" ".join(p.split()) for p in self._backend.phonemize(normal, strip=True, njobs=1)]
        except Exception as batch_error:  # noqa: BLE001 - one bad text must not take the batch down
            if len(normal) == 1:
                log.warning("phonemizing %r failed (%s): characters for this text", normal[0], batch_error)
                return normal
            return [self.phonemes([t])[0] for t in texts]

    def symbols(self, text: str) -> list[str]:
        """The symbols of one text: one per character of its phoneme (or character) string."""
        return list(self.phonemes([text])[0])

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Symbol ids per text; unknown symbols become ``<unk>`` with one warning each."""
        out = []
        for string in self.phonemes(texts):
            unknown = [s for s in self.vocabulary.unknown(string) if s not in self._warned_unknown]
            if unknown:
                self._warned_unknown.update(unknown)
                log.warning("symbols outside the vocabulary, read as <unk>: %s", " ".join(map(repr, unknown)))
            out.append(self.vocabulary.encode(string))
        return out

    def decode(self, ids: list[int]) -> str:
        """The symbol string of ``ids`` (specials other than the word boundary left out)."""
        specials = {self.vocabulary.pad_id, self.vocabulary.filler_id}
        return "".join(s for i, s in zip(ids, self.vocabulary.decode(ids)) if i not in specials)

    @property
    def word_boundary(self) -> str:
        return WORD_BOUNDARY

    # ----------------------------------------------------------------------------------

    def state(self) -> dict:
        """What a speech model stores to get this front end back: kind, language, vocabulary."""
        return {
            "kind": self.kind,
            "language": self.language,
            "lowercase": self.lowercase,
            "vocabulary": self.vocabulary.to_dict(),
        }

    @classmethod
    def from_state(cls, state: dict) -> TextFrontend:
        frontend = cls(
            language=state["language"],
            kind=state["kind"],
            lowercase=state.get("lowercase", True),
            vocabulary=SymbolVocabulary.from_dict(state["vocabulary"]),
        )
        if frontend.kind != state["kind"]:
            log.warning(
                "this model was trained on %s but only %s can be made here: its speech will be poor (%s)",
                state["kind"],
                frontend.kind,
                INSTALL_HINT,
            )
        return frontend

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.state(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TextFrontend:
        return cls.from_state(json.loads(Path(path).read_text(encoding="utf-8")))
