"""The phase-averaging probe's two measures on signals with a known answer: spectral flatness
tells a note from a wash, and a delay moves the clip by exactly that many samples."""

import math

import torch

from experiments.vae_fidelity.phase_average import delayed, flatness_below

RATE = 16000


def test_flatness_tells_lines_from_a_wash():
    t = torch.arange(2 * RATE) / RATE
    chord = sum(torch.sin(2 * math.pi * f * t) for f in (220.0, 330.0, 440.0, 660.0))[None] / 4  # (1, T)
    noise = torch.randn(1, 2 * RATE, generator=torch.Generator().manual_seed(0)) * 0.1
    lines, wash = flatness_below(chord, RATE), flatness_below(noise, RATE)
    assert lines < 0.01  # the demo's real organ clips: 0.004
    assert wash > 0.4  # white noise: about 0.56 (the mean of log-chi-square powers)
    # the same notes with a tenth of their level of noise under them are flatter, still far from noise
    assert lines < flatness_below(chord + 0.1 * noise, RATE) < wash


def test_silence_between_notes_does_not_count_as_noise():
    t = torch.arange(RATE) / RATE
    note = torch.sin(2 * math.pi * 440.0 * t)[None]
    gapped = torch.cat([note, torch.zeros(1, RATE) + 1e-7 * torch.randn(1, RATE)], dim=-1)
    assert flatness_below(gapped, RATE) < 0.01


def test_delayed_moves_the_clip_and_keeps_its_length():
    clip = torch.randn(2, 1000)
    moved = delayed(clip, 16)
    assert moved.shape == clip.shape
    assert torch.equal(moved[:, 16:], clip[:, :-16]) and moved[:, :16].abs().sum() == 0
