import pytest
import torch
from apps_helpers import compose_app, tiny_vae_overrides

from latentaudio.apps.common import ConfigError
from latentaudio.apps.train_vae import check_vae_config, train
from latentaudio.bundle import load_bundle


def tiny_overrides(root, steps=4):
    return tiny_vae_overrides(root, steps) + ["loss.adversarial_start_step=2"]


def test_train_vae_writes_checkpoint_and_bundle_and_resumes(sine_folder, tmp_path):
    run = tmp_path / "run"
    metric = train(compose_app("train_vae", run, tiny_overrides(sine_folder)))
    assert metric is not None and metric > 0
    last = run / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=True)
    assert first["global_step"] == 4
    bundle = load_bundle(run / "export", kind="vae")
    assert bundle.meta["step"] == 4 and bundle.meta["hop"] == 8 and bundle.meta["sample_rate"] == 16000
    assert len(bundle.meta["latent_statistics"]["std"]) == 4
    assert (run / "config.yaml").exists()

    # a restart in the same run folder continues the step count and both optimizers' state; a run
    # ending between checkpoint intervals (7 is not a multiple of 2) still leaves its last.ckpt
    train(compose_app("train_vae", run, tiny_overrides(sine_folder, steps=7) + ["ckpt_path=last"]))
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == 7
    generator_state, discriminator_state = resumed["optimizer_states"]
    assert generator_state["state"] and discriminator_state["state"]
    first_step = first["optimizer_states"][0]["state"][0]["step"]
    assert resumed["optimizer_states"][0]["state"][0]["step"] == first_step + 3


def test_a_run_shorter_than_one_checkpoint_interval_leaves_one_last_checkpoint(sine_folder, tmp_path):
    """Lightning 2.6 writes last.ckpt at the end itself when it never has: ours must not write it
    first (that left last.ckpt and last-v1.ckpt side by side)."""
    run = tmp_path / "run"
    train(compose_app("train_vae", run, tiny_vae_overrides(sine_folder, steps=3, every=5)))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


def test_bad_vae_configs_fail_before_any_work(sine_folder, tmp_path):
    cfg = compose_app("train_vae", tmp_path / "r", tiny_overrides(sine_folder) + ["data.sample_length=2047"])
    with pytest.raises(ConfigError, match="data.sample_length=2048"):
        check_vae_config(cfg)
    cfg = compose_app(
        "train_vae", tmp_path / "r", tiny_overrides(sine_folder) + ["loss.waveform_preemphasis=1.0"]
    )
    with pytest.raises(ConfigError, match="waveform_preemphasis"):
        check_vae_config(cfg)
    cfg = compose_app(
        "train_vae", tmp_path / "r", tiny_overrides(sine_folder) + ["loss.waveform_lowpass=1.5"]
    )
    with pytest.raises(ConfigError, match="waveform_lowpass"):
        check_vae_config(cfg)
    cfg = compose_app("train_vae", tmp_path / "r", tiny_overrides(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="does not exist"):
        check_vae_config(cfg)


def test_accumulated_batches_step_both_networks_once_per_group(sine_folder, tmp_path):
    run = tmp_path / "run"
    overrides = tiny_vae_overrides(sine_folder, steps=3, every=3) + [
        "optim.accumulate_grad_batches=2",
        "loss.adversarial_start_step=1",  # the discriminator accumulates too, from the second step
        "trainer.val_check_interval=3",  # validation between two batches of one step
    ]
    train(compose_app("train_vae", run, overrides))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3  # max_steps counts optimizer steps...
    batches = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"]
    assert batches == 6  # ...of two batches each
    generator_state, discriminator_state = checkpoint["optimizer_states"]
    assert generator_state["state"][0]["step"] == 3 and discriminator_state["state"][0]["step"] == 2
    assert load_bundle(run / "export", kind="vae").meta["step"] == 3


@pytest.mark.slow
def test_compiled_networks_train_and_keep_the_checkpoint_and_bundle_layout(sine_folder, tmp_path):
    # minutes on 2 CPU cores: compiling the generator, the discriminator and their backward passes
    overrides = tiny_vae_overrides(sine_folder, steps=2) + ["loss.adversarial_start_step=1", "ema.decay=0.9"]
    train(compose_app("train_vae", tmp_path / "eager", overrides))
    train(compose_app("train_vae", tmp_path / "compiled", overrides + ["compile=true"]))
    runs = {name: tmp_path / name for name in ("eager", "compiled")}
    checkpoints = {k: torch.load(r / "checkpoints" / "last.ckpt", weights_only=True) for k, r in runs.items()}
    assert checkpoints["compiled"]["global_step"] == 2
    assert list(checkpoints["compiled"]["state_dict"]) == list(checkpoints["eager"]["state_dict"])
    bundles = {k: load_bundle(r / "export", kind="vae") for k, r in runs.items()}
    assert list(bundles["compiled"].tensors) == list(bundles["eager"].tensors)
