"""Bad configs fail in seconds, before any model is built, with a message naming the problem and the fix."""

import time

import pytest
from apps_helpers import compose_app
from conftest import write_sine
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

import latentaudio.dit.training
import latentaudio.vae.training
from latentaudio.apps.common import CONFIG_PATH, ConfigError
from latentaudio.apps.generate import generate
from latentaudio.apps.train_diffusion import train as train_diffusion
from latentaudio.apps.train_vae import train as train_vae
from latentaudio.bundle import BundleError, VAEMismatchError, load_bundle, save_bundle
from latentaudio.data.encode import encode_with_vae
from latentaudio.data.scan import DataFolderError

from .helpers import tiny_vae_bundle, vae_overrides

FAST_FAIL_SECONDS = 5.0


@pytest.fixture
def no_models(monkeypatch):
    """Building a training module (the first expensive thing) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the config was checked")

    monkeypatch.setattr(latentaudio.vae.training, "VAETraining", refuse)
    monkeypatch.setattr(latentaudio.dit.training, "DiTTraining", refuse)


def fails_fast(call, error, *fragments):
    start = time.perf_counter()
    with pytest.raises(error) as caught:
        call()
    assert time.perf_counter() - start < FAST_FAIL_SECONDS
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))
    return str(caught.value)


def test_an_unknown_key_is_refused_by_hydra_with_the_fix(tmp_path):
    def compose_with_typo():
        with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            compose(config_name="train_vae", overrides=["data.sample_lenght=4096"])

    fails_fast(compose_with_typo, ConfigCompositionException, "data.sample_lenght", "+data.sample_lenght")


def test_bad_vae_settings_fail_before_the_model(tmp_path, no_models):
    write_sine(tmp_path / "audio" / "a.wav")
    run = tmp_path / "run"
    cfg = compose_app("train_vae", run, vae_overrides(tmp_path / "audio") + ["data.sample_length=2050"])
    fails_fast(
        lambda: train_vae(cfg), ConfigError, "not a multiple of the VAE's hop 8", "data.sample_length=2048"
    )

    cfg = compose_app("train_vae", run, vae_overrides(tmp_path / "missing"))
    fails_fast(lambda: train_vae(cfg), DataFolderError, "does not exist", "set data.root=")

    (tmp_path / "empty").mkdir()
    cfg = compose_app("train_vae", run, vae_overrides(tmp_path / "empty"))
    fails_fast(lambda: train_vae(cfg), DataFolderError, "no audio files", "point data.root at a folder")

    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "x.wav").write_text("not audio")
    cfg = compose_app("train_vae", run, vae_overrides(tmp_path / "only_bad"))
    fails_fast(lambda: train_vae(cfg), DataFolderError, "none of the 1 audio files", "is usable")


def dit_overrides(vae, *extra):
    return ["model/dit=tiny", f"vae={vae}", "data.crop_frames=16", "debug=fast", *extra]


def test_bad_diffusion_settings_fail_before_the_model(tmp_path, no_models):
    audio = tmp_path / "audio"
    for i in range(2):
        write_sine(audio / f"a{i}.wav", seconds=0.2)
    hash_a = tiny_vae_bundle(tmp_path / "vae_a", seed=0)
    hash_b = tiny_vae_bundle(tmp_path / "vae_b", seed=1)
    encode_with_vae(load_bundle(tmp_path / "vae_a"), audio, tmp_path / "latents_a", progress=False)
    run = tmp_path / "run"

    # latent shards from another VAE: both hashes and the fix
    cfg = compose_app(
        "train_diffusion", run, dit_overrides(tmp_path / "vae_b", f"latents={tmp_path / 'latents_a'}")
    )
    fails_fast(lambda: train_diffusion(cfg), VAEMismatchError, hash_a, hash_b, "make encode-dataset")

    # vae= something that is not a bundle: a checkpoints folder, a .ckpt file, nothing
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    for path in (run / "checkpoints", run / "checkpoints" / "last.ckpt", tmp_path / "nowhere"):
        cfg = compose_app("train_diffusion", run, dit_overrides(path, f"data.root={audio}"))
        fails_fast(lambda cfg=cfg: train_diffusion(cfg), BundleError, str(path), "export/ folder")

    cfg = compose_app(
        "train_diffusion", run, dit_overrides(tmp_path / "vae_a", f"data.root={tmp_path / 'gone'}")
    )
    fails_fast(lambda: train_diffusion(cfg), DataFolderError, "does not exist")

    # a beat clock with no tempo to count
    cfg = compose_app(
        "train_diffusion",
        run,
        dit_overrides(tmp_path / "vae_a", f"data.root={audio}", "conditioning.tempo_grid=true"),
    )
    fails_fast(
        lambda: train_diffusion(cfg), ConfigError, "conditioning.tempo_grid=true", "conditioning.tempo=true"
    )

    # a key encoding that does not exist: the choices named
    cfg = compose_app(
        "train_diffusion",
        run,
        dit_overrides(tmp_path / "vae_a", f"data.root={audio}", "conditioning.key_encoding=circle"),
    )
    fails_fast(lambda: train_diffusion(cfg), ConfigError, "conditioning.key_encoding=circle", "pitch_classes")


def test_a_dit_bundle_of_another_vae_is_refused_before_it_is_built(tmp_path, monkeypatch):
    hash_a = tiny_vae_bundle(tmp_path / "vae_a", seed=0)
    hash_b = tiny_vae_bundle(tmp_path / "vae_b", seed=1)
    # a stand-in DiT bundle made with VAE a: the check must come before its networks are built
    dummy = load_bundle(tmp_path / "vae_a").build("vae")
    save_bundle(tmp_path / "dit", "dit", {"dit": dummy}, {"dit": {"_target_": "none"}}, {"vae_hash": hash_a})
    cfg = compose_app(
        "generate", tmp_path / "out", [f"vae={tmp_path / 'vae_b'}", f"dit={tmp_path / 'dit'}", "n=1"]
    )
    message = fails_fast(lambda: generate(cfg), VAEMismatchError, hash_a, hash_b)
    assert "pass the VAE bundle the DiT was trained with" in message


THROUGHPUT_MISTAKES = [
    (["compile=yes"], ("compile='yes'", "compile=true or compile=false")),
    (["compile=true", "compile_mode=fast"], ("compile_mode='fast'", "max-autotune")),
    (["compile_mode=max-autotune"], ("compile_mode=max-autotune", "compile=true")),
    (["optim.accumulate_grad_batches=0"], ("optim.accumulate_grad_batches=0", "1 (no accumulation) or more")),
    (["trainer.accumulate_grad_batches=4"], ("does not apply here", "set optim.accumulate_grad_batches=4")),
]


@pytest.mark.parametrize("overrides, fragments", THROUGHPUT_MISTAKES)
def test_bad_throughput_settings_fail_before_the_model(tmp_path, no_models, overrides, fragments):
    write_sine(tmp_path / "audio" / "a.wav")
    cfg = compose_app("train_vae", tmp_path / "vae_run", vae_overrides(tmp_path / "audio") + overrides)
    fails_fast(lambda: train_vae(cfg), ConfigError, *fragments)
    # checked first, before the VAE bundle is even looked for
    cfg = compose_app("train_diffusion", tmp_path / "dit_run", dit_overrides(tmp_path / "no_vae", *overrides))
    fails_fast(lambda: train_diffusion(cfg), ConfigError, *fragments)


@pytest.mark.parametrize("value", ["-1", "yes"])
def test_a_bad_block_checkpointing_value_is_refused(tmp_path, no_models, value):
    cfg = compose_app(
        "train_diffusion", tmp_path, dit_overrides(tmp_path / "no_vae", f"dit.checkpoint_blocks={value}")
    )
    fails_fast(lambda: train_diffusion(cfg), ConfigError, "dit.checkpoint_blocks=", "true (every block)")


@pytest.mark.parametrize(
    "overrides",
    [
        ["aligned.fresh_per_step=0"],
        ["aligned.fresh_per_step=2.5"],
        ["aligned.fresh_per_step=4", "aligned.pool_size=0"],
    ],
)
def test_a_bad_enhancement_pool_is_refused(tmp_path, no_models, overrides):
    tiny_vae_bundle(tmp_path / "vae", seed=0)
    write_sine(tmp_path / "audio" / "a.wav", seconds=0.2)
    enhance = ["aligned.enabled=true", "aligned.task=enhance", f"data.root={tmp_path / 'audio'}"]
    cfg = compose_app(
        "train_diffusion", tmp_path / "run", dit_overrides(tmp_path / "vae", *enhance, *overrides)
    )
    fails_fast(lambda: train_diffusion(cfg), ConfigError, "aligned.fresh_per_step=", "whole numbers >= 1")
