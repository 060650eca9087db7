"""What every script in experiments/ shares: configs and sizes from conf/, one argument convention, timing.

Sizes and hyperparameters are read from ``conf/`` (composed by Hydra as the apps compose them),
never written out here, so an experiment measures what ``make train-*`` trains. Arguments are
Hydra-style ``key=value`` pairs parsed by ``parse_arguments``.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from latentaudio.apps.common import CONFIG_PATH

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(CONFIG_PATH)  # importing it registers the resolvers the configs use


# ------------------------------------------------------------------------------ configs and sizes


# The waveform VAE layout (no sub-bands) of the demo recipe until 2026-12-04, as train_vae
# overrides on experiment=demo_vae: what the VAE levers before the sub-bands trained, and what a
# comparison with stable-audio-tools' Oobleck VAE (which codes the waveform) has to use.
WAVEFORM_VAE = ["vae.bands=1", "vae.strides=[2,4,4,8]", "vae.channel_mults=[1,2,4,8]", "vae.base_channels=16"]


def model_size(group: str, name: str) -> dict:
    """``conf/model/<group>/<name>.yaml`` (group ``vae`` or ``dit``) without its ``_target_``."""
    path = CONF / "model" / group / f"{name}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"{path} does not exist: choose {group} size one of {', '.join(choices)}")
    return {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "_target_"}


def compose(app: str, overrides: list[str] = (), sections: tuple[str, ...] = ()) -> dict:
    """The ``sections`` of an app's config (``train_vae``, ``train_diffusion``, ...), resolved plain values.

    Composed as the app's command line would compose them (``overrides`` like ``experiment=demo_vae``);
    only the named sections are resolved.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        # output paths name a folder only (nothing is written to it): outside a running app they need a value
        base = [f"paths.output_dir={ROOT / 'outputs' / 'experiments' / app}"]
        cfg = hydra_compose(config_name=app, overrides=base + list(overrides))
    return {name: OmegaConf.to_container(cfg[name], resolve=True) for name in sections}


# ------------------------------------------------------------------------------ arguments


def parse_arguments(argv: list[str], defaults: dict, usage: str) -> dict:
    """``key=value`` arguments over ``defaults`` (values parsed as YAML, so ``steps=3`` is an int).

    ``--help`` prints ``usage`` and the defaults and exits; an unknown key is refused by name.
    """
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage.strip() + "\n\narguments (key=value), with their defaults:")
        for key, value in defaults.items():
            print(f"  {key}={value}")
        raise SystemExit(0)
    values = dict(defaults)
    for arg in argv:
        key, sep, text = arg.partition("=")
        if not sep or key not in defaults:
            raise SystemExit(f"{arg!r}: expected key=value with key one of {', '.join(defaults)}")
        value = yaml.safe_load(text)
        if isinstance(defaults[key], Path):
            value = Path(text)
        elif isinstance(defaults[key], str):
            value = text  # "off", "yes", "1e-3" stay the strings they were typed as
        elif isinstance(defaults[key], float) and isinstance(value, int):
            value = float(value)
        values[key] = value
    return values


def optional_bool(values: dict, key: str) -> bool | None:
    """An argument given as "" (None: left to the bundle), "true" or "false"."""
    text = str(values[key]).lower()
    if text not in ("", "true", "false"):
        raise SystemExit(f"{key}={values[key]}: expected true, false, or nothing (the bundle's choice)")
    return None if text == "" else text == "true"


# ------------------------------------------------------------------------------ timing


@dataclass
class Variant:
    """One configuration to time: a step function and what one step processes."""

    name: str
    step: Callable[[], torch.Tensor]
    audio_seconds_per_step: float
    latent_frames_per_step: int
    flops_per_step: float = 0.0
    times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    peak_bytes: int = 0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(variants: list[Variant], warmup: int, steps: int, device: torch.device) -> None:
    """Run the variants in turn (A, B, A, B, ...), so load from other processes hits all alike.

    Warm-up steps (torch.compile's first calls among them) are not timed. Every step's loss is kept
    (a step that returns none, such as sampling, keeps none).
    """
    for index in range(warmup + steps):
        for variant in variants:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            sync(device)
            start = time.perf_counter()
            loss = variant.step()
            sync(device)
            elapsed = time.perf_counter() - start
            if loss is not None:
                variant.losses.append(float(loss))
            if device.type == "cuda":
                variant.peak_bytes = max(variant.peak_bytes, torch.cuda.max_memory_allocated(device) - before)
            if index >= warmup:
                variant.times.append(elapsed)


def summarize(variant: Variant, peak_flops: float | None = None) -> dict:
    """Medians of the timed steps, and whether the loss behaved on the fixed batch."""
    median = statistics.median(variant.times)

    def sig(value: float) -> float:
        return float(f"{value:.3g}")

    row = {
        "variant": variant.name,
        "step_ms": sig(1000 * median),
        "audio_s_per_s": sig(variant.audio_seconds_per_step / median),
        "latent_frames_per_s": sig(variant.latent_frames_per_step / median),
        "first_loss": round(variant.losses[0], 4),
        "last_loss": round(variant.losses[-1], 4),
        "loss_finite": all(math.isfinite(v) for v in variant.losses),
        "loss_fell": variant.losses[-1] < variant.losses[0],
    }
    if variant.peak_bytes:
        row["step_peak_gib"] = sig(variant.peak_bytes / 2**30)
    if variant.flops_per_step and peak_flops:
        row["mfu"] = sig(variant.flops_per_step / median / peak_flops)
    return row


def markdown_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ generation studies


def evaluate_dit(out: Path, vae: str, dit: str | Path, overrides: list[str] = (), limit: int = 64) -> dict:
    """``make evaluate`` of a DiT bundle on the first ``limit`` demo clips (as many generated), its metrics.json."""

    command = [
        sys.executable,
        "-m",
        "latentaudio.apps.evaluate",
        f"vae={vae}",
        f"dit={dit}",
        "data.root=data/demo",
    ]
    command += [
        f"output={out}",
        f"hydra.run.dir={out}",
        f"limit={limit}",
        f"generation.n={limit}",
        *overrides,
    ]
    subprocess.run(command, cwd=ROOT, check=True)
    return json.loads((Path(out) / "metrics.json").read_text())


def adherence_row(metrics: dict) -> dict:
    """The figures generation studies compare, from an evaluate metrics.json: label accuracy and its
    ceilings, per-label distance ratio, FD on MFCC statistics with its floors, timing, tempo and key."""
    adherence = metrics.get("adherence") or {}
    labels = adherence.get("labels") or {}
    distances = (adherence.get("per_label_distances") or {}).get("generated") or {}
    captions = adherence.get("captions") or {}
    floors = metrics.get("floors") or {}
    row = {
        "label_accuracy": labels.get("accuracy"),
        "label_ceiling": labels.get("ceiling"),
        "label_vae_ceiling": labels.get("vae_ceiling"),
        "per_label": labels.get("per_label"),
        "fd_same_over_other": (
            sum(v["fd_same"] / v["fd_other"] for v in distances.values()) / len(distances)
            if distances
            else None
        ),
        "fd_mfcc": floors.get("generated", {}).get("fd_mfcc"),
        "fd_mfcc_real_floor": floors.get("real", {}).get("fd_mfcc"),
        "fd_mfcc_vae_floor": floors.get("reconstructed", {}).get("fd_mfcc"),
        "timing_error_s": (adherence.get("timing") or {}).get("generated", {}).get("mean_abs_error_s"),
    }
    if captions:
        row.update(
            {
                "tempo_exact": captions["generated"].get("tempo_exact"),
                "tempo_ceiling": captions["real"].get("tempo_exact"),
                "tempo_vae_ceiling": (captions.get("vae") or {}).get("tempo_exact"),
                "key_accuracy": captions["generated"].get("key_accuracy"),
                "key_ceiling": captions["real"].get("key_accuracy"),
                "key_vae_ceiling": (captions.get("vae") or {}).get("key_accuracy"),
                "label_accuracy_from_text": captions.get("label_accuracy"),
            }
        )
    return row
