"""The pseudo-QMF filter bank, and a VAE that codes its sub-bands (``vae.bands``)."""

import math

import pytest
import torch

from latentaudio.interop.stable_audio_tools import FormatError, autoencoder_section
from latentaudio.vae.bands import PQMF
from latentaudio.vae.model import AudioVAE

RATE = 16000


@pytest.mark.parametrize("bands", [2, 4, 8])
def test_analysis_then_synthesis_gives_the_audio_back(bands):
    bank = PQMF(bands)
    audio = torch.randn(2, 2, RATE, generator=torch.Generator().manual_seed(0))
    split = bank.analysis(audio)
    assert split.shape == (2, 2 * bands, RATE // bands)
    back = bank.synthesis(split)
    assert back.shape == audio.shape
    inner = slice(200, -200)  # the filters' half-length at each end sees zero padding
    error = (back - audio)[..., inner].pow(2).mean() / audio[..., inner].pow(2).mean()
    assert 10 * math.log10(error) < -50


def test_a_tone_lands_in_its_band_and_channels_stay_apart():
    bank = PQMF(8)  # bands 1 kHz wide at 16 kHz
    t = torch.arange(RATE) / RATE
    tone = torch.sin(2 * math.pi * 1500 * t)  # in band 1 (1-2 kHz)
    audio = torch.stack([tone, torch.zeros_like(tone)])[None]  # (1, 2, T): the right channel silent
    energy = bank.analysis(audio)[0].pow(2).mean(dim=-1)  # (16,)
    assert energy[:8].argmax() == 1 and energy[1] > 100 * (energy[:8].sum() - energy[1])
    assert energy[8:].max() == 0
    with pytest.raises(ValueError, match="multiple of 8"):
        bank.analysis(audio[..., :1001])


def test_a_sub_band_vae_keeps_the_contracts_of_a_waveform_one():
    vae = AudioVAE(base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4, bands=4)
    assert vae.hop == 32
    audio = torch.randn(3, 1, 1000)
    out = vae(audio)
    assert out.latents.shape == (3, 4, math.ceil(1000 / 32)) and out.reconstruction.shape == audio.shape
    assert vae.decode(out.mean, length=1000).shape == (3, 1, 1000)
    # the filter bank is fixed and outside the weights: bundles carry only the learnt part
    assert not any("pqmf" in key for key in vae.state_dict())
    with pytest.raises(FormatError, match="sub-bands"):
        autoencoder_section({"bands": 4, "strides": [2, 4], "channel_mults": [1, 2]})
