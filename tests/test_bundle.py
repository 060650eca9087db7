import importlib
import inspect
import json
from pathlib import Path

import pytest
import torch
import yaml

from latentaudio.bundle import (
    ALLOWED_TARGETS,
    ARGUMENTS,
    BundleError,
    VAEMismatchError,
    check_arguments,
    check_same_vae,
    check_shapes,
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


# ---------------------------------------------------------------------------------- argument checks

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
DIT_TARGET = "latentaudio.dit.model.DiT"
CONDITIONER = {"_target_": "latentaudio.dit.conditioning.Conditioner", "global_dim": 32, "num_labels": 3}


def preset(path: Path) -> dict:
    """A conf/model preset completed as the training apps complete it."""
    config = yaml.safe_load(path.read_text())
    if config["_target_"] == DIT_TARGET:
        config.update(latent_dim=16, global_cond_dim=config["width"], cross_attn_dim=config["width"])
    return config


def dit_bundle(directory, dit_config: dict, conditioner_config: dict = CONDITIONER) -> Path:
    components = {"dit": instantiate(dit_config), "conditioner": instantiate(conditioner_config)}
    configs = {"dit": dit_config, "conditioner": conditioner_config}
    save_bundle(directory, "dit", components, configs, {})
    return directory


def edit_config(directory: Path, component: str, **changes) -> None:
    config = yaml.safe_load((directory / "config.yaml").read_text())
    config[component].update(changes)
    (directory / "config.yaml").write_text(yaml.safe_dump(config))


def test_the_argument_allow_list_is_each_class_signature():
    # a constructor argument added or renamed must be added to the allow-list with its bound
    assert set(ARGUMENTS) == ALLOWED_TARGETS
    for target, arguments in ARGUMENTS.items():
        module, name = target.rsplit(".", 1)
        signature = inspect.signature(getattr(importlib.import_module(module), name))
        assert set(signature.parameters) == set(arguments), target


@pytest.mark.parametrize("path", sorted(CONF.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_preset_passes_the_checks(path):
    config = preset(path)
    check_arguments(config, path.parent.name, str(path))
    with torch.device("meta"):
        state = instantiate(config).state_dict()
    check_shapes(config, state, str(path))


@pytest.mark.parametrize("name", ["tiny", "demo"])
def test_bundles_of_the_small_presets_load_and_build(tmp_path, name):
    vae_config = preset(CONF / "vae" / f"{name}.yaml")
    save_bundle(tmp_path / "vae", "vae", {"vae": instantiate(vae_config)}, {"vae": vae_config}, {})
    load_bundle(tmp_path / "vae", kind="vae").build("vae")
    text = {"text": "bytes", "cross_dim": 32} if name == "demo" else {}
    dit = dit_bundle(
        tmp_path / "dit",
        {**preset(CONF / "dit" / f"{name}.yaml"), "cross_attn_dim": 32},
        {**CONDITIONER, **text},
    )
    bundle = load_bundle(dit, kind="dit")
    bundle.build("dit"), bundle.build("conditioner")


def test_a_text_path_in_a_bundle_is_refused_unless_trusted(tmp_path):
    dit = dit_bundle(tmp_path / "dit", preset(CONF / "dit" / "tiny.yaml"))
    t5_folder = tmp_path / "somewhere"
    edit_config(dit, "conditioner", text="t5", cross_dim=32, text_path=str(t5_folder))
    with pytest.raises(BundleError, match=r"conditioner.text_path=.*trust_paths=True"):
        load_bundle(dit).build("conditioner")
    # trusted, the loader goes on to read the folder (here: no T5 in it, so transformers fails)
    with pytest.raises(Exception) as trusted:
        load_bundle(dit, trust_paths=True).build("conditioner")
    assert not isinstance(trusted.value, BundleError)


@pytest.mark.parametrize(
    "component, changes, key",
    [
        ("dit", {"depth": 10**9}, "dit.depth"),
        ("dit", {"width": 2**40}, "dit.width"),
        ("conditioner", {"num_labels": 10**12}, "conditioner.num_labels"),
        ("dit", {"patch_size": -1}, "dit.patch_size"),
        ("dit", {"mlp_ratio": "4e12"}, "dit.mlp_ratio"),
    ],
)
def test_absurd_sizes_are_refused_naming_the_key_and_the_override(tmp_path, component, changes, key):
    dit = dit_bundle(tmp_path / "dit", preset(CONF / "dit" / "tiny.yaml"))
    edit_config(dit, component, **changes)
    with pytest.raises(BundleError, match=rf"{key}=") as refused:
        load_bundle(dit).build(component)
    assert "size_limits" in str(refused.value) or "not a size" in str(refused.value)


def test_sizes_within_bounds_that_the_weights_do_not_hold_are_refused_before_allocating(tmp_path):
    dit = dit_bundle(tmp_path / "dit", preset(CONF / "dit" / "tiny.yaml"))
    # 1e6 labels x 16384 wide: 16e9 values (64 GB), each size within its bound
    edit_config(dit, "conditioner", num_labels=1_000_000, global_dim=16384)
    with pytest.raises(
        BundleError, match=r"label.embedding.weight: config \(1000001, 16384\), weights \(4, 32\)"
    ):
        load_bundle(dit).build("conditioner")


def test_a_raised_size_limit_lets_a_bundle_through(tmp_path):
    config = {**preset(CONF / "dit" / "tiny.yaml"), "patch_size": 2048}
    dit = dit_bundle(tmp_path / "dit", config)
    with pytest.raises(BundleError, match=r"size_limits=\{'dit.patch_size': 2048\}"):
        load_bundle(dit).build("dit")
    load_bundle(dit, size_limits={"dit.patch_size": 2048}).build("dit")


def test_an_argument_the_class_does_not_take_is_refused(tmp_path):
    dit = dit_bundle(tmp_path / "dit", preset(CONF / "dit" / "tiny.yaml"))
    edit_config(dit, "dit", weights_path="/etc/passwd")
    with pytest.raises(BundleError, match="dit.weights_path is not an argument"):
        load_bundle(dit).build("dit")


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
