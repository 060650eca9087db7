"""Issue 18, part 3: VAE decoding in bf16 against fp32, per batch size and length.

    .venv/bin/python -m experiments.inference.decode            # writes experiments/inference/decode.md

Decodes random latents of the demo VAE (the DiT's samples are unit-variance latents too) with
``Autoencoder(decode_precision="fp32")`` and ``"bf16"``, one after the other per size, median of
5 runs after a warm-up; the error is the SI-SDR of the bf16 output against the fp32 output.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

from experiments.common import parse_arguments

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "inference" / "decode.md"
SIZES = ((1, 2.0), (4, 2.0), (16, 2.0), (1, 10.0), (4, 10.0))


def main(argv: list[str]) -> None:
    from latentaudio import metrics
    from latentaudio.autoencoder import Autoencoder
    from latentaudio.devices import native_bf16

    args = parse_arguments(argv, {"vae": "outputs/demo/vae/export", "runs": 5}, __doc__)
    coders = {p: Autoencoder.from_bundle(ROOT / args["vae"], decode_precision=p) for p in ("fp32", "bf16")}
    rate, hop = coders["fp32"].sample_rate, coders["fp32"].hop
    lines = [
        "# VAE decoding: bf16 against fp32 (written by experiments/inference/decode.py)",
        "",
        f"Command: `.venv/bin/python -m experiments.inference.decode runs={args['runs']}`; the demo VAE, "
        f"{torch.get_num_threads()} threads, native bf16 on this CPU: {native_bf16('cpu')}; median of "
        f"{args['runs']} runs after a warm-up.",
        "",
        "| batch | seconds | fp32 ms | bf16 ms | bf16 speed-up | SI-SDR of bf16 against fp32 |",
        "|---|---|---|---|---|---|",
    ]
    generator = torch.Generator().manual_seed(0)
    for batch, seconds in SIZES:
        latents = torch.randn(
            batch, coders["fp32"].latent_dim, int(seconds * rate / hop), generator=generator
        )
        times, outputs = {}, {}
        for precision, coder in coders.items():
            runs = []
            for _ in range(args["runs"] + 1):
                start = time.perf_counter()
                outputs[precision] = coder.decode(latents)
                runs.append(time.perf_counter() - start)
            times[precision] = statistics.median(runs[1:])
        error = float(metrics.si_sdr(outputs["bf16"], outputs["fp32"]).mean())
        lines.append(
            f"| {batch} | {seconds:g} | {times['fp32'] * 1e3:.0f} | {times['bf16'] * 1e3:.0f} | "
            f"{times['fp32'] / times['bf16']:.2f}x | {error:.1f} dB |"
        )
        print(lines[-1], flush=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
