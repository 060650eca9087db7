"""Long files are read in parts, big folders are scanned in bounded memory, OOM names what to lower."""

import os
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch
from apps_helpers import compose_app
from conftest import write_sine

import latentaudio.pipeline
from latentaudio.apps.train_diffusion import train as train_diffusion
from latentaudio.data.dataset import AudioCropDataset
from latentaudio.data.scan import scan_audio_folder
from latentaudio.pipeline import Pipeline, SamplingOutOfMemoryError

from .helpers import tiny_vae_bundle


def test_a_crop_of_a_long_file_decodes_only_the_crop(tmp_path, monkeypatch):
    write_sine(tmp_path / "long.wav", seconds=120.0, subtype="PCM_16")  # 1.92 M frames
    result = scan_audio_folder(tmp_path, check_content=False, progress=False)
    decoded = []
    original = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        data = original(self, frames, *args, **kwargs)
        decoded.append(len(data))
        return data

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    dataset = AudioCropDataset(tmp_path, result.files, 16000, 1, 4096)
    for _ in range(5):
        assert dataset[0]["audio"].shape == (1, 4096)
    assert decoded == [4096] * 5


@pytest.mark.slow
def test_a_folder_of_thousands_of_files_is_scanned_in_bounded_memory(tmp_path):
    files = 3000
    data = (0.3 * np.sin(np.arange(1600) / 5.0)).astype(np.float32)
    for i in range(files):
        folder = tmp_path / f"d{i % 30:02d}"
        folder.mkdir(exist_ok=True)
        sf.write(os.fsencode(folder / f"{i:05d}.wav"), data, 16000)
    tracemalloc.start()
    start = time.perf_counter()
    result = scan_audio_folder(tmp_path, cache_dir=tmp_path / "cache", progress=False)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(result.files) == files
    # a few hundred bytes of records per file, never the audio (3000 files hold 19 MB of samples)
    assert peak / files < 4096, f"{peak / files:.0f} bytes per file"
    assert seconds < 120


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oom")
    for i in range(4):
        write_sine(tmp / "audio" / f"a{i}.wav", frequency=200.0 + 100 * i, seconds=0.3)
    tiny_vae_bundle(tmp / "vae")
    overrides = [
        "model/dit=tiny",
        f"vae={tmp / 'vae'}",
        f"data.root={tmp / 'audio'}",
        "data.crop_frames=64",
        "data.batch_size=2",
        "data.val_fraction=0",
        "debug=fast",
        "trainer.max_steps=1",
        "trainer.limit_val_batches=0",
    ]
    train_diffusion(compose_app("train_diffusion", tmp / "dit", overrides))
    return Pipeline.from_bundles(tmp / "vae", tmp / "dit" / "export", chunk_seconds=2.0)


def test_out_of_memory_while_sampling_or_decoding_names_the_settings_to_lower(tiny_pipeline, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(latentaudio.pipeline, "sample", out_of_memory)
    with pytest.raises(SamplingOutOfMemoryError) as caught:
        tiny_pipeline.generate(seconds=0.032, n=3, steps=2)
    message = str(caught.value)
    assert "while sampling a batch of n=3 clips" in message and "64 latent frames" in message
    assert "Lower n=" in message and "seconds=" in message and "chunk_seconds=1" in message
    assert isinstance(caught.value.__cause__, torch.cuda.OutOfMemoryError)

    monkeypatch.undo()
    monkeypatch.setattr(tiny_pipeline.autoencoder, "decode", out_of_memory)
    with pytest.raises(SamplingOutOfMemoryError, match="while decoding a batch of n=2 clips"):
        tiny_pipeline.generate(seconds=0.032, n=2, steps=2)
