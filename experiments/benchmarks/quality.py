"""Quality at equal budget: our demo VAE against the peer's Oobleck VAE at the same size, same data,
same wall-clock training time on this machine, compared by held-out reconstruction metrics.

    .venv/bin/python experiments/benchmarks/quality.py --budget 1800   # 30 min each side
    .venv/bin/python experiments/benchmarks/quality.py --budget 60     # a smoke test

Data: the procedural demo dataset in data/demo (written first if missing); the last 10% of
files (sorted) are held out. Both sides see the same random crops (batch 8 x 8192 samples),
and train in alternating slices of ``--slice`` seconds until each has used ``--budget``
seconds, so a change in the machine's load hits both alike. Each side uses its own
reconstruction loss and KL weight (see ``peer.py``: ``ours_vae`` / ``theirs_vae``); neither
uses a discriminator (our demo recipe starts one at step 1000, which short budgets never reach).
Results are appended to ``quality_results.md`` next to this script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import peer  # this folder's peer.py (the script's own directory is on sys.path)

DATA = peer.REPO / "data" / "demo"


def load_clips(root: Path) -> list:
    from latentaudio.audio import read_audio
    from latentaudio.data.scan import scan_audio_folder

    files = scan_audio_folder(root, progress=False).files
    return [read_audio(root / f.path, sample_rate=peer.RATE, channels=1)[0] for f in files]


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


def held_out_metrics(encode_decode, clips: list) -> dict[str, float]:
    import torch

    from latentaudio.evaluation import mean_metrics, reconstruction_metrics

    per_file = {}
    with torch.inference_mode():
        for i, clip in enumerate(clips):
            reference = clip[None]
            decoded = encode_decode(reference)[..., : reference.shape[-1]]
            values = reconstruction_metrics(decoded, reference, peer.RATE)
            per_file[str(i)] = {k: float(v.mean()) for k, v in values.items()}
    return mean_metrics(per_file, ("mrstft", "mel", "sisdr"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per side")
    parser.add_argument("--slice", type=float, default=15.0, help="seconds per turn")
    parser.add_argument("--output", type=Path, default=peer.HERE / "quality_results.md")
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != peer.PEER_VENV.resolve():
        if not DATA.exists():
            subprocess.run([sys.executable, "-m", "latentaudio.apps.demo_data"], cwd=peer.REPO, check=True)
        peer.ensure_peer_venv()
        os.execv(str(peer.PEER_PYTHON), [str(peer.PEER_PYTHON), __file__, *sys.argv[1:]])

    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(0)
    clips = load_clips(DATA)
    split = max(1, len(clips) // 10)
    train, held_out = clips[:-split], clips[-split:]
    our_vae, our_step = peer.ours_vae()
    peer_vae, peer_step = peer.theirs_vae()
    sides = {
        "ours": {"step": our_step, "used": 0.0, "steps": 0, "loss": float("nan")},
        "peer": {"step": peer_step, "used": 0.0, "steps": 0, "loss": float("nan")},
    }
    # the same crop stream for both: each side gets its own generator with the same seed
    streams = {
        name: crops(train, peer.VAE_BATCH, peer.VAE_SAMPLES, torch.Generator().manual_seed(0))
        for name in sides
    }
    while any(s["used"] < args.budget for s in sides.values()):
        for name, side in sides.items():
            turn_end = min(args.budget - side["used"], args.slice)
            start = time.perf_counter()
            while (
                side["used"] + (time.perf_counter() - start) < args.budget
                and time.perf_counter() - start < turn_end
            ):
                side["loss"] = side["step"](next(streams[name]))
                side["steps"] += 1
            side["used"] += time.perf_counter() - start
        print(
            ", ".join(
                f"{k}: {v['steps']} steps, {v['used']:.0f} s, loss {v['loss']:.3f}" for k, v in sides.items()
            ),
            flush=True,
        )

    our_vae.eval()
    peer_vae.eval()
    results = {
        "ours": held_out_metrics(lambda x: our_vae.decode(our_vae.encode(x)), held_out),
        # the peer's bottleneck always samples: take the posterior mean, as our encode does
        "peer": held_out_metrics(
            lambda x: peer_vae.decode(peer_vae.encode(x, skip_bottleneck=True).chunk(2, dim=1)[0]), held_out
        ),
    }
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M')}: {args.budget:.0f} s of training per side ({peer.machine()})",
        "",
        f"{len(train)} training clips, {len(held_out)} held out; the CPU was shared with other jobs.",
        "",
        "| side | steps | seconds used | final train loss (own loss) | MR-STFT | mel | SI-SDR (dB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, side in sides.items():
        m = results[name]
        lines.append(
            f"| {name} | {side['steps']} | {side['used']:.0f} | {side['loss']:.3f} | {m['mrstft']:.3f} | {m['mel']:.3f} | {m['sisdr']:.2f} |"
        )
    text = "\n".join(lines) + "\n\n"
    with args.output.open("a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
