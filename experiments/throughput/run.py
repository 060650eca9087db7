"""Training-step throughput of both stages' demo configs on this machine's CPU.

    .venv/bin/python -m experiments.throughput.run            # writes results_cpu.json beside this file
    .venv/bin/python -m experiments.throughput.run stages=vae-demo,vae-demo-adversarial eager=true

``stages``: only these stages, comma-separated (default: all of dit-demo, vae-demo,
vae-demo-adversarial); ``eager=true`` skips the torch.compile variants; ``threads``: torch threads;
``out``: where the JSON goes.

Variants: fp32 vs bf16 autocast, eager vs torch.compile, run in turn (A, B, C, D, A, ...) so that
load from other processes falls on all of them alike; the figures are medians of the timed steps
after warm-up (torch.compile's first calls fall in the warm-up). The steps are the
LightningModules' own training steps (steps.py), without Lightning's loop.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from experiments.common import markdown_table, model_size, parse_arguments, summarize, time_interleaved
from experiments.throughput.steps import dit_variant, vae_variant

DEMO_VAE = model_size("vae", "demo")
# the batch the recorded figures used: conf/experiment/demo_vae.yaml's until 2026-12-06 (4 crops since)
VAE_BATCH = dict(vae_config=DEMO_VAE, batch_size=8, sample_length=8192, sample_rate=16000)
# conf/model/dit/demo.yaml on the demo VAE's latents, at the batch of the recorded figures
# (conf/experiment/demo_dit.yaml's until 2026-12-06; 8 clips since)
DIT_BATCH = dict(
    size=model_size("dit", "demo"),
    latent_dim=DEMO_VAE["latent_dim"],
    batch_size=16,
    frames=128,
    hop=256,
    sample_rate=16000,
)
ALL = [
    ("fp32", False, False),
    ("bf16", True, False),
    ("fp32+compile", False, True),
    ("bf16+compile", True, True),
]
STAGES = [
    dict(name="dit-demo", build=dit_variant, args=DIT_BATCH, variants=ALL, warmup=3, steps=12),
    dict(
        name="vae-demo",
        build=vae_variant,
        args=dict(VAE_BATCH, adversarial=False),
        variants=ALL,
        warmup=2,
        steps=6,
    ),
    dict(
        name="vae-demo-adversarial",
        build=vae_variant,
        args=dict(VAE_BATCH, adversarial=True),
        variants=ALL[:2],
        warmup=1,
        steps=5,
    ),
]
DEFAULTS = {
    "out": Path(__file__).with_name("results_cpu.json"),
    "threads": 2,
    "stages": "",  # only these stages, comma-separated (default: all)
    "eager": False,  # skip the torch.compile variants
}


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    names = [stage["name"] for stage in STAGES]
    only = args["stages"] if isinstance(args["stages"], list) else str(args["stages"] or "").split(",")
    only = [name.strip() for name in only if name.strip()]
    if unknown := sorted(set(only) - set(names)):
        raise SystemExit(f"stages={','.join(unknown)}: expected stages among {', '.join(names)}")
    torch.set_num_threads(args["threads"])
    device = torch.device("cpu")
    report = {
        "command": " ".join(["python -m experiments.throughput.run", *sys.argv[1:]]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args['threads']} threads",
        "torch": torch.__version__,
        "stages": {},
    }
    for stage in STAGES:
        if only and stage["name"] not in only:
            continue
        start = time.perf_counter()
        variants = [
            stage["build"](name, device=device, bf16=bf16, compile=compiled, **stage["args"])
            for name, bf16, compiled in stage["variants"]
            if not (compiled and args["eager"])
        ]
        time_interleaved(variants, stage["warmup"], stage["steps"], device)
        rows = [summarize(v) for v in variants]
        report["stages"][stage["name"]] = {
            "shape": {k: v for k, v in stage["args"].items() if k != "vae_config"},
            "warmup": stage["warmup"],
            "steps": stage["steps"],
            "rows": rows,
            "wall_s": round(time.perf_counter() - start, 1),
        }
        print(f"## {stage['name']}\n{markdown_table(rows)}", flush=True)
        args["out"].write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
