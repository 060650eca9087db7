import json

import pytest
import torch
import yaml

from latentaudio.bundle import (
    BundleError,
    VAEMismatchError,
    check_same_vae,
    content_hash,
    instantiate,
    load_bundle,
    save_bundle,
)

VAE_CONFIG = {
    "_target_": "latentaudio.vae.model.AudioVAE",
    "channels": 1,
    "base_channels": 4,
    "channel_mults": [1, 2],
    "strides": [2, 2],
    "latent_dim": 3,
}


def test_bundle_round_trip_gives_the_same_outputs(tmp_path):
    vae = instantiate(VAE_CONFIG).eval()
    digest = save_bundle(
        tmp_path / "export", "vae", {"vae": vae}, {"vae": VAE_CONFIG}, {"sample_rate": 16000}
    )
    bundle = load_bundle(tmp_path / "export", kind="vae")
    assert bundle.hash == digest == content_hash(bundle.tensors)
    # the same weights saved again give the same hash
    assert save_bundle(tmp_path / "again", "vae", {"vae": vae}, {"vae": VAE_CONFIG}, {}) == digest
    assert bundle.meta["sample_rate"] == 16000
    rebuilt = bundle.build("vae")
    audio = torch.randn(1, 1, 400)
    with torch.no_grad():
        assert torch.equal(vae(audio).mean, rebuilt(audio).mean)


def test_saving_again_replaces_the_bundle_without_leftovers(tmp_path):
    vae = instantiate(VAE_CONFIG)
    save_bundle(tmp_path / "export", "vae", {"vae": vae}, {"vae": VAE_CONFIG}, {})
    torch.nn.init.zeros_(next(vae.parameters()))
    second = save_bundle(tmp_path / "export", "vae", {"vae": vae}, {"vae": VAE_CONFIG}, {})
    assert load_bundle(tmp_path / "export").hash == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_a_bundle_cannot_name_a_foreign_class(tmp_path):
    vae = instantiate(VAE_CONFIG)
    save_bundle(tmp_path / "export", "vae", {"vae": vae}, {"vae": VAE_CONFIG}, {})
    config_path = tmp_path / "export" / "config.yaml"
    evil = {"vae": {"_target_": "os.system", "command": "touch " + str(tmp_path / "pwned")}}
    config_path.write_text(yaml.safe_dump(evil))
    with pytest.raises(BundleError, match="refusing to build 'os.system'"):
        load_bundle(tmp_path / "export").build("vae")
    assert not (tmp_path / "pwned").exists()


def test_damaged_or_wrong_folders_are_refused_with_a_fix(tmp_path):
    with pytest.raises(BundleError, match="not a bundle folder"):
        load_bundle(tmp_path / "missing")
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(BundleError, match="export/ folder"):
        load_bundle(tmp_path / "checkpoints")
    vae = instantiate(VAE_CONFIG)
    save_bundle(tmp_path / "export", "vae", {"vae": vae}, {"vae": VAE_CONFIG}, {})
    with pytest.raises(BundleError, match="a dit bundle is needed"):
        load_bundle(tmp_path / "export", kind="dit")
    weights = tmp_path / "export" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="damaged"):
        load_bundle(tmp_path / "export")
    meta = json.loads((tmp_path / "export" / "meta.json").read_text())
    assert meta["kind"] == "vae" and meta["format"] == 1


def test_one_vae_check_names_both_hashes_and_the_fix():
    check_same_vae("abc", "abc", "the latents in data/x")  # the same VAE passes
    with pytest.raises(VAEMismatchError) as caught:
        check_same_vae("abc", "def", "the latents in data/x")
    message = str(caught.value)
    assert "the latents in data/x" in message and "abc" in message and "def" in message
    assert "use the VAE bundle whose hash is abc" in message
    assert isinstance(caught.value, BundleError)
    with pytest.raises(VAEMismatchError, match="resume with vae=<bundle abc>"):
        check_same_vae("abc", "def", "last.ckpt", fix="resume with vae=<bundle abc>")
