"""The musical conditions' encoders: tempo (a number and a beat clock) and key (as pitch classes).

``conditioning.Conditioner`` wires them in beside timing, labels, text, phonemes and voice:
``TempoConditioner`` and the key encoder add to the global vector, ``BeatGrid`` gives the tempo
frame by frame as part of the aligned input. Keys are indices into
``latentaudio.data.metadata.KEYS`` (12 major keys, then 12 minor, C first); this module does not
import the data layer, so ``_MODE_STEPS`` restates the two scales that ``data/demo.py`` plays
(``tests/dit/test_conditioning.py`` ties them together).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

KEY_COUNT = 24  # latentaudio.data.metadata.KEYS: 12 tonics x major, minor


class TempoConditioner(nn.Module):
    """Embeds tempi in beats per minute (B,) float into (B, dim); NaN (no tempo) gives a learned null.

    The tempo is taken on a log scale between ``low`` and ``high`` bpm (a tempo and its double
    are as far apart at 60 as at 120), expanded into Fourier features, then an MLP.
    """

    def __init__(self, dim: int, low: float = 40.0, high: float = 250.0, num_frequencies: int = 16):
        super().__init__()
        self.low, self.high = low, high
        self.register_buffer(
            "freqs", torch.logspace(math.log10(0.5), math.log10(64.0), num_frequencies), persistent=False
        )
        self.mlp = nn.Sequential(nn.Linear(2 * num_frequencies + 1, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, bpm: Tensor) -> Tensor:
        bpm = bpm.float().to(self.null.device)
        known = torch.isfinite(bpm) & (bpm > 0)  # (B,)
        u = torch.log(bpm.where(known, self.low).clamp(self.low, self.high) / self.low)
        u = (u / math.log(self.high / self.low))[:, None]  # (B, 1) in [0, 1]
        angles = 2 * math.pi * u * self.freqs[None]  # (B, F)
        embedded = self.mlp(torch.cat([u, angles.sin(), angles.cos()], dim=-1))  # (B, dim)
        return torch.where(known[:, None], embedded, self.null)


class BeatGrid(nn.Module):
    """The tempo frame by frame: a beat clock, (B,) bpm and (B,) seconds_start into (B, dim, T).

    Frame ``i`` lies ``seconds_start + i / frame_rate`` seconds into its clip, so
    ``bpm / 60`` times that many beats; the clock is the sine and cosine of that count at a
    bar of four beats, a half bar, a beat and half a beat. The beat is taken to fall on the
    clip's start (as in the demo data and in music cut at bar lines); where it does not, the
    clock still gives every frame the beat's period, which self-attention can read as "one beat
    ago". A global tempo embedding has to learn to space onsets evenly from a number; with the
    clock a frame only has to learn that an onset sits at phase 0 (experiments/conditioning).
    Items without a tempo (NaN) get zeros. Nothing here is learnt.
    """

    CYCLES_PER_BEAT = (0.25, 0.5, 1.0, 2.0)

    def __init__(self, frame_rate: float):
        super().__init__()
        if not frame_rate > 0:
            raise ValueError(
                f"a beat grid needs the latents' frame rate (frames per second), got {frame_rate}"
            )
        self.frame_rate = float(frame_rate)
        self.register_buffer("cycles", torch.tensor(self.CYCLES_PER_BEAT), persistent=False)

    @property
    def dim(self) -> int:
        return 2 * len(self.CYCLES_PER_BEAT)

    def forward(self, bpm: Tensor, seconds_start: Tensor, frames: int) -> Tensor:
        device = self.cycles.device
        bpm = bpm.to(device, torch.float32)
        known = torch.isfinite(bpm) & (bpm > 0)  # (B,)
        offsets = torch.arange(frames, device=device) / self.frame_rate  # (T,) seconds after the start
        seconds = seconds_start.to(device, torch.float32)[:, None] + offsets  # (B, T)
        beats = torch.where(known, bpm, 0.0)[:, None] / 60.0 * seconds  # (B, T)
        angles = 2 * math.pi * self.cycles[None, :, None] * beats[:, None, :]  # (B, K, T)
        return torch.cat([angles.sin(), angles.cos()], dim=1) * known[:, None, None]  # (B, 2K, T)


KEY_ENCODINGS = ("embedding", "pitch_classes")
# Scale degrees of the two modes, in semitones above the tonic (natural minor), as KEYS names them.
_MODE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


def key_pitch_classes() -> Tensor:
    """(KEY_COUNT, 24): for each of the 24 keys (``metadata.KEYS`` order: 12 major, then 12
    minor, C first), the seven pitch classes of its scale (first 12) and its tonic (last 12)."""
    table = torch.zeros(KEY_COUNT, 24)
    for index in range(KEY_COUNT):
        mode, tonic = ("major", "minor")[index // 12], index % 12
        for step in _MODE_STEPS[mode]:
            table[index, (tonic + step) % 12] = 1.0
        table[index, 12 + tonic] = 1.0
    return table


class KeyPitchClassConditioner(nn.Module):
    """Keys (B,) long, an index into the 24 keys or -1 for none, as the pitch classes they use
    (:func:`key_pitch_classes`) through a small MLP into (B, dim); a learned null for none.

    A learned embedding per key sees each key only in the clips played in it (a twelfth of a
    small data set, or less); here every clip that uses a pitch class teaches what that pitch
    class sounds like, for all the keys that share it."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("table", key_pitch_classes(), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(24, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, keys: Tensor) -> Tensor:
        keys = keys.long().to(self.null.device)
        if ((keys < -1) | (keys >= KEY_COUNT)).any():
            raise ValueError(f"keys must lie in [-1, {KEY_COUNT}), got {keys.tolist()}")
        embedded = self.mlp(self.table[keys.clamp_min(0)].to(self.null.dtype))  # (B, dim)
        return torch.where((keys < 0)[:, None], self.null, embedded)
