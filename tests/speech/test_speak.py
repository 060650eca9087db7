"""Text to speech end to end at toy size: a speech corpus, a VAE, a phoneme DiT, then speak.

The networks train for a step, so this checks the chain (data, conditioning, bundle, durations,
prompts, the CLI), not the quality; experiments/speech/results.md measures that.
"""

import json
from pathlib import Path

import pytest
import torch
from apps_helpers import compose_app

pytest.importorskip("espeakng_loader")

from latentaudio.apps.generate import generate  # noqa: E402
from latentaudio.apps.train_diffusion import train  # noqa: E402
from latentaudio.apps.train_vae import train as train_vae  # noqa: E402
from latentaudio.audio import read_audio  # noqa: E402
from latentaudio.pipeline import Pipeline  # noqa: E402
from latentaudio.speech.demo import generate_demo_speech  # noqa: E402
from latentaudio.speech.units import plan_utterance  # noqa: E402

SENTENCE = "The red fox sees four old boats."


@pytest.fixture(scope="module")
def speech_bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    generate_demo_speech(root, n_sentences=6, voices=["m1", "f4"])
    vae_run = tmp_path_factory.mktemp("vae")
    vae_overrides = ["model/vae=tiny", f"data.root={root / 'train'}", "data.sample_length=2048", "debug=fast"]
    train_vae(compose_app("train_vae", vae_run, vae_overrides + ["trainer.max_steps=1"]))
    dit_run = tmp_path_factory.mktemp("dit")
    overrides = [
        "experiment=demo_speech",
        "model/dit=tiny",
        f"vae={vae_run / 'export'}",
        f"data.root={root / 'train'}",
        "data.crop_frames=64",
        "data.batch_size=2",
        "data.val_fraction=0.34",
        "debug=fast",
        "trainer.max_steps=1",
        "trainer.precision=32-true",
        "optim.warmup_steps=0",
        "sampling.steps=3",
    ]
    train(compose_app("train_diffusion", dit_run, overrides))
    return root, vae_run / "export", dit_run / "export"


def test_the_speech_bundle_records_its_symbols_and_input_layout(speech_bundles):
    _, vae, dit = speech_bundles
    meta = json.loads((dit / "meta.json").read_text())
    assert meta["conditioning"]["phonemes"] and meta["aligned"]["enabled"]
    assert len(meta["phoneme_symbols"]["symbols"]) == meta["conditioning"]["phoneme_symbols"]
    pipe = Pipeline.from_bundles(vae, dit)
    latent_dim, phoneme_dim = pipe.autoencoder.latent_dim, meta["conditioning"]["phoneme_dim"]
    assert pipe.denoiser.dit.aligned_cond_channels == latent_dim + 1 + phoneme_dim
    assert pipe.has_aligned and pipe.aligned_task == "inpaint"


def test_speak_lasts_what_the_plan_says_and_leaves_the_prompt_out(speech_bundles):
    root, vae, dit = speech_bundles
    pipe = Pipeline.from_bundles(vae, dit)
    _, end = plan_utterance(SENTENCE)
    audio = pipe.speak(SENTENCE, n=2, steps=3, seed=1)
    assert audio.shape[:2] == (2, 1) and torch.isfinite(audio).all()
    assert abs(audio.shape[-1] - round(end * pipe.sample_rate)) <= pipe.autoencoder.hop
    assert torch.equal(audio, pipe.speak(SENTENCE, n=2, steps=3, seed=1))
    timed = pipe.speak(SENTENCE, seconds=1.5, steps=3)
    assert abs(timed.shape[-1] - 1.5 * pipe.sample_rate) <= pipe.autoencoder.hop

    rows = (root / "heldout" / "metadata.csv").read_text(encoding="utf-8").splitlines()
    path, text = rows[1].split(",")[:2]
    voice, rate = read_audio(root / "heldout" / path)
    prompted = pipe.speak(SENTENCE, voice, rate, prompt_text=text, steps=3)
    hop = pipe.autoencoder.hop
    prompt_seconds = (voice.shape[-1] * pipe.sample_rate // rate) // hop * hop / pipe.sample_rate
    _, prompted_end = plan_utterance(SENTENCE, prompt_seconds, text)
    expected = round((prompted_end - prompt_seconds) * pipe.sample_rate)
    assert abs(prompted.shape[-1] - expected) <= 2 * hop and torch.isfinite(prompted).all()


def test_speak_refuses_models_without_phonemes_and_prompts_without_a_rate(speech_bundles, tmp_path):
    from inference.tiny_bundles import tiny_dit_bundle, tiny_vae_bundle

    vae_hash = tiny_vae_bundle(tmp_path / "vae")
    tiny_dit_bundle(tmp_path / "dit", vae_hash)
    plain = Pipeline.from_bundles(tmp_path / "vae", tmp_path / "dit")
    with pytest.raises(ValueError, match="not trained on phonemes"):
        plain.speak(SENTENCE)
    _, vae, dit = speech_bundles
    with pytest.raises(ValueError, match="sample_rate"):
        Pipeline.from_bundles(vae, dit).speak(SENTENCE, prompt=torch.zeros(1, 4000))


def test_generate_app_speaks_each_line_of_a_text_file(speech_bundles, tmp_path):
    _, vae, dit = speech_bundles
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{SENTENCE}\n\nA dog.\n", encoding="utf-8")
    base = [f"vae={vae}", f"dit={dit}", "mode=speak", "n=1", "steps=2", f"output={tmp_path / 'out'}"]
    written = generate(compose_app("generate", tmp_path, base + [f"text_file={lines}"]))
    assert [Path(p).name for p in written] == ["clip00.wav", "clip01.wav"]
    long, short = (read_audio(p)[0].shape[-1] for p in written)
    assert long > 2 * short  # the lines in order: the long sentence first
    from latentaudio.apps.common import ConfigError

    with pytest.raises(ConfigError, match="text="):
        generate(compose_app("generate", tmp_path, base))
    with pytest.raises(ConfigError, match="voice recording"):
        generate(compose_app("generate", tmp_path, base + ["text=Hi.", "prompt=missing.wav"]))


def test_phoneme_training_on_data_without_phonemes_fails_before_training(speech_bundles, tmp_path):
    from conftest import write_sine

    from latentaudio.apps.common import ConfigError

    _, vae, _ = speech_bundles
    for i in range(3):
        write_sine(tmp_path / "tones" / f"tone{i}.wav", frequency=200.0 + 100 * i, seconds=0.5)
    overrides = [
        "model/dit=tiny",
        f"vae={vae}",
        f"data.root={tmp_path / 'tones'}",
        "conditioning.phonemes=true",
    ]
    with pytest.raises(ConfigError, match="no training clip .* has timed phonemes"):
        train(
            compose_app(
                "train_diffusion", tmp_path / "run", overrides + ["debug=fast", "data.crop_frames=16"]
            )
        )


def test_evaluate_app_scores_a_speech_dit_on_a_held_out_folder(speech_bundles, tmp_path):
    """make evaluate with a speech DiT: which sentence and whose voice, beside the VAE and real speech."""
    from latentaudio.apps.evaluate import evaluate

    root, vae, dit = speech_bundles
    overrides = [
        f"vae={vae}",
        f"dit={dit}",
        f"data.root={root / 'heldout'}",
        "limit=4",
        "speech.sentences=3",
        "speech.steps=2",
        "plots=false",
        f"output={tmp_path / 'eval'}",
    ]
    summary = evaluate(compose_app("evaluate", tmp_path, overrides))
    speech = json.loads((tmp_path / "eval" / "metrics.json").read_text())["speech"]
    assert speech == json.loads(json.dumps(summary["speech"]))
    assert set(speech) >= {"generated", "unprompted", "vae", "ceiling"} and speech["voices"] == ["m1", "f4"]
    assert len(speech["generated"]["ranks"]) == 6 and speech["which_sentence_chance"] == pytest.approx(1 / 3)
    assert speech["ceiling"]["which_sentence_accuracy"] >= 2 / 3  # real speech in the other voice
    assert speech["vae"]["speaker_similarity_prompt"] == pytest.approx(
        speech["ceiling"]["speaker_similarity_prompt"]
    )


def test_phoneme_guidance_contrasts_the_words_and_keeps_the_voice(speech_bundles, monkeypatch):
    """phoneme_guidance: the negative branch has no text but the prompt's voice and the timing;
    without it, guidance's other branch drops every condition."""
    root, vae, dit = speech_bundles
    pipe = Pipeline.from_bundles(vae, dit)
    rows = (root / "heldout" / "metadata.csv").read_text(encoding="utf-8").splitlines()
    path, text = rows[1].split(",")[:2]
    voice, rate = read_audio(root / "heldout" / path)
    conditioner = pipe.denoiser.conditioner
    calls = []
    original = type(conditioner).forward

    def spy(self, batch, force_uncond=False, frames=None):
        calls.append((batch, force_uncond))
        return original(self, batch, force_uncond=force_uncond, frames=frames)

    monkeypatch.setattr(type(conditioner), "forward", spy)
    guided = pipe.speak(
        SENTENCE, voice, rate, prompt_text=text, steps=2, cfg_scale=2.0, phoneme_guidance=True
    )
    assert torch.isfinite(guided).all() and calls and not any(force for _, force in calls)
    spoken = [b for b, _ in calls if (b["phoneme_ids"] != 0).any()]
    silent = [b for b, _ in calls if (b["phoneme_ids"] == 0).all()]
    assert len(spoken) == len(silent) == len(calls) // 2  # one of each per network call
    for batch in silent:
        assert (batch["phoneme_progress"] == 0).all() and torch.isfinite(batch["voice"]).all()
        assert "seconds_total" in batch
    calls.clear()
    pipe.speak(SENTENCE, voice, rate, prompt_text=text, steps=2, cfg_scale=2.0)
    assert [force for _, force in calls].count(True) == len(calls) // 2
