"""The signal-processing transforms of the pitch, tempo and speed modes, on signals whose
answer is known: tones (pitch) and click tracks (tempo)."""

import math

import pytest
import torch
from conftest import click_track

from latentaudio import editing, estimators

RATE = 16000


def tone(frequency: float = 220.0, seconds: float = 2.0) -> torch.Tensor:
    """(1, 1, T) a tone with four harmonics."""
    t = torch.arange(int(seconds * RATE)) / RATE
    return (0.2 * sum(torch.sin(2 * math.pi * frequency * k * t) / k for k in range(1, 5)))[None, None]


@pytest.mark.parametrize("semitones", [-12.0, -3.5, 0.5, 3.0, 7.0])
def test_pitch_transposes_a_tone_and_keeps_its_length(semitones):
    original = tone()
    shifted = editing.pitch(original, RATE, semitones)
    assert shifted.shape == original.shape
    assert estimators.estimate_pitch_shift(shifted[0], original[0], RATE) == pytest.approx(
        semitones, abs=0.05
    )


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_tempo_changes_the_beat_and_keeps_the_pitch(rate):
    clicks = click_track(100, seconds=6.0)[None]
    faster = editing.tempo(clicks, RATE, rate)
    assert faster.shape[-1] == round(clicks.shape[-1] / rate)
    assert estimators.estimate_tempo(faster[0], RATE) == pytest.approx(100 * rate, rel=0.02)
    original = tone()
    stretched = editing.tempo(original, RATE, rate)
    assert estimators.estimate_pitch_shift(stretched[0], original[0], RATE) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_speed_changes_beat_and_pitch_together(rate):
    clicks = click_track(100, seconds=6.0)[None]
    played = editing.speed(clicks, rate)
    assert played.shape[-1] == round(clicks.shape[-1] / rate)
    assert estimators.estimate_tempo(played[0], RATE) == pytest.approx(100 * rate, rel=0.02)
    original = tone()
    shifted = editing.speed(original, rate)
    assert estimators.estimate_pitch_shift(shifted[0], original[0], RATE) == pytest.approx(
        12 * math.log2(rate), abs=0.05
    )


def test_lengths_for_every_rate_batch_and_channel_count():
    audio = torch.randn(3, 2, 4321)
    for rate in (0.25, 0.5, 0.9, 1.0, 1.1, 2.0, 4.0):
        assert editing.speed(audio, rate).shape == (3, 2, round(4321 / rate))
        assert editing.tempo(audio, RATE, rate).shape == (3, 2, round(4321 / rate))
    assert editing.pitch(audio, RATE, -5.0).shape == audio.shape
    assert editing.tempo(audio[..., :300], RATE, 0.5).shape == (3, 2, 600)  # shorter than one window
    assert torch.equal(editing.pitch(audio, RATE, 0.0), audio)


def test_transforms_refuse_rates_that_make_no_sense():
    audio = torch.randn(1, 1, 1000)
    for rate in (0.0, -1.0, 10.0, float("nan")):
        with pytest.raises(ValueError, match="between 0.25 and 4"):
            editing.speed(audio, rate)
        with pytest.raises(ValueError, match="between 0.25 and 4"):
            editing.tempo(audio, RATE, rate)
    with pytest.raises(ValueError, match="semitones"):
        editing.pitch(audio, RATE, 25.0)


def test_stretched_latents_keep_their_ends_and_interpolate_between_frames():
    latents = torch.arange(5.0).view(1, 1, 5).repeat(2, 3, 1)  # a ramp 0..4 in every channel
    longer = editing.stretch_latents(latents, 9)
    assert longer.shape == (2, 3, 9)
    assert torch.allclose(longer[0, 0], torch.linspace(0, 4, 9))
    assert torch.allclose(editing.stretch_latents(latents, 3)[0, 0], torch.tensor([0.0, 2.0, 4.0]))
