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


def click_track(bpm: float, seconds: float = 4.0, rate: int = 16000) -> torch.Tensor:
    audio = torch.zeros(1, int(seconds * rate))
    burst = torch.randn(200, generator=torch.Generator().manual_seed(0)) * torch.linspace(1, 0, 200)
    beat = 60.0 / bpm
    for k in range(int(seconds / beat) + 1):
        start = int(k * beat * rate)
        end = min(audio.shape[-1], start + 200)
        audio[0, start:end] += burst[: end - start]
    return audio


def tones_in_key(tonic: int, mode: str, seconds: float = 2.0, rate: int = 16000) -> torch.Tensor:
    """The scale's tonic triad held over a bass tonic, then a stepwise scale: the key is audible."""
    steps = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10)
    t = torch.arange(int(seconds * rate)) / rate
    audio = torch.zeros_like(t)
    for degree in (0, 2, 4):
        midi = 60 + tonic + steps[degree]
        audio += torch.sin(2 * math.pi * 440 * 2 ** ((midi - 69) / 12) * t)
    audio += torch.sin(2 * math.pi * 440 * 2 ** ((48 + tonic - 69) / 12) * t)
    note = len(t) // len(steps)
    for i, step in enumerate(steps):
        freq = 440 * 2 ** ((72 + tonic + step - 69) / 12)
        audio[i * note : (i + 1) * note] += 0.7 * torch.sin(2 * math.pi * freq * t[:note])
    return (audio / audio.abs().max())[None]


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


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """(vae bundle, dit bundle, its audio folder): a tiny DiT trained a few steps on tones labelled
    low and high, for the tests that start from a trained DiT (fine-tuning, distillation)."""
    from apps_helpers import compose_app, labelled_tones, tiny_dit_overrides, train_tiny_vae

    from latentaudio.apps.train_diffusion import train

    root = labelled_tones(
        tmp_path_factory.mktemp("base_audio"),
        [("low", 200 + 20 * i) for i in range(5)] + [("high", 800 + 40 * i) for i in range(5)],
    )
    vae = train_tiny_vae(root, tmp_path_factory.mktemp("vae"))
    run = tmp_path_factory.mktemp("dit")
    train(compose_app("train_diffusion", run, tiny_dit_overrides(root, vae, steps=2)))
    return vae, run / "export", root
