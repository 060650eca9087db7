"""Random fixed-length crops of audio files, with their metadata, for training stage one."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch.utils.data import Dataset

from latentaudio.audio import AudioDecodeError, convert_channels, read_audio, resample
from latentaudio.data.scan import AudioFile, printable

log = logging.getLogger(__name__)

NORMALIZE_MODES = ("none", "peak", "loudness")
# Pitch-up augmentation plays a crop faster by (STEPS + k) / STEPS, k drawn from 0.. (k = 1 is
# about one semitone): a small integer ratio keeps the band-limited resampling cheap.
SPEED_STEPS = 16


def check_pitch_augment(probability: float, max_semitones: float) -> None:
    if not 0.0 <= probability <= 1.0:
        raise ValueError(
            f"data.augment_pitch_probability={probability}: give a probability in [0, 1] (0: off)"
        )
    if not 0.0 <= max_semitones <= 24.0:
        raise ValueError(
            f"data.augment_pitch_max_semitones={max_semitones}: give 0 to 24 semitones (12: an octave)"
        )


def check_normalize(mode: str) -> None:
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"data.normalize={mode!r}: choose one of {', '.join(NORMALIZE_MODES)}")


def normalize_audio(audio: torch.Tensor, mode: str, target_db: float) -> torch.Tensor:
    """Scale a crop so its peak (mode 'peak') or RMS (mode 'loudness') sits at ``target_db`` dBFS.

    Loudness normalisation never pushes the peak above 0 dBFS; near-silent crops are left alone.
    """
    if mode == "none":
        return audio
    target = 10.0 ** (target_db / 20.0)
    peak = audio.abs().max()
    if peak < 1e-4:
        return audio
    if mode == "peak":
        return audio * (target / peak)
    if mode == "loudness":
        rms = audio.pow(2).mean().sqrt()
        gain = min(target / float(rms), 0.999 / float(peak))
        return audio * gain
    raise ValueError(f"normalize={mode!r}: choose one of {', '.join(NORMALIZE_MODES)}")


class AudioCropDataset(Dataset):
    """Crops of ``sample_length`` samples at ``sample_rate`` with ``channels`` channels.

    Files shorter than a crop are zero-padded at the end; ``padding_mask`` is True on real
    samples, so a loss can ignore the padding. Training crops start at random; validation
    crops (``random_crop=False``) are the middle of each file, the same on every run.
    A file that fails to decode is reported once and replaced by the next file.

    ``augment_pitch_probability``: the chance that a training crop is played faster, up by 0 to
    ``augment_pitch_max_semitones`` (pitch and tempo together, as tape does): more tonal energy
    at high frequencies than the data has, for a VAE that would otherwise code them last.
    """

    def __init__(
        self,
        root: str | Path,
        files: list[AudioFile],
        sample_rate: int,
        channels: int,
        sample_length: int,
        metadata: dict[str, dict] | None = None,
        labels: list[str] | None = None,
        random_crop: bool = True,
        normalize: str = "none",
        target_db: float = -1.0,
        augment_pitch_probability: float = 0.0,
        augment_pitch_max_semitones: float = 12.0,
    ):
        check_normalize(normalize)
        check_pitch_augment(augment_pitch_probability, augment_pitch_max_semitones)
        self.root = Path(root)
        self.files = list(files)
        self.sample_rate = sample_rate
        self.channels = channels
        self.sample_length = sample_length
        self.metadata = metadata or {}
        self.label_index = {name: i for i, name in enumerate(labels or [])}
        self.random_crop = random_crop
        self.normalize = normalize
        self.target_db = target_db
        self.augment_pitch_probability = augment_pitch_probability
        # the largest k with (SPEED_STEPS + k) / SPEED_STEPS within the semitones asked
        self.max_speed_step = int(SPEED_STEPS * (2.0 ** (augment_pitch_max_semitones / 12.0) - 1.0) + 1e-9)
        self.failed: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        for attempt in range(min(len(self.files), 64)):
            entry = self.files[(index + attempt) % len(self.files)]
            if entry.path in self.failed:
                continue
            try:
                return self._load(entry)
            except AudioDecodeError as error:
                self.failed.add(entry.path)
                log.warning("skipping %s: %s", printable(self.root / entry.path), error.reason)
        raise RuntimeError(
            f"no decodable audio found near item {index} of {self.root}; see the warnings above"
        )

    def _speed_step(self) -> int:
        """k of a faster playback at (SPEED_STEPS + k) / SPEED_STEPS; 0 when not augmented."""
        if not self.random_crop or self.max_speed_step < 1 or self.augment_pitch_probability <= 0.0:
            return 0
        if float(torch.rand(())) >= self.augment_pitch_probability:
            return 0
        return int(torch.randint(1, self.max_speed_step + 1, ()).item())

    def _load(self, entry: AudioFile) -> dict:
        speed = self._speed_step()
        needed = math.ceil(self.sample_length * (SPEED_STEPS + speed) / SPEED_STEPS)  # at sample_rate
        source_length = math.ceil(needed * entry.sample_rate / self.sample_rate)
        spare = max(entry.frames - source_length, 0)
        if self.random_crop:
            start = int(torch.randint(0, spare + 1, ()).item())
        else:
            start = spare // 2
        audio, _ = read_audio(self.root / entry.path, start=start, frames=source_length)
        if not torch.isfinite(audio).all():
            raise AudioDecodeError(self.root / entry.path, "holds NaN or Inf samples")
        audio = convert_channels(audio, self.channels)
        audio = resample(audio, entry.sample_rate, self.sample_rate)[:, :needed]
        if speed:  # played faster: the same content in fewer samples, every frequency higher
            audio = resample(audio, SPEED_STEPS + speed, SPEED_STEPS)
        audio = audio[:, : self.sample_length]  # (C, <=L)
        valid = audio.shape[-1]
        audio = normalize_audio(audio, self.normalize, self.target_db)
        if valid < self.sample_length:
            audio = torch.nn.functional.pad(audio, (0, self.sample_length - valid))
        padding_mask = torch.arange(self.sample_length) < valid  # (L,)
        meta = self.metadata.get(entry.path, {})
        label = meta.get("label")
        return {
            "audio": audio.contiguous(),
            "padding_mask": padding_mask,
            "seconds_start": start / entry.sample_rate,
            "seconds_total": entry.seconds,
            "caption": str(meta.get("caption", "")),
            "label": self.label_index.get(str(label), -1) if label not in (None, "") else -1,
            "path": entry.path,
        }
