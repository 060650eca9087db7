"""The evaluation layer and the evaluate app, on tiny bundles trained in seconds."""

import json
import math

import pytest
import torch
from apps_helpers import compose_app, tiny_dit_overrides, train_tiny_vae
from conftest import write_sine

from latentaudio import evaluation
from latentaudio.apps.common import ConfigError
from latentaudio.apps.evaluate import evaluate
from latentaudio.apps.train_diffusion import train as train_dit

RATE = 16000


def tones(count: int, seconds: float = 0.5, start: float = 200.0) -> list[torch.Tensor]:
    t = torch.arange(int(seconds * RATE)) / RATE
    return [0.5 * torch.sin(2 * math.pi * start * (1 + i / 7) * t)[None] for i in range(count)]


# ---------------------------------------------------------------------------- evaluation layer


def test_distribution_metrics_zero_for_a_set_against_itself_and_grow_with_a_shift():
    real = tones(6)
    same = evaluation.distribution_metrics(real, RATE, real, RATE)
    assert set(same) == {"fd_mel_stats", "kd_mel_stats", "fd_mfcc", "kd_mfcc"}
    assert same["fd_mel_stats"] < 1e-6 and same["fd_mfcc"] < 1e-6
    noisy = [
        clip + 0.3 * torch.randn(clip.shape, generator=torch.Generator().manual_seed(i))
        for i, clip in enumerate(real)
    ]
    shifted = evaluation.distribution_metrics(real, RATE, noisy, RATE)
    assert shifted["fd_mel_stats"] > 1.0 and shifted["kd_mel_stats"] > same["kd_mel_stats"]


def test_duration_metrics_of_a_generated_set():
    clips = [
        torch.cat([tone, torch.zeros_like(tone)], dim=-1) for tone in tones(3)
    ]  # 0.5 s sound, 0.5 s silence
    assert evaluation.audible_seconds(clips[0], RATE) == pytest.approx(0.5, abs=0.011)
    generated = evaluation.GeneratedSet(clips, [1.0, 1.0, 1.0], RATE, wall_seconds=1.5)
    out = evaluation.generation_metrics(tones(3, seconds=1.0), RATE, generated)
    assert out["duration_error_s"] == 0.0 and out["realtime_factor"] == pytest.approx(2.0)
    assert out["audible_duration_ratio"] == pytest.approx(0.5, abs=0.011)


def save_tiny_embedding(path, sample_rate: int = 8000) -> None:
    """A random conv net over log-mels, scripted: the documented embedding format."""
    import torchaudio

    class TinyEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sample_rate = sample_rate
            self.mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=256, hop_length=64, n_mels=16)
            self.conv = torch.nn.Sequential(
                torch.nn.Conv1d(16, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv1d(8, 6, 3)
            )

        def forward(self, audio: torch.Tensor) -> torch.Tensor:
            frames = self.conv(torch.log(self.mel(audio) + 1e-5))  # (B, 6, frames)
            return frames.transpose(1, 2)  # (B, frames, 6)

    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(TinyEmbedding()), str(path))


def test_embedding_model_loads_a_local_torchscript_file(tmp_path):
    path = tmp_path / "embedding.pt"
    save_tiny_embedding(path)
    model = evaluation.EmbeddingModel(path, trusted=True)
    assert model.sample_rate == 8000
    real = tones(4)
    features = model(real, RATE)
    assert features.shape == (4, 6) and torch.isfinite(features).all()
    out = evaluation.distribution_metrics(real, RATE, real, RATE, embedding=model)
    assert out["fd_embedding"] < 1e-6
    (tmp_path / "not_a_model.pt").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        evaluation.EmbeddingModel(tmp_path / "not_a_model.pt", trusted=True)


def test_an_embedding_model_is_code_and_needs_an_explicit_trust_flag(tmp_path):
    save_tiny_embedding(tmp_path / "model.pt")
    with pytest.raises(evaluation.UntrustedEmbeddingError, match="code execution.*trust_embedding=true"):
        evaluation.EmbeddingModel(tmp_path / "model.pt")
    assert evaluation.EmbeddingModel(tmp_path / "model.pt", trusted=True).sample_rate == 8000


# ---------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A folder of 6 tones, a tiny VAE trained on it for 2 steps and a tiny DiT for 2 steps."""
    root = tmp_path_factory.mktemp("audio")
    for i in range(6):
        write_sine(root / f"tone{i}.wav", frequency=200.0 * (1 + i / 5), seconds=0.5)
    vae = train_tiny_vae(root, tmp_path_factory.mktemp("vae"))
    dit_run = tmp_path_factory.mktemp("dit")
    train_dit(compose_app("train_diffusion", dit_run, tiny_dit_overrides(root, vae)))
    return root, vae, dit_run / "export"


def test_evaluate_a_vae_writes_per_file_metrics_means_and_plots(bundles, tmp_path, capsys):
    root, vae, _ = bundles
    out = tmp_path / "eval"
    summary = evaluate(
        compose_app("evaluate", out, [f"vae={vae}", f"data.root={root}", f"output={out}", "limit=4"])
    )
    written = json.loads((out / "metrics.json").read_text())
    assert written["count"] == 4 and len(written["files"]) == 4 and written["generation"] is None
    for name in ("mrstft", "mel", "sisdr"):
        values = [entry[name] for entry in written["files"].values()]
        assert written["mean"][name] == pytest.approx(sum(values) / 4)
    assert written["latent_rate"] == pytest.approx(4 * 16000 / 8) == summary["latent_rate"]
    assert (out / "metric_distributions.png").stat().st_size > 0 and (out / "spectrograms.png").exists()
    assert "mean (4)" in capsys.readouterr().out

    # make reconstruct: the same numbers, the reconstructions written; data.root may be one file
    recon = tmp_path / "recon"
    overrides = [
        "write_reconstructions=true",
        f"vae={vae}",
        f"data.root={root}",
        f"output={recon}",
        "limit=4",
    ]
    shared = evaluate(compose_app("evaluate", recon, overrides + ["plots=false"]))
    assert shared["files"] == written["files"] and (recon / "reconstructions" / "tone0.wav").exists()
    single = evaluate(
        compose_app(
            "evaluate",
            recon,
            overrides[1:2] + [f"data.root={root / 'tone1.wav'}", f"output={recon}", "plots=false"],
        )
    )
    assert single["files"] == {"tone1.wav": written["files"]["tone1.wav"]}


def test_evaluate_reports_each_label_and_the_extremes_and_can_take_the_held_out_split(
    bundles, sine_folder, tmp_path, capsys
):
    _, vae, _ = bundles
    out = tmp_path / "eval"
    base = [f"vae={vae}", f"data.root={sine_folder}", f"output={out}", "plots=false"]
    summary = evaluate(compose_app("evaluate", out, base))
    files = summary["files"]
    for label, members in (("low", range(6)), ("high", range(6, 12))):
        paths = [f"set{i % 3}/tone{i:02d}.wav" for i in members]
        row = summary["per_label"][label]
        assert row["files"] == 6
        assert row["sisdr"] == pytest.approx(sum(files[p]["sisdr"] for p in paths) / 6)
        assert row["worst_sisdr"] == min(files[p]["sisdr"] for p in paths)
    worst = min(files, key=lambda p: files[p]["sisdr"])
    assert summary["extremes"]["worst"][0] == [worst, files[worst]["sisdr"]]
    table = capsys.readouterr().out
    assert "per label:" in table and "  high (6)" in table and f"worst SI-SDR: {worst}" in table
    # the label judge, fitted on the folder's own labels, on the VAE's reconstructions
    through = summary["labels_through_vae"]
    assert (
        through["order"] == ["high", "low"] and 0 <= through["vae_ceiling"] <= 1 and through["ceiling"] > 0.5
    )
    assert through["held_out_real_clips"] == sum(map(sum, through["confusion"])) > 0
    assert "label judge on the VAE's reconstructions" in table

    # split=held_out: exactly the files a training run with these data settings held out
    from latentaudio.data.split import held_out_files

    held = evaluate(compose_app("evaluate", out, [*base, "split=held_out", "data.val_fraction=0.3"]))
    assert sorted(held["files"]) == held_out_files(sine_folder, 0.3) and 0 < held["count"] < 12
    with pytest.raises(ConfigError, match="held_out"):
        evaluate(compose_app("evaluate", out, [*base, "split=val"]))


def test_evaluate_with_a_dit_and_an_embedding_model(bundles, tmp_path):
    root, vae, dit = bundles
    embedding = tmp_path / "embedding.pt"
    save_tiny_embedding(embedding)
    out = tmp_path / "eval"
    overrides = [f"vae={vae}", f"dit={dit}", f"data.root={root}", f"output={out}", "generation.steps=2"]
    with pytest.raises(evaluation.UntrustedEmbeddingError, match="trust_embedding=true"):
        evaluate(compose_app("evaluate", out, overrides + [f"embedding={embedding}"]))
    assert not (out / "metrics.json").exists()
    trusted = [f"embedding={embedding}", "trust_embedding=true"]
    evaluate(compose_app("evaluate", out, overrides + ["generation.n=4", *trusted]))
    generation = json.loads((out / "metrics.json").read_text())["generation"]
    for name in ("fd_mel_stats", "kd_mel_stats", "fd_mfcc", "kd_mfcc", "fd_embedding", "kd_embedding"):
        assert math.isfinite(generation[name]), name
    assert generation["generated_clips"] == 4 and generation["generated_seconds"] == pytest.approx(2.0)
    assert generation["duration_error_s"] < 1e-3 and generation["realtime_factor"] > 0
    with pytest.raises(ConfigError, match="generation.n"):
        evaluate(compose_app("evaluate", out, overrides + ["generation.n=1"]))
