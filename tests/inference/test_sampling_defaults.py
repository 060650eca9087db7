"""The sampler follows the objective: null means the objective's default, a misfit is refused early."""

import warnings

import pytest
import torch
from apps_helpers import compose_app
from conftest import write_sine
from tiny_bundles import tiny_bundles, tiny_vae_bundle

from latentaudio.apps.common import ConfigError
from latentaudio.apps.train_diffusion import check_diffusion_config, train
from latentaudio.bundle import load_bundle
from latentaudio.pipeline import Pipeline


@pytest.fixture(scope="module")
def audio_and_vae(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rf")
    for i in range(4):
        write_sine(tmp / "audio" / f"a{i}.wav", frequency=200.0 + 100 * i, seconds=0.3)
    tiny_vae_bundle(tmp / "vae")
    return tmp / "audio", tmp / "vae"


def diffusion_overrides(audio, vae, *extra):
    return ["model/dit=tiny", f"vae={vae}", f"data.root={audio}", "data.crop_frames=64", *extra]


def test_rectified_flow_with_the_default_sampling_validates(audio_and_vae, tmp_path):
    cfg = compose_app(
        "train_diffusion", tmp_path, diffusion_overrides(*audio_and_vae, "objective.name=rectified_flow")
    )
    assert cfg.sampling.sampler is None
    check_diffusion_config(cfg)


def test_a_sampler_that_does_not_fit_the_objective_is_refused_before_training(audio_and_vae, tmp_path):
    overrides = diffusion_overrides(
        *audio_and_vae, "objective.name=rectified_flow", "sampling.sampler=dpmpp_2m"
    )
    with pytest.raises(
        ConfigError, match="sampling.sampler=dpmpp_2m does not work with objective.name=rectified_flow"
    ):
        train(compose_app("train_diffusion", tmp_path, overrides))
    assert not (tmp_path / "checkpoints").exists()


def test_rectified_flow_trains_with_media_exports_its_sampler_and_generates(audio_and_vae, tmp_path):
    overrides = diffusion_overrides(
        *audio_and_vae,
        "objective.name=rectified_flow",
        "data.batch_size=2",
        "data.val_fraction=0.25",
        "debug=fast",
        "trainer.max_steps=1",
        "trainer.val_check_interval=1",
        "media.every_n_steps=1",  # validation samples at the end: where the wrong default crashed
        "media.n_examples=1",
        "sampling.steps=2",
    )
    train(compose_app("train_diffusion", tmp_path, overrides))
    assert list(tmp_path.rglob("generated0.wav")), "no validation samples were made"
    assert load_bundle(tmp_path / "export").meta["sampling"]["sampler"] == "heun"
    pipe = Pipeline.from_bundles(audio_and_vae[1], tmp_path / "export")
    assert pipe.defaults["sampler"] == "heun"
    assert torch.isfinite(pipe.generate(seconds=0.02, steps=2)).all()


def test_a_bundle_with_a_sampler_that_does_not_fit_falls_back_with_a_warning(tmp_path):
    vae, dit = tiny_bundles(
        tmp_path, objective="rectified_flow", sampling={"sampler": "dpmpp_2m", "steps": 2}
    )
    with pytest.warns(UserWarning, match="sampling.sampler=dpmpp_2m does not work with the rectified_flow"):
        pipe = Pipeline.from_bundles(vae, dit)
    assert pipe.defaults == {"sampler": "heun", "steps": 2, "cfg_scale": 3.0}
    assert pipe.generate(seconds=0.015).shape == (1, 1, 240)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Pipeline.from_bundles(*tiny_bundles(tmp_path / "v")).defaults["sampler"] == "dpmpp_2m"


def test_encode_divides_by_a_clamped_std(tmp_path):
    # a latent channel that never varied in training has std 0
    pipe = Pipeline.from_bundles(*tiny_bundles(tmp_path, latent_std=0.0))
    latents = pipe.encode(0.3 * torch.randn(1, 400, generator=torch.Generator().manual_seed(0)), 16000)
    assert torch.isfinite(latents).all()
