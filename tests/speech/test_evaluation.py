"""Speech metrics on signals with known answers: alignment, MCD, which sentence, which voice."""

import random

import numpy as np
import pytest
import torch

from latentaudio.evaluation import EmbeddingModel
from latentaudio.speech.evaluation import (
    align,
    dtw,
    evaluate_speech,
    mel_cepstral_distortion,
    mel_cepstrum,
    read_references,
    sentence_ranks,
    speaker_embedding,
    speaker_similarity,
    which_sentence,
)

VOICES = ["m1", "m3", "f4"]  # two male voices, so "same voice" is not just "same sex"


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """The demo corpus's held-out folder in three voices (the 20 held-out sentences each)."""
    pytest.importorskip("espeakng_loader")
    from latentaudio.speech.demo import generate_demo_speech

    root = tmp_path_factory.mktemp("demo-speech")
    generate_demo_speech(root, n_sentences=1, voices=VOICES)
    return root / "heldout"


@pytest.fixture(scope="module")
def references(heldout):
    return read_references(heldout)  # texts, {(sentence, voice): (1, samples)}, rate


def _brute_force_dtw(cost):
    n, m = cost.shape
    total = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            before = (
                0.0
                if i == j == 0
                else min(
                    total[i - 1, j - 1] if i and j else np.inf,
                    total[i - 1, j] if i else np.inf,
                    total[i, j - 1] if j else np.inf,
                )
            )
            total[i, j] = cost[i, j] + before
    return total[-1, -1]


def test_align_finds_the_cheapest_monotonic_path():
    rng = np.random.default_rng(0)
    for n, m in ((1, 1), (1, 7), (6, 1), (9, 13), (17, 11)):
        cost = rng.random((n, m))
        total, path = align(cost)
        assert total == pytest.approx(_brute_force_dtw(cost), abs=1e-9)
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
        steps = np.diff(path, axis=0)
        assert ((steps == 0) | (steps == 1)).all() and (steps.sum(axis=1) > 0).all()
        assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(total)


def test_dtw_recovers_the_alignment_of_a_time_stretched_copy():
    rng = np.random.default_rng(1)
    sequence = np.cumsum(rng.normal(size=(50, 5)), axis=0)  # distinct frames
    stretch = np.floor(np.arange(80) * 50 / 80).astype(int)  # 1.6 times longer: frames repeated
    cost, path = dtw(torch.from_numpy(sequence), torch.from_numpy(sequence[stretch]))
    assert cost < 1e-9
    assert {tuple(pair) for pair in path} == {(stretch[j], j) for j in range(80)}
    reversed_cost, _ = dtw(sequence, sequence[::-1])
    assert reversed_cost > 100 * (cost + 1e-3)


def test_mel_cepstrum_frames_every_10_ms(references):
    texts, clips, rate = references
    clip = clips[(0, "m1")]
    cepstrum = mel_cepstrum(clip, rate)
    assert cepstrum.shape == (clip.shape[-1] // 160 + 1, 25)
    at_22k = torch.nn.functional.interpolate(clip[None], scale_factor=22050 / rate, mode="linear")[0]
    assert mel_cepstrum(at_22k, 22050).shape[0] == pytest.approx(cepstrum.shape[0], abs=2)
    # level does not move c1.. (only c0): the floor is relative to the clip's loudest band
    assert torch.allclose(mel_cepstrum(0.1 * clip, rate)[:, 1:], cepstrum[:, 1:], atol=1e-3)


def test_mcd_is_zero_for_a_clip_and_itself_and_grows_with_noise(references):
    _, clips, rate = references
    clip = clips[(3, "f4")]
    assert mel_cepstral_distortion(clip, clip, rate) < 1e-6
    noise = torch.randn(clip.shape, generator=torch.Generator().manual_seed(0))
    power = clip.pow(2).mean()
    distortions = [
        mel_cepstral_distortion(clip + noise * (power / 10 ** (snr / 10)).sqrt(), clip, rate)
        for snr in (30, 20, 10)
    ]
    assert 0.1 < distortions[0] < distortions[1] < distortions[2]


def test_which_sentence_picks_the_sentence_said_in_another_voice(references):
    _, clips, rate = references
    asked = [5, 0, 3, 1, 4, 2]  # another order, so the answer is not the diagonal
    result = which_sentence(
        [clips[(i, "f4")] for i in asked], [[clips[(k, "m1")]] for k in range(6)], asked, rate
    )
    assert (
        result["accuracy"] == 1.0 and result["ranks"] == [0] * 6 and result["chance"] == pytest.approx(1 / 6)
    )
    distances = result["distances"]
    assert distances[np.arange(6), asked].max() < np.sort(distances, axis=1)[:, 1].min() + 1e-9
    # a shuffled target list is mostly wrong, and ties count against the target
    assert sentence_ranks(np.array([[1.0, 1.0], [2.0, 1.0]]), [0, 0]).tolist() == [1, 1]


def test_speaker_similarity_higher_for_the_same_voice(references):
    _, clips, rate = references
    keys = [(i, v) for i in range(6) for v in VOICES]
    vectors = torch.stack([speaker_embedding(clips[key], rate) for key in keys])
    assert vectors.shape == (len(keys), 26) and torch.isfinite(vectors).all()
    similarity = speaker_similarity(vectors[:, None], vectors[None], background=vectors)
    same = torch.tensor([[a[1] == b[1] and a != b for b in keys] for a in keys])
    cross = torch.tensor([[a[1] != b[1] for b in keys] for a in keys])
    assert similarity[same].mean() > similarity[cross].mean() + 0.5
    nearest = similarity.fill_diagonal_(-2).argmax(dim=1)
    same_voice_nearest = np.mean([keys[int(j)][1] == key[1] for key, j in zip(keys, nearest)])
    assert same_voice_nearest >= 0.6  # chance: 5 of the 17 other clips; m1 and m3 are close


def test_speaker_embedding_from_a_local_torchscript_model(tmp_path, references):
    _, clips, rate = references

    class Loudness(torch.nn.Module):
        sample_rate: int = 8000

        def forward(self, audio: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, 2)
            return torch.stack([audio.pow(2).mean(dim=-1), audio.abs().amax(dim=-1)], dim=-1)

    path = tmp_path / "speaker.pt"
    torch.jit.save(torch.jit.script(Loudness()), str(path))
    vector = speaker_embedding(clips[(0, "m1")], rate, EmbeddingModel(path, trusted=True))
    assert vector.shape == (2,) and vector.dtype == torch.float64


def test_evaluate_speech_knows_right_words_from_wrong_ones(heldout, references):
    texts, clips, _ = references
    index = {text: i for i, text in enumerate(texts)}

    def says_it_in_m3(text, prompt, prompt_text, seed):  # right words, in a voice not evaluated
        assert prompt is None or (prompt.dim() == 2 and prompt_text in texts and prompt_text != text)
        return clips[(index[text], "m3")]

    result = evaluate_speech(says_it_in_m3, heldout, sentences=6, voices=["m1", "f4"])
    generated, ceiling = result["generated"], result["ceiling"]
    assert result["which_sentence_chance"] == pytest.approx(1 / 6) and len(generated["ranks"]) == 12
    assert (
        generated["which_sentence_accuracy"] >= 0.8 and result["unprompted"]["which_sentence_accuracy"] >= 0.8
    )
    assert generated["mcd_same_sentence"] < generated["mcd_other_sentence"]
    assert (
        ceiling["which_sentence_accuracy"] >= 0.8
        and ceiling["mcd_same_sentence"] < ceiling["mcd_other_sentence"]
    )
    assert ceiling["speaker_accuracy"] == 1.0
    assert ceiling["speaker_similarity_prompt"] > ceiling["speaker_similarity_other_voices"]

    rng = random.Random(0)

    def says_anything(text, prompt, prompt_text, seed):
        return clips[(rng.randrange(6), "m3")]

    chance = evaluate_speech(says_anything, heldout, sentences=6, voices=["m1", "f4"], ceiling=False)
    assert "ceiling" not in chance and chance["generated"]["which_sentence_accuracy"] <= 0.35
    assert chance["generated"]["mcd_same_sentence"] > generated["mcd_same_sentence"]


def test_voice_figures_compare_through_the_codec(heldout, references):
    """A codec that marks every voice alike (here a telephone band) hides whose voice it is from
    raw references; passed as ``codec=``, the right voice is found again."""
    import torchaudio.functional as AF

    texts, clips, rate = references
    voice_of = {hash(clip.numpy().tobytes()): voice for (_, voice), clip in clips.items()}

    def telephone(clip, clip_rate):
        return AF.lowpass_biquad(AF.highpass_biquad(clip, clip_rate, 300.0), clip_rate, 1200.0)

    def says_it_in_the_prompt_voice(text, prompt, prompt_text, seed):
        voice = "m1" if prompt is None else voice_of[hash(prompt.numpy().tobytes())]
        return telephone(clips[(texts.index(text), voice)], rate)

    common = dict(sentences=4, voices=["m1", "f4"], ceiling=False)
    raw = evaluate_speech(says_it_in_the_prompt_voice, heldout, **common)["generated"]
    fair = evaluate_speech(says_it_in_the_prompt_voice, heldout, codec=telephone, **common)["generated"]
    assert fair["speaker_accuracy"] == 1.0
    assert fair["speaker_similarity_prompt"] > raw["speaker_similarity_prompt"]
    assert fair["which_sentence_accuracy"] == raw["which_sentence_accuracy"]  # content: raw references


def test_evaluate_speech_names_the_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="make demo-speech-data"):
        evaluate_speech(lambda *args: None, tmp_path)
