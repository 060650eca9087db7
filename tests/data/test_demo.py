import csv
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from latentaudio.data.demo import CLASSES, generate_demo_dataset, make_demo_clip

N_CLIPS = 10  # two of each class


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate_demo_dataset(root, n_clips=N_CLIPS)
    return root


def _rows(root):
    with open(root / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_seed_gives_identical_bytes(demo_root, tmp_path):
    generate_demo_dataset(tmp_path, n_clips=N_CLIPS)
    for name in ["metadata.csv", *(row["path"] for row in _rows(demo_root))]:
        assert (tmp_path / name).read_bytes() == (demo_root / name).read_bytes(), name


def test_clip_depends_only_on_seed_and_index():
    small, _ = make_demo_clip(3, seed=0)
    again, _ = make_demo_clip(3, seed=0)
    other, _ = make_demo_clip(3, seed=1)
    assert np.array_equal(small.numpy(), again.numpy())
    assert not np.array_equal(small.numpy(), other.numpy())


def test_metadata_rows_match_files(demo_root):
    rows = _rows(demo_root)
    assert len(rows) == N_CLIPS
    assert {"path", "caption", "label", "instrument", "key", "bpm"} <= set(rows[0])
    listed = {row["path"] for row in rows}
    on_disk = {str(path.relative_to(demo_root)) for path in (demo_root / "clips").glob("*.wav")}
    assert listed == on_disk
    for row in rows:
        assert row["label"] in CLASSES and row["label"] in row["path"]
        assert row["caption"] and f"{row['bpm']} bpm" in row["caption"]
        if row["label"] != "drums":
            assert row["key"] in row["caption"]


def test_clips_are_valid_audio(demo_root):
    for row in _rows(demo_root):
        audio, rate = sf.read(demo_root / row["path"], always_2d=True)
        info = sf.info(demo_root / row["path"])
        assert rate == 16000 and info.subtype == "PCM_16"
        assert audio.shape == (32000, 1)
        assert np.isfinite(audio).all()
        peak = np.abs(audio).max()
        assert 0.85 < peak <= 0.9  # -1 dBFS, no clipping
        assert np.sqrt(np.mean(audio**2)) > 0.02


def test_other_rate_and_length(tmp_path):
    (path,) = generate_demo_dataset(tmp_path, n_clips=1, sample_rate=8000, seconds=0.5)
    audio, rate = sf.read(path)
    assert rate == 8000 and audio.shape == (4000,)


def test_classes_are_balanced(tmp_path):
    generate_demo_dataset(tmp_path, n_clips=12)
    counts = Counter(row["label"] for row in _rows(tmp_path))
    assert set(counts) == set(CLASSES)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_second_run_rewrites_nothing(tmp_path):
    paths = generate_demo_dataset(tmp_path, n_clips=5)
    stamps = {path: path.stat().st_mtime_ns for path in [*paths, tmp_path / "metadata.csv"]}
    assert generate_demo_dataset(tmp_path, n_clips=5) == paths
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert json.loads((tmp_path / ".demo.json").read_text())["params"]["n_clips"] == 5


def test_incomplete_or_changed_set_is_rebuilt(tmp_path):
    paths = generate_demo_dataset(tmp_path, n_clips=5)
    paths[2].unlink()
    assert generate_demo_dataset(tmp_path, n_clips=5) == paths and paths[2].is_file()

    before = paths[0].read_bytes()
    generate_demo_dataset(tmp_path, n_clips=5, seed=7)
    assert paths[0].read_bytes() != before

    fewer = generate_demo_dataset(tmp_path, n_clips=3, seed=7)
    assert sorted((tmp_path / "clips").glob("*.wav")) == sorted(fewer)  # stale clips removed
    assert len(_rows(tmp_path)) == 3


def _spectral_peak(audio, rate):
    power = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / rate)
    band = freqs > 40.0
    peak = power[band].argmax()
    return freqs[band][peak], 10 * np.log10(power[band][peak] / np.median(power[band]))


def test_pitched_clips_have_clear_tuned_peaks(demo_root):
    rng = np.random.default_rng(0)
    _, noise_prominence = _spectral_peak(rng.standard_normal(32000), 16000)
    assert noise_prominence < 20

    for row in _rows(demo_root):
        if row["label"] not in ("pluck", "bell", "organ"):  # drums and band peak at the kick
            continue
        audio, rate = sf.read(demo_root / row["path"])
        freq, prominence = _spectral_peak(audio, rate)
        assert prominence > 25, row
        cents = 1200 * np.log2(freq / 440.0)
        assert abs(cents - np.round(cents / 100) * 100) < 15, (row, freq)  # on an equal-tempered note


def test_unseen_class_set_marimba(tmp_path, demo_root):
    paths = generate_demo_dataset(tmp_path, n_clips=3, classes=["marimba"])
    rows = _rows(tmp_path)
    assert [row["label"] for row in rows] == ["marimba"] * 3 and all("marimba" in p.name for p in paths)
    assert rows[0]["caption"].startswith("marimba melody in ")
    audio, rate = sf.read(paths[0])
    assert 0.85 < np.abs(audio).max() <= 0.9
    freq, prominence = _spectral_peak(audio, rate)
    assert prominence > 25
    cents = 1200 * np.log2(freq / 440.0)
    assert abs(cents - np.round(cents / 100) * 100) < 15  # tuned bars
    # not a default-set clip under another name, and the default folder's manifest is unchanged
    assert "classes" not in json.loads((demo_root / ".demo.json").read_text())["params"]
    with pytest.raises(ValueError, match="unknown.*marimba"):
        generate_demo_dataset(tmp_path, n_clips=2, classes=["kazoo"])
