import logging

import numpy as np
import pytest
import soundfile as sf
from conftest import write_sine

from latentaudio.data.scan import DataFolderError, scan_audio_folder


def make_bad_files(root):
    (root / "truncated.wav").write_bytes((root / "good0.wav").read_bytes()[:30])
    (root / "empty.wav").write_bytes(b"")
    (root / "text.wav").write_text("hello, not audio")
    sf.write(str(root / "nan.wav"), np.full((1600, 1), np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    sf.write(str(root / "silent.wav"), np.zeros((1600, 1), dtype=np.float32), 16000)
    sf.write(str(root / "one_sample.wav"), np.full((1, 1), 0.5, dtype=np.float32), 16000)
    return {"truncated.wav", "empty.wav", "text.wav", "nan.wav", "silent.wav", "one_sample.wav"}


def test_scan_skips_each_bad_file_with_one_warning(tmp_path, caplog):
    root = tmp_path / "data"
    for i in range(3):
        write_sine(root / f"good{i}.wav", frequency=300 + 100 * i)
    write_sine(root / "odd_rate.wav", sample_rate=8000)
    write_sine(root / "six_channels.flac", sample_rate=96000, channels=6, seconds=0.2)
    write_sine(root / "caf\udce9.wav")  # a name that is not valid UTF-8
    (root / "notes.txt").write_text("ignored: not an audio extension")
    bad = make_bad_files(root)
    with caplog.at_level(logging.WARNING):
        result = scan_audio_folder(root, progress=False)
    usable = {f.path for f in result.files}
    assert usable == {
        "good0.wav",
        "good1.wav",
        "good2.wav",
        "odd_rate.wav",
        "six_channels.flac",
        "caf\udce9.wav",
    }
    assert {path for path, _ in result.skipped} == bad
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in bad:
        assert sum(name in message for message in warnings) == 1, name
    assert "6 skipped" in result.summary()


def test_scan_cache_is_reused_and_refreshed(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_sine(root / "a.wav")
    cache = tmp_path / "cache"
    first = scan_audio_folder(root, cache_dir=cache, progress=False)
    assert len(list(cache.iterdir())) == 1

    import latentaudio.data.scan as scan

    calls = []
    original = scan._probe
    monkeypatch.setattr(scan, "_probe", lambda *a: calls.append(a) or original(*a))
    again = scan_audio_folder(root, cache_dir=cache, progress=False)
    assert again.files == first.files and calls == []
    write_sine(root / "b.wav")
    grown = scan_audio_folder(root, cache_dir=cache, progress=False)
    assert len(grown.files) == 2 and len(calls) == 1


def test_missing_and_empty_folders_fail_with_a_fix(tmp_path):
    with pytest.raises(DataFolderError, match="does not exist"):
        scan_audio_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFolderError, match="no audio files"):
        scan_audio_folder(tmp_path / "empty")
