"""Speak text with the eSpeak NG library from ``espeakng-loader``, through ctypes.

``EspeakSynthesizer().speak("hello", Voice("en-us+f3", pitch=60, rate=160))`` returns the
16-bit audio as float32 samples at eSpeak's own rate (22050 Hz) and the phonemes said, each
with the time it starts (eSpeak's phoneme events). Synchronous mode: ``espeak_Synth`` returns
when the whole text has gone through the callback, so nothing runs on another thread.

The library keeps global state that carries from one text to the next (the voice's pitch
flutter, filters), so the same text sounds a little different after other texts. Each
synthesizer therefore loads a private copy of the library: a new synthesizer starts from the
same state, and the same texts spoken in the same order give the same samples.
Only what the demo corpus needs of the C API (``speak_lib.h``) is bound here.
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentaudio.speech.frontend import espeak_paths

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS, INITIALIZE_PHONEME_IPA = 0x0001, 0x0002
EVENT_LIST_TERMINATED, EVENT_PHONEME, EVENT_MSG_TERMINATED = 0, 7, 6
CHARS_UTF8, POSITION_CHARACTER = 1, 1
PARAMETER_RATE, PARAMETER_VOLUME, PARAMETER_PITCH, PARAMETER_RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of the text
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Voice:
    """An eSpeak voice (``language`` or ``language+variant``: ``en-us+f3``) at a base pitch
    (0-100, 50 normal), pitch range (0-100) and rate (words per minute, 80-450)."""

    name: str = "en-us"
    pitch: int = 50
    rate: int = 175
    pitch_range: int = 50


@dataclass(frozen=True)
class Speech:
    """Spoken text: float32 mono ``audio`` at ``sample_rate`` and ``(ipa, start_seconds)`` per phoneme."""

    audio: np.ndarray
    sample_rate: int
    phonemes: list[tuple[str, float]]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    def timing(self) -> list[tuple[str, float, float]]:
        """``(ipa, start_s, end_s)`` per phoneme: each ends where the next starts, the last with the audio."""
        starts = [min(start, self.seconds) for _, start in self.phonemes]
        ends = starts[1:] + [self.seconds]
        return [(name, start, end) for (name, _), start, end in zip(self.phonemes, starts, ends)]


class EspeakSynthesizer:
    """The eSpeak NG library, initialised for synchronous synthesis with IPA phoneme events."""

    def __init__(self):
        library_path, data_path = espeak_paths()
        # a copy under another name: the dynamic loader gives it its own, freshly initialised state
        self._folder = tempfile.TemporaryDirectory(prefix="latentaudio-espeak-")
        private = Path(self._folder.name) / Path(library_path).name
        shutil.copyfile(library_path, private)
        self._library = ctypes.CDLL(str(private))
        self._library.espeak_Initialize.restype = ctypes.c_int
        self._library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._library.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA
        rate = self._library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG did not start (data in {data_path})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._phonemes: list[tuple[str, float]] = []
        self._callback = _CALLBACK(self._receive)  # kept on self: the library holds only a raw pointer
        self._library.espeak_SetSynthCallback(self._callback)

    def _receive(self, wav, n_samples, events) -> int:
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).astype(np.float32) / 32768.0)
        index = 0
        while events[index].type != EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", errors="replace")
                self._phonemes.append((name or "_", event.audio_position / 1000.0))  # "": a pause
            index += 1
        return 0

    def speak(self, text: str, voice: Voice = Voice()) -> Speech:
        if self._library.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice.name!r}")
        for parameter, value in (
            (PARAMETER_RATE, voice.rate),
            (PARAMETER_PITCH, voice.pitch),
            (PARAMETER_RANGE, voice.pitch_range),
            (PARAMETER_VOLUME, 100),
        ):
            self._library.espeak_SetParameter(parameter, int(value), 0)
        self._chunks, self._phonemes = [], []
        data = text.encode("utf-8") + b"\0"
        error = self._library.espeak_Synth(data, len(data), 0, POSITION_CHARACTER, 0, CHARS_UTF8, None, None)
        if error != 0:
            raise RuntimeError(f"eSpeak NG could not speak {text!r} (error {error})")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return Speech(audio, self.sample_rate, list(self._phonemes))
