import pytest
import torch
from conftest import write_sine

from latentaudio.data.datamodule import AudioDataModule, LatentDataModule, check_audio_data, check_latent_data
from latentaudio.data.encode import encode_folder
from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import DataFolderError, scan_audio_folder
from latentaudio.data.split import held_out_files, split
from latentaudio.vae.model import AudioVAE

TINY = 1e-6  # so small that the hash puts no file of a small folder in validation


def test_split_is_stable_when_files_are_added():
    before_train, before_val = split([f"clip{i}.wav" for i in range(200)], 0.2)
    after_train, after_val = split([f"clip{i}.wav" for i in range(400)], 0.2)
    assert set(before_train) <= set(after_train) and set(before_val) <= set(after_val)
    assert 0.1 < len(after_val) / 400 < 0.3
    assert after_train == sorted(after_train) and not set(after_train) & set(after_val)


def test_a_small_folder_holds_out_the_file_a_larger_fraction_takes_first():
    paths = [f"clip{i}.wav" for i in range(8)]
    train, val = split(paths, TINY)
    assert len(val) == 1 and len(train) == 7 and sorted(train + val) == paths
    for fraction in (i / 100 for i in range(1, 100)):
        grown = split(paths, fraction)[1]
        if len(grown) > 1:
            assert val[0] in grown
            break
        assert grown == val
    assert split(["only.wav"], TINY) == (["only.wav"], [])  # nothing to hold out beside the one file
    assert split(paths, 0.0) == (paths, [])


def test_bad_fractions_are_refused_naming_the_key():
    with pytest.raises(ValueError, match="data.val_fraction=1.0"):
        split(["a.wav", "b.wav"], 1.0)
    with pytest.raises(ValueError, match="data.val_fraction=-0.1"):
        AudioDataModule(root="x", sample_rate=16000, channels=1, sample_length=64, val_fraction=-0.1)
    nearly_all = 1 - 1e-12
    with pytest.raises(DataFolderError, match="all 3 files fell in the validation split"):
        split(["a.wav", "b.wav", "c.wav"], nearly_all)


def test_training_and_evaluation_hold_out_the_same_files_of_a_small_folder(tmp_path):
    root = tmp_path / "audio"
    for i in range(4):
        write_sine(root / f"tone{i}.wav", frequency=200.0 + 50 * i, seconds=0.3)
    held_out = held_out_files(root, TINY)
    assert len(held_out) == 1

    audio = AudioDataModule(
        root=str(root), sample_rate=16000, channels=1, sample_length=256, val_fraction=TINY
    )
    audio.setup("fit")
    assert [f.path for f in audio.val_set.files] == held_out
    assert held_out[0] not in {f.path for f in audio.train_set.files}

    torch.manual_seed(0)
    vae = AudioVAE(channels=1, base_channels=4, channel_mults=(1, 2), strides=(2, 4), latent_dim=3).eval()
    files = scan_audio_folder(root, progress=False).files
    metadata = load_metadata(root, [f.path for f in files])
    encode_folder(vae, "0123456789abcdef", 16000, root, files, tmp_path / "latents", metadata, progress=False)
    latents = LatentDataModule(latents=str(tmp_path / "latents"), crop_frames=16, val_fraction=TINY)
    latents.setup("fit")
    assert sorted(clip["path"] for _, clip in latents.val_set.clips) == held_out
    assert held_out[0] not in {clip["path"] for _, clip in latents.train_set.clips}


def test_data_settings_are_checked_when_the_datamodules_are_made(tmp_path):
    with pytest.raises(ValueError, match="data.crop_frames=0"):
        LatentDataModule(latents=str(tmp_path / "not yet encoded"), crop_frames=0)
    with pytest.raises(ValueError, match="data.normalize='loud'"):
        AudioDataModule(root="x", sample_rate=16000, channels=1, sample_length=64, normalize="loud")
    check_latent_data(128, 0.05)
    check_audio_data("peak", 0.0)
