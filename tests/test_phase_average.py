"""The phase-averaging probe's measures on signals with a known answer: spectral flatness tells
a note from a wash, a delay moves the clip by exactly that many samples, and the latent move
tells a code that carries phase from one that does not."""

import math

import torch

from experiments.vae_fidelity.phase_average import delayed, delayed_latents, flatness_below, latent_moves

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


def test_latent_moves_tell_a_phase_code_from_an_envelope_code():
    """A code that frames the waveform itself (phase in it) is moved by a delay of a fraction of
    a period about as far as two unrelated codes (sqrt 2); a code of frame energies hardly moves."""
    hop = 64

    def frames(audio):  # (1, 1, T) -> (1, hop, T / hop)
        return audio[0, 0].reshape(-1, hop).T[None]

    def waveform_code(audio):
        return frames(audio), None

    def envelope_code(audio):
        return frames(audio).pow(2).mean(dim=1, keepdim=True).sqrt(), None

    t = torch.arange(64 * hop) / RATE
    clips = [
        (torch.sin(2 * math.pi * f * t) * torch.exp(-t * d))[None] for f, d in ((437.0, 1.0), (1130.0, 3.0))
    ]
    shifts = [0, 8]  # half a millisecond: a fifth of a period of 437 Hz, about half of 1130 Hz
    phase = latent_moves(delayed_latents(waveform_code, clips, shifts), shifts)[8]
    envelope = latent_moves(delayed_latents(envelope_code, clips, shifts), shifts)[8]
    assert 1.0 < phase < 2.1 and envelope < 0.3  # 1.56 and 0.20: the envelope moves by its first frame
