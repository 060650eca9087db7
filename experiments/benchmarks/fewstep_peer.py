"""Sampling at equal quality (issue 18): our distilled demo DiT against stable-audio-tools' DiT trained as long.

    make distill ARGS="dit=outputs/demo/dit/export vae=outputs/demo/vae/export data.root=data/demo \\
        hydra.run.dir=outputs/demo/distill"
    .venv/bin/python -m experiments.benchmarks.fewstep_peer            # the budget from our two training logs
    .venv/bin/python -m experiments.benchmarks.fewstep_peer seeds=0,1  # one peer per seed, and their mean
    .venv/bin/python -m experiments.benchmarks.fewstep_peer kept=true peer_steps=7,6   # the kept peer, more steps
    .venv/bin/python -m experiments.benchmarks.fewstep_peer budget=20 per_label=2 rounds=2 output=/tmp/smoke.md keep=/tmp/peer

Our side is what a user of the demo has: the demo DiT (``make demo``) distilled by ``make distill``
into a student that samples in 4 steps without guidance (``distilled``; its 8-step round and the
teacher at its own 30 guided steps are scored beside it). Its cost is the wall-clock time of both
trainings, read from their logs (``train_diffusion.log``, first line to ``done``). The peer's DiT
(``adherence_peer.py``'s: stable-audio-tools' ``DiffusionTransformer`` at the demo's size, the
label as a learned prepended token; the demo's latents, batches, optimiser, LR schedule, EMA and
precision) trains that long (``budget``; given, it overrides the logs), then samples with guidance
(CFG 3, DPM-Solver++ 2M) at 50, 16, 8 and 4 steps: distillation is what it lacks, so fewer steps
cost it quality, which the table shows.

Quality: every configuration generates ``per_label`` clips of each label from the same noise, our
VAE decodes them, and ``adherence_peer.score`` judges them (label accuracy with its ceilings,
FD of each label's clips to its real clips over that to the other labels', FD on MFCC statistics
to the real clips). Speed: sampling plus the decode of ``batch`` clips per call, the
configurations taking turns call by call (``peer.alternate``), the median of ``rounds`` rounds
after ``warmup`` calls, and each configuration's time over our 4-step student's, round by round.
Both sides decode with the same VAE at ``decode`` precision: "auto" by default, what ``make
generate`` decodes with (bf16 on a CPU with native bf16, within -37 dB of fp32), or "fp32"; the
decode's share dilutes the ratio as it would for a user. The scores always decode in fp32.

The peer's averaged weights and its scores are kept in ``outputs/bench/fewstep_peer/`` (seed 0's),
which ``make bench-peer`` reads for its "sampling at equal quality" row.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from experiments.benchmarks import adherence_peer, peer
from experiments.benchmarks.quality import train_turn
from experiments.common import parse_arguments

DEFAULTS = {
    "budget": 0.0,  # the peer's training seconds; 0: our teacher's plus our distillation's, from their logs
    "slice": 20.0,  # seconds per training turn (between turns the peer's LR schedule is re-sized)
    "per_label": 24,  # generated clips per label and configuration
    "cfg_scale": 3.0,  # the peer's guidance (and our teacher's bundle setting)
    "steps": 30,  # unused default of adherence_peer's sides; each configuration names its steps
    "peer_steps": "50,16,8,4",
    "vae": "outputs/demo/vae/export",
    "teacher": "outputs/demo/dit",  # a training run folder (export/ and train_diffusion.log)
    "distilled": "outputs/demo/distill",  # make distill's run folder (export/, rounds/, the log)
    "data": "data/demo",
    "batch": peer.SAMPLE_BATCH,  # clips per timed sampling call
    "decode": "auto",  # the timed decode's precision: auto (make generate's default: bf16 where native), fp32, bf16
    "warmup": 2,
    "rounds": 7,
    "seeds": "0",
    "output": peer.HERE / "fewstep_peer_results.md",
    "keep": "outputs/bench/fewstep_peer",  # the peer's weights and scores, for make bench-peer
    "kept": False,  # true: score and time the kept peer again at peer_steps (no training); added to its scores
}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\]")


def training_seconds(run: Path) -> float:
    """Wall-clock seconds of one training run: its log's first line to the line that says ``done``."""
    log = run / "train_diffusion.log"
    if not log.is_file():
        raise SystemExit(
            f"{log}: not there; train it first (see this script's --help) or pass budget=SECONDS"
        )
    stamps = [(STAMP.match(line), line) for line in log.read_text().splitlines()]
    stamps = [(datetime.fromisoformat(m.group(1)), line) for m, line in stamps if m]
    done = [t for t, line in stamps if "][latentaudio][INFO] done:" in line]
    if not stamps or not done:
        raise SystemExit(f"{log}: no finished run in it (no 'done:' line); pass budget=SECONDS")
    return (done[-1] - stamps[0][0]).total_seconds()


def bundle_generator(vae, dit: Path, stats):
    """generate(noise, labels) of one of our bundles with its own sampler, steps, schedule and
    guidance, as latents normalised by ``stats`` (what ``score`` decodes), and how it samples."""
    import torch

    from latentaudio.bundle import load_bundle
    from latentaudio.dit.samplers import SCHEDULE_KEYS, sample
    from latentaudio.pipeline import Pipeline

    pipeline = Pipeline(vae, load_bundle(dit, kind="dit"))
    settings = pipeline.defaults
    steps, cfg_scale = int(settings["steps"]), float(settings["cfg_scale"])
    mean, std = stats

    @torch.inference_mode()
    def generate(noise, labels):
        batch = pipeline.conditions(noise.shape[0], pipeline.train_seconds)
        batch["label"] = labels
        model = lambda x, t: pipeline.denoiser.guided(x, t, batch, cfg_scale).float()  # noqa: E731
        schedule = {k: settings[k] for k in SCHEDULE_KEYS if k in settings}
        x0 = sample(model, noise, pipeline.objective, settings["sampler"], steps, **schedule)
        return (x0 * pipeline.latent_std + pipeline.latent_mean - mean) / std

    return generate, f"{settings['sampler']}, {steps} steps, CFG {cfg_scale:g}"


def configurations(args, vae, stats, peer_side) -> dict[str, SimpleNamespace]:
    """Name -> (generate, how it samples): ours first, the distilled export (4 steps) as "ours"."""
    root = peer.REPO
    distilled = root / args["distilled"]
    rounds = {int(p.name.removesuffix("steps")): p for p in (distilled / "rounds").glob("*steps")}
    out = {}
    generate, how = bundle_generator(vae, distilled / "export", stats)
    out["ours"] = SimpleNamespace(generate=generate, how=f"ours, distilled: {how}")
    if 8 in rounds:
        generate, how = bundle_generator(vae, rounds[8], stats)
        out["ours_8"] = SimpleNamespace(generate=generate, how=f"ours, distilled (8-step round): {how}")
    generate, how = bundle_generator(vae, root / args["teacher"] / "export", stats)
    out["ours_teacher"] = SimpleNamespace(generate=generate, how=f"ours, the teacher: {how}")
    for steps in [int(s) for s in str(args["peer_steps"]).split(",") if s.strip()]:
        out[f"peer_{steps}"] = SimpleNamespace(
            generate=lambda noise, labels, steps=steps: peer_side.generate(noise, labels, steps),
            how=f"stable-audio-tools: dpmpp_2m, {steps} steps, CFG {args['cfg_scale']:g}",
        )
    return out


def sample_and_decode(vae, stats, batch: int, frames: int, num_labels: int, seed: int = 0):
    """call(generate): sample ``batch`` clips (labels in turn, fixed noise) and decode them, the
    unit every timing here measures; and the audio seconds one call makes."""
    import torch

    mean, std = stats
    noise = torch.randn(batch, mean.shape[1], frames, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(batch) % num_labels

    @torch.inference_mode()
    def call(generate):
        vae.decode(generate(noise.clone(), labels) * std + mean)

    return call, batch * frames * vae.hop / vae.sample_rate


def decode_name(vae) -> str:
    return "bf16 decode" if vae.decode_bf16 else "fp32 decode"


def timed(configs: dict, vae_path: Path, stats, frames: int, num_labels: int, args, seed: int) -> dict:
    """Seconds per call (sampling + decode of ``batch`` clips at ``args["decode"]`` precision), the
    configurations taking turns."""
    from latentaudio.autoencoder import Autoencoder

    vae = Autoencoder.from_bundle(vae_path, decode_precision=args["decode"])
    args["decoded"] = decode_name(vae)
    call, work = sample_and_decode(vae, stats, int(args["batch"]), frames, num_labels, seed)
    sides = {name: (call, (config.generate,)) for name, config in configs.items()}
    return peer.alternate("sampling + decode", sides, int(args["warmup"]), int(args["rounds"]), 1, work)


def keep(side, scores: dict, speed: dict, args, labels, latent_dim: int, stats, seed: int) -> None:
    """The peer's averaged weights (safetensors: nothing in them runs) and its scores, for bench-peer."""
    from safetensors.torch import save_file

    from latentaudio.files import atomic_write

    folder = peer.REPO / args["keep"]
    mean, std = stats
    tensors = {k: v.contiguous() for k, v in side.sampled.state_dict().items()}
    tensors.update({"latent_mean": mean.contiguous(), "latent_std": std.contiguous()})
    with atomic_write(folder / "peer.safetensors") as temporary:
        save_file(tensors, str(temporary))
    summary = {
        "labels": labels,
        "latent_dim": latent_dim,
        "size": peer.our_steps().dit_recipe()["dit"],
        "peer_steps": side.steps,
        "cfg_scale": args["cfg_scale"],
        "budget": args["budget"],
        "distilled": args["distilled"],
        "seed": seed,
        "per_label": args["per_label"],
        "scores": scores,
        "seconds": {k: v[0] for k, v in speed["seconds"].items()},
    }
    write_summary(folder, summary)


def write_summary(folder: Path, summary: dict) -> None:
    from latentaudio.files import atomic_write

    with atomic_write(folder / "scores.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=1, default=float))


def add_scores(args, scores: dict, speed: dict, seed: int) -> None:
    """``kept=true``: the new configurations' scores join the kept ones when they were drawn from
    the same noise (the kept seed) and as many clips per label, so bench-peer's choice of the
    peer's steps sees them too."""
    folder = peer.REPO / args["keep"]
    summary = json.loads((folder / "scores.json").read_text())
    kept = (summary.get("seed", 0), summary.get("per_label", DEFAULTS["per_label"]))
    if (seed, args["per_label"]) != kept:
        print(
            f"seed {seed}, per_label={args['per_label']}: not the kept scores' (seed {kept[0]}, "
            f"per_label={kept[1]}), so not comparable with them: not kept",
            flush=True,
        )
        return
    summary["scores"].update({k: v for k, v in scores.items() if k.startswith("peer_")})
    summary["seconds"].update({k: v[0] for k, v in speed["seconds"].items() if k.startswith("peer_")})
    write_summary(folder, summary)


def fewest_as_good(scores: dict) -> tuple[int, bool]:
    """The peer's fewest scored steps with label accuracy at least ours and FD MFCC at most ours
    (``scores``: configuration name -> score, ours under "ours", the peer's as "peer_<steps>"), and
    True; its most steps and False when none is as good."""
    ours = scores["ours"]
    steps = sorted(int(name.removeprefix("peer_")) for name in scores if name.startswith("peer_"))
    as_good = [
        n
        for n in steps
        if scores[f"peer_{n}"]["accuracy"] >= ours["accuracy"]
        and scores[f"peer_{n}"]["fd_mfcc"] <= ours["fd_mfcc"]
    ]
    return (as_good[0], True) if as_good else (steps[-1], False)


def load_kept(folder: str | Path):
    """(the kept summary, the peer's network with its averaged weights, the latent statistics it
    was trained in) from ``keep``'s folder, or None when nothing is kept there."""
    from safetensors.torch import load_file

    folder = peer.REPO / folder
    if not (folder / "peer.safetensors").is_file() or not (folder / "scores.json").is_file():
        return None
    summary = json.loads((folder / "scores.json").read_text())
    tensors = load_file(str(folder / "peer.safetensors"))
    stats = (tensors.pop("latent_mean"), tensors.pop("latent_std"))
    network = adherence_peer.peer_network(len(summary["labels"]), summary["latent_dim"], summary["size"])
    network.load_state_dict(tensors)
    return summary, network.eval(), stats


def kept_side(args):
    """The kept peer as a trained side (``kept=true``: scored and timed again, not trained)."""
    kept = load_kept(args["keep"])
    if kept is None:
        raise SystemExit(f"kept=true: nothing kept in {args['keep']}; run this script once without it")
    summary, network, _ = kept
    return SimpleNamespace(
        generate=adherence_peer.peer_sampler(network, args["cfg_scale"], 50),
        steps=summary["peer_steps"],
        describe=lambda: f"the peer kept in {args['keep']}, trained with seed {summary.get('seed', 0)}",
        budget=summary["budget"],
        sampled=network,
    )


def equal_quality_pair(
    folder: str | Path, vae_path: str | Path, batch: int, frames: int, decode_precision: str = "auto"
):
    """For ``make bench-peer``: our 4-step student and the kept peer at the fewest steps where it is as
    good as the student (label accuracy and FD MFCC, from the kept scores; its most steps if none is),
    each as a call that samples and decodes ``batch`` clips, decoding at ``decode_precision`` ("auto":
    what ``make generate`` does). None when nothing is kept yet."""
    from latentaudio.autoencoder import Autoencoder

    kept = load_kept(folder)
    if kept is None:
        return None
    summary, network, stats = kept
    scores = summary["scores"]
    ours = scores["ours"]
    chosen, as_good = fewest_as_good(scores)
    peer_generate = adherence_peer.peer_sampler(network, summary["cfg_scale"], chosen)
    vae = Autoencoder.from_bundle(peer.REPO / vae_path, decode_precision=decode_precision)
    our_generate, how = bundle_generator(vae, peer.REPO / summary["distilled"] / "export", stats)
    call, work = sample_and_decode(vae, stats, batch, frames, len(summary["labels"]))
    theirs = scores[f"peer_{chosen}"]
    what = (
        f"ours: the demo DiT distilled by `make distill` ({how}; labels {ours['accuracy']:.2f}, FD MFCC "
        f"{ours['fd_mfcc']:.0f}); peer: stable-audio-tools' DiT trained {summary['budget']:.0f} s on the same "
        f"latents (our teacher's and distillation's time), dpmpp_2m {chosen} steps CFG {summary['cfg_scale']:g} "
        f"(labels {theirs['accuracy']:.2f}, FD MFCC {theirs['fd_mfcc']:.0f}: "
        + (
            "its fewest scored steps as good as ours"
            if as_good
            else "below ours at every scored step; its most"
        )
        + f"); both decoded by {vae_path} ({decode_name(vae)}); scores from {Path(folder) / 'scores.json'}"
    )
    return SimpleNamespace(
        ours=lambda: call(our_generate), peer=lambda: call(peer_generate), work=work, steps=chosen, what=what
    )


def write_results(args, runs, loads, budget_from: str) -> str:
    first = runs[0]
    names = list(first["configs"])
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M')}: the peer trained {args['budget']:.0f} s ({peer.machine()})",
        "",
        "Command: `.venv/bin/python -m experiments.benchmarks.fewstep_peer"
        + "".join(f" {a}" for a in sys.argv[1:])
        + f"` ({budget_from}; load average {loads[0]:.1f} before, {loads[1]:.1f} after). "
        f"{args['per_label']} clips per label and configuration; timing: {args['batch']} clips per call "
        f"(sampling + {args['decoded']}), {args['warmup']} warm-up calls, median of {args['rounds']} rounds. Label judge "
        f"ceilings: held-out real clips {first['scores']['ceiling']:.2f}, their VAE reconstructions "
        f"{first['scores']['vae_ceiling']:.2f}.",
        "",
        *[f"- `{name}`: {config.how}" for name, config in first["configs"].items()],
        "- the peer's training: " + ", ".join(f"seed {r['seed']}: {r['steps']} steps" for r in runs) + f" in "
        f"{args['budget']:.0f} s ({first['describe']})",
        "",
        "| seed | configuration | label accuracy | per label | FD same / other | FD MFCC to real "
        "| seconds per call | time / ours |",
        "|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        for name in names:
            s = run["scores"][name]
            per_label = ", ".join(f"{v:.2f}" for v in s["per_label"].values())
            seconds = run["speed"]["seconds"][name][0]
            ratio = "1.00x" if name == "ours" else f"{run['speed']['ratio'][name][0]:.2f}x"
            lines.append(
                f"| {run['seed']} | `{name}` | {s['accuracy']:.2f} | {per_label} | {s['fd_same_over_other']:.2f} "
                f"| {s['fd_mfcc']:.0f} | {seconds:.3f} | {ratio} |"
            )
    if len(runs) > 1:
        lines += [
            "",
            "| configuration | label accuracy, mean | FD MFCC, mean | time / ours, median of the runs |",
        ]
        lines.append("|---|---:|---:|---:|")
        for name in names:
            accuracy = statistics.fmean(r["scores"][name]["accuracy"] for r in runs)
            fd = statistics.fmean(r["scores"][name]["fd_mfcc"] for r in runs)
            ratio = 1.0 if name == "ours" else statistics.median(r["speed"]["ratio"][name][0] for r in runs)
            lines.append(f"| `{name}` | {accuracy:.2f} | {fd:.0f} | {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    peer.run_in_peer_venv("experiments.benchmarks.fewstep_peer")
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    kept = kept_side(args) if args["kept"] else None
    if kept is not None:
        args["budget"] = kept.budget
        budget_from = f"the peer kept in {args['keep']}, not trained again"
    elif args["budget"] > 0:
        budget_from = f"budget={args['budget']:g} given"
    else:
        teacher, distill = (training_seconds(peer.REPO / args[k]) for k in ("teacher", "distilled"))
        args["budget"] = teacher + distill
        budget_from = f"budget: our teacher's training {teacher:.0f} s + our distillation's {distill:.0f} s, from their logs"
    print(budget_from, flush=True)
    args["per_label"] = int(args["per_label"])
    latents, ids, labels, real, vae, stats = adherence_peer.demo_latents(args)
    _, latent_dim, frames = latents.shape
    loads, runs = [os.getloadavg()[0]], []
    for seed in [int(s) for s in str(args["seeds"]).split(",") if s.strip()]:
        if kept is not None:
            side = kept
        else:
            side = adherence_peer.peer_side(len(labels), latent_dim, args, seed)
            side.stream = adherence_peer.batches(latents, ids, 16, seed=seed)
            side.after_turn = adherence_peer.sized_to_budget(side, args["budget"])
            while side.used < args["budget"]:
                train_turn(side, min(args["slice"], args["budget"] - side.used))
                print(
                    f"seed {seed}: peer {side.steps} steps, {side.used:.0f} s, loss {side.loss:.3f}",
                    flush=True,
                )
        configs = configurations(args, vae, stats, side)
        scored = [SimpleNamespace(name=name, generate=c.generate) for name, c in configs.items()]
        scores = adherence_peer.score(scored, labels, real, vae, stats, frames, args, seed)
        for name in configs:
            s = scores[name]
            print(f"  {name}: labels {s['accuracy']:.2f}, FD MFCC {s['fd_mfcc']:.0f}", flush=True)
        speed = timed(configs, peer.REPO / args["vae"], stats, frames, len(labels), args, seed)
        if kept is not None:
            add_scores(args, scores, speed, seed)
        elif seed == int(str(args["seeds"]).split(",")[0]):
            keep(side, scores, speed, args, labels, latent_dim, stats, seed)
        runs.append(
            {
                "seed": seed,
                "configs": configs,
                "scores": scores,
                "speed": speed,
                "steps": side.steps,
                "describe": side.describe(),
            }
        )
    loads.append(os.getloadavg()[0])
    text = write_results(args, runs, loads, budget_from)
    print(text)
    with open(args["output"], "a") as handle:
        handle.write("\n" + text)


if __name__ == "__main__":
    main()
