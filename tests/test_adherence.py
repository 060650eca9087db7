"""Adherence measures on signals whose answer is known."""

import math

import pytest
import torch

from latentaudio import adherence

RATE = 16000


def click_track(bpm: float, seconds: float = 4.0, rate: int = RATE) -> torch.Tensor:
    audio = torch.zeros(1, int(seconds * rate))
    burst = torch.randn(200, generator=torch.Generator().manual_seed(0)) * torch.linspace(1, 0, 200)
    beat = 60.0 / bpm
    for k in range(int(seconds / beat) + 1):
        start = int(k * beat * rate)
        end = min(audio.shape[-1], start + 200)
        audio[0, start:end] += burst[: end - start]
    return audio


def tones_in_key(tonic: int, mode: str, seconds: float = 2.0, rate: int = RATE) -> torch.Tensor:
    """The scale's tonic triad held over a bass tonic, then a stepwise scale: the key is audible."""
    steps = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10)
    t = torch.arange(int(seconds * rate)) / rate
    audio = torch.zeros_like(t)
    for degree in (0, 2, 4):
        midi = 60 + tonic + steps[degree]
        audio += torch.sin(2 * math.pi * 440 * 2 ** ((midi - 69) / 12) * t)
    audio += torch.sin(2 * math.pi * 440 * 2 ** ((48 + tonic - 69) / 12) * t)
    note = len(t) // len(steps)
    for i, step in enumerate(steps):
        freq = 440 * 2 ** ((72 + tonic + step - 69) / 12)
        audio[i * note : (i + 1) * note] += 0.7 * torch.sin(2 * math.pi * freq * t[:note])
    return (audio / audio.abs().max())[None]


@pytest.mark.parametrize("bpm", [80, 100, 123, 140])
def test_tempo_of_a_click_track(bpm):
    estimated = adherence.estimate_tempo(click_track(bpm), RATE)
    assert adherence.tempo_matches(estimated, bpm) == "exact", estimated


def test_tempo_matches_tells_octave_errors_apart():
    assert adherence.tempo_matches(121.0, 120) == "exact"
    assert adherence.tempo_matches(241.0, 120) == "octave"
    assert adherence.tempo_matches(59.0, 120) == "octave"
    assert adherence.tempo_matches(100.0, 120) == "wrong"
    assert adherence.tempo_matches(float("nan"), 120) == "wrong"


def test_tempo_of_silence_is_nan():
    assert math.isnan(adherence.estimate_tempo(torch.zeros(1, RATE * 2), RATE))


@pytest.mark.parametrize(
    "tonic,mode", [(0, "major"), (9, "minor"), (7, "major"), (2, "minor"), (10, "major")]
)
def test_key_of_tones_in_a_key(tonic, mode):
    expected = f"{adherence.NOTE_NAMES[tonic]} {mode}"
    assert adherence.estimate_key(tones_in_key(tonic, mode), RATE) == expected


def test_caption_attributes_from_columns_or_caption():
    assert adherence.caption_attributes({"caption": "organ chords in Db Major at 92 bpm"}) == {
        "bpm": 92.0,
        "key": "C# major",
    }
    assert adherence.caption_attributes({"caption": "x", "bpm": "120", "key": "a minor"}) == {
        "bpm": 120.0,
        "key": "A minor",
    }
    assert adherence.caption_attributes({"caption": "a drum beat"}) == {}


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


def test_estimators_take_clips_shorter_than_a_frame():
    short = torch.randn(1, 300)
    assert math.isnan(adherence.estimate_tempo(short, RATE)) or adherence.estimate_tempo(short, RATE) > 0
    assert adherence.estimate_key(short, RATE) in {
        "",
        *(f"{n} {m}" for n in adherence.NOTE_NAMES for m in ("major", "minor")),
    }
