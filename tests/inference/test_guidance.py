"""Negative prompts: they replace only the caption in guidance's negative branch."""

import json

import pytest
import soundfile as sf
import torch
from apps_helpers import compose_app
from tiny_bundles import LABELS, tiny_bundles

from latentaudio.apps.generate import generate
from latentaudio.data import metadata
from latentaudio.dit.samplers import classifier_free_guidance
from latentaudio.pipeline import Pipeline

FAST = dict(steps=3, cfg_scale=3.0, sampler="dpmpp_2m")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return tiny_bundles(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def pipe(bundles):
    return Pipeline.from_bundles(*bundles)


def inputs(pipe, n=2):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, pipe.autoencoder.latent_dim, 16, generator=generator)
    t = torch.full((n,), 0.7)
    batch = pipe.conditions(n, seconds=3.0, prompt="a bright pluck", label=LABELS[1])
    return x, t, batch


def test_a_caption_only_negative_keeps_timing_and_label_in_the_negative_branch(pipe):
    x, t, batch = inputs(pipe)
    with torch.no_grad():
        conditional = pipe.denoiser(x, t, batch)
        # the negative caption equal to the prompt: both halves the same, so guidance is a no-op
        same = pipe.denoiser.guided(x, t, batch, 3.0, negative={"caption": batch["caption"]})
        torch.testing.assert_close(same, conditional)
        # another caption: the negative half is the batch with that caption and nothing else changed
        other = {**batch, "caption": ["a dull hum"] * 2}
        expected = classifier_free_guidance(conditional, pipe.denoiser(x, t, other), 3.0)
        guided = pipe.denoiser.guided(x, t, batch, 3.0, negative={"caption": other["caption"]})
        torch.testing.assert_close(guided, expected)


def test_without_a_negative_the_negative_branch_is_unconditional(pipe):
    x, t, batch = inputs(pipe)
    with torch.no_grad():
        conditional = pipe.denoiser(x, t, batch)
        unconditional = pipe.denoiser(x, t, batch, force_uncond=True)
        guided = pipe.denoiser.guided(x, t, batch, 3.0, 0.5)
    torch.testing.assert_close(guided, classifier_free_guidance(conditional, unconditional, 3.0, 0.5))


def test_negative_reaches_every_mode_and_changes_its_output(pipe):
    clip = 0.3 * torch.randn(1, 240, generator=torch.Generator().manual_seed(1))  # one window: 30 frames
    modes = {
        "generate": lambda **o: pipe.generate(seconds=0.015, **o),
        "vary": lambda **o: pipe.vary(clip, 16000, strength=0.7, **o),
        "inpaint": lambda **o: pipe.inpaint(clip, 16000, ranges=[(0.005, 0.01)], **o),
        "extend": lambda **o: pipe.extend(clip, 16000, seconds=0.005, **o),
        "enhance": lambda **o: pipe.enhance(clip, 16000, **o),
    }
    for name, mode in modes.items():
        plain = mode(prompt="a bright pluck", label="high", seed=2, **FAST)
        assert torch.equal(plain, mode(prompt="a bright pluck", label="high", seed=2, negative=None, **FAST))
        negative = mode(prompt="a bright pluck", label="high", seed=2, negative="a dull hum", **FAST)
        assert negative.shape == plain.shape
        assert not torch.allclose(negative, plain, atol=1e-5), f"negative= had no effect on {name}"


def test_negative_needs_a_text_conditioned_dit(tmp_path):
    pipe = Pipeline.from_bundles(*tiny_bundles(tmp_path, text=None))
    with pytest.raises(ValueError, match="negative='noise' needs a DiT trained with text conditioning"):
        pipe.generate(seconds=0.02, negative="noise", **FAST)


def test_generate_app_passes_the_negative_prompt(bundles, tmp_path):
    vae, dit = bundles
    written = {}
    for name, extra in {"plain": [], "negative": ["negative='a dull hum'"]}.items():
        out = tmp_path / name
        cfg = compose_app(
            "generate",
            out,
            [f"vae={vae}", f"dit={dit}", "n=1", "seconds=0.015", "steps=3", "cfg_scale=3.0", "prompt=pluck"]
            + [f"output={out}", *extra],
        )
        written[name] = sf.read(str(generate(cfg)[0]))[0]
        settings = json.loads((out / "settings.json").read_text())
        assert settings["negative"] == ("a dull hum" if extra else None)
    assert abs(written["plain"] - written["negative"]).max() > 1e-5


def test_tempo_and_key_steer_a_dit_trained_with_them_and_are_refused_by_others(tmp_path, pipe):
    vae, dit = tiny_bundles(tmp_path, tempo_and_key=True)
    musical = Pipeline.from_bundles(vae, dit)
    x, t, _ = inputs(musical, n=1)

    def prediction(**asked):
        with torch.no_grad():
            return musical.denoiser(x, t, musical.conditions(1, 3.0, **asked))

    slow, fast = prediction(bpm=80, key="A minor"), prediction(bpm=140, key="A minor")
    assert (slow - fast).abs().max() > 1e-6  # exactly equal if the tempo were ignored
    major = prediction(bpm=80, key="a Major")
    assert (slow - major).abs().max() > 1e-6
    assert torch.equal(major, prediction(bpm=80, key="A maj"))  # one key, two spellings
    settings = dict(seconds=0.1, seed=0, **FAST)
    assert musical.generate(bpm=96.5, key="Eb minor", **settings).shape == (1, 1, 1600)
    with pytest.raises(ValueError, match="name a major or minor key"):
        musical.generate(key="A dorian", **settings)
    with pytest.raises(ValueError, match="positive tempo"):
        musical.generate(bpm=-5, **settings)
    # the prompt names them too, as training read them from captions; given numbers win
    asked = musical.conditions(1, 3.0, prompt="organ chords in A minor at 80 bpm")
    assert float(asked["bpm"][0]) == 80.0 and int(asked["key"][0]) == metadata.key_index("A minor")
    asked = musical.conditions(1, 3.0, prompt="organ chords in A minor at 80 bpm", bpm=100, key="C major")
    assert float(asked["bpm"][0]) == 100.0 and int(asked["key"][0]) == metadata.key_index("C major")
    plain = pipe.conditions(1, 3.0, prompt="organ chords in A minor at 80 bpm")  # a DiT without them
    assert plain["bpm"].isnan().all() and int(plain["key"][0]) == -1
    with pytest.raises(ValueError, match="conditioning.tempo=true"):
        pipe.generate(bpm=120, **settings)
    with pytest.raises(ValueError, match="conditioning.key=true"):
        pipe.generate(key="A minor", **settings)


def test_a_beat_grid_dit_hears_the_tempo_frame_by_frame_in_every_window(tmp_path):
    vae, dit = tiny_bundles(tmp_path, tempo_and_key=True, tempo_grid=True)
    musical = Pipeline.from_bundles(vae, dit)
    assert not musical.has_aligned  # the grid is the conditioner's own, not known-latent input
    seen = []
    grid = musical.denoiser.conditioner.beat_grid
    original = grid.forward
    grid.forward = lambda bpm, start, frames: (
        seen.append((bpm.clone(), start.clone())) or original(bpm, start, frames)
    )
    x, t, _ = inputs(musical, n=1)
    with torch.no_grad():
        slow = musical.denoiser(x, t, musical.conditions(1, 3.0, bpm=80))
        fast = musical.denoiser(x, t, musical.conditions(1, 3.0, bpm=140))
    assert (slow - fast).abs().max() > 1e-6
    seen.clear()
    seconds = 3 * musical.train_seconds  # several windows: each starts its clock where it lies
    audio = musical.generate(seconds=seconds, bpm=120, seed=0, **FAST)
    assert audio.shape[-1] == musical.frames_for(seconds) * musical.autoencoder.hop
    starts = sorted({round(float(start[0]), 4) for _, start in seen})
    hop_seconds = musical.autoencoder.hop / musical.sample_rate
    expected = [round(a * hop_seconds, 4) for a in musical.window_starts(musical.frames_for(seconds))]
    assert starts == expected and len(starts) > 1
    assert all(torch.isnan(bpm).any() or (bpm == 120).all() for bpm, _ in seen)
