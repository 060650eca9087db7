"""Adherence measures on signals whose answer is known."""

import math

import torch
from conftest import click_track, tones_in_key

from latentaudio import adherence

RATE = 16000


def test_attribute_adherence_counts_right_and_wrong_answers():
    clips = [click_track(100), click_track(100), tones_in_key(0, "major")]
    asked = [{"bpm": 100.0}, {"bpm": 50.0}, {"key": "C major"}]
    out = adherence.attribute_adherence(clips, asked, RATE)
    assert out["tempo_clips"] == 2 and out["tempo_exact"] == 0.5 and out["tempo_octave"] == 0.5
    assert out["key_accuracy"] == 1.0 and out["key_clips"] == 1


def _labelled_clips(count: int, seed: int) -> tuple[list[torch.Tensor], list[str]]:
    """Three easy kinds: low tones, high tones and noise bursts, each with random detail."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(RATE) / RATE
    clips, labels = [], []
    for i in range(count):
        kind = ("low", "high", "noise")[i % 3]
        jitter = float(torch.rand(1, generator=generator))
        if kind == "noise":
            clip = torch.randn(RATE, generator=generator) * (0.2 + 0.3 * jitter)
        else:
            freq = (110 if kind == "low" else 1760) * (1 + 0.2 * jitter)
            clip = 0.5 * torch.sin(2 * math.pi * freq * t)
        clips.append(clip[None])
        labels.append(kind)
    return clips, labels


def test_label_judge_ceiling_and_accuracy():
    train, train_labels = _labelled_clips(30, 0)
    held, held_labels = _labelled_clips(12, 1)
    judge = adherence.LabelJudge.fit(train, train_labels, held, held_labels, RATE)
    assert judge.ceiling == 1.0 and judge.labels == ["high", "low", "noise"]
    # every clip asked for "low" but made of noise: accuracy 0, all confusion in the noise column
    noise, _ = _labelled_clips(9, 2)
    noise = [c for c, kind in zip(noise, _) if kind == "noise"]
    out = judge.judge(noise, ["low"] * len(noise), RATE)
    assert out["accuracy"] == 0.0
    assert out["confusion"][1] == [0, 0, len(noise)]
    assert judge.judge(held, held_labels, RATE)["per_label"] == {"high": 1.0, "low": 1.0, "noise": 1.0}


def test_per_label_distances_tell_labels_apart():
    real, labels = _labelled_clips(30, 0)
    generated, generated_labels = _labelled_clips(30, 3)
    by_label = lambda clips, names: {k: [c for c, n in zip(clips, names) if n == k] for k in set(names)}  # noqa: E731
    distances = adherence.per_label_distances(
        by_label(real, labels), by_label(generated, generated_labels), RATE
    )
    assert set(distances) == {"low", "high", "noise"}
    for values in distances.values():
        assert values["fd_same"] < values["fd_other"]
        assert values["kd_same"] < values["kd_other"]
    # a model that ignores labels: the same clips for every label, so same == other on average
    mixed = {k: generated for k in ("low", "high", "noise")}
    ignoring = adherence.per_label_distances(by_label(real, labels), mixed, RATE)
    assert all(v["fd_same"] > 0.5 * v["fd_other"] for v in ignoring.values())


def test_rows_ask_a_dit_in_the_conditions_it_was_trained_with():
    class Demo:
        labels = ["pluck", "drums"]

    row = {"caption": "plucked melody in A minor at 120 bpm", "label": "pluck"}
    caption = row["caption"]
    assert adherence.row_conditions(Demo, {"text": "bytes"}, row) == {"prompt": caption}
    assert adherence.row_conditions(Demo, {"tempo": True, "key": True}, row) == {
        "label": "pluck",
        "bpm": 120.0,
        "key": "A minor",
    }
    assert adherence.row_conditions(Demo, {"text": "bytes", "tempo": True}, row) == {
        "prompt": caption,
        "bpm": 120.0,
    }
    assert adherence.row_conditions(Demo, {}, {"caption": "a bell", "label": "bell"}) == {}


def test_judge_split_keeps_the_held_out_clips_out_of_training():
    from latentaudio.adherence import judge_split

    paths = [f"clips/{i:04d}.wav" for i in range(200)]
    train, held = judge_split(paths)
    assert held and train and not set(train) & set(held)  # the ceiling is measured on unseen clips
    assert sorted(train + held) == list(range(200))
    assert 0.15 < len(held) / len(paths) < 0.35
    assert judge_split(paths[:100])[1] == [i for i in held if i < 100]  # a subset keeps its split


def test_read_real_clips_keeps_metadata_crops_and_skips_a_bad_file(tmp_path, caplog):
    import soundfile as sf

    t = torch.arange(2 * RATE) / RATE
    for name, freq in (("low.wav", 220.0), ("high.wav", 1760.0)):
        sf.write(tmp_path / name, (0.5 * torch.sin(2 * math.pi * freq * t)).numpy(), RATE)
    (tmp_path / "broken.wav").write_text("not audio")
    (tmp_path / "metadata.csv").write_text("path,label\nlow.wav,low\nhigh.wav,high\nbroken.wav,low\n")
    real = adherence.read_real_clips(tmp_path, 8000, max_seconds=1.5)
    assert sorted(real.paths) == ["high.wav", "low.wav"]
    assert "broken.wav" in caplog.text
    assert all(clip.shape == (1, 12000) for clip in real.clips)  # resampled to 8 kHz, cut at 1.5 s
    assert {p: r["label"] for p, r in zip(real.paths, real.rows)} == {"low.wav": "low", "high.wav": "high"}


class _Through:
    """A stand-in VAE: reconstructs by a function of the clip, at the judge's rate."""

    def __init__(self, change):
        self.change = change

    def reconstruct(self, audio, sample_rate, as_generated=False):  # (B, C, T) -> (B, C, T)
        return self.change(audio)


def _lowpass(audio: torch.Tensor, cutoff: float = 1000.0) -> torch.Tensor:
    spectrum = torch.fft.rfft(audio)
    spectrum[..., torch.fft.rfftfreq(audio.shape[-1], 1 / RATE) > cutoff] = 0
    return torch.fft.irfft(spectrum, n=audio.shape[-1])


def test_labels_through_vae_shows_the_label_a_vae_loses():
    clips, labels = _labelled_clips(60, 0)
    real = adherence.RealClips(
        [f"clips/{i:03d}.wav" for i in range(60)], clips, [{"label": k} for k in labels], RATE
    )
    kept = adherence.labels_through_vae(_Through(lambda a: a), real)
    assert kept["ceiling"] == 1.0 and kept["vae_ceiling"] == 1.0  # a perfect VAE keeps every label
    # a VAE that cannot make tones above 1 kHz (the demo VAE's bells, 2026-12-04) loses "high" alone
    lost = adherence.labels_through_vae(_Through(_lowpass), real)
    assert lost["vae_ceiling_per_label"]["high"] == 0.0
    assert lost["vae_ceiling_per_label"]["low"] == 1.0 and lost["ceiling"] == 1.0
    assert lost["vae_ceiling"] < 0.8 and lost["held_out_real_clips"] == sum(map(sum, lost["confusion"]))
    unlabelled = adherence.RealClips(real.paths, clips, [{} for _ in clips], RATE)
    assert adherence.labels_through_vae(_Through(_lowpass), unlabelled) is None
