"""Issue 18's CPU figure: the DiT at the peer's medium size (width 512, depth 12) in its training
step, as a share of this CPU's measured matmul peak, in fp32 and in bf16 autocast.

    .venv/bin/python -m experiments.throughput.cpu_mfu          # writes cpu_mfu.md beside this file

The peaks are measured here, not taken from a data sheet: the median rate of a 2048 x 2048 x 2048
matmul in each dtype on the same threads. The step is the LightningModule's own training step
(steps.py) with timing and label conditioning, batch 8 x 256 latent frames of 64 channels, fp32
and bf16 autocast taking turns; MFU = 3 x the forward matmul FLOPs (``DiT.flops``) per second over
the peak of the step's dtype.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

from experiments.common import markdown_table, parse_arguments, summarize, time_interleaved
from experiments.throughput.steps import dit_variant

HERE = Path(__file__).resolve().parent
DEFAULTS = {"threads": 2, "warmup": 2, "steps": 6, "batch": 8, "frames": 256}
SIZE = dict(width=512, depth=12, heads=8)  # the peer's medium DiT


def matmul_peak(dtype: torch.dtype, n: int = 2048, runs: int = 7) -> float:
    """FLOP/s of an n x n x n matmul in ``dtype``: the median of ``runs`` after one warm-up."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.matmul(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__)
    torch.set_num_threads(int(args["threads"]))
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    cpu = torch.device("cpu")
    shape = dict(latent_dim=64, batch_size=int(args["batch"]), frames=int(args["frames"]), hop=2048)
    variants = [
        dit_variant(name, SIZE, **shape, sample_rate=44100, device=cpu, bf16=name == "bf16", compile=False)
        for name in ("fp32", "bf16")
    ]
    time_interleaved(variants, int(args["warmup"]), int(args["steps"]), cpu)
    rows = [summarize(v, peaks[v.name]) for v in variants]
    lines = [
        "# DiT 512 x 12 training step on this CPU: share of the matmul peak (written by cpu_mfu.py)",
        "",
        f"Command: `.venv/bin/python -m experiments.throughput.cpu_mfu {' '.join(argv)}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {args['threads']} threads; matmul peaks measured here: "
        f"fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s. Batch "
        f"{args['batch']} x {args['frames']} frames, 64 latent channels; {args['warmup']} warm-up and "
        f"{args['steps']} timed steps per variant, taking turns. `mfu`: against the peak of its own dtype.",
        "",
        markdown_table(rows),
        "",
    ]
    (HERE / "cpu_mfu.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
