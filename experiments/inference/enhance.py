"""Enhancement on held-out demo clips: the trained aligned path against the SDEdit fallback and the input.

    .venv/bin/python -m experiments.inference.enhance     # the bundles of `make demo` and `make demo-enhance`
    .venv/bin/python -m experiments.inference.enhance vae=... dit=... dit_enhance=... data=... snrs=0,5,10,20

The clips are the demo files that both training runs held out (the hash split of
``data.val_fraction`` 0.05, seed 0), cut to the DiT's training window. Two references:

- **in the VAE's domain** (the headline): the clean clip is the VAE's reconstruction of the file
  and the noise is added to that. Every latent model's output is a VAE decoding, so this measures
  what the DiT removes, not what the VAE cannot code;
- **against the original file** (noise added to the file itself): bounded by the VAE's own
  reconstruction SI-SDR, which is listed beside it.

Writes ``out`` (default ``enhance.md``) beside this script, replaced on every run.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from latentaudio.audio import read_audio
from latentaudio.data.split import held_out_files
from latentaudio.dit.aligned import add_noise_at_snr
from latentaudio.metrics import mel_distance, si_sdr
from latentaudio.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "vae": "outputs/demo/vae/export",
    "dit": "outputs/demo/dit/export",
    "dit_enhance": "outputs/demo/dit_enhance/export",
    "data": "data/demo",
    "snrs": "0,5,10,20",
    "limit": "16",
    "strength": "0.3",
    "out": "enhance.md",
}


def held_out_clips(pipe: Pipeline, data: Path, limit: int) -> list[tuple[str, torch.Tensor]]:
    """(name, (1, C, S) audio at the model's rate) of the held-out files, one training window each."""
    frames = round(pipe.train_seconds * pipe.sample_rate)
    clips = []
    for path in held_out_files(data)[:limit]:
        audio, rate = read_audio(
            data / path, sample_rate=pipe.sample_rate, channels=pipe.autoencoder.channels
        )
        clips.append((path, audio[None, :, :frames]))
    return clips


def scores(estimate: torch.Tensor, reference: torch.Tensor, rate: int) -> dict[str, float]:
    return {
        "sisdr": float(si_sdr(estimate, reference).mean()),
        "mel": float(mel_distance(estimate, reference, rate).mean()),
    }


def evaluate(trained: Pipeline, fallback: Pipeline, clips, snrs, strength: float) -> dict:
    """Mean scores per (reference, SNR, method)."""
    rate = trained.sample_rate
    totals: dict = {}

    def add(key, values):
        bucket = totals.setdefault(key, {"n": 0})
        bucket["n"] += 1
        for name, value in values.items():
            bucket[name] = bucket.get(name, 0.0) + value

    for index, (_, audio) in enumerate(clips):
        reconstruction = trained.autoencoder.reconstruct(audio)
        add(("original", "-", "VAE reconstruction of the clean clip"), scores(reconstruction, audio, rate))
        for snr in snrs:
            for reference_name, clean in (("vae", reconstruction), ("original", audio)):
                noisy = add_noise_at_snr(clean, (snr, snr), torch.Generator().manual_seed(index))
                outputs = {
                    "noisy input": noisy,
                    "SDEdit fallback (demo DiT)": fallback.enhance(
                        noisy, rate, strength=strength, seed=index
                    ),
                    "trained enhance path": trained.enhance(noisy, rate, seed=index),
                }
                for method, estimate in outputs.items():
                    add((reference_name, snr, method), scores(estimate, clean, rate))
    return {
        key: {k: v / bucket["n"] for k, v in bucket.items() if k != "n"} for key, bucket in totals.items()
    }


def table(results: dict, reference: str, snrs) -> list[str]:
    methods = ["noisy input", "SDEdit fallback (demo DiT)", "trained enhance path"]
    head = "| method | " + " | ".join(f"SI-SDR {s} dB / mel" for s in snrs) + " |"
    lines = [head, "|---|" + "---:|" * len(snrs)]
    for method in methods:
        cells = [
            f"{results[(reference, s, method)]['sisdr']:.2f} / {results[(reference, s, method)]['mel']:.3f}"
            for s in snrs
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    gains = [
        results[(reference, s, "trained enhance path")]["sisdr"]
        - results[(reference, s, "noisy input")]["sisdr"]
        for s in snrs
    ]
    lines.append(
        "| **SI-SDR gain of the trained path (dB)** | " + " | ".join(f"**{g:+.2f}**" for g in gains) + " |"
    )
    return lines


def degrading_seconds(pipe: Pipeline, items: int, repeats: int = 5) -> float:
    """Median wall time to make ``items`` training pairs of one demo window as training does
    (decode, add noise, encode, under the demo's bf16 autocast)."""
    latents = torch.randn(items, pipe.autoencoder.latent_dim, pipe.window_frames)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            noisy = add_noise_at_snr(pipe.autoencoder.decode(latents), (0.0, 20.0))
            pipe.autoencoder.encode(noisy)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    args = dict(DEFAULTS)
    args.update(item.split("=", 1) for item in argv)
    snrs = [float(s) for s in args["snrs"].split(",")]
    trained = Pipeline.from_bundles(ROOT / args["vae"], ROOT / args["dit_enhance"])
    if trained.aligned_task != "enhance":
        raise SystemExit(
            f"{args['dit_enhance']} was not trained with aligned.task=enhance (make demo-enhance)"
        )
    fallback = Pipeline.from_bundles(ROOT / args["vae"], ROOT / args["dit"])
    clips = held_out_clips(trained, ROOT / args["data"], int(args["limit"]))
    if not clips:
        raise SystemExit(f"no held-out files in {args['data']} (make demo-data)")
    start = time.perf_counter()
    results = evaluate(trained, fallback, clips, snrs, float(args["strength"]))
    seconds = time.perf_counter() - start
    batch = yaml.safe_load((ROOT / "conf" / "experiment" / "demo_dit.yaml").read_text())["data"]["batch_size"]
    fresh = (trained.bundle.meta.get("aligned") or {}).get("fresh_per_step") or batch
    cost = {n: degrading_seconds(trained, n) for n in sorted({batch, fresh})}
    vae_sisdr = results[("original", "-", "VAE reconstruction of the clean clip")]["sisdr"]
    lines = [
        "# Enhancement on held-out demo clips",
        "",
        f"Regenerate: `.venv/bin/python -m experiments.inference.enhance` ({time.strftime('%Y-%m-%d')}, "
        f"{seconds:.0f} s). {len(clips)} held-out files x {trained.train_seconds:.2f} s, white noise at each SNR "
        f"(one seed per clip). Bundles: VAE `{trained.autoencoder.hash}`, enhancement DiT `{trained.bundle.hash}` "
        f"(step {trained.bundle.meta.get('step')}), fallback DiT `{fallback.bundle.hash}` (SDEdit strength "
        f"{args['strength']}); sampler settings: each bundle's defaults. Cells: SI-SDR (dB, higher is better) / "
        "mel distance (lower is better), means over the clips.",
        "",
        "## In the VAE's domain: clean = the VAE's reconstruction of the clip",
        "",
        *table(results, "vae", snrs),
        "",
        "## Against the original clip (noise added to the file itself)",
        "",
        f"Bounded by the VAE: its reconstruction of the clean clips scores {vae_sisdr:.2f} dB SI-SDR and "
        f"{results[('original', '-', 'VAE reconstruction of the clean clip')]['mel']:.3f} mel distance.",
        "",
        *table(results, "original", snrs),
        "",
        "## What the training pairs cost",
        "",
        "Making the pairs of one training step (decode, noise, encode; bf16 autocast, median of 5): "
        + ", ".join(f"{n} items {cost[n]:.3f} s" for n in cost)
        + f". With `aligned.fresh_per_step={fresh}` a step makes {fresh} and reuses pooled pairs for the "
        "rest of its batch.",
        "",
    ]
    (Path(__file__).parent / args["out"]).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
