"""Our VAE network against the peer's Oobleck at equal size: forward + loss + backward, on the CPU.

    .venv/bin/python -m experiments.throughput.vae_network                     # ours vs peer, 7 rounds
    git show HEAD:latentaudio/vae/model.py > /tmp/model_before.py
    .venv/bin/python -m experiments.throughput.vae_network before=/tmp/model_before.py profile=true
    .venv/bin/python -m experiments.throughput.vae_network compile_snake=true   # adds ours + compiled snake

Both networks get the same input (batch 8 x 8192 samples at 16 kHz mono, fp32) and the same loss
(our conf/train_vae.yaml MR-STFT + 1e-4 KL; ``loss=sum`` sums the outputs instead), so only the
networks differ. The sides take turns (ours, peer, ours, peer, ...) for ``rounds`` rounds and
the median of each is printed: wall seconds, CPU seconds of this process (user + sys, less hit by
other jobs than wall time) and minor page faults per step (pages the allocator had handed back to
the OS and the step touched again). ``optimizer=true`` adds gradient clipping and AdamW, as in
``peer.py``; ``bf16=true`` runs both networks under bf16 autocast (our loss computes its STFTs in
float32 regardless). ``before=<file>`` also times a saved copy of latentaudio/vae/model.py as
"before"; ``compile_snake=true`` adds ours with ``compile_snake=True``. ``profile=true`` prints
torch.profiler's top operators by self CPU time, one step each (``rows`` of them). Threads: 2,
or ``BENCH_THREADS``; on a machine shared with other jobs, 2 threads wait on each other at every
op, and ``BENCH_THREADS=1`` gives far steadier figures.

Runs in ``experiments/benchmarks/.venv-peer`` (made by ``peer.ensure_peer_venv()`` on first use),
which sees our venv, so both sides use the same torch.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from experiments.benchmarks import peer
from experiments.common import parse_arguments

HERE = Path(__file__).resolve().parent

BATCH, SAMPLES = peer.VAE_BATCH, peer.VAE_SAMPLES
DEFAULTS = {
    "rounds": 7,
    "loss": "ours",  # or sum
    "optimizer": False,
    "bf16": False,
    "before": None,
    "compile_snake": False,
    "profile": False,
    "rows": 20,
}


def load_model_module(path: Path):
    """A saved copy of latentaudio/vae/model.py (say, from ``git show``) as its own module."""
    spec = importlib.util.spec_from_file_location("model_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def make_sides(args) -> dict:
    import torch

    from latentaudio.vae import model as our_model
    from latentaudio.vae.losses import SpectralReconstructionLoss

    spectral = SpectralReconstructionLoss(peer.RATE, 1, *peer.OUR_LOSS_SIZES)

    def loss_of(reconstruction, audio, kl):
        if args["loss"] == "sum":
            return reconstruction.sum() + kl
        return spectral(reconstruction, audio)[0] + 1e-4 * kl

    def training_step(module, forward):
        optimizer = torch.optim.AdamW(module.parameters(), lr=1.5e-4, betas=(0.8, 0.99))

        def step(audio):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args["bf16"]):
                reconstruction, kl = forward(audio)
            loss = loss_of(reconstruction, audio, kl)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args["optimizer"]:
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                optimizer.step()

        return step

    def ours(module, **extra):
        torch.manual_seed(0)
        vae = module.AudioVAE(channels=1, **peer.VAE_SIZE, **extra)

        def forward(audio):
            out = vae(audio)
            return out.reconstruction, out.kl

        return vae, training_step(vae, forward)

    def theirs():
        torch.manual_seed(0)
        autoencoder = peer.theirs_vae()[0]

        def forward(audio):
            latents, info = autoencoder.encode(audio, return_info=True)
            return autoencoder.decode(latents), info["kl"]

        return autoencoder, training_step(autoencoder, forward)

    sides = {}
    if args["before"]:
        sides["before"] = ours(load_model_module(Path(args["before"])))
    sides["ours"] = ours(our_model)
    sides["peer"] = theirs()
    if args["compile_snake"]:
        sides["ours+compiled snake"] = ours(our_model, compile_snake=True)
    return sides


def measured(step, audio) -> tuple[float, float, int]:
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    step(audio)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, after.ru_minflt - before.ru_minflt


def profile_table(step, audio, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(audio)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    if args["loss"] not in ("ours", "sum"):
        raise SystemExit(f"loss={args['loss']}: expected ours or sum")
    if Path(sys.prefix).resolve() != peer.PEER_VENV.resolve():
        peer.ensure_peer_venv()
        os.execv(str(peer.PEER_PYTHON), [str(peer.PEER_PYTHON), __file__, *sys.argv[1:]])

    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(BATCH, 1, SAMPLES)
    sides = make_sides(args)
    for label, (module, step) in sides.items():
        start = time.perf_counter()
        step(audio)  # warm-up: allocator, kernels, and for the compiled snake its compile
        step(audio)
        params = sum(p.numel() for p in module.parameters())
        print(
            f"{label}: {params:,} parameters, two warm-up steps {time.perf_counter() - start:.1f} s",
            flush=True,
        )

    if args["profile"]:
        for label, (_, step) in sides.items():
            print(
                f"\n== {label}: top operators, one step ==\n{profile_table(step, audio, args['rows'])}",
                flush=True,
            )

    results = {label: [] for label in sides}
    for r in range(args["rounds"]):
        for label, (_, step) in sides.items():
            results[label].append(measured(step, audio))
        print(
            f"round {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f} s" for k, v in results.items()),
            flush=True,
        )
    audio_seconds = BATCH * SAMPLES / peer.RATE
    print(
        f"\nmedian of {args['rounds']} rounds, loss={args['loss']}, optimizer={args['optimizer']}, "
        f"bf16={args['bf16']}, "
        f"{torch.get_num_threads()} threads:"
    )
    print("| side | wall s / step | CPU s / step | minor faults / step | audio-s / wall-s |")
    print("|---|---:|---:|---:|---:|")
    for label, values in results.items():
        wall, cpu, faults = (statistics.median(column) for column in zip(*values, strict=True))
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {faults:,.0f} | {audio_seconds / wall:.2f} |")


if __name__ == "__main__":
    main()
