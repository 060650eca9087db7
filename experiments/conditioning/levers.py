"""Issue 13's lever study: train the demo DiT with one change at a time, measure its adherence.

    .venv/bin/python -m experiments.conditioning.levers vae=outputs/demo/vae/export only=baseline,cfg_6

Each lever trains `experiment=demo_dit` plus its overrides into outputs/levers/<name>, then runs
`make evaluate` on the demo data with `dit=` and appends one row to
experiments/conditioning/runs.jsonl (the table in results.md is written from it).
A lever whose run folder already has an export is only evaluated again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from experiments.common import adherence_row, evaluate_dit, parse_arguments

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "experiments" / "conditioning" / "runs.jsonl"

# name: (train_diffusion overrides, evaluate overrides)
LEVERS: dict[str, tuple[list[str], list[str]]] = {
    "baseline": ([], []),  # experiment=demo_dit as it is now (optim.lr 1e-3)
    "lr_3e-4": (["optim.lr=3e-4"], []),  # the demo DiT before this study
    "no_ema_warmup": (["ema.warmup=false"], []),
    "cfg_1": ([], ["generation.cfg_scale=1"]),
    "cfg_6": ([], ["generation.cfg_scale=6"]),
    # the byte-level text alone (what experiment=demo_dit_text was before the beat clock)
    "text_bytes": (["conditioning.text=bytes"], []),
    "logit_normal": (["objective.time_sampling=logit_normal"], []),
    "steps_4000": (["trainer.max_steps=4000"], []),
    "rectified_flow": (["objective.name=rectified_flow"], []),
    "label_tokens": (["conditioning.label_tokens=true"], []),
    # label, tempo and key as numbers, without the beat clock
    "tempo_key": (
        ["experiment=demo_dit_tempo_key", "conditioning.tempo_grid=false", "trainer.max_steps=2000"],
        [],
    ),
    # run with vae=<a demo VAE trained with loss.latent_noise=0.1> (the VAE-side regulariser)
    "latent_noise": ([], []),
    "tempo_key_4000": (["experiment=demo_dit_tempo_key", "conditioning.tempo_grid=false"], []),
    # the tempo also frame by frame, as a beat clock (dit/musical.BeatGrid)
    "tempo_grid": (["experiment=demo_dit_tempo_key", "trainer.max_steps=2000"], []),
    "tempo_grid_4000": (["experiment=demo_dit_tempo_key"], []),  # that experiment as it is now
    # captions through the byte-level encoder, and their tempo and key as numbers with the beat
    # clock (the pipeline reads them from the prompt): that experiment as it is now
    "text_tempo_grid": (["experiment=demo_dit_text"], []),
    # the same on the sub-band demo VAE make demo trains since 2026-12-04 (vae=outputs/demo/vae/export)
    "text_tempo_grid_bands4": (["experiment=demo_dit_text"], []),
    # that DiT evaluated again with the key estimator of 2026-12-05 (notes below 1 kHz, Temperley)
    "text_tempo_grid_bands4_key1000": (["experiment=demo_dit_text"], []),
    # the key as the pitch classes of its scale and its tonic, not one learned vector per key
    "text_tempo_grid_bands4_pitchclasses": (
        ["experiment=demo_dit_text", "conditioning.key_encoding=pitch_classes"],
        [],
    ),
    # experiment=demo_dit_text as it is now (pitch classes), a second training seed
    "text_tempo_grid_bands4_pitchclasses_seed1": (["experiment=demo_dit_text", "seed=1"], []),
    # experiment=demo_dit as it is, on a VAE trained 2.5x the demo's steps
    # (vae=outputs/vae_levers/recipe_bands4_2400_then_3600/export): do the labels follow the VAE?
    "vae_steps6000": ([], []),
    # experiment=demo_dit as it is, on the sub-band VAE whose decoder's last stage is x2
    # (vae=outputs/vae_levers/recipe_bands4_2400_strides248/export: +0.7 dB in the same minutes)
    "vae_strides248": ([], []),
    # experiment=demo_dit as it is, on the demo VAE with a noise branch in its decoder
    # (vae=outputs/vae_levers/recipe_bands4_2400_strides248_noise64/export: 64 noise gains a frame)
    "vae_noise64": ([], []),
    # experiment=demo_dit_tempo_key (label, bpm and key as numbers, the beat clock) on the sub-band
    # demo VAE, with the key as one vector per key (as that experiment is) and as pitch classes
    "tempo_grid_4000_bands4": (["experiment=demo_dit_tempo_key"], []),
    "tempo_grid_4000_bands4_pitchclasses": (
        ["experiment=demo_dit_tempo_key", "conditioning.key_encoding=pitch_classes"],
        [],
    ),
}


def train(name: str, overrides: list[str], vae: str) -> float | None:
    run_dir = ROOT / "outputs" / "levers" / name
    if (run_dir / "export" / "meta.json").exists():
        return None
    experiment = [o for o in overrides if o.startswith("experiment=")] or ["experiment=demo_dit"]
    rest = [o for o in overrides if not o.startswith("experiment=")]
    command = [sys.executable, "-m", "latentaudio.apps.train_diffusion", *experiment, f"vae={vae}"]
    command += [f"hydra.run.dir={run_dir}", "ckpt_path=last", "logger=csv", *rest]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def evaluate(name: str, dit_name: str, overrides: list[str], vae: str) -> dict:
    dit = ROOT / "outputs" / "levers" / dit_name / "export"
    return evaluate_dit(ROOT / "outputs" / "levers" / name / "eval", vae, dit, overrides)


def summary_row(name: str, overrides: tuple[list[str], list[str]], wall: float | None, metrics: dict) -> dict:
    row = {
        "name": name,
        "train_overrides": overrides[0],
        "evaluate_overrides": overrides[1],
        "train_seconds": wall,
    }
    return {**row, **adherence_row(metrics)}


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, {"vae": "outputs/demo/vae/export", "only": ""}, __doc__)
    vae = args["vae"]
    names = str(args["only"]).split(",") if args["only"] else list(LEVERS)
    for name in names:
        train_overrides, evaluate_overrides = LEVERS[name]
        # a lever with evaluate overrides only reuses the baseline's DiT
        dit_name = name if train_overrides or not evaluate_overrides else "baseline"
        wall = train(dit_name, train_overrides, vae)
        metrics = evaluate(name, dit_name, evaluate_overrides, vae)
        row = summary_row(name, LEVERS[name], wall, metrics)
        with open(RUNS, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
