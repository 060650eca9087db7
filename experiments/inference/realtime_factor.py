"""Realtime factor of every sampler at a few step counts: seconds of audio per second of wall time.

    python -m experiments.inference.realtime_factor vae=outputs/demo/vae/export dit=outputs/demo/dit/export
    python -m experiments.inference.realtime_factor vae=... dit=... seconds=10 steps=8,30,100 runs=3 device=cpu

Each cell is the median of ``runs`` timed runs (after one untimed warm-up per sampler) of
``Pipeline.generate`` in one process: sampling plus VAE decoding, batch 1, the bundle's
cfg_scale. Writes ``results.md`` next to this script (or to ``output=``).
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from latentaudio.dit.samplers import VALID_SAMPLERS
from latentaudio.pipeline import Pipeline

DEFAULTS = {
    "seconds": None,
    "steps": "8,30,100",
    "runs": "3",
    "device": "cpu",
    "output": None,
    "threads": None,
}


def parse(argv: list[str]) -> dict:
    args = dict(DEFAULTS)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in {*DEFAULTS, "vae", "dit"}:
            raise SystemExit(
                f"unknown argument {item!r}; use key=value with keys vae, dit, {', '.join(DEFAULTS)}"
            )
        args[key] = value
    if not args.get("vae") or not args.get("dit"):
        raise SystemExit("vae=<bundle> and dit=<bundle> are required")
    return args


def timed(pipe: Pipeline, **kwargs) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    pipe.generate(**kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str]) -> Path:
    args = parse(argv)
    if args["threads"]:
        torch.set_num_threads(int(args["threads"]))
    pipe = Pipeline.from_bundles(args["vae"], args["dit"], args["device"])
    seconds = float(args["seconds"] or pipe.train_seconds)
    step_counts = [int(s) for s in str(args["steps"]).split(",")]
    runs = int(args["runs"])
    samplers = VALID_SAMPLERS[pipe.objective.name]
    rows = []
    for sampler in samplers:
        pipe.generate(seconds=seconds, sampler=sampler, steps=step_counts[0], seed=0)  # warm-up
        cells = []
        for steps in step_counts:
            times = [
                timed(pipe, seconds=seconds, sampler=sampler, steps=steps, seed=run) for run in range(runs)
            ]
            median = statistics.median(times)
            cells.append(f"{seconds / median:.2f}x ({median:.3f} s)")
            print(
                f"{sampler:>14} {steps:>4} steps: {seconds / median:8.2f}x realtime, median {median:.3f} s",
                flush=True,
            )
        rows.append(f"| {sampler} | " + " | ".join(cells) + " |")
    dit_meta = pipe.bundle.meta
    command = "python -m experiments.inference.realtime_factor " + " ".join(shlex.quote(a) for a in argv)
    device = (
        torch.cuda.get_device_name() if args["device"].startswith("cuda") else platform.processor() or "cpu"
    )
    lines = [
        "# Inference realtime factor",
        "",
        f"Seconds of audio per second of wall time for {seconds:g} s clips, batch 1 (sampling and VAE decoding;",
        f"the median of {runs} runs in one process, after a warm-up). Each cell: factor (median wall time).",
        "",
        f"- DiT bundle: `{args['dit']}` (hash {pipe.bundle.hash}, objective {pipe.objective.name}, "
        f"cfg_scale {pipe.defaults['cfg_scale']}, step {dit_meta.get('step')})",
        f"- VAE bundle: `{args['vae']}` (hash {pipe.autoencoder.hash}, {pipe.sample_rate} Hz, hop {pipe.autoencoder.hop})",
        f"- machine: {device} on `{args['device']}`, nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, Python {platform.python_version()}, load average at the end "
        f"{os.getloadavg()[0]:.1f} (other work on the machine slows every cell)",
        f"- command: `{command}`",
        "",
        "| sampler | " + " | ".join(f"{s} steps" for s in step_counts) + " |",
        "|---|" + "---|" * len(step_counts),
        *rows,
        "",
        "heun makes two model calls per step; every call runs the conditional and unconditional",
        "halves of classifier-free guidance in one batched forward pass.",
        "",
    ]
    output = Path(args["output"] or Path(__file__).parent / "results.md")
    output.write_text("\n".join(lines))
    print(f"wrote {output}")
    return output


if __name__ == "__main__":
    main(sys.argv[1:])
