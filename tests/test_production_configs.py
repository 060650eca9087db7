"""The production-size configs build, run one training step on the CPU and export."""

import pytest
from apps_helpers import compose_app
from conftest import write_sine

from latentaudio.apps.train_diffusion import train as train_diffusion
from latentaudio.apps.train_vae import train as train_vae
from latentaudio.bundle import load_bundle

ONE_STEP = [
    "trainer=cpu",
    "trainer.precision=32-true",
    "trainer.max_steps=1",
    "trainer.val_check_interval=1",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "data.batch_size=1",
    "data.num_workers=0",
    "data.pin_memory=false",
    "data.persistent_workers=false",
    "data.val_fraction=0.3",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment,rate,channels,length", [("sao_vae", 44100, 2, 16384), ("speech_vae", 16000, 1, 6400)]
)
def test_production_vae_runs_one_step_and_exports(tmp_path, experiment, rate, channels, length):
    root = tmp_path / "audio"
    for i in range(4):
        write_sine(
            root / f"clip{i}.wav", frequency=300 + 50 * i, seconds=1.0, sample_rate=rate, channels=channels
        )
    overrides = [f"experiment={experiment}", f"data.root={root}", f"data.sample_length={length}", *ONE_STEP]
    train_vae(compose_app("train_vae", tmp_path / "run", overrides))
    bundle = load_bundle(tmp_path / "run" / "export", kind="vae")
    assert bundle.meta["channels"] == channels and bundle.meta["sample_rate"] == rate


@pytest.mark.slow
def test_sao_size_dit_runs_one_step(tmp_path):
    root = tmp_path / "audio"
    for i in range(4):
        write_sine(root / f"clip{i}.wav", frequency=300 + 50 * i, seconds=1.0)
    train_vae(
        compose_app(
            "train_vae",
            tmp_path / "vae",
            [
                "model/vae=tiny",
                f"data.root={root}",
                "data.sample_length=2048",
                "debug=fast",
                "trainer.max_steps=1",
            ],
        )
    )
    overrides = [
        "model/dit=sao",
        f"vae={tmp_path / 'vae' / 'export'}",
        f"data.root={root}",
        "data.crop_frames=32",
        "callbacks=none",
        "ema.decay=0",
        *ONE_STEP,
    ]
    assert train_diffusion(compose_app("train_diffusion", tmp_path / "dit", overrides)) is not None


@pytest.mark.slow
def test_tts_ljspeech_config_runs_its_first_steps_on_a_tiny_ljspeech_corpus(tmp_path):
    """The GPU TTS recipe on a fake LJSpeech folder (eSpeak renderings in its layout), aligned
    by `make speech-data ... align=true`, then one step of the speech VAE and of the DiT."""
    pytest.importorskip("espeakng_loader")
    import soundfile as sf

    from latentaudio.speech.demo import VOICES
    from latentaudio.speech.layouts import convert_corpus
    from latentaudio.speech.units import render_text

    source = tmp_path / "LJSpeech-1.1"
    (source / "wavs").mkdir(parents=True)
    lines = []
    for i, text in enumerate(
        ["The red fox sees four old boats.", "A quiet girl opens the door.", "Why?"] * 2
    ):
        spoken = render_text(text, VOICES["f2"])
        sf.write(source / "wavs" / f"LJ001-{i:04d}.wav", spoken.audio, spoken.sample_rate)
        lines.append(f"LJ001-{i:04d}|{text}|{text}")
    (source / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    root = convert_corpus("ljspeech", source, tmp_path / "ljspeech", align=True, progress=False).parent
    vae = ["experiment=speech_vae", f"data.root={root}", "data.sample_length=6400", *ONE_STEP]
    train_vae(compose_app("train_vae", tmp_path / "vae", vae))
    overrides = [
        "experiment=tts_ljspeech",
        f"vae={tmp_path / 'vae' / 'export'}",
        f"data.root={root}",
        "data.crop_frames=64",
        "callbacks=none",
        *ONE_STEP,
    ]
    assert train_diffusion(compose_app("train_diffusion", tmp_path / "dit", overrides)) is not None
