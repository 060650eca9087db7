"""Training-step throughput of both stages at GPU sizes: fp32 vs bf16 autocast, eager vs torch.compile.

    python -m experiments.throughput.gpu out=results_gpu.json
    python -m experiments.throughput.gpu tiny=true        # a CPU smoke test of this script

Each variant also runs on a fixed batch (fixed noise and noise levels for the DiT), so its loss
must stay finite and fall: that is the check that bf16 training is numerically sane. ``warmup``
untimed and ``steps`` timed steps per variant; stages started after ``budget_s`` seconds are
skipped; results are written to ``out`` after each stage.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

from experiments.common import markdown_table, model_size, parse_arguments, summarize, time_interleaved
from experiments.throughput.steps import dit_variant, vae_variant

SAO_VAE = model_size("vae", "sao")
TINY_VAE = {**model_size("vae", "tiny"), "channels": 2}  # stereo, as the SAO VAE it stands in for
BF16_PEAK = 790e12  # measured bf16 matmul peak of an H100/H200 (results.md here)
DEFAULTS = {
    "tiny": False,  # tiny sizes: checks the script on a CPU
    "warmup": 5,
    "steps": 15,
    "budget_s": 200.0,  # skip stages started after this
    "out": Path("results_gpu.json"),
}


def stages(tiny: bool) -> list[dict]:
    """(stage, variants): the DiT first (quick), then the VAE (heavy compile)."""
    if tiny:
        vae = dict(vae_config=TINY_VAE, batch_size=2, sample_length=4096, sample_rate=44100)
        base = dict(
            size=model_size("dit", "tiny"), latent_dim=8, batch_size=2, frames=32, hop=2048, sample_rate=44100
        )
        sao = base
    else:
        # 1.49 s stereo crops at 44.1 kHz (32 latent frames); 47.5 s of latents (1024 frames) for the DiT
        vae = dict(vae_config=SAO_VAE, batch_size=4, sample_length=65536, sample_rate=44100)
        base = dict(
            size=model_size("dit", "base"),
            latent_dim=64,
            batch_size=16,
            frames=1024,
            hop=2048,
            sample_rate=44100,
        )
        sao = dict(base, size=model_size("dit", "sao"), batch_size=8)
    precision = [("fp32", False, False), ("bf16", True, False), ("bf16+compile", True, True)]
    return [
        dict(name="dit-base", kind="dit", args=base, variants=precision),
        dict(name="dit-sao", kind="dit", args=sao, variants=precision[:2]),
        dict(name="vae-sao-adversarial", kind="vae", args=dict(vae, adversarial=True), variants=precision),
    ]


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the table
    report = {
        "command": " ".join(["python -m experiments.throughput.gpu", *sys.argv[1:]]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "warmup": args["warmup"],
        "steps": args["steps"],
        "stages": {},
    }
    started = time.perf_counter()
    for stage in stages(args["tiny"]):
        if time.perf_counter() - started > args["budget_s"]:
            report["stages"][stage["name"]] = "skipped: time budget"
            continue
        stage_start = time.perf_counter()
        build = dit_variant if stage["kind"] == "dit" else vae_variant
        variants = []
        try:
            variants = [
                build(name, device=device, bf16=bf16, compile=compiled, **stage["args"])
                for name, bf16, compiled in stage["variants"]
            ]
            time_interleaved(variants, args["warmup"], args["steps"], device)
            rows = [summarize(v, BF16_PEAK if device.type == "cuda" else None) for v in variants]
        except torch.OutOfMemoryError as error:
            rows = f"out of memory: {error}"[:300]
        report["stages"][stage["name"]] = {
            "shape": {k: v for k, v in stage["args"].items() if k != "vae_config"},
            "rows": rows,
            "wall_s": round(time.perf_counter() - stage_start, 1),
        }
        del variants
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"## {stage['name']} ({report['stages'][stage['name']]['wall_s']} s)", flush=True)
        print(markdown_table(rows) if isinstance(rows, list) else rows, flush=True)
        args["out"].write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
