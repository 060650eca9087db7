"""Quality at equal budget: our demo VAE against the peer's Oobleck VAE at the same size, same data,
same wall-clock training time on this machine, compared by held-out reconstruction metrics.

    .venv/bin/python -m experiments.benchmarks.quality budget=600    # 10 min each side, on a quiet machine
    .venv/bin/python -m experiments.benchmarks.quality budget=20 output=/tmp/quality_smoke.md  # smoke test

Data: the procedural demo dataset in data/demo (written first if missing), split as our training
runs split it (``held_out_files`` with the demo's ``data.val_fraction`` and ``data.split_seed``):
both sides train on random crops of the other files (the same crops, batch and crop length from
the demo recipe) and are evaluated on the whole held-out files after each ``1 / checkpoints``
of the budget. The sides train in alternating turns of ``slice`` seconds until each has used
``budget`` seconds, so a change in the machine's load hits them alike; evaluation is not counted.

- ours: the demo recipe exactly, read from conf/ as ``make train-vae ARGS="experiment=demo_vae"``
  composes it (network, loss, critic from its start step, optimiser, LR schedule, bf16-mixed), with
  the LR schedule sized to the budget (``schedule``: ``budget``, the default, estimates the length
  from the step time so that it ends with the budget; ``demo`` keeps the demo's trainer.max_steps);
- peer: stable-audio-tools' Oobleck at our network's size, trained with its Stable Audio Open
  recipe (``sao_training``); ``peer_critic`` says whether it trains its discriminator: ``off``
  (the default; see the README for why), ``recipe`` (from step 0, alternating batches, as its
  recipe runs it) or ``both`` (two peer sides).

Results are appended to ``output`` (default: ``quality_results.md`` next to this script).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from experiments.benchmarks import peer
from experiments.benchmarks.sao_recipe import sao_training
from experiments.common import WAVEFORM_VAE, parse_arguments

DATA = peer.REPO / "data" / "demo"
METRICS = ("mrstft", "mel", "sisdr")
DEFAULTS = {
    "budget": 600.0,  # training seconds per side
    "slice": 15.0,  # seconds per turn
    "checkpoints": 4,  # held-out evaluations over the budget
    "schedule": "budget",  # or demo
    "peer_critic": "off",  # or recipe, both
    "output": peer.HERE / "quality_results.md",
}
CHOICES = {"schedule": ("budget", "demo"), "peer_critic": ("off", "recipe", "both")}


def demo_recipe() -> dict:
    """What ``make train-vae ARGS="experiment=demo_vae"`` composes in the waveform layout the peer
    shares (``WAVEFORM_VAE``: the demo recipe until its sub-bands), as plain values (the network's
    size without its ``_target_``)."""
    recipe = peer.our_steps().vae_recipe(WAVEFORM_VAE)
    recipe["vae"].pop("_target_")
    return recipe


# ------------------------------------------------------------------------------ data and metrics


def load_clips(root: Path, paths: list[str]) -> list:
    from latentaudio.audio import read_audio

    return [read_audio(root / path, sample_rate=peer.RATE, channels=1)[0] for path in paths]  # (1, T) each


def crops(clips: list, batch: int, samples: int, generator):
    import torch

    while True:
        picks = torch.randint(len(clips), (batch,), generator=generator).tolist()
        items = []
        for i in picks:
            clip = clips[i]
            start = int(torch.randint(max(1, clip.shape[-1] - samples + 1), (1,), generator=generator))
            item = clip[:, start : start + samples]
            items.append(torch.nn.functional.pad(item, (0, samples - item.shape[-1])))
        yield torch.stack(items)  # (B, 1, samples)


def held_out_metrics(reconstruct, clips: list, hop: int) -> dict[str, float]:
    """Mean metrics over whole files, each padded to a multiple of ``hop`` and the decode cut back."""
    import torch

    from latentaudio.evaluation import mean_metrics, reconstruction_metrics

    per_file = {}
    with torch.inference_mode():
        for i, clip in enumerate(clips):
            reference = clip[None]  # (1, 1, T)
            padded = torch.nn.functional.pad(reference, (0, -reference.shape[-1] % hop))
            decoded = reconstruct(padded)[..., : reference.shape[-1]]
            values = reconstruction_metrics(decoded, reference, peer.RATE)
            per_file[str(i)] = {k: float(v.mean()) for k, v in values.items()}
    return mean_metrics(per_file, METRICS)


# ------------------------------------------------------------------------------ the sides


@dataclass
class Side:
    name: str
    model: object  # the nn.Module that is evaluated
    step: Callable  # (audio (B, 1, T)) -> this side's spectral training loss
    reconstruct: Callable  # (1, 1, T), T a multiple of the hop -> (1, 1, T)
    stream: Iterator
    describe: Callable[[], str]  # the recipe, one line for the results
    used: float = 0.0
    steps: int = 0
    loss: float = math.nan
    after_turn: Callable[[int, float], None] | None = None  # (steps, seconds) of the turn just done


def our_side(recipe: dict, schedule: str, budget: float, stream) -> Side:
    import torch

    steps = peer.our_steps()
    plan = {"total": recipe["trainer"]["max_steps"]}
    bf16 = recipe["trainer"]["precision"].startswith("bf16")
    module, step = steps.vae_training(
        recipe["vae"],
        torch.device("cpu"),
        bf16=bf16,
        recipe=recipe,
        total_steps=lambda: plan["total"],
    )
    vae = module.vae
    o, w, d = recipe["optim"], recipe["loss"], recipe["discriminator"]

    def describe() -> str:
        sized = "estimated from the step time after each turn" if schedule == "budget" else "the demo's"
        return (
            f"AudioVAE {recipe['vae']['base_channels']} channels, {recipe['trainer']['precision']}; "
            f"AdamW lr {o['lr']:g} betas {tuple(o['betas'])} wd {o['weight_decay']:g}, {o['warmup_steps']} "
            f"warm-up steps, {o['decay']} decay to {o['min_lr_ratio']:g} over {plan['total']} steps ({sized}); "
            f"clip {o['grad_clip']:g}; MR-STFT {w['fft_sizes']} + L1 waveform x{w['waveform_weight']:g} + "
            f"KL x{w['kl_weight']:g}; {d['kind']} critic ({d['filters']} filters, n_ffts {d['n_ffts']}, "
            f"{w['adversarial_kind']}, adv x{w['adversarial_weight']:g}, FM x{w['feature_matching_weight']:g}, "
            f"lr {o['disc_lr']:g}) from step {w['adversarial_start_step']}"
        )

    def after_turn(turn_steps: int, turn_seconds: float) -> None:
        # the steps still ahead at the pace of the last turn: the cosine ends where the budget does
        if schedule == "budget" and turn_steps:
            plan["total"] = side.steps + round((budget - side.used) * turn_steps / turn_seconds)

    side = Side("ours", vae, step, lambda x: vae.decode(vae.encode(x)), stream, describe)
    side.after_turn = after_turn
    return side


def peer_side(name: str, recipe: dict, critic: bool, stream) -> Side:
    import torch

    torch.manual_seed(0)
    size = {k: recipe["vae"][k] for k in ("base_channels", "channel_mults", "strides", "latent_dim")}
    autoencoder, step, text = sao_training(size, recipe["discriminator"] if critic else None)

    def reconstruct(x):
        # the peer's bottleneck always samples: take the posterior mean, as our encode does
        return autoencoder.decode(autoencoder.encode(x, skip_bottleneck=True).chunk(2, dim=1)[0])

    return Side(name, autoencoder, step, reconstruct, stream, lambda: text)


# ------------------------------------------------------------------------------ training in turns


def train_turn(side: Side, seconds: float) -> None:
    start, steps = time.perf_counter(), side.steps
    while time.perf_counter() - start < seconds:
        side.loss = float(side.step(next(side.stream)))
        side.steps += 1
    turn_seconds = time.perf_counter() - start
    side.used += turn_seconds
    if side.after_turn is not None:
        side.after_turn(side.steps - steps, turn_seconds)


def evaluate(sides: list[Side], held_out: list, hop: int) -> dict[str, dict]:
    results = {}
    for side in sides:
        side.model.eval()
        results[side.name] = held_out_metrics(side.reconstruct, held_out, hop)
        side.model.train()
    return results


def train_and_evaluate(sides: list[Side], args, held_out: list, hop: int) -> list[dict]:
    """Alternating turns up to each checkpoint, then every side on the held-out files."""
    curve = []
    for k in range(1, args["checkpoints"] + 1):
        target = args["budget"] * k / args["checkpoints"]
        while any(side.used < target for side in sides):
            for side in sides:
                if side.used < target:
                    train_turn(side, min(args["slice"], target - side.used))
            print(
                " | ".join(f"{s.name}: {s.steps} steps, {s.used:.0f} s, loss {s.loss:.3f}" for s in sides),
                flush=True,
            )
        metrics = evaluate(sides, held_out, hop)
        for side in sides:
            m = metrics[side.name]
            curve.append(
                dict(side=side.name, target=target, steps=side.steps, used=side.used, loss=side.loss, **m)
            )
            print(
                f"  checkpoint {k}/{args['checkpoints']} ({target:.0f} s) {side.name}: "
                + ", ".join(f"{name} {m[name]:.3f}" for name in METRICS),
                flush=True,
            )
    return curve


# ------------------------------------------------------------------------------ results


def write_results(args, sides: list[Side], curve: list[dict], files: dict, loads: tuple) -> str:
    parameters = ", ".join(f"{s.name} {sum(p.numel() for p in s.model.parameters()):,}" for s in sides)
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M')}: {args['budget']:.0f} s of training per side ({peer.machine()})",
        "",
        f"{files['train']} training files, {files['held_out']} held out (the demo's hash split, "
        f"`held_out_files(root, {files['val_fraction']}, {files['seed']})`), evaluated whole after each "
        f"{args['budget'] / args['checkpoints']:.0f} s; turns of {args['slice']:.0f} s; load average "
        f"{loads[0]:.1f} before, {loads[1]:.1f} after. Parameters: {parameters}.",
        "",
        *[f"- {s.name}: {s.describe()}" for s in sides],
        "",
        "| budget (s) | side | steps | seconds used | train spectral loss (own) | MR-STFT | mel | SI-SDR (dB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in curve:
        lines.append(
            f"| {row['target']:.0f} | {row['side']} | {row['steps']} | {row['used']:.0f} | {row['loss']:.3f} "
            f"| {row['mrstft']:.3f} | {row['mel']:.3f} | {row['sisdr']:.2f} |"
        )
    return "\n".join(lines) + "\n\n"


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    for key, choices in CHOICES.items():
        if args[key] not in choices:
            raise SystemExit(f"{key}={args[key]}: expected one of {', '.join(choices)}")
    if Path(sys.prefix).resolve() != peer.PEER_VENV.resolve():
        if not DATA.exists():
            subprocess.run([sys.executable, "-m", "latentaudio.apps.demo_data"], cwd=peer.REPO, check=True)
        peer.run_in_peer_venv("experiments.benchmarks.quality")

    import torch

    from latentaudio.data.scan import scan_audio_folder
    from latentaudio.data.split import held_out_files

    loads = [os.getloadavg()[0]]
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    recipe = demo_recipe()
    data = recipe["data"]
    held_out_paths = held_out_files(DATA, data["val_fraction"], data["split_seed"])
    train_paths = [
        f.path for f in scan_audio_folder(DATA, progress=False).files if f.path not in held_out_paths
    ]
    train, held_out = load_clips(DATA, train_paths), load_clips(DATA, held_out_paths)

    def stream():
        # every side sees the same crops: its own generator, the same seed
        return crops(train, data["batch_size"], data["sample_length"], torch.Generator().manual_seed(0))

    sides = [our_side(recipe, args["schedule"], args["budget"], stream())]
    if args["peer_critic"] in ("off", "both"):
        sides.append(peer_side("peer", recipe, False, stream()))
    if args["peer_critic"] in ("recipe", "both"):
        sides.append(peer_side("peer+critic", recipe, True, stream()))
    hop = math.prod(recipe["vae"]["strides"])
    print(f"{len(train)} training files, {len(held_out)} held out; sides: {', '.join(s.name for s in sides)}")
    curve = train_and_evaluate(sides, args, held_out, hop)
    loads.append(os.getloadavg()[0])
    files = dict(
        train=len(train), held_out=len(held_out), val_fraction=data["val_fraction"], seed=data["split_seed"]
    )
    text = write_results(args, sides, curve, files, tuple(loads))
    with args["output"].open("a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
