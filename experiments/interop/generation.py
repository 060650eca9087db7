"""Whole generations with Stable Audio Open 1.0's and Small's shapes: time and memory.

    python -m experiments.interop.generation                # on a GPU: writes generation.md and generation.json here
    python -m experiments.interop.generation tiny=true      # a smoke test of this script on a CPU
    python -m experiments.interop.generation models=[sao_1_0] seconds=[10] steps=5 repeats=1 warmup=false out=generation_cpu.md

No checkpoint is needed or downloaded: the published configs (``dit_fixtures.structure(full=True)``
over ``fixtures.model_config``, the sample sizes of 1.0 and Small) are built as our modules with
random weights and written as bundles by the importer's own writers (``save_vae_bundle``,
``save_dit_bundle``), so the bundles are those ``make import-sat`` makes, weights aside. Then
``Pipeline.generate`` with the bundle's stored sampler, steps and guidance (1.0: ``dpmpp_3m_sde``,
100 steps, cfg 7; Small: ``pingpong``, 8 steps, cfg 1), once untimed (unless ``warmup=false``),
then ``repeats`` timed runs (median), for ``seconds`` (default: 10 and 47 for 1.0, 11 for Small), with the DiT in fp32 and under bf16 autocast (``sample_precision``), the VAE decoding
in bf16 (``decode_precision=auto``); the decode alone is timed too. Memory: the allocator's peak
during a generation. ``bf16 vs fp32``: the relative RMS difference of the two precisions' latents
from the same seed (random weights make this a stress test, not a quality measure).

The T5 is not in those checkpoints; with ``transformers`` installed a random-weight T5-base
encoder (12 layers, width 768) is timed on one 128-token prompt, the cost a prompt adds once per
generation.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from experiments.common import markdown_table, parse_arguments, sync
from experiments.interop.dit_fixtures import structure
from experiments.interop.fixtures import model_config

HERE = Path(__file__).resolve().parent
DEFAULTS = {
    "tiny": False,
    "repeats": 3,
    "warmup": True,
    "models": ["sao_1_0", "sao_small"],
    "seconds": None,  # a list: the lengths for every model, instead of each model's own
    "steps": None,  # sampling steps instead of the bundle's (a CPU times a few and scales per step)
    "out": HERE / "generation.md",
}
# (structure, sample_size in samples at 44.1 kHz, seconds to generate)
MODELS = (("sao_1_0", 2097152, (10.0, 47.0)), ("sao_small", 524288, (11.0,)))
GIB = 1024**3


def config_of(name: str, sample_size: int, tiny: bool) -> dict:
    """The ``diffusion_cond`` config of ``name`` (published sizes, or scaled down with ``tiny``)."""
    config = model_config(4 if tiny else 128, 64)
    config["model"].update(structure(name, 64, full=not tiny))
    config["sample_size"] = sample_size
    return config


def write_bundles(config: dict, folder: Path) -> tuple[Path, Path]:
    """Random-weight VAE and DiT bundles of ``config`` in ``folder``, as the importer writes them."""
    from latentaudio.dit.conditioning import Conditioner
    from latentaudio.dit.model import DiT
    from latentaudio.interop.sat_dit import dit_options, save_dit_bundle
    from latentaudio.interop.stable_audio_tools import find_autoencoder, save_vae_bundle, vae_options
    from latentaudio.vae.model import AudioVAE

    torch.manual_seed(0)
    source = {"checkpoint": "random weights", "config": "experiments.interop.generation"}
    options = vae_options(find_autoencoder(config)[0])
    save_vae_bundle(AudioVAE(**options), options, config, folder / "vae", source)
    dit_config, conditioner_config, objective = dit_options(config)
    dit = DiT(**{k: v for k, v in dit_config.items() if k != "_target_"})
    conditioner = Conditioner(**{k: v for k, v in conditioner_config.items() if k != "_target_"})
    with torch.no_grad():  # their zero-initialised output layers would make every output zero
        for parameter in dit.parameters():
            if parameter.dim() >= 2 and not parameter.any():
                parameter.normal_(0.0, parameter[0].numel() ** -0.5)
    options = (dit_config, conditioner_config, objective)
    save_dit_bundle(dit, conditioner, options, config, folder / "dit", folder / "vae", source)
    return folder / "vae", folder / "dit"


def timed(function, device: torch.device, repeats: int, warmup: bool = True) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls (after one untimed call with ``warmup``), the last result."""
    result = function() if warmup else None
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = function()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peak_memory(device: torch.device, function) -> float:
    """GiB the CUDA allocator reached while ``function`` ran (on a CPU: nan, without running it)."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    function()
    return torch.cuda.max_memory_allocated() / GIB


def measure_model(name: str, sample_size: int, seconds: tuple, args: dict, device, work: Path) -> list:
    from latentaudio.pipeline import Pipeline

    config = config_of(name, sample_size, args["tiny"])
    vae, dit = write_bundles(config, work / name)
    rows = []
    latents = {}
    for precision in ("fp32", "bf16"):
        pipeline = Pipeline.from_bundles(vae, dit, device, sample_precision=precision)
        parameters = sum(p.numel() for p in pipeline.denoiser.parameters())
        steps = 2 if args["tiny"] else args["steps"]  # tiny: a smoke test
        for length in seconds:
            frames = pipeline.frames_for(length)

            def run(pipeline=pipeline, length=length, steps=steps):
                return pipeline.generate(seconds=length, seed=0, steps=steps)

            def sample(pipeline=pipeline, length=length, frames=frames, steps=steps):
                return pipeline.sample_windows(frames, 1, length, None, None, seed=0, steps=steps)

            whole, _ = timed(run, device, args["repeats"], args["warmup"])
            x0 = sample()
            latents[(length, precision)] = x0.float().cpu()
            decode, _ = timed(
                lambda x0=x0, p=pipeline, s=length: p.decode(x0, round(s * p.sample_rate)),
                device,
                args["repeats"],
            )
            memory = peak_memory(device, run)
            row = {
                "model": name,
                "parameters_m": round(parameters / 1e6, 1),
                "seconds": length,
                "frames": frames,
                "sampler": pipeline.defaults["sampler"],
                "steps": steps or pipeline.defaults["steps"],
                "cfg": pipeline.defaults["cfg_scale"],
                "dit": precision,
                "generate_s": round(whole, 3),
                "decode_s": round(decode, 3),
                "realtime": round(length / whole, 2),
                "per_step_s": round((whole - decode) / (steps or pipeline.defaults["steps"]), 4),
                "peak_gib": round(memory, 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        del pipeline
        if device.type == "cuda":
            torch.cuda.empty_cache()
    for row in rows:
        if row["dit"] == "bf16":
            reference, test = latents[(row["seconds"], "fp32")], latents[(row["seconds"], "bf16")]
            row["bf16_vs_fp32"] = round(float((test - reference).norm() / reference.norm()), 4)
    return rows


def time_t5(device: torch.device, repeats: int, tiny: bool) -> dict | None:
    try:
        from transformers import T5Config, T5EncoderModel
    except ImportError:
        return None
    size = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4) if tiny else {}
    config = T5Config(**{"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12, **size})
    encoder = T5EncoderModel(config).to(device).eval()
    ids = torch.randint(0, config.vocab_size, (1, 128), device=device)
    with torch.inference_mode():
        seconds, _ = timed(lambda: encoder(input_ids=ids).last_hidden_state, device, repeats)
    return {"t5_encoder_s": round(seconds, 4), "parameters_m": round(encoder.num_parameters() / 1e6, 1)}


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model, sample_size, seconds in MODELS:
            if model in args["models"]:
                lengths = tuple(args["seconds"] or seconds)
                rows.extend(measure_model(model, sample_size, lengths, args, device, Path(work)))
    t5 = time_t5(device, args["repeats"], args["tiny"])
    out = Path(args["out"])
    report = {
        "command": "python -m experiments.interop.generation " + " ".join(argv),
        "device": name,
        "torch": torch.__version__,
        "rows": rows,
        "t5": t5,
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    columns = [
        "model",
        "parameters_m",
        "seconds",
        "sampler",
        "steps",
        "cfg",
        "dit",
        "generate_s",
        "decode_s",
        "realtime",
        "per_step_s",
        "peak_gib",
        "bf16_vs_fp32",
    ]
    lines = [
        "# Whole generations with Stable Audio Open's shapes (written by experiments/interop/generation.py)",
        "",
        f"Command: `{report['command'].strip()}`; {name}, torch {torch.__version__}. Random weights in the "
        "published shapes, written as imported bundles; `Pipeline.generate` with the bundle's own sampler, "
        "steps and guidance (`steps=` overrides the steps), median of the timed runs (after a warm-up unless "
        "`warmup=false`). `generate_s`: sampling and decoding; `decode_s`: the VAE decode alone (bf16 where "
        "the device has it); `realtime`: seconds of audio per second; `per_step_s`: sampling time per step "
        "(the guided model call and the sampler's update); `peak_gib`: the "
        "CUDA allocator's peak in one generation (weights included); `bf16_vs_fp32`: relative RMS "
        "difference of the latents.",
        "",
        markdown_table([{c: r.get(c, "") for c in columns} for r in rows]),
    ]
    if t5:
        lines += [
            "",
            f"T5-base encoder (random weights, {t5['parameters_m']} M parameters), one 128-token prompt: "
            f"{t5['t5_encoder_s']} s.",
        ]
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
