"""Timed phonemes to frame features, and the duration plan of an utterance."""

import json

import pytest
import torch

from latentaudio.speech.symbols import SymbolVocabulary
from latentaudio.speech.units import (
    UNIT_SLOTS,
    frame_features,
    parse_timings,
    plan_utterance,
    scale_timing,
    timing_seconds,
    unit_symbols,
)

VOCABULARY = SymbolVocabulary()


def test_parse_timings_reads_metadata_cells_and_names_bad_rows():
    cell = json.dumps([["d", 0.0, 0.1], ["ˈaɪ", 0.1, 0.3]])
    assert parse_timings(cell) == [("d", 0.0, 0.1), ("ˈaɪ", 0.1, 0.3)]
    assert parse_timings("") == [] and parse_timings(None) == []
    with pytest.raises(ValueError, match="start <= end"):
        parse_timings([["d", 0.3, 0.1]])
    with pytest.raises(ValueError, match="unit, start, end"):
        parse_timings([["d", 0.3]])
    with pytest.raises(ValueError):
        parse_timings("[[not json")


def test_unit_symbols_fill_slots_and_pauses_are_word_boundaries():
    ids = unit_symbols("ˈaɪ", VOCABULARY)
    assert ids[:3] == VOCABULARY.encode(["ˈ", "a", "ɪ"]) and ids[3:] == [VOCABULARY.pad_id]
    assert unit_symbols("_", VOCABULARY) == [VOCABULARY.word_boundary_id] + [VOCABULARY.pad_id] * 3
    assert len(unit_symbols("ˈaɪɚəə", VOCABULARY)) == UNIT_SLOTS


def test_frame_features_follow_the_timing():
    # 10 frames a second: frame i's centre is at (i + 0.5) / 10 s
    timing = [("d", 0.0, 0.2), ("ə", 0.2, 0.6), ("_", 0.6, 0.7)]
    ids, progress = frame_features(timing, frames=9, frame_rate=10.0)
    assert ids.shape == (9, UNIT_SLOTS) and progress.shape == (9, 2)
    first = [VOCABULARY.decode([i])[0] for i in ids[:, 0].tolist()]
    assert first == ["d", "d", "ə", "ə", "ə", "ə", " ", "<pad>", "<pad>"]
    torch.testing.assert_close(progress[2:6, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    torch.testing.assert_close(progress[2:6, 1], torch.full((4,), torch.log(torch.tensor(0.4)).item()))
    assert (progress[7:] == 0).all() and (ids[7:] == VOCABULARY.pad_id).all()


def test_frame_features_skip_zero_length_units_and_clip_at_the_end():
    ids, _ = frame_features([("l", 0.5, 0.5), ("m", 0.0, 5.0)], frames=4, frame_rate=10.0)
    assert (ids[:, 0] == VOCABULARY.encode(["m"])[0]).all()


def fake_timings(text):
    """One phoneme a character, 0.1 s each: a duration prior with a known answer."""
    return [(c, 0.1 * i, 0.1 * (i + 1)) for i, c in enumerate(text.replace(" ", ""))]


def test_plan_utterance_scales_to_the_prompt_rate_or_the_asked_length():
    timing, end = plan_utterance("abcd", timings=fake_timings)
    assert end == pytest.approx(0.4) and timing == fake_timings("abcd")
    # the prompt "ab" lasts 0.4 s where 0.2 s was predicted: the speaker is half as fast
    timing, end = plan_utterance("abcd", prompt_seconds=0.4, prompt_text="ab", timings=fake_timings)
    assert end == pytest.approx(0.4 + 0.8)
    assert [u for u, _, _ in timing] == list("ababcd")  # the prompt's phonemes, then the text's
    assert timing[2][1] == pytest.approx(0.4) and timing[-1][2] == pytest.approx(1.2)
    # seconds= wins over the prompt's rate; a prompt without text carries no phonemes
    timing, end = plan_utterance("abcd", prompt_seconds=0.4, seconds=2.0, timings=fake_timings)
    assert end == pytest.approx(2.4) and timing[0][1] == pytest.approx(0.4) and len(timing) == 4
    with pytest.raises(ValueError, match="nothing to say"):
        plan_utterance("", timings=fake_timings)
    with pytest.raises(ValueError, match="positive"):
        plan_utterance("ab", seconds=0.0, timings=fake_timings)


def test_scale_timing():
    timing = scale_timing([("a", 0.0, 1.0), ("b", 1.0, 1.5)], 2.0, offset=1.0)
    assert timing == [("a", 1.0, 3.0), ("b", 3.0, 4.0)] and timing_seconds(timing) == 4.0
