"""AdamW's fused kernel against torch's default path, in both demo stages' training steps.

    .venv/bin/python -m experiments.throughput.optimizer                 # prints a markdown table
    .venv/bin/python -m experiments.throughput.optimizer rounds=20 dit_width=128

On a CPU, ``torch.optim.AdamW`` without ``fused`` or ``foreach`` steps its parameters one tensor
at a time; ``latentaudio.training.speed.adamw`` turns the fused kernel on. Each stage is built
twice from the demo experiments (``steps.py``: the modules' own ``training_step``, the demo's
batch, fp32), once with the fused path and once with the default one (the same optimizer with
``fused`` off in its groups), and the two run in turn (A, B, A, B, ...). Figures are medians of
the timed steps; ``max_weight_gap``: the largest difference between the two copies' weights after
the timed steps (same start, same batch, the same random draws at each step: the update rule is
the same, only rounding differs).
"""

from __future__ import annotations

import platform
import statistics
import sys

import torch

from experiments.common import Variant, parse_arguments, time_interleaved
from experiments.throughput.run import DIT_BATCH, VAE_BATCH
from experiments.throughput.steps import dit_batch, dit_training, vae_training

DEFAULTS = dict(rounds=15, warmup=3, threads=2, dit_width=0)


def _fused_off(module) -> None:
    for optimizer in _optimizers(module):
        for group in optimizer.param_groups:
            group["fused"] = False


def _optimizers(module) -> list[torch.optim.Optimizer]:
    found = module.optimizers()
    return [o.optimizer for o in (found if isinstance(found, list) else [found])]


def _vae_pair() -> list[tuple[str, object, Variant]]:
    batch = 0.3 * torch.randn(VAE_BATCH["batch_size"], 1, VAE_BATCH["sample_length"])
    pair = []
    for name in ("fused", "default"):
        module, step = vae_training(None, torch.device("cpu"), adversarial=False)
        if name == "default":
            _fused_off(module)
        pair.append((name, module, Variant(f"VAE, {name}", _seeded(lambda s=step: s(batch)), 0.0, 0)))
    return pair


def _dit_pair(width: int) -> list[tuple[str, object, Variant]]:
    size = dict(DIT_BATCH["size"], **({"width": width} if width else {}))
    d, f = DIT_BATCH["latent_dim"], DIT_BATCH["frames"]
    seconds = f * DIT_BATCH["hop"] / DIT_BATCH["sample_rate"]
    x0, conditions, t, noise = dit_batch(DIT_BATCH["batch_size"], d, f, seconds, torch.device("cpu"))
    pair = []
    for name in ("fused", "default"):
        module, step = dit_training(size, d, torch.device("cpu"))
        if name == "default":
            _fused_off(module)
        variant = Variant(
            f"DiT width {size['width']}, {name}", _seeded(lambda s=step: s(x0, conditions, t, noise)), 0.0, 0
        )
        pair.append((name, module, variant))
    return pair


def _seeded(step):
    """``step`` with the global RNG seeded by its call count: the n-th step of either copy draws
    the same noise, dropout and crops, so their weights differ only by the optimizer's rounding."""
    calls = [0]

    def run():
        torch.manual_seed(calls[0])
        calls[0] += 1
        return step()

    return run


def _weight_gap(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a.parameters(), b.parameters()))


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__)
    torch.set_num_threads(int(args["threads"]))
    rows = []
    for pair in (_vae_pair(), _dit_pair(int(args["dit_width"]))):
        variants = [variant for _, _, variant in pair]
        time_interleaved(variants, int(args["warmup"]), int(args["rounds"]), torch.device("cpu"))
        (_, fused, a), (_, default, b) = pair
        parameters = sum(p.numel() for p in fused.parameters() if p.requires_grad)
        fused_ms, default_ms = 1000 * statistics.median(a.times), 1000 * statistics.median(b.times)
        rows.append(
            f"| {a.name.split(',')[0]} ({parameters / 1e6:.2f} M trained parameters) | {default_ms:.0f} "
            f"| {fused_ms:.0f} | {default_ms / fused_ms:.3f}x | {_weight_gap(fused, default):.1e} |"
        )
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, fp32; median of {args['rounds']} steps after {args['warmup']}\n"
    )
    print("| stage | default AdamW (ms/step) | fused AdamW (ms/step) | speed-up | max_weight_gap |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
