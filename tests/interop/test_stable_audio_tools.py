"""stable-audio-tools import and export, against fixtures the peer's own code wrote
(experiments/interop/fixtures.py): the Stable Audio Open autoencoder at a small width."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from latentaudio.apps.common import ConfigError
from latentaudio.bundle import load_bundle
from latentaudio.interop.mapping import MappingError
from latentaudio.interop.stable_audio_tools import (
    PRETRANSFORM_PREFIX,
    FormatError,
    export_vae,
    import_vae,
    read_model_config,
)
from latentaudio.vae.model import MIN_SNAKE_BETA, AudioVAE

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "interop" / "sao_vae_small"


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / max |theirs|, as experiments/interop/fixtures.py reports it."""
    return float((ours - theirs).abs().max() / theirs.abs().max())


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sat") / "vae"
    import_vae(FIXTURE / "model.safetensors", FIXTURE / "model_config.json", folder)
    return folder


def test_encode_and_decode_match_the_peer(imported):
    io = load_file(str(FIXTURE / "io.safetensors"))
    vae = load_bundle(imported, kind="vae").build("vae")
    with torch.no_grad():
        mean = vae.encode(io["audio"])
        decoded = vae.decode(io["mean"])
    assert relative_error(mean, io["mean"]) < 1e-4
    assert relative_error(decoded, io["decoded"]) < 1e-4


def test_the_bundle_keeps_scale_one_and_says_where_it_came_from(imported):
    bundle = load_bundle(imported, kind="vae")
    meta, config = bundle.meta, bundle.config["vae"]
    assert meta["sample_rate"] == 44100 and meta["channels"] == 2 and meta["hop"] == 2048
    assert meta["latent_statistics"]["mean"] == [0.0] * 8 and meta["latent_statistics"]["std"] == [1.0] * 8
    assert meta["imported"]["format"] == "stable-audio-tools"
    assert config["final_tanh"] is False and config["strides"] == [2, 4, 4, 8, 8]
    # the fixture holds a beta of 3e-3: the floor moves down to it, so nothing is clamped
    assert config["snake_beta_floor"] == pytest.approx(3e-3, rel=1e-5)
    assert config["snake_beta_floor"] < MIN_SNAKE_BETA


def test_every_tensor_is_mapped_from_the_checkpoint(imported):
    theirs = load_file(str(FIXTURE / "model.safetensors"))
    ours = load_bundle(imported, kind="vae").state("vae")
    assert len(ours) == len(theirs)
    assert sum(v.numel() for v in ours.values()) == sum(v.numel() for v in theirs.values())
    g = theirs[f"{PRETRANSFORM_PREFIX}encoder.layers.0.weight_g"]
    assert torch.equal(ours["encoder.0.parametrizations.weight.original0"], g)
    alpha = theirs[f"{PRETRANSFORM_PREFIX}decoder.layers.1.layers.2.layers.0.alpha"]
    assert torch.equal(ours["decoder.1.2.block.0.log_alpha"], alpha.view(1, -1, 1))


def test_a_ckpt_with_a_state_dict_imports_the_same(imported, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(FIXTURE / "model.safetensors"))}, checkpoint)
    import_vae(checkpoint, FIXTURE / "model_config.json", tmp_path / "vae")
    assert load_bundle(tmp_path / "vae").hash == load_bundle(imported).hash


def test_export_writes_the_peer_tensors_back_and_round_trips(imported, tmp_path):
    export_vae(imported, tmp_path / "exported")
    exported = load_file(str(tmp_path / "exported" / "model.safetensors"))
    original = load_file(str(FIXTURE / "model.safetensors"))
    assert exported.keys() == {k[len(PRETRANSFORM_PREFIX) :] for k in original}
    for key, tensor in exported.items():
        assert torch.equal(tensor, original[PRETRANSFORM_PREFIX + key]), key
    config = read_model_config(tmp_path / "exported" / "model_config.json")
    assert config["model_type"] == "autoencoder"
    assert (
        config["model"] == read_model_config(FIXTURE / "model_config.json")["model"]["pretransform"]["config"]
    )

    import_vae(
        tmp_path / "exported" / "model.safetensors",
        tmp_path / "exported" / "model_config.json",
        tmp_path / "again",
    )
    first, again = load_bundle(imported), load_bundle(tmp_path / "again")
    assert again.hash == first.hash and again.config == first.config


def test_export_of_our_own_vae_stores_the_betas_it_uses(tmp_path):
    from latentaudio.bundle import save_bundle

    options = dict(channels=1, base_channels=4, channel_mults=[1, 2], strides=[2, 4], latent_dim=2)
    vae = AudioVAE(**options)
    with torch.no_grad():
        vae.encoder[1][0].block[0].log_beta[0, 0, 0] = -9.0  # beta 1e-4, below the floor
    save_bundle(
        tmp_path / "ours",
        "vae",
        {"vae": vae},
        {"vae": {"_target_": "latentaudio.vae.model.AudioVAE", **options}},
        {"sample_rate": 16000, "channels": 1, "hop": 8, "latent_dim": 2},
    )
    export_vae(tmp_path / "ours", tmp_path / "exported")
    exported = load_file(str(tmp_path / "exported" / "model.safetensors"))
    assert exported["encoder.layers.1.layers.0.layers.0.beta"][0] == pytest.approx(
        torch.tensor(MIN_SNAKE_BETA).log()
    )
    config = read_model_config(tmp_path / "exported" / "model_config.json")
    assert config["model"]["decoder"]["config"]["final_tanh"] is False


def edited_checkpoint(tmp_path: Path, edit) -> Path:
    tensors = load_file(str(FIXTURE / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    return tmp_path / "model.safetensors"


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.pop(f"{PRETRANSFORM_PREFIX}decoder.layers.2.layers.1.weight_v"),
            "lacks .*decoder.layers.2.layers.1.weight_v",
        ),
        (
            lambda t: t.update({f"{PRETRANSFORM_PREFIX}encoder.layers.1.extra": torch.zeros(1)}),
            "no mapping rule",
        ),
        (
            lambda t: t.update({f"{PRETRANSFORM_PREFIX}encoder.layers.9.weight_g": torch.zeros(1)}),
            "does not have",
        ),
        (
            lambda t: t.update({f"{PRETRANSFORM_PREFIX}encoder.layers.0.bias": torch.zeros(5)}),
            "another shape",
        ),
    ],
    ids=["missing", "unknown", "extra", "shape"],
)
def test_a_tensor_that_does_not_map_is_refused_by_name(tmp_path, edit, message):
    with pytest.raises(MappingError, match=message):
        import_vae(edited_checkpoint(tmp_path, edit), FIXTURE / "model_config.json", tmp_path / "vae")
    assert not (tmp_path / "vae").exists()


def edited_config(tmp_path: Path, edit) -> Path:
    config = read_model_config(FIXTURE / "model_config.json")
    edit(config["model"]["pretransform"]["config"])
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    return tmp_path / "model_config.json"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["decoder"]["config"].update(antialias_activation=True), "anti-aliased"),
        (lambda c: c["encoder"].update(type="dac"), "only 'oobleck'"),
        (lambda c: c.update(bottleneck={"type": "rvq"}), "bottleneck"),
        (lambda c: c["encoder"]["config"].update(use_snake=False), "differ in use_snake"),
        (lambda c: c["encoder"]["config"].update(latent_dim=8), "2 x latent_dim"),
    ],
    ids=["antialias", "dac", "bottleneck", "snake", "latent"],
)
def test_an_architecture_we_cannot_express_is_refused(tmp_path, edit, message):
    with pytest.raises(FormatError, match=message):
        import_vae(FIXTURE / "model.safetensors", edited_config(tmp_path, edit), tmp_path / "vae")


def test_the_report_names_what_it_left_out(tmp_path):
    def add_dit(tensors):
        tensors["model.model.transformer.layers.0.weight"] = torch.zeros(2)
        tensors["conditioner.conditioners.seconds_total.embedder.weight"] = torch.zeros(2)

    report = import_vae(edited_checkpoint(tmp_path, add_dit), FIXTURE / "model_config.json", tmp_path / "vae")
    assert report.left == {"model": 1, "conditioner": 1}
    assert "parts=[vae,dit]" in report.summary()
    assert "not imported" not in report.summary(with_dit=True)


def test_the_apps_write_the_vae_alone_and_refuse_a_dit_the_checkpoint_lacks(tmp_path):
    from apps_helpers import compose_app

    from latentaudio.apps.export_sat import export_sat
    from latentaudio.apps.import_sat import import_sat

    files = [f"checkpoint={FIXTURE / 'model.safetensors'}", f"config={FIXTURE / 'model_config.json'}"]
    report = import_sat(
        compose_app("import_sat", tmp_path / "run", [*files, f"output={tmp_path / 'out'}", "parts=[vae]"])
    )
    assert load_bundle(tmp_path / "out" / "vae", kind="vae").hash == report.hash
    # this checkpoint holds the autoencoder only: the DiT its config describes is missing
    with pytest.raises(FormatError, match="lacks"):
        import_sat(compose_app("import_sat", tmp_path / "run", [*files, f"output={tmp_path / 'x'}"]))
    with pytest.raises(ConfigError, match="needs the VAE"):
        import_sat(compose_app("import_sat", tmp_path / "run", [*files, "output=y", "parts=[dit]"]))
    export_sat(
        compose_app(
            "export_sat", tmp_path / "run", [f"vae={tmp_path / 'out' / 'vae'}", f"output={tmp_path / 'e'}"]
        )
    )
    assert read_model_config(tmp_path / "e" / "model_config.json")["model_type"] == "autoencoder"
