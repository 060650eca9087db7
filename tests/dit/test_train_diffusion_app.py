"""Stage two end to end on tiny models: VAE bundle -> cached latents -> DiT bundle -> generated audio."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
import torch
from apps_helpers import compose_app
from conftest import write_sine

from latentaudio.apps.common import ConfigError
from latentaudio.apps.generate import generate
from latentaudio.apps.train_diffusion import check_checkpoint_matches, resolve_latents, train
from latentaudio.apps.train_vae import train as train_vae
from latentaudio.bundle import VAEMismatchError, instantiate, load_bundle, save_bundle
from latentaudio.dit.training import DiTTraining
from latentaudio.pipeline import Pipeline


@pytest.fixture(scope="module")
def vae_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    rows = ["path,label"]
    for i in range(10):
        write_sine(root / f"tone{i}.wav", frequency=200.0 * (1 + i / 5), seconds=1.0)
        rows.append(f"tone{i}.wav,{'low' if i < 5 else 'high'}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path_factory.mktemp("vae")
    overrides = [
        "model/vae=tiny",
        f"data.root={root}",
        "data.sample_length=2048",
        "debug=fast",
        "trainer.max_steps=2",
    ]
    train_vae(compose_app("train_vae", run, overrides))
    return root, run / "export"


def dit_overrides(root, vae, steps=4):
    return [
        "model/dit=tiny",
        f"vae={vae}",
        f"data.root={root}",
        "data.crop_frames=64",
        "data.batch_size=4",
        "data.val_fraction=0.2",
        "debug=fast",
        f"trainer.max_steps={steps}",
        "ema.decay=0.9",
        "optim.warmup_steps=0",
    ]


def test_train_diffusion_from_a_folder_then_generate(vae_bundle, tmp_path):
    root, vae = vae_bundle
    cfg = compose_app("train_diffusion", tmp_path / "dit", dit_overrides(root, vae))
    loss = train(cfg)
    assert loss is not None and loss > 0
    cache = Path(resolve_latents(cfg, load_bundle(vae)))
    assert list(cache.parent.iterdir()) == [cache]  # found again, not encoded a second time
    assert (cache / "manifest.json").exists()

    checkpoint = torch.load(tmp_path / "dit" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4
    state = checkpoint["state_dict"]
    raw_keys = [k for k in state if k.startswith("denoiser.")]
    differing = [
        k
        for k in raw_keys
        if not torch.equal(state[k], state["ema.averaged.module." + k[len("denoiser.") :]])
    ]
    assert differing, "EMA weights should differ from the raw weights after training"
    bundle = load_bundle(tmp_path / "dit" / "export", kind="dit")
    for key in raw_keys:
        exported = bundle.tensors[key[len("denoiser.") :]]
        assert torch.equal(exported, state["ema.averaged.module." + key[len("denoiser.") :]])
    assert bundle.meta["labels"] == ["high", "low"] and bundle.meta["vae_hash"] == load_bundle(vae).hash

    out = tmp_path / "generated"
    gen = compose_app(
        "generate",
        out,
        [
            f"vae={vae}",
            f"dit={tmp_path / 'dit' / 'export'}",
            "seconds=0.5",
            "n=2",
            "steps=4",
            "label=low",
            f"output={out}",
        ],
    )
    paths = generate(gen)
    assert len(paths) == 2 and (out / "settings.json").exists() and (out / "clip00.png").exists()
    info = sf.info(str(paths[0]))
    assert info.samplerate == 16000 and info.frames == 8000

    pipe = Pipeline.from_bundles(vae, tmp_path / "dit" / "export")
    first = pipe.generate(seconds=0.5, n=1, steps=3, seed=7)
    assert torch.equal(first, pipe.generate(seconds=0.5, n=1, steps=3, seed=7))
    assert not torch.equal(first, pipe.generate(seconds=0.5, n=1, steps=3, seed=8))

    # a second run on the same folder reuses the cached latents
    train(compose_app("train_diffusion", tmp_path / "dit2", dit_overrides(root, vae, steps=1)))


def test_another_vae_is_refused_naming_both_hashes(vae_bundle, tmp_path):
    root, vae = vae_bundle
    train(compose_app("train_diffusion", tmp_path / "dit", dit_overrides(root, vae, steps=1)))
    original = load_bundle(vae)
    other_vae = instantiate(original.config["vae"])
    other = tmp_path / "other_vae"
    other_hash = save_bundle(other, "vae", {"vae": other_vae}, {"vae": original.config["vae"]}, original.meta)
    with pytest.raises(VAEMismatchError) as caught:
        Pipeline.from_bundles(other, tmp_path / "dit" / "export")
    assert original.hash in str(caught.value) and other_hash in str(caught.value)

    cache = resolve_latents(
        compose_app("train_diffusion", tmp_path / "x", dit_overrides(root, vae)), original
    )
    cfg = compose_app("train_diffusion", tmp_path / "dit3", dit_overrides(root, other) + [f"latents={cache}"])
    with pytest.raises(VAEMismatchError) as caught:
        train(cfg)
    assert original.hash in str(caught.value) and other_hash in str(caught.value)


def test_enhancement_training_reuses_pooled_pairs(vae_bundle, tmp_path, monkeypatch):
    """With aligned.fresh_per_step=1 only one item per step goes through the VAE once the pool is full."""
    from latentaudio.dit.training import DiTTraining

    degraded_sizes = []
    original = DiTTraining.degraded_latents

    def counting(self, latents, generator=None):
        degraded_sizes.append(latents.shape[0])
        return original(self, latents, generator)

    monkeypatch.setattr(DiTTraining, "degraded_latents", counting)
    root, vae = vae_bundle
    overrides = dit_overrides(root, vae, steps=4) + [
        "aligned.enabled=true",
        "aligned.task=enhance",
        "aligned.fresh_per_step=1",
        "aligned.pool_size=4",
        "trainer.limit_val_batches=0",
    ]
    cfg = compose_app("train_diffusion", tmp_path / "dit", overrides)
    train(cfg)
    assert (tmp_path / "dit" / "export" / "model.safetensors").exists()
    # step 1 fills the pool of 4 with a whole batch of 4; steps 2 to 4 degrade one item each
    assert degraded_sizes[:4] == [4, 1, 1, 1], degraded_sizes


def test_accumulated_batches_train_and_export(vae_bundle, tmp_path):
    root, vae = vae_bundle
    run = tmp_path / "dit"
    overrides = dit_overrides(root, vae, steps=2) + ["optim.accumulate_grad_batches=2", "data.batch_size=2"]
    train(compose_app("train_diffusion", run, overrides))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2  # optimizer steps, of two batches each
    assert checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"] == 4
    assert checkpoint["optimizer_states"][0]["state"][0]["step"] == 2
    assert load_bundle(run / "export", kind="dit").meta["step"] == 2


def test_a_resume_on_latents_with_other_statistics_is_refused(vae_bundle, tmp_path, monkeypatch):
    from latentaudio.data.datamodule import LatentDataModule

    root, vae = vae_bundle
    run = tmp_path / "dit"
    train(compose_app("train_diffusion", run, dit_overrides(root, vae, steps=1)))
    trained = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["latent_mean"]

    measured = LatentDataModule.statistics.fget
    shifted = property(lambda self: {**measured(self), "mean": [m + 0.5 for m in measured(self)["mean"]]})
    monkeypatch.setattr(LatentDataModule, "statistics", shifted)
    resumed = compose_app("train_diffusion", run, dit_overrides(root, vae, steps=2) + ["ckpt_path=last"])
    with pytest.raises(ConfigError, match="trained on latents with mean") as caught:
        train(resumed)
    message = str(caught.value)
    assert (
        f"{trained.flatten()[0].item():.4g}" in message
        and f"{trained.flatten()[0].item() + 0.5:.4g}" in message
    )
    assert "start a new run folder" in message


def test_the_resume_check_names_the_vae_and_the_statistics(tmp_path):
    checkpoint = tmp_path / "last.ckpt"
    mean, std = torch.tensor([[[0.25], [-1.0]]]), torch.tensor([[[2.0], [0.5]]])  # (1, D, 1) buffers
    torch.save(
        {
            "hyper_parameters": {"latent": {"vae_hash": "aaaa"}},
            "state_dict": {"latent_mean": mean, "latent_std": std},
        },
        checkpoint,
    )
    same = {"mean": [0.25, -1.0], "std": [2.0, 0.5]}
    check_checkpoint_matches(str(checkpoint), SimpleNamespace(hash="aaaa"), same)  # the same: resumes
    with pytest.raises(VAEMismatchError, match="aaaa.*bbbb.*resume with vae="):
        check_checkpoint_matches(str(checkpoint), SimpleNamespace(hash="bbbb"), same)
    with pytest.raises(ConfigError, match=r"std \[2.0, 0.5\].*std \[2.0, 0.6\]"):
        check_checkpoint_matches(str(checkpoint), SimpleNamespace(hash="aaaa"), {**same, "std": [2.0, 0.6]})


@pytest.mark.parametrize("kind", ["finetune", "distill"])
def test_a_fine_tune_or_distillation_resumes_only_on_its_base(tmp_path, kind):
    # make demo again, then make demo-finetune: the run folder's checkpoint adapts the old DiT
    checkpoint = tmp_path / "last.ckpt"
    torch.save(
        {"hyper_parameters": {"latent": {"vae_hash": "aaaa"}, kind: {"base_hash": "d1d1"}}}, checkpoint
    )
    vae, statistics = SimpleNamespace(hash="aaaa"), {"mean": [0.0], "std": [1.0]}
    check_checkpoint_matches(str(checkpoint), vae, statistics, SimpleNamespace(hash="d1d1", path="dit"))
    with pytest.raises(
        ConfigError, match=r"adapts the DiT bundle d1d1, but dit= is new/export \(d2d2\).*new run folder"
    ):
        check_checkpoint_matches(
            str(checkpoint), vae, statistics, SimpleNamespace(hash="d2d2", path="new/export")
        )


TINY_VAE = {"channels": 1, "base_channels": 4, "channel_mults": [1], "strides": [2], "latent_dim": 2}


def tiny_vae_bundle(directory, seed: int) -> str:
    torch.manual_seed(seed)
    config = {"_target_": "latentaudio.vae.model.AudioVAE", **TINY_VAE}
    meta = {"sample_rate": 16000, "channels": 1, "hop": 2, "latent_dim": 2}
    return save_bundle(directory, "vae", {"vae": instantiate(config)}, {"vae": config}, meta)


def tiny_dit_module(vae_path, vae_hash: str) -> DiTTraining:
    torch.manual_seed(0)
    return DiTTraining(
        dit={"_target_": "latentaudio.dit.model.DiT", "width": 16, "depth": 1, "heads": 2},
        conditioner={"global_dim": 16, "timing": True, "num_labels": 0, "cfg_dropout": 0.0},
        objective={"name": "v"},
        optim={"lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.0, "warmup_steps": 0},
        latent={
            "vae_hash": vae_hash,
            "vae_path": str(vae_path),
            "sample_rate": 16000,
            "hop": 2,
            "latent_dim": 2,
            "mean": [0.0, 0.0],
            "std": [1.0, 1.0],
            "crop_frames": 8,
        },
    )


def test_export_writes_the_statistics_the_network_was_trained_with(tmp_path):
    module = tiny_dit_module(tmp_path / "vae", "aaaa")
    state = module.state_dict()
    # a resume: the checkpoint's buffers replace the statistics this run measured
    state["latent_mean"], state["latent_std"] = (
        torch.tensor([[[0.5], [-0.25]]]),
        torch.tensor([[[2.0], [4.0]]]),
    )
    module.load_state_dict(state)
    module.export(tmp_path / "export")
    exported = load_bundle(tmp_path / "export", kind="dit").meta["latent_statistics"]
    assert exported == {"mean": [0.5, -0.25], "std": [2.0, 4.0]}


def test_the_vae_for_samples_must_be_the_one_the_latents_came_from(tmp_path):
    folder = tmp_path / "vae"
    trained_with = tiny_vae_bundle(folder, seed=0)
    assert tiny_dit_module(folder, trained_with).vae().hash == trained_with
    rewritten = tiny_vae_bundle(folder, seed=1)  # a later export of the VAE run into the same folder
    with pytest.raises(VAEMismatchError) as caught:
        tiny_dit_module(folder, trained_with).vae()
    message = str(caught.value)
    assert trained_with in message and rewritten in message and "latent.vae_path" in message


def test_a_beat_clock_dit_trains_on_the_metadata_tempi_and_generates_at_one(
    vae_bundle, tmp_path, monkeypatch
):
    from latentaudio.dit.musical import BeatGrid

    _, vae = vae_bundle
    root = tmp_path / "tempi"
    rows = ["path,caption"]
    for i in range(8):
        write_sine(root / f"tone{i}.wav", frequency=220.0 * (1 + i / 8), seconds=1.0)
        rows.append(f"tone{i}.wav,a tone at {90 + 10 * i} bpm")  # the tempo read from the caption
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    seen = []
    original = BeatGrid.forward

    def spy(self, bpm, seconds_start, frames):
        seen.append(bpm.clone())
        return original(self, bpm, seconds_start, frames)

    monkeypatch.setattr(BeatGrid, "forward", spy)
    overrides = dit_overrides(root, vae, steps=2) + [
        "conditioning.tempo=true",
        "conditioning.tempo_grid=true",
    ]
    train(compose_app("train_diffusion", tmp_path / "dit", overrides))
    trained = torch.cat(seen)
    assert set(trained[trained.isfinite()].tolist()) <= {90.0 + 10 * i for i in range(8)}
    assert trained.isfinite().any()  # the batches' own tempi reached the clock
    pipe = Pipeline.from_bundles(vae, tmp_path / "dit" / "export")
    assert pipe.denoiser.conditioner.beat_grid.frame_rate == pipe.sample_rate / pipe.autoencoder.hop
    seen.clear()
    audio = pipe.generate(seconds=0.5, prompt="a tone at 120 bpm", steps=2, seed=0)
    assert audio.shape[-1] == 8000 and any((bpm == 120).all() for bpm in seen)
