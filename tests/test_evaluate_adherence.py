"""make evaluate with a DiT on a folder with labels and captions: adherence with its ceilings."""

import json
import math

import soundfile as sf
import torch
from apps_helpers import compose_app, tiny_dit_overrides, train_tiny_vae

from latentaudio.apps.evaluate import evaluate
from latentaudio.apps.train_diffusion import train as train_dit

RATE = 16000


def write_labelled_folder(root, count: int = 20):
    """Tones and noise, labelled, with captions that name a tempo and a key."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,caption"]
    t = torch.arange(RATE) / RATE
    for i in range(count):
        generator = torch.Generator().manual_seed(i)
        if i % 2:
            audio, label, caption = 0.3 * torch.randn(RATE, generator=generator), "noise", "noise at 120 bpm"
        else:
            audio = 0.5 * torch.sin(2 * math.pi * 261.6 * (1 + 0.01 * i) * t)
            label, caption = "tone", "a tone in C major at 90 bpm"
        sf.write(root / f"clip{i:02d}.wav", audio.numpy(), RATE)
        rows.append(f"clip{i:02d}.wav,{label},{caption}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def test_evaluate_reports_adherence_with_ceilings(tmp_path, capsys):
    root = write_labelled_folder(tmp_path / "audio")
    vae, dit_run = train_tiny_vae(root, tmp_path / "vae"), tmp_path / "dit"
    dit_overrides = tiny_dit_overrides(root, vae) + ["conditioning.text=bytes"]
    train_dit(compose_app("train_diffusion", dit_run, dit_overrides))
    out = tmp_path / "eval"
    overrides = [
        f"vae={vae}",
        f"dit={dit_run / 'export'}",
        f"data.root={root}",
        f"output={out}",
        "limit=8",
        "generation.steps=2",
        "adherence.per_label=3",
        "adherence.captions=4",
    ]
    evaluate(compose_app("evaluate", out, overrides))
    written = json.loads((out / "metrics.json").read_text())
    result = written["adherence"]
    labels = result["labels"]
    assert labels["order"] == ["noise", "tone"] and labels["ceiling"] == 1.0  # tones and noise: easy
    assert 0.0 <= labels["vae_ceiling"] <= 1.0 and set(labels["vae_ceiling_per_label"]) <= {"noise", "tone"}
    assert 0.0 <= labels["accuracy"] <= 1.0 and sum(map(sum, labels["confusion"])) == 6
    assert set(result["per_label_distances"]["real"]) == {"noise", "tone"}
    real = result["per_label_distances"]["real"]["tone"]
    assert real["fd_same"] < real["fd_other"]  # real tones are closer to tones than to noise
    captions = result["captions"]
    assert captions["generated"]["tempo_clips"] == 4 and len(captions["captions"]) == 4
    assert captions["real"]["key_clips"] == captions["generated"]["key_clips"]
    timing = result["timing"]
    assert timing["generated"]["clips"] == 12 and timing["real"]["mean_abs_error_s"] < 0.05
    assert set(written["floors"]) == {"real", "reconstructed", "generated"}
    assert (out / "label_confusion.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "label accuracy" in printed and "tempo within 4%" in printed and "timing error" in printed
