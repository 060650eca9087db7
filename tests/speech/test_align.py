"""Synthesis-based alignment: phoneme times recovered in recordings of other voices."""

import csv

import numpy as np
import pytest
import torch

pytest.importorskip("espeakng_loader")

from latentaudio.speech.align import align_by_synthesis  # noqa: E402
from latentaudio.speech.demo import VOICES  # noqa: E402
from latentaudio.speech.layouts import convert_corpus  # noqa: E402
from latentaudio.speech.units import parse_timings, render_text, scale_timing  # noqa: E402

SENTENCES = ["The old farmer sees the quiet river.", "Does the brave girl open seven doors?"]


def boundary_error(found, truth) -> float:
    """Mean absolute difference of the phoneme start times, in seconds (m3 speaks British English:
    its vowels may differ from the American transcript's, one for one)."""
    assert len(found) == len(truth)
    return float(np.mean([abs(a[1] - b[1]) for a, b in zip(found, truth)]))


@pytest.mark.parametrize("voice", ["f4", "m3"])
def test_phoneme_times_are_found_in_another_voice_within_a_few_frames(voice):
    errors, uniform = [], []
    for text in SENTENCES:
        spoken = render_text(text, VOICES[voice])  # another speaker, rate and pitch: times known
        truth = spoken.timing()
        audio = torch.from_numpy(spoken.audio)[None]
        found = align_by_synthesis(audio, spoken.sample_rate, text)
        errors.append(boundary_error(found, truth))
        # the baseline: the default voice's timing stretched to the recording's length
        default = render_text(text).timing()
        uniform.append(boundary_error(scale_timing(default, spoken.seconds / default[-1][2]), truth))
        assert found[-1][2] == pytest.approx(spoken.seconds, abs=1e-3)
        assert all(s <= e for _, s, e in found) and all(a[1] <= b[1] for a, b in zip(found, found[1:]))
    assert np.mean(errors) < 0.035  # about two latent frames at hop 256 and 16 kHz
    assert np.mean(errors) < 0.7 * np.mean(uniform)


def test_speech_data_align_writes_a_phonemes_column(tmp_path):
    source = tmp_path / "LJSpeech-1.1"
    (source / "wavs").mkdir(parents=True)
    import soundfile as sf

    lines = []
    for i, text in enumerate(SENTENCES):
        spoken = render_text(text, VOICES["f2"])
        sf.write(source / "wavs" / f"LJ001-{i:04d}.wav", spoken.audio, spoken.sample_rate)
        lines.append(f"LJ001-{i:04d}|{text}|{text}")
    (source / "wavs" / "LJ001-0009.wav").write_bytes(b"not audio")
    lines.append("LJ001-0009|Broken.|Broken.")
    (source / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    listing = convert_corpus("ljspeech", source, tmp_path / "out", align=True, progress=False)
    rows = list(csv.DictReader(open(listing, encoding="utf-8")))
    timings = [parse_timings(row["phonemes"]) for row in rows]
    assert all(timings[:2]) and timings[2] == []  # the broken file keeps an empty cell
    assert timings[0][-1][2] == pytest.approx(render_text(SENTENCES[0], VOICES["f2"]).seconds, abs=0.01)
