"""Run the demo chain (data, VAE, DiT, generation) as `make demo` does and record what it reaches.

    .venv/bin/python -m experiments.demo.run            # writes experiments/demo/results.md
    .venv/bin/python -m experiments.demo.run out=/tmp/demo_results.md run_dir=/tmp/demo_runs

``out``: the results file; ``run_dir``: the folder that gets one timestamped folder of runs.

Held-out metrics of the trained VAE are compared with the same network untrained (same seed),
on the same validation crops. Throughput counts the whole fit (validation included).
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from experiments.common import parse_arguments

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
PEAK_GFLOPS = {"fp32": 150.0, "bf16": 410.0}  # this machine's 2-core matmul peak (results.md)
DEFAULTS = {
    "out": ROOT / "experiments" / "demo" / "results.md",
    "run_dir": ROOT / "outputs" / "experiments" / "demo",
}


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([PY, "-m", *args], cwd=ROOT, check=True)
    return time.perf_counter() - start


def read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def last_value(rows: list[dict], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key)]
    return values[-1] if values else None


def untrained_vae_metrics(vae_run: Path) -> dict:
    """The demo VAE's validation metrics before any training (same seed, same validation crops)."""
    from omegaconf import OmegaConf

    from latentaudio import metrics
    from latentaudio.bundle import instantiate
    from latentaudio.data.datamodule import AudioDataModule

    cfg = OmegaConf.load(vae_run / "config.yaml")
    torch.manual_seed(cfg.seed)
    vae = instantiate(OmegaConf.to_container(cfg.vae)).eval()
    data = {k: v for k, v in OmegaConf.to_container(cfg.data).items() if k != "_target_"}
    module = AudioDataModule(**data)
    module.setup("fit")
    totals = {"mrstft": [], "mel": [], "sisdr": []}
    with torch.no_grad():
        for i, batch in enumerate(module.val_dataloader()):
            if i >= cfg.trainer.limit_val_batches:
                break
            audio = batch["audio"]
            decoded = vae.decode(vae.encode(audio), length=audio.shape[-1])
            totals["mrstft"].append(metrics.mrstft_distance(decoded, audio).mean())
            totals["mel"].append(metrics.mel_distance(decoded, audio, cfg.data.sample_rate).mean())
            totals["sisdr"].append(metrics.si_sdr(decoded, audio).mean())
    return {k: float(torch.stack(v).mean()) for k, v in totals.items()}


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    command = " ".join([".venv/bin/python -m experiments.demo.run", *sys.argv[1:]])
    base = Path(args["run_dir"]) / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    vae_run, dit_run, clips = base / "vae", base / "dit", base / "generated"

    data_seconds = run(["latentaudio.apps.demo_data"])
    vae_seconds = run(["latentaudio.apps.train_vae", "experiment=demo_vae", f"hydra.run.dir={vae_run}"])
    dit_seconds = run(
        [
            "latentaudio.apps.train_diffusion",
            "experiment=demo_dit",
            f"vae={vae_run / 'export'}",
            f"hydra.run.dir={dit_run}",
        ]
    )
    gen_seconds = run(
        [
            "latentaudio.apps.generate",
            f"vae={vae_run / 'export'}",
            f"dit={dit_run / 'export'}",
            "n=5",
            "seconds=4",
            f"output={clips}",
            f"hydra.run.dir={clips}",
        ]
    )

    from omegaconf import OmegaConf

    from latentaudio.bundle import load_bundle
    from latentaudio.dit.model import DiT

    vae_cfg = OmegaConf.load(vae_run / "config.yaml")
    vae_rows = read_metrics(vae_run)
    vae_meta = load_bundle(vae_run / "export").meta
    untrained = untrained_vae_metrics(vae_run)
    vae_steps = vae_cfg.trainer.max_steps
    vae_audio_seconds = (
        vae_steps * vae_cfg.data.batch_size * vae_cfg.data.sample_length / vae_cfg.data.sample_rate
    )

    dit_cfg = OmegaConf.load(dit_run / "config.yaml")
    dit_rows = read_metrics(dit_run)
    dit_meta = load_bundle(dit_run / "export").meta
    dit_steps = dit_cfg.trainer.max_steps
    frames = dit_steps * dit_cfg.data.batch_size * dit_cfg.data.crop_frames
    dit_audio_seconds = frames * dit_meta["hop"] / dit_meta["sample_rate"]
    dit_network = DiT(
        **{k: v for k, v in load_bundle(dit_run / "export").config["dit"].items() if k != "_target_"}
    )
    flops = 3 * dit_network.flops(dit_cfg.data.crop_frames) * dit_cfg.data.batch_size * dit_steps
    precision = "bf16" if "bf16" in str(dit_cfg.trainer.precision) else "fp32"
    mfu = flops / dit_seconds / (PEAK_GFLOPS[precision] * 1e9)
    gen_clip_seconds = 5 * 4.0

    lines = [
        "# The demo chain: what `make demo` trains and reaches",
        "",
        f"Recorded {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}; command: `{command}`.",
        "Wall times include process start-up, data loading and validation.",
        "",
        "## Stage one: demo VAE (`experiment=demo_vae`)",
        "",
        "| | value |",
        "|---|---|",
        f"| demo data | {data_seconds:.1f} s |",
        f"| wall time | {vae_seconds:.0f} s for {vae_steps} steps (precision {vae_cfg.trainer.precision}) |",
        f"| training throughput | {vae_audio_seconds / vae_seconds:.1f} audio-seconds per second |",
        f"| latent rate | {vae_meta['latent_dim']} x {vae_meta['latent_rate']:.1f} frames/s = "
        f"{vae_meta['latent_dim'] * vae_meta['latent_rate']:.0f} values/s (audio: {vae_meta['sample_rate']} samples/s) |",
        "",
        "| held-out metric | untrained | trained |",
        "|---|---|---|",
        f"| MR-STFT distance (lower is better) | {untrained['mrstft']:.3f} | {last_value(vae_rows, 'val/mrstft'):.3f} |",
        f"| mel distance (lower is better) | {untrained['mel']:.3f} | {last_value(vae_rows, 'val/mel'):.3f} |",
        f"| SI-SDR, dB (higher is better) | {untrained['sisdr']:.2f} | {last_value(vae_rows, 'val/sisdr'):.2f} |",
        "",
        "## Stage two: demo DiT (`experiment=demo_dit`)",
        "",
        "| | value |",
        "|---|---|",
        f"| wall time | {dit_seconds:.0f} s for {dit_steps} steps (precision {dit_cfg.trainer.precision}; "
        "includes encoding the demo data once) |",
        f"| parameters | {sum(p.numel() for p in dit_network.parameters()) / 1e6:.2f} M |",
        f"| throughput | {frames / dit_seconds:.0f} latent frames/s = {dit_audio_seconds / dit_seconds:.1f} audio-seconds/s |",
        f"| model FLOPs utilisation | {100 * mfu:.1f}% of the {precision} matmul peak ({PEAK_GFLOPS[precision]:.0f} GFLOP/s) |",
        f"| validation loss (low / mid / high noise) | {last_value(dit_rows, 'val/loss_low'):.3f} / "
        f"{last_value(dit_rows, 'val/loss_mid'):.3f} / {last_value(dit_rows, 'val/loss_high'):.3f} |",
        f"| generation | 5 clips x 4 s in {gen_seconds:.1f} s wall (process start-up included): "
        f"realtime factor {gen_clip_seconds / gen_seconds:.1f} |",
        "",
        f"Run folders: `{base.relative_to(ROOT) if base.is_relative_to(ROOT) else base}`.",
    ]
    Path(args["out"]).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    json.dump({"vae": untrained}, open(base / "untrained_vae.json", "w"))


if __name__ == "__main__":
    main()
