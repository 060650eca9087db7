"""The signal-processing transforms of the pitch, tempo and speed modes, on signals whose
answer is known: tones (pitch) and click tracks (tempo)."""

import math

import pytest
import torch
import torchaudio
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


def noise(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(1, 1, int(seconds * RATE), generator=torch.Generator().manual_seed(seed))


def test_envelope_transfer_without_a_change_gives_the_target_back():
    target, guide = noise(seed=0), noise(seed=1)
    out = editing.envelope_transfer(target, guide, guide.clone(), RATE)
    assert out.shape == target.shape
    assert torch.allclose(out, target, atol=1e-5)


def test_envelope_transfer_applies_the_guides_gain_within_its_limit():
    target, reference = noise(seed=0), noise(seed=1)
    doubled = editing.envelope_transfer(target, 2 * reference, reference, RATE)
    assert torch.allclose(doubled, 2 * target, atol=1e-4)  # +6 dB in every band, every frame
    capped = editing.envelope_transfer(target, 100 * reference, reference, RATE, limit_db=12.0)
    assert capped.norm() / target.norm() == pytest.approx(10 ** (12 / 20), rel=1e-3)
    half = editing.envelope_transfer(target, 4 * reference, reference, RATE, amount=0.5)
    assert torch.allclose(half, 2 * target, atol=1e-4)  # half of +12 dB in dB


def test_envelope_transfer_follows_the_guide_in_time_and_frequency():
    """A steady noise target takes on a guide that is silent in its first half (in time) and a
    guide low-passed at 2 kHz (in frequency); the target's phases stay its own."""
    target, reference = noise(seed=0), noise(seed=1)
    half = target.shape[-1] // 2
    gated = reference.clone()
    gated[..., :half] = 0.0
    out = editing.envelope_transfer(target, gated, reference, RATE, limit_db=40.0)
    first, second = out[..., 1000 : half - 1000], out[..., half + 1000 : -1000]
    assert first.norm() / target[..., 1000 : half - 1000].norm() < 0.02  # -34 dB or lower
    assert second.norm() / target[..., half + 1000 : -1000].norm() == pytest.approx(1.0, abs=0.05)

    low = torchaudio.functional.lowpass_biquad(reference, RATE, 2000.0)
    low = torchaudio.functional.lowpass_biquad(low, RATE, 2000.0)
    out = editing.envelope_transfer(target, low, reference, RATE, limit_db=40.0)

    def share_above(x: torch.Tensor, hz: float) -> float:
        power = torch.fft.rfft(x[0, 0]).abs().square()
        return float(power[round(hz * x.shape[-1] / RATE) :].sum() / power.sum())

    assert share_above(target, 4000) > 0.4 and share_above(out, 4000) < 0.02


def test_envelope_transfer_refuses_signals_of_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        editing.envelope_transfer(noise(1.0), noise(0.5), noise(0.5), RATE)


def test_attack_mask_covers_each_attack_and_nothing_steady():
    """Noise that starts after 0.5 s of silence and a click track: the mask is 1 from 16 ms
    before each attack to 24 ms after it, and 0 in the steady parts and the silence."""
    entry = noise(seconds=1.0)
    entry[..., : RATE // 2] = 0.0
    mask = editing.attack_mask(entry, RATE)[0, 0]
    assert mask.shape == (RATE,)
    at = lambda seconds: float(mask[round(seconds * RATE)])  # noqa: E731
    assert at(0.495) == 1.0 and at(0.51) == 1.0
    assert at(0.3) == 0.0 and at(0.65) == 0.0 and at(0.9) == 0.0

    clicks = click_track(120, seconds=2.0)[None]  # an attack every 0.5 s
    mask = editing.attack_mask(clicks, RATE)[0, 0]
    beats = [i for i in range(1, RATE * 2) if clicks[0, 0, i] != 0 and clicks[0, 0, i - 1] == 0]
    assert beats, "the click track has no clicks"
    for beat in beats:
        assert float(mask[beat]) == 1.0 and float(mask[beat + round(0.015 * RATE)]) == 1.0
        if beat + round(0.2 * RATE) < mask.shape[0]:
            assert float(mask[beat + round(0.2 * RATE)]) == 0.0


def test_attack_mask_passes_over_a_new_note_and_a_rising_noise_floor():
    """An instrument's next note, 12.5 dB louder within 20 ms, is no attack at the default 18 dB
    (at 6 dB it is one), where a drum hit is one. A noise floor 60 dB below the clip's loudest
    frame is none either, however much it rises."""
    fade = torch.linspace(0.0, 1.0, round(0.02 * RATE))  # legato: 20 ms from one note to the next
    first, second = tone(220.0, seconds=0.52), 4.2 * tone(330.0, seconds=0.5)
    first[..., -fade.shape[0] :] *= fade.flip(0)
    second[..., : fade.shape[0]] *= fade
    overlap = first[..., -fade.shape[0] :] + second[..., : fade.shape[0]]
    note = torch.cat([first[..., : -fade.shape[0]], overlap, second[..., fade.shape[0] :]], dim=-1)
    assert float(editing.attack_mask(note, RATE)[0, 0, RATE // 4 :].max()) == 0.0
    assert float(editing.attack_mask(note, RATE, rise_db=6.0)[0, 0, RATE // 2 :].max()) == 1.0

    quiet = 1e-4 * noise(seconds=1.0)
    quiet[..., RATE // 2 :] *= 10  # +20 dB, still 60 dB below the hit
    hit = torch.zeros_like(quiet)
    hit[..., RATE // 4 : RATE // 4 + 200] = noise(seconds=1.0)[..., :200] * torch.linspace(1, 0, 200)
    mask = editing.attack_mask(quiet + hit, RATE)[0, 0]
    assert float(mask[RATE // 4]) == 1.0
    assert float(mask[RATE // 2 - 100 : RATE // 2 + 600].max()) == 0.0
