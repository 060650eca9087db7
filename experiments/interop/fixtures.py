"""Parity of our stable-audio-tools import against the peer's own code: fixtures, and the full size.

    .venv/bin/python -m experiments.interop.fixtures                  # fixtures + full size + results.md
    .venv/bin/python -m experiments.interop.fixtures full_seconds=0.5 full=false full_dit=false

Runs itself inside ``experiments/benchmarks/.venv-peer`` (``ensure_peer_venv`` makes it:
stable-audio-tools 0.0.19 over our torch). With random weights and a fixed seed, the peer builds

- the small autoencoder: Stable Audio Open 1.0's structure (stereo, c_mults 1 2 4 8 16, strides
  2 4 4 8 8, hop 2048) at ``SMALL_CHANNELS`` base channels and ``SMALL_LATENT`` latent channels,
  inside a ``diffusion_cond`` model config as a pretransform. Its checkpoint (keys
  ``pretransform.model.*``), config, an input and the peer's posterior mean and decode of it are
  written to ``tests/fixtures/interop/sao_vae_small/``, which ``tests/interop`` checks us against;
- the DiT's pieces that map onto one option of ours each (``sao_dit_parts.safetensors``: the SwiGLU
  feed-forward so far), with an input and the peer's output;
- the full-size autoencoder of Stable Audio Open 1.0 (no download: random weights), on a
  ``full_seconds`` input, compared and timed the same way;
- the DiTs and conditioners of Stable Audio Open 1.0 and Small (``dit_fixtures``): scaled-down
  fixtures in ``tests/fixtures/interop/sao_1_0`` and ``sao_small``, and with ``full_dit`` the
  published sizes (random weights) on ``full_dit_frames`` latent frames, each imported, run,
  exported back and run by the peer from the export.

For each, our side imports the checkpoint (``import_vae``), encodes and decodes; then exports the
bundle back (``export_vae``), and the peer loads the exported files with its own factory and
decodes again. Numbers go to ``experiments/interop/results.md``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "interop" / "sao_vae_small"
DIT_PARTS = ROOT / "tests" / "fixtures" / "interop" / "sao_dit_parts.safetensors"
SEED = 0
RATE = 44100
SMALL_CHANNELS, SMALL_LATENT = 3, 8
SMALL_FRAMES, SMALL_BATCH = 2, 2
# One beta far below our default floor (0.01), so the fixture exercises snake_beta_floor.
SMALL_LOW_BETA = 3e-3
DEFAULTS = {
    "full": True,
    "full_seconds": 1.0,
    "full_dit": True,
    "full_dit_frames": 32,
    "output": HERE / "results.md",
}


def oobleck_autoencoder(channels: int, latent: int) -> dict:
    """Stable Audio Open 1.0's autoencoder section (as in its model_config.json) at ``channels``."""
    shared = {
        "channels": channels,
        "c_mults": [1, 2, 4, 8, 16],
        "strides": [2, 4, 4, 8, 8],
        "use_snake": True,
    }
    return {
        "encoder": {"type": "oobleck", "config": {"in_channels": 2, **shared, "latent_dim": 2 * latent}},
        "decoder": {
            "type": "oobleck",
            "config": {"out_channels": 2, **shared, "latent_dim": latent, "final_tanh": False},
        },
        "bottleneck": {"type": "vae"},
        "latent_dim": latent,
        "downsampling_ratio": 2048,
        "io_channels": 2,
    }


def model_config(channels: int, latent: int) -> dict:
    """A ``diffusion_cond`` model config in Stable Audio Open 1.0's layout (its DiT part scaled down
    too; that part is not imported yet)."""
    return {
        "model_type": "diffusion_cond",
        "sample_size": 2048 * 64,
        "sample_rate": RATE,
        "audio_channels": 2,
        "model": {
            "pretransform": {
                "type": "autoencoder",
                "iterate_batch": True,
                "config": oobleck_autoencoder(channels, latent),
            },
            "conditioning": {
                "configs": [
                    {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 128}},
                    {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                    {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                ],
                "cond_dim": 768,
            },
            "diffusion": {
                "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
                "global_cond_ids": ["seconds_start", "seconds_total"],
                "type": "dit",
                "config": {
                    "io_channels": latent,
                    "embed_dim": 1536,
                    "depth": 24,
                    "num_heads": 24,
                    "cond_token_dim": 768,
                    "global_cond_dim": 1536,
                    "project_cond_tokens": False,
                    "transformer_type": "continuous_transformer",
                },
            },
            "io_channels": latent,
        },
    }


# ------------------------------------------------------------------------------ the peer's side


def peer_pretransform(config: dict, seed: int, low_beta: float | None = None):
    """The peer's AutoencoderPretransform for ``config`` with random weights: its own init for the
    convs, then every weight-norm gain scaled by a random factor (so g is not the norm of v) and
    random log alpha and log beta."""
    import torch
    from stable_audio_tools.models.factory import create_pretransform_from_config

    torch.manual_seed(seed)
    pretransform = create_pretransform_from_config(config["model"]["pretransform"], config["sample_rate"])
    with torch.no_grad():
        for name, parameter in pretransform.named_parameters():
            if name.endswith(("alpha", "beta")):
                parameter.normal_(0.0, 0.5)
            elif name.endswith("weight_g"):
                parameter.mul_(torch.empty_like(parameter).normal_(0.0, 0.1).exp())
        if low_beta is not None:
            betas = [p for n, p in pretransform.named_parameters() if n.endswith("beta")]
            betas[len(betas) // 2][0] = math.log(low_beta)
    return pretransform.eval()


def test_audio(batch: int, samples: int, seed: int):
    """Stereo sines and a little noise, about -10 dBFS."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / RATE
    frequencies = 110.0 * 2 ** torch.rand(batch, 2, 1, generator=generator).mul(5)
    audio = 0.3 * torch.sin(2 * math.pi * frequencies * t) + 0.02 * torch.randn(
        batch, 2, samples, generator=generator
    )
    return audio.float()


def peer_outputs(pretransform, audio):
    """(posterior mean, decode of that mean, seconds to encode, seconds to decode) on the peer."""
    import torch

    with torch.no_grad():
        start = time.perf_counter()
        mean, _ = pretransform.model.encoder(audio).chunk(2, dim=1)
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        decoded = pretransform.decode(mean)
        decode_seconds = time.perf_counter() - start
    return mean, decoded, encode_seconds, decode_seconds


def peer_from_export(folder: Path):
    """The peer's own model built from our exported files, as its users would load them."""
    from safetensors.torch import load_file
    from stable_audio_tools.models.factory import create_model_from_config

    config = json.loads((folder / "model_config.json").read_text())
    model = create_model_from_config(config)
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.eval()


# ------------------------------------------------------------------------------ the comparison


def relative_error(ours, theirs) -> float:
    """max |ours - theirs| / max |theirs|."""
    return float((ours - theirs).abs().max() / theirs.abs().max())


def compare(config: dict, pretransform, audio, work: Path) -> dict:
    """Import the peer's checkpoint, run both sides, export back, and load the export in the peer."""
    import torch
    from safetensors.torch import save_file

    from latentaudio.bundle import load_bundle
    from latentaudio.interop.stable_audio_tools import export_vae, import_vae

    tensors = {f"pretransform.{k}": v.detach().contiguous() for k, v in pretransform.state_dict().items()}
    checkpoint, config_path = work / "model.safetensors", work / "model_config.json"
    save_file(tensors, str(checkpoint))
    config_path.write_text(json.dumps(config, indent=4))
    mean, decoded, peer_encode, peer_decode = peer_outputs(pretransform, audio)

    start = time.perf_counter()
    report = import_vae(checkpoint, config_path, work / "vae")
    import_seconds = time.perf_counter() - start
    vae = load_bundle(work / "vae", kind="vae").build("vae")
    with torch.no_grad():
        start = time.perf_counter()
        our_mean = vae.encode(audio)
        our_encode = time.perf_counter() - start
        start = time.perf_counter()
        our_decoded = vae.decode(mean)
        our_decode = time.perf_counter() - start

    export_vae(work / "vae", work / "exported")
    with torch.no_grad():
        reloaded = peer_from_export(work / "exported").decode(mean)
    return {
        "tensors": report.tensors,
        "parameters": report.parameters,
        "samples": audio.shape[-1],
        "batch": audio.shape[0],
        "encode_error": relative_error(our_mean, mean),
        "decode_error": relative_error(our_decoded, decoded),
        "export_decode_error": relative_error(reloaded, decoded),
        "peer_encode_s": peer_encode,
        "peer_decode_s": peer_decode,
        "our_encode_s": our_encode,
        "our_decode_s": our_decode,
        "import_s": import_seconds,
        "snake_beta_floor": report.options["snake_beta_floor"],
        "outputs": (mean, decoded),
    }


def small() -> dict:
    """The committed fixtures, and their comparison."""
    from safetensors.torch import save_file

    config = model_config(SMALL_CHANNELS, SMALL_LATENT)
    pretransform = peer_pretransform(config, SEED, low_beta=SMALL_LOW_BETA)
    audio = test_audio(SMALL_BATCH, SMALL_FRAMES * 2048, SEED)
    with tempfile.TemporaryDirectory() as work:
        result = compare(config, pretransform, audio, Path(work))
    mean, decoded = result.pop("outputs")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    tensors = {f"pretransform.{k}": v.detach().contiguous() for k, v in pretransform.state_dict().items()}
    save_file(tensors, str(FIXTURES / "model.safetensors"))
    (FIXTURES / "model_config.json").write_text(json.dumps(config, indent=4) + "\n")
    save_file(
        {"audio": audio, "mean": mean.contiguous(), "decoded": decoded.contiguous()},
        str(FIXTURES / "io.safetensors"),
    )
    return result


def dit_parts() -> None:
    """The peer's DiT pieces that map onto one option of ours each, with random weights, an input
    and the peer's output: ``feed_forward`` (SwiGLU, width 16, mult 4)."""
    import torch
    from safetensors.torch import save_file
    from stable_audio_tools.models.transformer import FeedForward

    torch.manual_seed(SEED)
    feed_forward = FeedForward(16, mult=4, zero_init_output=False).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        y = feed_forward(x)
    tensors = {f"feed_forward.weights.{k}": v.contiguous() for k, v in feed_forward.state_dict().items()}
    save_file({**tensors, "feed_forward.input": x, "feed_forward.output": y}, str(DIT_PARTS))


def full(seconds: float) -> dict:
    """Stable Audio Open 1.0's autoencoder at full size, random weights, a ``seconds`` input."""
    config = model_config(128, 64)
    pretransform = peer_pretransform(config, SEED)
    frames = max(1, round(seconds * RATE / 2048))
    audio = test_audio(1, frames * 2048, SEED)
    with tempfile.TemporaryDirectory() as work:
        result = compare(config, pretransform, audio, Path(work))
    result.pop("outputs")
    return result


def write_results(results: dict[str, dict], path: Path, dit_section: list[str] = ()) -> str:
    from importlib.metadata import version

    import torch

    rows = [
        "| model | tensors | parameters | input | encode (mean) rel. error | decode rel. error | "
        "exported, decoded by the peer | peer encode / decode s | ours encode / decode s | import s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        seconds = r["samples"] / RATE
        rows.append(
            f"| {name} | {r['tensors']} | {r['parameters']:,} | {r['batch']} x 2 x {r['samples']} ({seconds:.2f} s) "
            f"| {r['encode_error']:.1e} | {r['decode_error']:.1e} | {r['export_decode_error']:.1e} "
            f"| {r['peer_encode_s']:.2f} / {r['peer_decode_s']:.2f} | {r['our_encode_s']:.2f} / {r['our_decode_s']:.2f} "
            f"| {r['import_s']:.1f} |"
        )
    text = "\n".join(
        [
            "# Stable Audio Open: our import against stable-audio-tools",
            "",
            "## The autoencoder",
            "",
            f"`python -m experiments.interop.fixtures` on {platform.machine()} ({os.cpu_count()} cores), "
            f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, stable-audio-tools "
            f"{version('stable-audio-tools')}, fp32, {torch.get_num_threads()} threads.",
            "",
            "Random weights with a fixed seed (the peer's init, weight-norm gains and Snake alpha/beta "
            "randomised), built by the peer's own factory from a `diffusion_cond` model config; the "
            "checkpoint imported with `latentaudio.interop.stable_audio_tools.import_vae`. Errors are "
            "max |ours - theirs| / max |theirs|; the tests require below 1e-4. *exported*: our bundle "
            "written back with `export_vae`, loaded by the peer's `create_model_from_config` and decoded "
            "there. Timings are one run each, fp32, including the first call.",
            "",
            *rows,
            "",
            f"- small: the committed fixtures (`tests/fixtures/interop/sao_vae_small`): SAO 1.0's structure at "
            f"{SMALL_CHANNELS} base channels and {SMALL_LATENT} latent channels, one Snake beta set to "
            f"{SMALL_LOW_BETA} (below our default floor of 0.01, so the import lowers its floor to it).",
            "- full: SAO 1.0's autoencoder config as published (128 base channels, 64 latent channels); "
            "a short input, because the 2-core CPU takes seconds per second of audio.",
            "",
            *dit_section,
        ]
    )
    Path(path).write_text(text)
    return text


def main() -> None:
    from experiments.benchmarks.peer import PEER_PYTHON, PEER_VENV, ensure_peer_venv
    from experiments.common import parse_arguments

    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    if Path(sys.prefix).resolve() != PEER_VENV.resolve():
        ensure_peer_venv()
        os.execv(str(PEER_PYTHON), [str(PEER_PYTHON), "-m", "experiments.interop.fixtures", *sys.argv[1:]])
    import torch

    import latentaudio

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    print(f"latentaudio from {Path(latentaudio.__file__).parent}", flush=True)
    dit_parts()
    results = {"small": small()}
    print("small:", {k: v for k, v in results["small"].items()}, flush=True)
    from safetensors.torch import load_file

    from experiments.interop import dit_fixtures

    pretransform = load_file(str(FIXTURES / "model.safetensors"))
    dit_results = []
    for name in dit_fixtures.STRUCTURES:
        dit_fixtures.write(name, model_config(SMALL_CHANNELS, SMALL_LATENT), pretransform)
        print(f"wrote {dit_fixtures.FIXTURES / name}", flush=True)
        dit_results.append(dit_fixtures.compare(name, model_config(SMALL_CHANNELS, SMALL_LATENT)))
        print(dit_results[-1], flush=True)
    if args["full_dit"]:
        for name in dit_fixtures.STRUCTURES:
            frames = int(args["full_dit_frames"])
            dit_results.append(dit_fixtures.compare(name, model_config(128, 64), full=True, frames=frames))
            print(dit_results[-1], flush=True)
    if args["full"]:
        results["full"] = full(float(args["full_seconds"]))
        print("full:", results["full"], flush=True)
    print(write_results(copy.deepcopy(results), args["output"], dit_fixtures.results_section(dit_results)))


if __name__ == "__main__":
    main()
