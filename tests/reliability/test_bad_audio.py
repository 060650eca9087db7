"""Bad audio never stops training: the corpus from ``harness.badfiles`` end to end."""

import logging

import torch
from apps_helpers import compose_app
from hydra import compose, initialize_config_dir

from latentaudio.apps.common import CONFIG_PATH
from latentaudio.apps.encode_dataset import encode_dataset
from latentaudio.apps.train_vae import train
from latentaudio.data.dataset import AudioCropDataset
from latentaudio.data.scan import AudioFile, scan_audio_folder

from .helpers import tiny_vae_bundle, vae_overrides


def test_scan_reports_each_unusable_file_once_with_a_reason_and_a_count(bad_corpus, caplog):
    with caplog.at_level(logging.INFO):
        result = scan_audio_folder(bad_corpus.root, progress=False)
    assert sorted(f.path for f in result.files) == sorted(bad_corpus.usable)
    reasons = dict(result.skipped)
    assert sorted(reasons) == sorted(bad_corpus.unusable)
    assert "NaN or Inf" in reasons["bad/nan_inf.wav"] and "too short" in reasons["bad/one_sample.wav"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path in bad_corpus.unusable:
        matching = [w for w in warnings if path in w]
        assert len(matching) == 1 and reasons[path] in matching[0], path
    assert f"{len(bad_corpus.usable)} usable audio files" in result.summary()
    assert f"{len(bad_corpus.unusable)} skipped" in result.summary()
    assert any(result.summary() == r.getMessage() for r in caplog.records)


def test_odd_files_are_converted_and_non_finite_audio_is_never_served(bad_corpus, caplog):
    result = scan_audio_folder(bad_corpus.root, progress=False)
    odd = [f for f in result.files if f.path in bad_corpus.odd]
    assert {(f.sample_rate, f.channels) for f in odd} == {(8000, 1), (96000, 6), (16000, 1)}
    # a stale list (a cache from before the file went bad) must not let NaN through either
    stale = AudioFile(path="bad/nan_inf.wav", sample_rate=16000, channels=1, frames=8000)
    dataset = AudioCropDataset(bad_corpus.root, [stale, *odd], 16000, 1, 2048, random_crop=False)
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["audio"].shape == (1, 2048) and torch.isfinite(item["audio"]).all()
        assert item["path"] != stale.path
    assert item["audio"].abs().max() > 0.05  # the converted audio is still the tone, not silence
    served = [r for r in caplog.records if r.name == "latentaudio.data.dataset"]
    assert sum("nan_inf.wav" in r.getMessage() for r in served) == 1


def test_a_tiny_vae_trains_to_the_end_on_the_bad_corpus(bad_corpus, tmp_path):
    run = tmp_path / "run"
    train(compose_app("train_vae", run, vae_overrides(bad_corpus.root, steps=4)))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def test_encode_dataset_runs_to_the_end_on_the_bad_corpus(bad_corpus, tmp_path):
    tiny_vae_bundle(tmp_path / "vae")
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(
            config_name="encode_dataset",
            overrides=[
                f"vae={tmp_path / 'vae'}",
                f"data.root={bad_corpus.root}",
                f"output={tmp_path / 'latents'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                "progress=false",
            ],
        )
    manifest = encode_dataset(cfg)
    assert manifest["complete"]
    encoded = sorted(path for shard in manifest["shards"] for path in shard["files"])
    assert encoded == sorted(bad_corpus.usable)
