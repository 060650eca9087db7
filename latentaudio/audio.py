"""Audio file I/O and format conversion.

Decoding uses soundfile (wav, flac, ogg, mp3); resampling uses torchaudio. Audio in
memory is a float32 tensor ``[channels, samples]`` (or ``[batch, channels, samples]``
once batched), in about [-1, 1].
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")


class AudioDecodeError(Exception):
    """A file that could not be read as audio. The message names the file and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode audio file {self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def is_audio_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def audio_info(path: str | Path) -> AudioInfo:
    """Sample rate, channels and length without decoding the samples."""
    try:
        with open_sound_file(path) as handle:
            info = AudioInfo(
                sample_rate=int(handle.samplerate), channels=int(handle.channels), frames=int(handle.frames)
            )
    except Exception as error:  # soundfile raises several types; callers need one
        raise AudioDecodeError(path, _reason(error)) from error
    if info.frames <= 0:
        raise AudioDecodeError(path, "the file holds no samples")
    return info


def open_sound_file(path: str | Path) -> sf.SoundFile:
    """Open for reading; a bytes path, so names that are not valid UTF-8 open too."""
    return sf.SoundFile(os.fsencode(path))


def read_audio(
    path: str | Path,
    start: int = 0,
    frames: int = -1,
    sample_rate: int | None = None,
    channels: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode ``frames`` samples from ``start`` (in the file's own rate) as float32.

    Only the requested part is decoded, so a 2-second crop of a 10-minute file is cheap.
    Returns ``(audio [channels, samples], sample_rate)``; when ``sample_rate`` or
    ``channels`` are given the audio is converted to them.
    """
    try:
        with open_sound_file(path) as handle:
            if start:
                handle.seek(start)
            data = handle.read(frames=frames, dtype="float32", always_2d=True)
            file_rate = int(handle.samplerate)
    except Exception as error:
        raise AudioDecodeError(path, _reason(error)) from error
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "no samples in the requested range")
    audio = torch.from_numpy(data.T.copy())  # (C, T)
    if channels is not None:
        audio = convert_channels(audio, channels)
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, file_rate, sample_rate)
        file_rate = sample_rate
    return audio, file_rate


def write_audio(path: str | Path, audio: torch.Tensor, sample_rate: int, subtype: str | None = None) -> Path:
    """Write ``[channels, samples]`` audio; the format follows the suffix (wav, flac, ogg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if audio.dim() != 2:
        raise ValueError(f"write_audio expects [channels, samples], got shape {tuple(audio.shape)}")
    data = audio.detach().to("cpu", torch.float32).clamp(-1.0, 1.0).numpy().T
    if subtype is None and path.suffix.lower() == ".wav":
        subtype = "FLOAT"  # lossless round trip of float32 audio
    sf.write(os.fsencode(path), data, sample_rate, subtype=subtype)
    return path


def convert_channels(audio: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert ``[..., C, T]`` to ``channels`` channels.

    Mono to many: duplicate. Many to mono: average. More than two to stereo: keep the
    first two (front left and right in every common layout) and fold the remaining ones
    into both at half weight, so a centre or surround channel is not lost.
    """
    current = audio.shape[-2]
    if current == channels:
        return audio
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    if current == 1:
        return audio.expand(*audio.shape[:-2], channels, audio.shape[-1]).clone()
    if channels == 1:
        return audio.mean(dim=-2, keepdim=True)
    if channels == 2:
        rest = audio[..., 2:, :].sum(dim=-2, keepdim=True) * 0.5
        stereo = audio[..., :2, :] + rest
        peak_in = audio.abs().amax(dim=(-2, -1), keepdim=True)
        peak_out = stereo.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-8)
        return stereo * torch.clamp(peak_in / peak_out, max=1.0)
    raise ValueError(f"cannot convert {current} channels to {channels}: only to mono or stereo")


@functools.lru_cache(maxsize=32)
def _resample_kernel_key(orig: int, new: int) -> tuple[int, int]:
    gcd = torch.gcd(torch.tensor(orig), torch.tensor(new)).item()
    return orig // gcd, new // gcd


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling; the length changes by ``new_rate / orig_rate``."""
    if orig_rate == new_rate:
        return audio
    orig, new = _resample_kernel_key(int(orig_rate), int(new_rate))
    return AF.resample(audio, orig, new)


def _reason(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    # soundfile prefixes the path; keep only what went wrong
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
