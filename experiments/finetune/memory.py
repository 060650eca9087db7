"""Issue 16's memory and speed figures: a LoRA step against a full fine-tuning step, per DiT shape.

    .venv/bin/python -m experiments.finetune.memory                  # writes experiments/finetune/memory.md
    .venv/bin/python -m experiments.finetune.memory shapes=[demo] steps=5
    python -m experiments.finetune.memory device=cuda            # on a GPU: writes memory_gpu.md

Each configuration runs in a fresh process, so its peak resident memory (``ru_maxrss``) is that of
one training setup: the DiT's weights (fp32), gradients and AdamW states of what trains, an EMA of
what trains, and the activations of one step under bf16 autocast. Shapes:

- ``demo``: ``conf/model/dit/demo.yaml`` on the demo latents (32 channels, 128 frames, batch 16,
  timing and five labels; the LoRA run adds one label), as ``make demo-finetune`` trains it.
- ``sao``: ``conf/model/dit/sao.yaml`` (Stable Audio Open 1.0's width 1536, depth 24, 24 heads)
  at batch 1 on 10 s of SAO latents (64 channels, 44.1 kHz / hop 2048 = 216 frames), timing,
  cross-attention over 128 tokens of width 768 (T5-base's output; the frozen T5 itself, the same
  0.45 GB in both setups, is left out), blocks checkpointed.

A full fine-tune of the SAO shape needs more memory than this 24 GiB machine has, so on a CPU it
is measured at depths 2 and 4 and extrapolated linearly in depth (memory per block is constant);
the LoRA setup is measured at those depths too and at 24, which checks the extrapolation. On a GPU
(``device=cuda``) both are measured at full depth, memory as the allocator's peak
(``torch.cuda.max_memory_allocated``) over what was allocated before the model was built.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from experiments.common import model_size, parse_arguments, sync

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "finetune" / "memory.md"
GPU_RESULTS = ROOT / "experiments" / "finetune" / "memory_gpu.md"
USAGE = "python -m experiments.finetune.memory [shapes=[demo,sao]] [steps=3] [rank=16] [device=cpu|cuda]"
GIB = 1024**3

SHAPES = {
    "demo": dict(
        size="demo",
        latent_dim=32,
        frames=128,
        batch=16,
        labels=5,
        text_tokens=0,
        text_dim=0,
        checkpoint=False,
    ),
    "sao": dict(
        size="sao",
        latent_dim=64,
        frames=216,
        batch=1,
        labels=0,
        text_tokens=128,
        text_dim=768,
        checkpoint=True,
    ),
}


def rss_gib(device: str = "cpu") -> float:
    """Memory in use now, GiB: resident (Linux /proc) on a CPU, allocated on a GPU."""
    if device == "cuda":
        return torch.cuda.memory_allocated() / GIB
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / GIB


def peak_gib(device: str = "cpu") -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def measure_one(shape: str, mode: str, depth: int | None, steps: int, rank: int, device: str = "cpu") -> dict:
    """Build the DiT of ``shape``, run ``steps`` training steps of ``mode`` (full or lora), measure."""
    from safetensors.torch import save_file

    from latentaudio.dit.conditioning import Conditioner
    from latentaudio.dit.denoiser import Denoiser
    from latentaudio.dit.diffusion import make_objective
    from latentaudio.dit.lora import TRAINING_ADAPTER, AdapterSpec, adapter_state, prepare_training
    from latentaudio.dit.model import DiT
    from latentaudio.training.ema import EMA

    torch.manual_seed(0)
    spec = SHAPES[shape]
    size = model_size("dit", spec["size"])
    size["checkpoint_blocks"] = spec["checkpoint"]
    if depth is not None:
        size["depth"] = depth
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    baseline = rss_gib(device)
    conditioner = Conditioner(global_dim=size["width"], timing=True, num_labels=spec["labels"])
    dit = DiT(
        **size,
        latent_dim=spec["latent_dim"],
        global_cond_dim=conditioner.global_cond_dim,
        cross_attn_dim=spec["text_dim"],
    )
    denoiser = Denoiser(dit, conditioner)
    total = sum(p.numel() for p in denoiser.parameters())
    if mode == "lora":
        targets = ["attention", "mlp"] + (["cross_attention"] if spec["text_dim"] else [])
        lora = AdapterSpec(
            rank=rank, alpha=float(rank), targets=targets, labels=["new"] if spec["labels"] else []
        )
        prepare_training(denoiser, lora, spec["labels"])
    trainable = [p for p in denoiser.parameters() if p.requires_grad]
    with tempfile.TemporaryDirectory() as folder:
        if mode == "lora":
            path = Path(folder) / "adapter.safetensors"
            save_file({k: v.contiguous() for k, v in adapter_state(denoiser, TRAINING_ADAPTER).items()}, path)
            file_bytes = path.stat().st_size
        else:  # a plain DiT bundle's weights: every tensor in fp32 (written out only to count)
            file_bytes = sum(t.numel() * t.element_size() for t in denoiser.state_dict().values())
    denoiser.to(device)
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    ema = EMA(denoiser, 0.999)
    objective = make_objective("v")
    built = rss_gib(device)

    batch_size, frames = spec["batch"], spec["frames"]
    batch = {
        "seconds_start": torch.zeros(batch_size, device=device),
        "seconds_total": torch.full((batch_size,), 10.0, device=device),
    }
    if spec["labels"]:
        batch["label"] = torch.arange(batch_size, device=device) % (spec["labels"] + (mode == "lora"))
    tokens = None
    if spec["text_tokens"]:
        tokens = torch.randn(batch_size, spec["text_tokens"], spec["text_dim"], device=device)
    times = []
    denoiser.train()
    for _ in range(steps + 1):  # the first is a warm-up
        x0 = torch.randn(batch_size, spec["latent_dim"], frames, device=device)
        noise, t = torch.randn_like(x0), torch.rand(batch_size, device=device)
        sync(torch.device(device))
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):
            cond = denoiser.conditioner(batch)
            if tokens is not None:
                cond["cross_cond"], cond["cross_mask"] = (
                    tokens,
                    torch.ones(tokens.shape[:2], dtype=torch.bool, device=device),
                )
            out = denoiser.dit(objective.noisy(x0, noise, t), t, **cond)
            loss, _ = objective.loss(out.float(), objective.target(x0, noise, t), t)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(denoiser)
        sync(torch.device(device))
        times.append(time.perf_counter() - start)
    return {
        "shape": shape,
        "mode": mode,
        "depth": size["depth"],
        "width": size["width"],
        "parameters": total,
        "trainable": sum(p.numel() for p in trainable),
        "file_mb": file_bytes / 1e6,
        "built_gib": built - baseline,
        "peak_gib": peak_gib(device) - baseline,
        "step_s": statistics.median(times[1:]),
        "batch": batch_size,
        "frames": frames,
    }


def run_isolated(shape: str, mode: str, depth: int | None, steps: int, rank: int) -> dict:
    job = json.dumps({"shape": shape, "mode": mode, "depth": depth, "steps": steps, "rank": rank})
    done = subprocess.run(
        [sys.executable, "-m", "experiments.finetune.memory", f"_one={job}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shape}/{mode}/depth {depth} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def extrapolate(rows: list[dict], depth: int, key: str) -> float:
    """A line through (depth, value) of two measured depths, read at ``depth``."""
    (d1, v1), (d2, v2) = sorted((r["depth"], r[key]) for r in rows)[:2]
    return v1 + (v2 - v1) * (depth - d1) / (d2 - d1)


def table(rows: list[dict]) -> str:
    lines = [
        "| shape | mode | depth | parameters | trainable | file MB | weights etc. GiB | peak GiB | step s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (extrapolated)" if r.get("extrapolated") else ""
        lines.append(
            f"| {r['shape']} | {r['mode']} | {r['depth']}{mark} | {r['parameters'] / 1e6:.1f} M | "
            f"{r['trainable'] / 1e6:.2f} M | {r['file_mb']:.1f} | {r['built_gib']:.2f} | {r['peak_gib']:.2f} | "
            f"{r['step_s']:.2f} |"
        )
    return "\n".join(lines)


def measure_gpu(args: dict) -> None:
    """Every shape and mode at full depth on the GPU, one after another in this process."""
    rows = []
    for shape in args["shapes"]:
        for mode in ("full", "lora"):
            rows.append(measure_one(shape, mode, None, args["steps"], args["rank"], device="cuda"))
            print(table(rows[-1:]), flush=True)
    name = torch.cuda.get_device_name()
    GPU_RESULTS.write_text(
        "# Fine-tuning memory and speed on a GPU (written by experiments/finetune/memory.py)\n\n"
        f"Command: `python -m experiments.finetune.memory device=cuda steps={args['steps']} rank={args['rank']}`; "
        f"{name}, torch {torch.__version__}, fp32 weights, bf16 autocast, AdamW, EMA. GiB of the CUDA "
        "allocator above what was allocated before the model was built: 'weights etc.' after building "
        "the model, optimizer and EMA, 'peak' its peak during the training steps; step: median wall "
        "time after a warm-up step.\n\n" + table(rows) + "\n"
    )
    print(f"written {GPU_RESULTS.relative_to(ROOT)}")


def main(argv: list[str]) -> None:
    defaults = {"shapes": ["demo", "sao"], "steps": 3, "rank": 16, "device": "cpu", "_one": None}
    args = parse_arguments(argv, defaults, USAGE)
    if args["_one"]:
        job = json.loads(args["_one"]) if isinstance(args["_one"], str) else args["_one"]
        print(json.dumps(measure_one(**job)))
        return
    if args["device"] == "cuda":
        measure_gpu(args)
        return
    rows = []
    for shape in args["shapes"]:
        if shape == "demo":
            for mode in ("full", "lora"):
                rows.append(run_isolated(shape, mode, None, args["steps"], args["rank"]))
                print(table(rows[-1:]), flush=True)
            continue
        full = []
        for depth in (2, 4):
            for mode in ("full", "lora"):
                row = run_isolated(shape, mode, depth, args["steps"], args["rank"])
                (full if mode == "full" else rows).append(row)
                print(table([row]), flush=True)
        rows.extend(full)
        lora = run_isolated(shape, "lora", 24, args["steps"], args["rank"])
        print(table([lora]), flush=True)
        lora_rows = [r for r in rows if r["shape"] == shape and r["mode"] == "lora"]
        check = {k: extrapolate(lora_rows, 24, k) for k in ("built_gib", "peak_gib")}
        rows.append(lora)
        guess = dict(full[-1], depth=24, extrapolated=True)
        for key in ("parameters", "trainable", "file_mb", "built_gib", "peak_gib", "step_s"):
            guess[key] = extrapolate(full, 24, key)
        rows.append(guess)
        print(
            f"extrapolation check, LoRA at depth 24: peak {check['peak_gib']:.2f} GiB from depths 2 and 4, "
            f"{lora['peak_gib']:.2f} measured",
            flush=True,
        )
    RESULTS.write_text(
        "# Fine-tuning memory and speed (written by experiments/finetune/memory.py)\n\n"
        f"Command: `.venv/bin/python -m experiments.finetune.memory steps={args['steps']} rank={args['rank']}`; "
        f"{torch.get_num_threads()} CPU threads, bf16 autocast, AdamW, EMA. GiB above the process's "
        "footprint before the model was built; 'weights etc.' after building the model, optimizer and EMA, "
        "'peak' during the training steps; step: median wall time.\n\n" + table(rows) + "\n"
    )
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
