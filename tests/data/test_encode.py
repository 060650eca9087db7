import os

import torch
from conftest import write_sine

import latentaudio.data.encode as encode_module
from latentaudio.bundle import load_bundle, save_bundle
from latentaudio.data.encode import encode_cached
from latentaudio.data.latent_dataset import LatentDataset
from latentaudio.vae.model import AudioVAE

VAE_KWARGS = dict(channels=1, base_channels=4, channel_mults=[1, 2], strides=[2, 4], latent_dim=3)


def tiny_vae_bundle(directory):
    torch.manual_seed(0)
    vae = AudioVAE(**VAE_KWARGS).eval()
    config = {"vae": {"_target_": "latentaudio.vae.model.AudioVAE", **VAE_KWARGS}}
    save_bundle(directory, "vae", {"vae": vae}, config, {"sample_rate": 16000, "channels": 1, "hop": vae.hop})
    return load_bundle(directory, kind="vae")


def test_the_latent_cache_follows_the_folder_content(tmp_path, monkeypatch):
    bundle = tiny_vae_bundle(tmp_path / "vae")
    root, cache = tmp_path / "audio", tmp_path / "cache"
    for i in range(3):
        write_sine(root / f"tone{i}.wav", frequency=200.0 + 50 * i, seconds=0.2)
    (root / "metadata.csv").write_text("path,caption\ntone0.wav,first caption\n")
    encoded = []
    real_encode_folder = encode_module.encode_folder

    def counting(vae, vae_hash, sample_rate, root, files, output, *args, **kwargs):
        encoded.append(output)
        return real_encode_folder(vae, vae_hash, sample_rate, root, files, output, *args, **kwargs)

    monkeypatch.setattr(encode_module, "encode_folder", counting)

    def cached():
        return encode_cached(bundle, root, cache, progress=False)

    first = cached()
    assert first.name.startswith(bundle.hash) and encoded == [first]
    assert cached() == first and encoded == [first]  # unchanged: reused, not encoded again

    write_sine(root / "added.wav", seconds=0.2)
    added = cached()
    assert added != first and encoded[-1] == added

    (root / "metadata.csv").write_text("path,caption\ntone0.wav,an edited caption\n")
    edited = cached()
    assert edited not in (first, added) and encoded[-1] == edited
    captions = {c["path"]: c["caption"] for _, c in LatentDataset(edited, crop_frames=8).clips}
    assert captions["tone0.wav"] == "an edited caption"

    write_sine(root / "tone1.wav", frequency=900.0, seconds=0.3)
    os.utime(root / "tone1.wav", ns=(1, 1))
    changed = cached()
    assert changed not in (first, added, edited)

    (root / "added.wav").unlink()
    assert cached() not in (first, added, edited, changed)
    assert len(encoded) == 5
