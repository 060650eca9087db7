"""bf16 decoding (close to fp32, chosen only where the device has native bf16) and bf16 sampling
(close to fp32, chosen by ``auto`` on a GPU only)."""

from __future__ import annotations

import pytest
import torch
from inference.tiny_bundles import tiny_bundles, tiny_vae_bundle

from latentaudio import devices, metrics
from latentaudio.autoencoder import Autoencoder


def test_bf16_decoding_stays_close_to_fp32(tmp_path):
    tiny_vae_bundle(tmp_path / "vae")
    path = tmp_path / "vae"
    exact, fast = (Autoencoder.from_bundle(path, decode_precision=p) for p in ("fp32", "bf16"))
    latents = torch.randn(2, exact.latent_dim, 40, generator=torch.Generator().manual_seed(0))
    reference, approximate = exact.decode(latents), fast.decode(latents)
    assert approximate.dtype == torch.float32 and approximate.shape == reference.shape
    assert not torch.equal(approximate, reference)  # bf16 really ran
    assert float(metrics.si_sdr(approximate, reference).min()) > 20.0  # about 37 dB for the demo VAE


def test_auto_follows_the_device_and_bad_values_are_refused(tmp_path, monkeypatch):
    tiny_vae_bundle(tmp_path / "vae")
    path = tmp_path / "vae"
    for native in (True, False):
        monkeypatch.setattr(devices, "native_bf16", lambda device, native=native: native)
        assert Autoencoder.from_bundle(path, decode_precision="auto").decode_bf16 is native
    assert Autoencoder.from_bundle(path).decode_bf16 is False  # fp32 unless asked
    with pytest.raises(ValueError, match="choose one of fp32, bf16, auto"):
        Autoencoder.from_bundle(path, decode_precision="half")


def test_bf16_sampling_stays_close_to_fp32_and_auto_keeps_the_cpu_exact(tmp_path):
    from latentaudio.pipeline import Pipeline

    vae, dit = tiny_bundles(tmp_path)
    clips = {}
    for precision in ("fp32", "bf16", "auto"):
        pipeline = Pipeline.from_bundles(vae, dit, sample_precision=precision, decode_precision="fp32")
        frames = pipeline.frames_for(pipeline.train_seconds)
        batch = {"seconds_total": torch.full((2,), pipeline.train_seconds)}
        clips[precision] = pipeline.sample_latents(frames, batch, n=2, steps=4, seed=0)
    assert torch.equal(clips["auto"], clips["fp32"])  # on a CPU, auto is fp32 bit for bit
    assert clips["bf16"].dtype == torch.float32 and not torch.equal(clips["bf16"], clips["fp32"])
    error = (clips["bf16"] - clips["fp32"]).norm() / clips["fp32"].norm()
    assert error < 0.05
    with pytest.raises(ValueError, match="sample_precision='half': choose one of fp32, bf16, auto"):
        Pipeline.from_bundles(vae, dit, sample_precision="half")
