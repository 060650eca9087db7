"""Regression guard: a small, fast benchmark of the demo-size models (not a test). `make bench`.

Prints one ``name value unit`` line per figure, in a fixed order, so two runs compare with
``diff`` or a spreadsheet: run it before and after a change, on the same machine and load.

    .venv/bin/python -m experiments.bench              # about 2 minutes on 2 idle cores
    .venv/bin/python -m experiments.bench quick=true   # fewer steps, for a smoke check
    make bench ARGS="adherence=path/to/evaluate/output/metrics.json"   # + adherence figures

Figures: VAE training-step throughput (fp32 and bf16 autocast), DiT training-step throughput
and its model-FLOPs utilisation against this machine's fp32 matmul peak, sampling realtime
factor of an untrained demo DiT + VAE at fixed steps, and the reconstruction metrics of a tiny
VAE after a short fixed-seed training on tones; with ``adherence=<metrics.json>``, also the
adherence figures of a `make evaluate ... dit=...` run's metrics.json. The training steps are the
LightningModules' own, built by experiments/throughput/steps.py from the demo experiments, the
same code the throughput and peer benchmarks run.
"""

from __future__ import annotations

import math
import sys
import time

import torch

from experiments.common import model_size, parse_arguments
from experiments.throughput.steps import dit_training, vae_training
from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.samplers import sample
from latentaudio.evaluation import reconstruction_metrics
from latentaudio.vae.model import AudioVAE

RATE = 16000
DEMO_VAE = model_size("vae", "demo")
TINY_VAE = model_size("vae", "tiny")
DEMO_DIT = model_size("dit", "demo")
FP32_PEAK_FLOPS = 150e9  # this machine's measured fp32 matmul peak (experiments/demo/results.md)
CPU = torch.device("cpu")
DEFAULTS = {
    "quick": False,  # fewer steps: a smoke check, noisier figures
    "threads": 2,
    "adherence": "",  # a `make evaluate ... dit=...` run's metrics.json: also print its adherence figures
}


def report(name: str, value: float, unit: str) -> None:
    print(f"{name} {value:.4g} {unit}", flush=True)


def seconds_per_call(fn, steps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def timing_batch(size: int, seconds: float) -> dict:
    return {"seconds_start": torch.zeros(size), "seconds_total": torch.full((size,), seconds)}


def bench_vae(steps: int) -> None:
    audio = 0.1 * torch.randn(4, 1, 8192)
    seconds_of_audio = audio.shape[0] * audio.shape[-1] / RATE
    for name, bf16 in (("fp32", False), ("bf16", True)):
        # the demo recipe's loss and optimiser, no discriminator
        _, step = vae_training(DEMO_VAE, CPU, bf16=bf16, adversarial=False, sample_rate=RATE)
        elapsed = seconds_per_call(lambda step=step: step(audio), steps)
        report(f"vae_demo_train_{name}", seconds_of_audio / elapsed, "audio_s/s")


def bench_dit(steps: int) -> None:
    module, step = dit_training(DEMO_DIT, 16, CPU, overrides=["ema.decay=0"])
    batch, frames = 16, 128
    x0 = torch.randn(batch, 16, frames)
    conditions = timing_batch(batch, frames * 256 / RATE)
    elapsed = seconds_per_call(lambda: step(x0, conditions), steps)
    report("dit_demo_train_fp32", batch * frames * 256 / RATE / elapsed, "audio_s/s")
    flops = 3 * batch * module.denoiser.dit.flops(frames)  # forward + backward
    report("dit_demo_train_mfu_fp32", 100 * flops / elapsed / FP32_PEAK_FLOPS, "%")


@torch.inference_mode()
def bench_sampling(steps: int) -> None:
    torch.manual_seed(0)
    denoiser, vae = dit_training(DEMO_DIT, 16, CPU)[0].denoiser.eval(), AudioVAE(**DEMO_VAE).eval()
    objective = make_objective("v")
    clips, frames = 2, 128
    conditions = timing_batch(clips, frames * 256 / RATE)
    noise = torch.randn(clips, 16, frames)

    def generate() -> None:
        x0 = sample(lambda x, t: denoiser.guided(x, t, conditions, 3.0), noise, objective, "dpmpp_2m", steps)
        vae.decode(x0)

    elapsed = seconds_per_call(generate, 1)
    report(f"sampling_demo_rtf_{steps}steps_cfg3", clips * frames * 256 / RATE / elapsed, "x_realtime")


def bench_tiny_training(steps: int) -> None:
    """A tiny VAE trained for ``steps`` fixed-seed steps on tones, measured on a held-out tone."""
    torch.manual_seed(0)
    t = torch.arange(4096) / RATE
    tones = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in (220.0, 330.0, 440.0, 660.0)])[:, None]
    module, step = vae_training(TINY_VAE, CPU, adversarial=False, sample_rate=RATE)
    vae = module.vae
    start = time.perf_counter()
    for _ in range(steps):
        loss = float(step(tones))
    elapsed = time.perf_counter() - start
    held_out = 0.5 * torch.sin(2 * math.pi * 550.0 * t)[None, None]
    with torch.inference_mode():
        decoded = vae.decode(vae.encode(held_out), length=held_out.shape[-1])
        values = reconstruction_metrics(decoded, held_out, RATE)
    report(f"vae_tiny_{steps}steps_train_loss", loss, "loss")
    report(f"vae_tiny_{steps}steps_mrstft", float(values["mrstft"].mean()), "distance")
    report(f"vae_tiny_{steps}steps_mel", float(values["mel"].mean()), "distance")
    report(f"vae_tiny_{steps}steps_sisdr", float(values["sisdr"].mean()), "dB")
    report("vae_tiny_train", steps * tones.shape[0] * tones.shape[-1] / RATE / elapsed, "audio_s/s")


def bench_adherence(metrics_path: str) -> None:
    """The adherence and floor figures of a `make evaluate ... dit=...` run, each beside its ceiling."""
    import json

    summary = json.loads(open(metrics_path).read())
    result = summary.get("adherence") or {}
    if "labels" in result:
        report("adherence_label_accuracy", result["labels"]["accuracy"], "fraction")
        report("adherence_label_ceiling", result["labels"]["ceiling"], "fraction")
    for side in ("generated", "real"):
        for name, value in ((result.get("captions") or {}).get(side) or {}).items():
            if name.endswith(("_exact", "_octave", "_accuracy")):
                report(f"adherence_{side}_{name}", value, "fraction")
    if "timing" in result:
        report("adherence_timing_error", result["timing"]["generated"]["mean_abs_error_s"], "s")
    for set_name, values in (summary.get("floors") or {}).items():
        report(f"fd_mfcc_{set_name}_vs_real_half", values["fd_mfcc"], "distance")


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    torch.set_num_threads(args["threads"])
    report("torch_threads", torch.get_num_threads(), "threads")
    bench_vae(steps=1 if args["quick"] else 2)
    bench_dit(steps=2 if args["quick"] else 5)
    bench_sampling(steps=10)
    bench_tiny_training(steps=10 if args["quick"] else 40)
    if args["adherence"]:
        bench_adherence(str(args["adherence"]))


if __name__ == "__main__":
    main()
