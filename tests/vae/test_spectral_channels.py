"""Spectral latent channels (vae/spectral.py): log mel powers as fixed latents beside learnt ones,
a decoder that also decodes them alone (detail dropout), and generation that decodes so."""

import math

import pytest
import torch
from apps_helpers import compose_app, tiny_dit_overrides, tiny_vae_overrides

from latentaudio.apps.common import ConfigError
from latentaudio.vae import AudioVAE, kl_divergence
from latentaudio.vae.spectral import LOG_SCALE, LOG_SHIFT, POWER_FLOOR, LogChroma, LogMel, SpectralChannels

RATE = 16000


def tone(frequency: float, seconds: float = 0.5, delay: int = 0, amplitude: float = 0.5) -> torch.Tensor:
    t = (torch.arange(round(seconds * RATE)) - delay).clamp_min(0) / RATE
    return (amplitude * torch.sin(2 * math.pi * frequency * t)).view(1, 1, -1)  # (1, 1, T)


def spectral_vae(**overrides) -> AudioVAE:
    torch.manual_seed(0)
    options = dict(base_channels=8, channel_mults=(1, 2), strides=(4, 8), latent_dim=12, sample_rate=RATE)
    return AudioVAE(**{**options, "spectral_channels": 8, **overrides})


def mixed_dropout(vae: AudioVAE, audio: torch.Tensor):
    """``vae(audio, detail_dropout=0.5)`` under the first seed that drops some items and keeps others."""
    for seed in range(50):
        torch.manual_seed(seed)
        out = vae(audio, detail_dropout=0.5)
        if 0 < int(out.detail_kept.sum()) < audio.shape[0]:
            return out
    raise AssertionError("no seed in 50 mixed dropped and kept items")


def test_a_tone_lands_in_its_mel_band_and_silence_at_the_floor():
    mel = LogMel(RATE, hop=32, bands=16)
    centres = [mel.banks[:, b].argmax() * RATE / mel.n_fft for b in range(16)]
    for frequency in (300.0, 1000.0, 3000.0):
        powers = mel(tone(frequency))[0, :, 4:-4]  # (16, frames) away from the edges
        nearest = min(range(16), key=lambda b: abs(centres[b] - frequency))
        assert (powers.argmax(dim=0) - nearest).abs().max() <= 1
    silence = mel(torch.zeros(1, 1, 4096))
    assert silence.shape == (1, 16, 4096 // 32)
    assert torch.allclose(silence, torch.full_like(silence, LOG_SCALE * math.log(POWER_FLOOR) + LOG_SHIFT))


def test_the_spectral_channels_ignore_a_sub_hop_delay_that_moves_the_waveform():
    # a 1 ms delay turns a 440 Hz tone's samples by 160 degrees; its mel powers stay put
    mel = LogMel(RATE, hop=256, bands=32)
    steady, delayed = mel(tone(440.0, seconds=1.0)), mel(tone(440.0, seconds=1.0, delay=16))
    inner = slice(2, -2)
    assert (steady - delayed)[..., inner].abs().max() < 0.01 * (steady.max() - steady.min())
    samples = tone(440.0, seconds=1.0) - tone(440.0, seconds=1.0, delay=16)
    assert samples.abs().max() > 0.9  # the waveform moved by almost twice the amplitude


def test_a_tone_lands_in_its_pitch_class_in_every_octave_and_a_chord_in_its_three():
    chroma = LogChroma(RATE, hop=256)
    inner = slice(8, -8)  # away from the edges of the 8-hop window
    for name, frequency in (("A", 440.0), ("C", 130.81), ("C", 523.25), ("E", 164.81), ("G", 783.99)):
        powers = chroma(tone(frequency, seconds=1.0))[0, :, inner].mean(dim=1)
        assert "C C# D D# E F F# G G# A A# B".split()[int(powers.argmax())] == name
        # above the neighbours' leakage; the 128 ms window's 7.8 Hz bins blur the semitones near 130 Hz
        assert powers.max() - powers.sort().values[-3] > (0.5 if frequency > 200 else 0.1)
    chord = tone(261.63, 1.0) + tone(329.63, 1.0) + tone(392.0, 1.0)  # C major
    top = chroma(chord)[0, :, inner].mean(dim=1).topk(3).indices.sort().values.tolist()
    assert top == [0, 4, 7]


def test_a_tone_moves_its_mel_bands_little_where_its_chroma_names_the_note():
    # a semitone at 220 Hz (13 Hz) stays inside one mel band of 32 at 16 kHz; the chroma moves by one class
    spectral = SpectralChannels(RATE, hop=256, channels=32, chroma=True)
    low, high = (spectral(tone(f, seconds=1.0))[0, :, 8:-8].mean(dim=1) for f in (220.0, 233.08))
    assert int(low[20:].argmax()) == 9 and int(high[20:].argmax()) == 10  # A, then A#
    assert int(low[:20].argmax()) == int(high[:20].argmax())  # the same mel band
    assert spectral_vae(spectral_channels=0).spectral is None
    vae = spectral_vae(latent_dim=20, spectral_channels=16, spectral_chroma=True)
    assert vae.encode(tone(440.0, seconds=0.2))[:, 4:16].shape[1] == 12
    with pytest.raises(ValueError, match="more than 12 spectral channels"):
        spectral_vae(spectral_channels=8, spectral_chroma=True)


def test_the_latents_start_with_the_mel_powers_and_only_the_rest_is_learnt():
    vae = spectral_vae()
    audio = tone(500.0, seconds=0.3)
    mean, scale = vae.encode_posterior(audio)
    frames = math.ceil(audio.shape[-1] / vae.hop)
    assert mean.shape == scale.shape == (1, 12, frames)
    padded = torch.nn.functional.pad(audio, (0, frames * vae.hop - audio.shape[-1]))
    assert torch.equal(mean[:, :8], vae.spectral(padded))
    assert (scale[:, :8] == scale[:, :8].min()).all()  # fixed: the least posterior scale
    assert vae.encoder[-1].out_channels == 2 * 4  # mean and scale of the 4 learnt channels only
    out = vae(audio)
    assert torch.allclose(out.kl, kl_divergence(out.mean[:, 8:], out.scale[:, 8:]))


def test_detail_dropout_decodes_the_dropped_items_from_their_spectral_channels_alone():
    vae = spectral_vae()
    audio = torch.cat([tone(300.0, 0.25), tone(900.0, 0.25), tone(2000.0, 0.25), tone(120.0, 0.25)])
    out = mixed_dropout(vae, audio)
    kept = out.detail_kept
    assert kept.dtype == torch.bool and kept.shape == (4,)
    with torch.no_grad():
        as_dropped = vae.decode(vae.drop_detail(out.latents), length=audio.shape[-1])
        as_kept = vae.decode(out.latents, length=audio.shape[-1])
    expected = torch.where(kept.view(-1, 1, 1), as_kept, as_dropped)
    assert torch.allclose(out.reconstruction, expected, atol=1e-5)
    assert not torch.allclose(as_kept, as_dropped, atol=1e-3)
    dropped = vae.drop_detail(out.latents)
    assert torch.equal(dropped[:, :8], out.latents[:, :8]) and not dropped[:, 8:].any()


def test_with_spectral_channels_the_noise_branch_serves_only_the_decodes_without_detail():
    vae = spectral_vae(noise_bands=4)
    with torch.no_grad():
        vae.noise_head.proj.bias.fill_(2.0)  # noise far louder than the untrained decoder
        latents = vae.encode(tone(700.0, 0.25))
        exact = vae.decode(latents)
        assert torch.equal(exact, vae.decode(latents, generator=torch.Generator().manual_seed(1)))
        noisy = [
            vae.decode(latents, detail=False, generator=torch.Generator().manual_seed(s)) for s in (1, 2)
        ]
        assert not torch.allclose(noisy[0], noisy[1])  # random: the branch's noise
        quiet, _ = vae.decode_parts(vae.drop_detail(latents))
        assert (noisy[0] - quiet).abs().mean() > 10 * quiet.abs().mean()
        out = mixed_dropout(vae, torch.cat([tone(300.0, 0.25), tone(900.0, 0.25), tone(2000.0, 0.25)]))
    added = (out.reconstruction - out.determined).abs().mean(dim=(1, 2))  # (B,)
    assert ((added > 0) == ~out.detail_kept).all()


def test_bad_spectral_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="below latent_dim=12"):
        spectral_vae(spectral_channels=12)
    with pytest.raises(ValueError, match="sample rate"):
        spectral_vae(sample_rate=0)
    plain = spectral_vae(spectral_channels=0)
    with pytest.raises(ValueError, match="no spectral channels"):
        plain.drop_detail(torch.zeros(1, 12, 4))
    with pytest.raises(ValueError, match="needs spectral channels"):
        plain(tone(440.0, 0.1), detail_dropout=0.5)


def test_train_vae_refuses_detail_dropout_without_spectral_channels(sine_folder, tmp_path):
    from latentaudio.apps.train_vae import check_vae_config

    base = tiny_vae_overrides(sine_folder)
    with pytest.raises(ConfigError, match="needs vae.spectral_channels > 0"):
        check_vae_config(compose_app("train_vae", tmp_path, [*base, "loss.detail_dropout=0.5"]))
    with pytest.raises(ConfigError, match="below vae.latent_dim=4"):
        check_vae_config(compose_app("train_vae", tmp_path, [*base, "vae.spectral_channels=4"]))
    with pytest.raises(ConfigError, match="spectral_channels above 12"):
        check_vae_config(compose_app("train_vae", tmp_path, [*base, "vae.spectral_chroma=true"]))


def test_no_waveform_l1_on_items_decoded_without_their_detail(tmp_path):
    from test_vae_training import module_with

    from experiments.throughput.steps import Standalone

    spectral = ["vae.spectral_channels=2", "loss.waveform_weight=1"]
    audio = torch.randn(2, 1, 2048, generator=torch.Generator().manual_seed(0)) * 0.3
    logged = {}
    for dropout in ("0.0", "0.999"):  # every item kept, or (almost surely) none
        torch.manual_seed(0)
        driver = Standalone(
            module_with(tmp_path, *spectral, f"loss.detail_dropout={dropout}"), torch.device("cpu")
        )
        driver.step({"audio": audio})
        logged[dropout] = float(driver.logged["train/waveform"])
    assert logged["0.0"] > 0.05 and logged["0.999"] == 0.0


def test_a_bundle_trained_with_detail_dropout_generates_from_its_spectral_channels(sine_folder, tmp_path):
    from latentaudio.apps.train_diffusion import train as train_dit
    from latentaudio.apps.train_vae import train as train_vae
    from latentaudio.autoencoder import Autoencoder
    from latentaudio.pipeline import Pipeline

    spectral = ["vae.latent_dim=6", "vae.spectral_channels=2", "loss.detail_dropout=0.5"]
    train_vae(
        compose_app("train_vae", tmp_path / "vae", [*tiny_vae_overrides(sine_folder, steps=2), *spectral])
    )
    vae = tmp_path / "vae" / "export"
    autoencoder = Autoencoder.from_bundle(vae)
    assert not autoencoder.generated_detail
    audio = tone(440.0, 0.25)[0]
    latents = autoencoder.encode(audio)
    assert torch.equal(
        autoencoder.reconstruct(audio, as_generated=True),
        autoencoder.decode(autoencoder.vae.drop_detail(latents), length=audio.shape[-1]),
    )
    assert not torch.equal(autoencoder.reconstruct(audio), autoencoder.reconstruct(audio, as_generated=True))

    train_dit(compose_app("train_diffusion", tmp_path / "dit", tiny_dit_overrides(sine_folder, vae)))
    pipe = Pipeline.from_bundles(vae, tmp_path / "dit" / "export")
    calls = []
    decode = pipe.autoencoder.vae.decode
    pipe.autoencoder.vae.decode = lambda z, **kw: calls.append((z, kw)) or decode(z, **kw)
    audio = pipe.generate(seconds=0.25, steps=2, seed=1)
    ((latents, options),) = calls
    assert options["detail"] is False and latents[:, 2:].abs().sum() > 0  # the DiT's detail, left out
    with torch.no_grad():
        assert torch.equal(audio, decode(latents, length=audio.shape[-1], detail=False))
        assert not torch.equal(audio, decode(latents, length=audio.shape[-1]))

    # the choice over the VAE's rule: at generation, or stored by the DiT's training (sampling.decode_detail)
    kept = Pipeline.from_bundles(vae, tmp_path / "dit" / "export", decode_detail=True)
    assert kept.autoencoder.generated_detail
    generated = kept.generate(seconds=0.25, steps=2, seed=1)  # the same latents, decoded with their detail
    assert torch.equal(generated, kept.autoencoder.decode(latents, length=audio.shape[-1]))
    assert not torch.equal(generated, audio)
    overrides = [*tiny_dit_overrides(sine_folder, vae), "sampling.decode_detail=true"]
    train_dit(compose_app("train_diffusion", tmp_path / "dit_detail", overrides))
    stored = Pipeline.from_bundles(vae, tmp_path / "dit_detail" / "export")
    assert stored.bundle.meta["sampling"]["decode_detail"] is True and stored.autoencoder.generated_detail
    dropped = Pipeline.from_bundles(vae, tmp_path / "dit_detail" / "export", decode_detail=False)
    assert not dropped.autoencoder.generated_detail
