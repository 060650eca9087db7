"""Label adherence at equal training budget: our demo DiT against stable-audio-tools' DiT.

    .venv/bin/python -m experiments.benchmarks.adherence_peer                 # 400 s a side, on a quiet machine
    .venv/bin/python -m experiments.benchmarks.adherence_peer budget=20 per_label=4 output=/tmp/smoke.md
    .venv/bin/python -m experiments.benchmarks.adherence_peer seeds=0,1,2   # three runs a side, and their mean

Both DiTs learn the same latents: the demo VAE's (``vae=``, what ``make demo`` trained) posterior
means of the demo files a DiT trains on (all but the demo's hash split of held-out files),
normalised per channel by their own statistics, as ``encode-dataset`` does; batches of 16 whole
128-frame clips in the same order. Each side trains ``budget`` seconds, in alternating turns of
``slice`` seconds, so a change in the machine's load hits both alike (400 s: the demo DiT's
time in ``make demo`` on a good day).

- ours: the demo DiT recipe as ``make train-diffusion ARGS="experiment=demo_dit"`` composes it
  (timing and label through adaLN-Zero, CFG dropout 0.1, v objective, AdamW with warm-up and
  cosine decay, EMA with warm-up, bf16-mixed where the CPU has it);
- peer: stable-audio-tools' ``DiffusionTransformer`` at the same width, depth and heads, the label
  as its own conditioning for it (a learned embedding, one prepended token, nulled for CFG by its
  ``cfg_dropout_prob`` 0.1); the same objective, optimiser, schedule, EMA and precision, so what
  differs is the network and how the label reaches it.

Both LR schedules end where the budget does (their length estimated from each side's step time
after every turn, as ``quality.py`` does). Then each side generates ``per_label`` clips of every
label from the same noise with the same sampler (ours: ``dpmpp_2m``, 30 steps, CFG 3, the demo's
settings), our VAE decodes them, and ``make evaluate``'s label judge (fitted on real clips; its
accuracy on held-out real clips and on their VAE reconstructions are the ceilings) and
per-label distances score them. Results are appended to ``output``.

``seeds``: one whole run per seed (weights, batch order and sampling noise drawn from it, the
same for both sides); the section lists every run and the mean and range of each side, since
one run cannot separate two recipes (the peer's accuracy moved from 0.54 to 0.41 between two
runs of one recipe).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from experiments.benchmarks import peer
from experiments.benchmarks.quality import train_turn
from experiments.common import parse_arguments

DEFAULTS = {
    "budget": 400.0,  # training seconds per side
    "slice": 20.0,  # seconds per turn
    "per_label": 24,  # generated clips per label and side
    "steps": 30,  # sampling steps
    "cfg_scale": 3.0,
    "vae": "outputs/demo/vae/export",
    "data": "data/demo",
    "output": peer.HERE / "adherence_results.md",
    "ours": "",  # Hydra overrides of our side's recipe, comma-separated: conditioning.label_tokens=true
    "seeds": "0",  # comma-separated: one whole run per seed
}


@dataclass
class DiTSide:
    name: str
    step: Callable  # ((x0 (B, D, T), label ids (B,))) -> loss
    generate: Callable  # (noise (B, D, T), labels (B,), steps=None) -> normalised latents
    describe: Callable[[], str]
    stream: Iterator = None
    used: float = 0.0
    steps: int = 0
    loss: float = math.nan
    after_turn: Callable[[int, float], None] | None = None
    plan: dict = field(default_factory=dict)
    sampled: object = None  # the network generate() samples with (the EMA's average)


def sized_to_budget(side: DiTSide, budget: float) -> Callable[[int, float], None]:
    """The LR schedule's length: the steps still ahead at the pace of the last turn."""

    def after_turn(turn_steps: int, turn_seconds: float) -> None:
        if turn_steps:
            side.plan["total"] = side.steps + round((budget - side.used) * turn_steps / turn_seconds)

    return after_turn


def our_side(
    num_labels: int, latent_dim: int, frames: int, rate: int, hop: int, args, seed: int = 0
) -> DiTSide:
    import torch

    from latentaudio.dit.samplers import sample

    steps = peer.our_steps()
    overrides = [o for o in str(args["ours"]).split(",") if o]
    recipe = steps.dit_recipe(overrides)
    plan = {"total": recipe["trainer"]["max_steps"]}
    bf16 = recipe["trainer"]["precision"].startswith("bf16")
    module, train_step = steps.dit_training(
        None,
        latent_dim,
        torch.device("cpu"),
        bf16=bf16,
        num_labels=num_labels,
        overrides=overrides,
        total_steps=lambda: plan["total"],
        seed=seed,
    )

    def conditions(labels):
        n = labels.shape[0]
        seconds = torch.full((n,), frames * hop / rate)
        return {"seconds_start": torch.zeros(n), "seconds_total": seconds, "label": labels}

    @torch.inference_mode()
    def generate(noise, labels, steps=None):
        network = module.ema.average if module.ema is not None else module.denoiser
        network.eval()
        batch = conditions(labels)
        model = lambda x, t: network.guided(x, t, batch, args["cfg_scale"])  # noqa: E731
        return sample(model, noise, module.objective, "dpmpp_2m", steps or args["steps"])

    o = recipe["optim"]

    def describe() -> str:
        d = recipe["dit"]
        path = "one prepended token" if d.get("global_cond_mode") == "prepend" else "adaLN-Zero"
        return (
            f"our DiT width {d['width']}, depth {d['depth']}, {d['heads']} heads, timing and label through "
            f"{path}; AdamW lr {o['lr']:g}, {o['warmup_steps']} warm-up steps, {o['decay']} decay over "
            f"{plan['total']} steps; EMA {recipe['ema']['decay']}; {recipe['trainer']['precision']}"
            + (f"; overrides {', '.join(overrides)}" if overrides else "")
        )

    side = DiTSide(
        "ours", lambda batch: float(train_step(batch[0], conditions(batch[1]))), generate, describe
    )
    side.plan = plan
    return side


def peer_network(num_labels: int, latent_dim: int, size: dict):
    """stable-audio-tools' transformer at ``size`` (width, depth, heads), the label as one prepended token."""
    import torch
    from stable_audio_tools.models.dit import DiffusionTransformer

    class LabelledDiT(torch.nn.Module):
        """The peer's transformer with the label as one prepended token (its ``prepend_cond``)."""

        def __init__(self):
            super().__init__()
            self.dit = DiffusionTransformer(
                io_channels=latent_dim,
                embed_dim=size["width"],
                depth=size["depth"],
                num_heads=size["heads"],
                cond_token_dim=0,
                prepend_cond_dim=size["width"],
                transformer_type="continuous_transformer",
                diffusion_objective="v",
            )
            self.label = torch.nn.Embedding(num_labels, size["width"])

        def forward(self, x, t, labels, **options):
            token = self.label(labels)[:, None]  # (B, 1, W)
            mask = torch.ones(token.shape[:2], dtype=torch.bool)
            return self.dit(x, t, prepend_cond=token, prepend_cond_mask=mask, **options)

    return LabelledDiT()


def peer_sampler(network, cfg_scale: float, default_steps: int) -> Callable:
    """generate(noise, labels, steps=None) of a ``peer_network``: guided DPM-Solver++ 2M, as on our side."""
    import torch

    from latentaudio.dit.diffusion import make_objective
    from latentaudio.dit.samplers import sample

    @torch.inference_mode()
    def generate(noise, labels, steps=None):
        network.eval()
        model = lambda x, t: network(x, t, labels, cfg_scale=cfg_scale).float()  # noqa: E731
        return sample(model, noise, make_objective("v"), "dpmpp_2m", steps or default_steps)

    return generate


def peer_side(num_labels: int, latent_dim: int, args, seed: int = 0) -> DiTSide:
    import torch

    from latentaudio.training.ema import EMA
    from latentaudio.training.schedules import warmup_decay_lambda

    steps = peer.our_steps()
    recipe = steps.dit_recipe()
    d, o = recipe["dit"], recipe["optim"]
    bf16 = recipe["trainer"]["precision"].startswith("bf16")
    torch.manual_seed(seed)

    network = peer_network(num_labels, latent_dim, d)
    ema = EMA(network, recipe["ema"]["decay"], recipe["ema"]["warmup"])
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"]
    )
    plan = {"total": recipe["trainer"]["max_steps"]}
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: warmup_decay_lambda(o["warmup_steps"], plan["total"], o["decay"], o["min_lr_ratio"])(
            step
        ),
    )

    def step(batch):
        x0, labels = batch
        t = torch.rand(x0.shape[0])
        alpha, sigma = torch.cos(t * math.pi / 2)[:, None, None], torch.sin(t * math.pi / 2)[:, None, None]
        noise = torch.randn_like(x0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = network(x0 * alpha + noise * sigma, t, labels, cfg_dropout_prob=0.1)
        loss = torch.nn.functional.mse_loss(out.float(), noise * alpha - x0 * sigma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), o["grad_clip"])
        optimizer.step()
        schedule.step()
        ema.update(network)
        return float(loss.detach())

    generate = peer_sampler(ema.average, args["cfg_scale"], args["steps"])

    def describe() -> str:
        return (
            f"stable-audio-tools DiffusionTransformer width {d['width']}, depth {d['depth']}, {d['heads']} heads "
            f"(continuous_transformer), label as a learned prepended token; the same optimiser, schedule "
            f"(over {plan['total']} steps), EMA and precision"
        )

    side = DiTSide("stable-audio-tools", step, generate, describe)
    side.plan = plan
    side.sampled = ema.average
    return side


def demo_latents(args):
    """(train latents (N, D, F) normalised, their label ids, labels, real clips by split, the VAE)."""
    import torch

    from latentaudio.adherence import read_real_clips
    from latentaudio.autoencoder import Autoencoder
    from latentaudio.data.split import held_out_files

    root = peer.REPO / args["data"]
    vae = Autoencoder.from_bundle(peer.REPO / args["vae"])
    real = read_real_clips(root, vae.sample_rate)
    held = set(held_out_files(root))
    train = [i for i, p in enumerate(real.paths) if p not in held]
    labels = sorted({str(r.get("label") or "") for r in real.rows} - {""})
    with torch.inference_mode():
        latents = torch.cat([vae.encode(real.clips[i][None], vae.sample_rate) for i in train])  # (N, D, F)
    mean, std = latents.mean(dim=(0, 2), keepdim=True), latents.std(dim=(0, 2), keepdim=True)
    ids = torch.tensor([labels.index(str(real.rows[i]["label"])) for i in train])
    return (latents - mean) / std, ids, labels, real, vae, (mean, std)


def batches(latents, ids, batch_size: int, seed: int) -> Iterator:
    import torch

    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(latents), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = order[start : start + batch_size]
            yield latents[chosen], ids[chosen]


def score(sides, labels, real, vae, stats, frames: int, args, seed: int = 0) -> dict:
    """Each side's clips per label, judged against real clips and their VAE reconstructions."""
    import torch

    from latentaudio import metrics
    from latentaudio.adherence import fit_judge, labels_through_vae, per_label_distances

    rate = vae.sample_rate
    fitted = fit_judge(real)
    judge = fitted[0]
    vae_ceiling = labels_through_vae(vae, real, fitted)["vae_ceiling"]
    n = int(args["per_label"])
    asked = torch.arange(len(labels)).repeat_interleave(n)
    generator = torch.Generator().manual_seed(seed)
    mean, std = stats
    noise = torch.randn(len(asked), mean.shape[1], frames, generator=generator)  # the same for both sides
    real_features = metrics.mfcc_features(real.clips, rate)
    results = {"ceiling": judge.ceiling, "vae_ceiling": vae_ceiling}
    for side in sides:
        x0 = torch.cat([side.generate(noise[i : i + n], asked[i : i + n]) for i in range(0, len(asked), n)])
        with torch.inference_mode():
            clips = list(vae.decode(x0 * std + mean).cpu())  # each (C, T)
        asked_names = [labels[int(i)] for i in asked]
        verdict = judge.judge(clips, asked_names, rate)
        generated = {label: [c for c, a in zip(clips, asked_names) if a == label] for label in labels}
        distances = per_label_distances(real.by_label(), generated, rate)
        results[side.name] = {
            "accuracy": verdict["accuracy"],
            "per_label": verdict["per_label"],
            "fd_same_over_other": sum(v["fd_same"] / v["fd_other"] for v in distances.values())
            / len(distances),
            "fd_mfcc": metrics.frechet_distance(metrics.mfcc_features(clips, rate), real_features),
        }
    return results


def write_results(args, runs, labels, loads) -> str:
    """One section: every run (seed, side) and, over several seeds, each side's mean and range."""
    first = runs[0][2]
    seeds = [seed for seed, _, _ in runs]
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M')}: {args['budget']:.0f} s of training per side ({peer.machine()})",
        "",
        f"Command: `.venv/bin/python -m experiments.benchmarks.adherence_peer budget={args['budget']:g}"
        + (f" ours={args['ours']}" if args["ours"] else "")
        + (f" seeds={args['seeds']}" if len(seeds) > 1 or seeds != [0] else "")
        + "` "
        f"(turns of {args['slice']:g} s; load average {loads[0]:.1f} before, {loads[1]:.1f} after). "
        f"{args['per_label']} clips per label and side, `dpmpp_2m` {args['steps']} steps, CFG {args['cfg_scale']:g}. "
        f"Label judge ceilings: held-out real clips {first['ceiling']:.2f}, their VAE reconstructions "
        f"{first['vae_ceiling']:.2f}.",
        "",
        *[f"- {s.name}: {s.describe()}" for s in runs[0][1]],
        "",
        f"| seed | side | steps | seconds | final loss | label accuracy | per label ({', '.join(labels)}) "
        "| FD same / other | FD MFCC to real |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for seed, sides, results in runs:
        for s in sides:
            r = results[s.name]
            per_label = ", ".join(f"{r['per_label'].get(label, 0.0):.2f}" for label in labels)
            lines.append(
                f"| {seed} | {s.name} | {s.steps} | {s.used:.0f} | {s.loss:.3f} | {r['accuracy']:.2f} | {per_label} "
                f"| {r['fd_same_over_other']:.2f} | {r['fd_mfcc']:.0f} |"
            )
    if len(runs) > 1:
        lines += [
            "",
            "| side | label accuracy, mean (range) | FD same / other, mean | FD MFCC, mean |",
            "|---|---|---:|---:|",
        ]
        for s in runs[0][1]:
            accuracy = [results[s.name]["accuracy"] for _, _, results in runs]
            ratio = [results[s.name]["fd_same_over_other"] for _, _, results in runs]
            fd = [results[s.name]["fd_mfcc"] for _, _, results in runs]
            lines.append(
                f"| {s.name} | {sum(accuracy) / len(accuracy):.2f} ({min(accuracy):.2f}-{max(accuracy):.2f}) "
                f"| {sum(ratio) / len(ratio):.2f} | {sum(fd) / len(fd):.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    peer.run_in_peer_venv("experiments.benchmarks.adherence_peer")
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    latents, ids, labels, real, vae, stats = demo_latents(args)
    _, latent_dim, frames = latents.shape
    seeds = [int(seed) for seed in str(args["seeds"]).split(",") if seed.strip()]
    loads = [os.getloadavg()[0]]
    runs = []
    for seed in seeds:
        sides = [
            our_side(len(labels), latent_dim, frames, vae.sample_rate, vae.hop, args, seed),
            peer_side(len(labels), latent_dim, args, seed),
        ]
        for side in sides:
            side.stream = batches(latents, ids, 16, seed=seed)  # the same batches in the same order
            side.after_turn = sized_to_budget(side, args["budget"])
        while any(side.used < args["budget"] for side in sides):
            for side in sides:
                if side.used < args["budget"]:
                    train_turn(side, min(args["slice"], args["budget"] - side.used))
            print(
                f"seed {seed}: "
                + " | ".join(f"{s.name}: {s.steps} steps, {s.used:.0f} s, loss {s.loss:.3f}" for s in sides),
                flush=True,
            )
        runs.append((seed, sides, score(sides, labels, real, vae, stats, frames, args, seed)))
    loads.append(os.getloadavg()[0])
    text = write_results(args, runs, labels, loads)
    print(text)
    with open(args["output"], "a") as handle:
        handle.write("\n" + text)


if __name__ == "__main__":
    main()
