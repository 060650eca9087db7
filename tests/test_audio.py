import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine, write_sine

from latentaudio.audio import (
    AudioDecodeError,
    audio_info,
    convert_channels,
    read_audio,
    resample,
    write_audio,
)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_read_round_trip(tmp_path, suffix):
    audio = torch.from_numpy(sine(330, 0.5, 16000, channels=2).T.copy())
    path = write_audio(tmp_path / f"clip{suffix}", audio, 16000)
    back, rate = read_audio(path)
    assert rate == 16000
    assert back.shape == audio.shape and back.dtype == torch.float32
    # float wav is exact; flac is 16-bit, so within one quantisation step
    tolerance = 0.0 if suffix == ".wav" else 1.0 / 2**15
    assert (back - audio).abs().max() <= tolerance + 1e-7


@pytest.mark.parametrize("fmt,subtype", [("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_reads_lossy_formats(tmp_path, fmt, subtype):
    path = tmp_path / f"clip.{fmt}"
    sf.write(str(path), sine(440, 1.0, 16000), 16000, format=fmt.upper(), subtype=subtype)
    audio, rate = read_audio(path)
    assert rate == 16000 and audio.shape[0] == 1
    assert abs(audio.shape[1] - 16000) < 2000  # codecs may pad
    spectrum = torch.fft.rfft(audio[0]).abs()
    peak_hz = spectrum.argmax().item() * rate / audio.shape[1]
    assert abs(peak_hz - 440) < 5


def test_partial_read_returns_the_right_frames(tmp_path):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (5000, 1)).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(str(path), data, 8000, subtype="FLOAT")
    part, _ = read_audio(path, start=1234, frames=100)
    assert torch.equal(part[0], torch.from_numpy(data[1234:1334, 0]))


def test_resampling_changes_length_by_the_ratio():
    audio = torch.randn(2, 44100)
    assert resample(audio, 44100, 16000).shape == (2, 16000)
    assert resample(audio, 44100, 48000).shape == (2, 48000)
    assert resample(audio, 16000, 16000) is audio


def test_resampling_keeps_a_tone(tmp_path):
    path = write_sine(tmp_path / "tone.wav", frequency=1000, seconds=1.0, sample_rate=48000)
    audio, rate = read_audio(path, sample_rate=16000)
    assert rate == 16000 and audio.shape[-1] == 16000
    spectrum = torch.fft.rfft(audio[0]).abs()
    assert abs(spectrum.argmax().item() - 1000) <= 1


def test_channel_conversion():
    mono = torch.randn(1, 100)
    stereo = convert_channels(mono, 2)
    assert stereo.shape == (2, 100) and torch.equal(stereo[0], stereo[1])
    pair = torch.stack([torch.ones(100), -torch.ones(100) * 0.5])
    assert torch.allclose(convert_channels(pair, 1), torch.full((1, 100), 0.25))
    six = torch.rand(6, 100) * 0.5
    folded = convert_channels(six, 2)
    assert folded.shape == (2, 100) and folded.abs().max() <= six.abs().max() + 1e-6
    assert convert_channels(six, 1).shape == (1, 100)
    with pytest.raises(ValueError):
        convert_channels(six, 4)


def test_undecodable_files_raise_one_error_type_naming_the_file(tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for path in (fake, empty, tmp_path / "missing.wav"):
        with pytest.raises(AudioDecodeError) as caught:
            read_audio(path)
        assert str(path) in str(caught.value)
    with pytest.raises(AudioDecodeError):
        audio_info(fake)


def test_audio_info(tmp_path):
    path = write_sine(tmp_path / "a.flac", seconds=0.5, sample_rate=22050, channels=2)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (22050, 2, 11025)
    assert info.seconds == pytest.approx(0.5)
