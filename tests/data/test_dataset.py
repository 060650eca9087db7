import pytest
import torch
from conftest import write_sine

from latentaudio.data.datamodule import AudioDataModule
from latentaudio.data.dataset import AudioCropDataset, normalize_audio
from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import scan_audio_folder


def test_crops_have_the_asked_shape_rate_and_padding(tmp_path):
    root = tmp_path / "d"
    write_sine(root / "long_stereo_44k.wav", seconds=1.0, sample_rate=44100, channels=2)
    write_sine(root / "short.wav", seconds=0.1, sample_rate=16000)
    files = scan_audio_folder(root, progress=False).files
    dataset = AudioCropDataset(root, files, sample_rate=16000, channels=1, sample_length=4000)
    items = {item["path"]: item for item in (dataset[i] for i in range(len(dataset)))}
    long, short = items["long_stereo_44k.wav"], items["short.wav"]
    assert long["audio"].shape == (1, 4000) and long["padding_mask"].all()
    assert short["audio"].shape == (1, 4000)
    assert short["padding_mask"].sum() == 1600 and short["audio"][:, 1600:].abs().max() == 0
    assert long["seconds_total"] == 1.0 and 0 <= long["seconds_start"] <= 1.0 - 4000 / 16000 + 1e-3


def test_validation_crops_are_deterministic(sine_folder):
    files = scan_audio_folder(sine_folder, progress=False).files
    dataset = AudioCropDataset(sine_folder, files, 16000, 1, 4096, random_crop=False)
    assert torch.equal(dataset[3]["audio"], dataset[3]["audio"])


def test_unreadable_file_is_replaced_and_reported_once(tmp_path, caplog):
    root = tmp_path / "d"
    write_sine(root / "a.wav")
    write_sine(root / "b.wav")
    files = scan_audio_folder(root, progress=False).files
    (root / "a.wav").write_text("corrupted after the scan")
    dataset = AudioCropDataset(root, files, 16000, 1, 2048)
    for _ in range(3):
        assert dataset[0]["path"] == "b.wav"
    assert sum("a.wav" in r.getMessage() for r in caplog.records) == 1


def test_normalisation():
    audio = torch.sin(torch.linspace(0, 100, 1000)).unsqueeze(0) * 0.1
    assert normalize_audio(audio, "peak", -6.0).abs().max().item() == pytest.approx(10 ** (-6 / 20), rel=1e-5)
    loud = normalize_audio(audio, "loudness", -20.0)
    assert abs(20 * torch.log10(loud.pow(2).mean().sqrt()).item() + 20.0) < 0.1


def test_metadata_reaches_the_batch(sine_folder, tmp_path):
    module = AudioDataModule(
        root=str(sine_folder),
        sample_rate=16000,
        channels=1,
        sample_length=2048,
        batch_size=4,
        val_fraction=0.2,
    )
    module.setup("fit")
    assert module.labels == ["high", "low"]
    batch = next(iter(module.train_dataloader()))
    assert batch["audio"].shape == (4, 1, 2048)
    assert all(caption.startswith("a tone number") for caption in batch["caption"])
    assert set(batch["label"].tolist()) <= {0, 1}
    assert len(module.train_set) + len(module.val_set) == 12


def test_metadata_paths_cannot_escape_the_root(tmp_path, caplog):
    root = tmp_path / "d"
    write_sine(root / "a.wav")
    write_sine(tmp_path / "secret.wav")
    (root / "metadata.csv").write_text("path,caption\n../secret.wav,stolen\na.wav,fine\n")
    (root / "a.json").write_text('{"label": "sidecar"}')
    table = load_metadata(root, ["a.wav"])
    assert table == {"a.wav": {"caption": "fine", "label": "sidecar"}}
    assert any("outside" in r.getMessage() for r in caplog.records)


def _peak_hz(audio: torch.Tensor, rate: int = 16000) -> float:
    spectrum = torch.fft.rfft(audio[0] * torch.hann_window(audio.shape[-1])).abs()
    return float(spectrum.argmax()) * rate / audio.shape[-1]


def test_pitch_augmentation_plays_training_crops_faster_within_the_asked_range(tmp_path):
    root = tmp_path / "d"
    write_sine(root / "tone.wav", frequency=500.0, seconds=2.0)
    files = scan_audio_folder(root, progress=False).files
    torch.manual_seed(0)
    dataset = AudioCropDataset(
        root, files, 16000, 1, 8192, augment_pitch_probability=1.0, augment_pitch_max_semitones=7.0
    )
    peaks = [_peak_hz(dataset[0]["audio"]) for _ in range(40)]
    # every crop is up by 1/16 to 7 semitones (500 Hz -> 531-749 Hz), a full crop, no padding
    assert min(peaks) > 520 and max(peaks) < 500 * 2 ** (7 / 12) + 5
    assert len({round(p) for p in peaks}) >= 4  # drawn, not one fixed shift
    assert dataset[0]["padding_mask"].all()
    # half the crops when asked for half, validation crops never
    half = AudioCropDataset(root, files, 16000, 1, 8192, augment_pitch_probability=0.5)
    shifted = sum(abs(_peak_hz(half[0]["audio"]) - 500) > 10 for _ in range(60))
    assert 15 <= shifted <= 45
    val = AudioCropDataset(root, files, 16000, 1, 8192, random_crop=False, augment_pitch_probability=1.0)
    assert abs(_peak_hz(val[0]["audio"]) - 500) < 3


def test_pitch_augmentation_settings_are_checked():
    with pytest.raises(ValueError, match="augment_pitch_probability"):
        AudioDataModule(
            root="x", sample_rate=16000, channels=1, sample_length=64, augment_pitch_probability=1.5
        )
    with pytest.raises(ValueError, match="augment_pitch_max_semitones"):
        AudioDataModule(
            root="x", sample_rate=16000, channels=1, sample_length=64, augment_pitch_max_semitones=-1
        )
