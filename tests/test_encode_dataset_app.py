import pytest
import torch
from conftest import write_sine
from hydra import compose, initialize_config_dir

from latentaudio.apps.common import CONFIG_PATH, ConfigError
from latentaudio.apps.encode_dataset import encode_dataset
from latentaudio.bundle import BundleError, save_bundle
from latentaudio.data.latent_dataset import LatentDataset
from latentaudio.data.shards import read_manifest
from latentaudio.vae.model import AudioVAE

VAE_KWARGS = dict(channels=1, base_channels=4, channel_mults=[1, 2], strides=[2, 4], latent_dim=3)


@pytest.fixture
def vae_bundle(tmp_path):
    torch.manual_seed(0)
    vae = AudioVAE(**VAE_KWARGS).eval()
    directory = tmp_path / "export"
    digest = save_bundle(
        directory,
        "vae",
        {"vae": vae},
        {"vae": {"_target_": "latentaudio.vae.model.AudioVAE", **VAE_KWARGS}},
        {"sample_rate": 16000, "channels": 1, "hop": vae.hop, "latent_dim": 3},
    )
    return directory, digest


def make_config(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(
            config_name="encode_dataset",
            overrides=[
                f"data.root={tmp_path / 'audio'}",
                f"output={tmp_path / 'latents'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                "progress=false",
                *overrides,
            ],
        )


def test_app_encodes_a_folder_with_a_bundle(tmp_path, vae_bundle):
    directory, digest = vae_bundle
    for i in range(3):
        write_sine(tmp_path / "audio" / f"clip{i}.wav", frequency=220.0 * (i + 1), seconds=0.25 + 0.1 * i)
    (tmp_path / "audio" / "metadata.csv").write_text("path,caption,label\nclip1.wav,a hum,hum\n")
    manifest = encode_dataset(make_config(tmp_path, f"vae={directory}", "shard_frames=600"))
    assert manifest == read_manifest(tmp_path / "latents")
    assert manifest["complete"] and manifest["vae_hash"] == digest
    assert (manifest["sample_rate"], manifest["hop"], manifest["latent_dim"]) == (16000, 8, 3)
    assert sorted(p for s in manifest["shards"] for p in s["files"]) == [
        "clip0.wav",
        "clip1.wav",
        "clip2.wav",
    ]
    assert len(manifest["shards"]) == 2 and manifest["skipped"] == [] and manifest["labels"] == ["hum"]
    assert manifest["seconds"] == pytest.approx(0.25 + 0.35 + 0.45)
    assert len(manifest["statistics"]["mean"]) == len(manifest["statistics"]["std"]) == 3
    dataset = LatentDataset(tmp_path / "latents", crop_frames=64, expected_vae_hash=digest)
    captions = {dataset[i]["path"]: dataset[i]["caption"] for i in range(len(dataset))}
    assert captions == {"clip0.wav": "", "clip1.wav": "a hum", "clip2.wav": ""}


def test_app_needs_a_vae_bundle(tmp_path):
    write_sine(tmp_path / "audio" / "clip.wav", seconds=0.2)
    with pytest.raises(ConfigError, match="vae=<path> is required"):
        encode_dataset(make_config(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(BundleError, match="not a bundle"):
        encode_dataset(make_config(tmp_path, f"vae={tmp_path / 'checkpoints'}"))
