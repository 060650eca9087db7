"""Shared fixtures: audio made on the spot (sines, noise) and written with soundfile."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(2)


def sine(
    frequency: float, seconds: float, sample_rate: int, channels: int = 1, amplitude: float = 0.5
) -> np.ndarray:
    """(samples, channels) float32 sine, each channel a little detuned so they differ."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    columns = [amplitude * np.sin(2 * math.pi * frequency * (1 + 0.01 * c) * t) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def write_sine(path: Path, frequency=440.0, seconds=1.0, sample_rate=16000, channels=1, subtype=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), sine(frequency, seconds, sample_rate, channels), sample_rate, subtype=subtype)
    return path


@pytest.fixture
def sine_folder(tmp_path: Path) -> Path:
    """Twelve short sine files at 16 kHz mono, in nested folders, with a metadata.csv."""
    root = tmp_path / "audio"
    rows = ["path,caption,label"]
    for i in range(12):
        relative = f"set{i % 3}/tone{i:02d}.wav"
        write_sine(root / relative, frequency=220.0 * (1 + i / 6), seconds=0.75)
        rows.append(f"{relative},a tone number {i},{'low' if i < 6 else 'high'}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root
