"""latentaudio against Stability AI's stable-audio-tools, at equal sizes, on this machine, in one run.

    .venv/bin/python -m experiments.benchmarks.peer            # writes experiments/benchmarks/results.md
    .venv/bin/python -m experiments.benchmarks.peer warmup=1 rounds=3 output=/tmp/peer_smoke.md
    make bench-peer ARGS="rounds=25 output=/tmp/peer_results.md"

``warmup``: untimed calls per side first (the first calls are slower: README.md); ``rounds``:
rounds of alternation (the median and quartiles are reported, and the ratio round by round);
``steps``: DiT steps per side per round; ``output``: the results file.

The first run makes ``experiments/benchmarks/.venv-peer`` (git-ignored): a venv that sees our
``.venv`` (so both sides use the same torch 2.11.0) and gets ``stable-audio-tools`` installed
``--no-deps``, plus only the packages its model, sampling and training modules import
(``PEER_PACKAGES``). The script then re-runs itself inside that venv, builds both sides and
measures them alternately (ours, theirs, ours, theirs...), reporting the median of the rounds
and their spread:

- VAE training step (each side's reconstruction loss + KL, AdamW, no discriminator: our recipe's
  critic joins at step 1000, the demo's at 900), audio-seconds per wall-second;
- DiT training step (v-objective, timing as global conditioning), audio-seconds per second;
- sampling realtime factor at equal steps (DPM-Solver++ 2M, no guidance) including the decode;
  on a CPU with native bf16 also with our decode in bf16, as ``make generate`` decodes there
  (``decode_precision=auto``), against the peer's in fp32 (its default) and in bf16.
- sampling at equal quality, when ``fewstep_peer.py`` has kept its peer (``fewstep=``): our demo DiT
  distilled to 4 steps against the peer's DiT trained as long on the same latents, at the fewest
  guided steps it needs to be as good (label accuracy and FD, from the kept scores); both decode
  with the demo VAE (``demo_vae=``), as ``make generate`` does and in fp32.

Sizes: the layout of our ``conf/model/vae/demo.yaml`` at 32 base channels (16 kHz mono, mults
1 2 4 8, strides 2 4 4 8, 16 latent channels; the demo now uses 16 channels, and this stays at 32
so that results.md compares with earlier runs) and ``conf/model/dit/demo.yaml`` (width 192,
depth 4, 4 heads, 128 frames). Our steps are experiments/throughput/steps.py's, the same code
the throughput scripts, ``bench.py`` and ``quality.py`` time and train.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEER_VENV = HERE / ".venv-peer"
PEER_PYTHON = PEER_VENV / "bin" / "python"
# What stable-audio-tools 0.0.19's models/, inference/ and training/ import, found by importing
# them and adding each missing module (k-diffusion pulls in most of these at import time).
PEER_PACKAGES = [
    "stable-audio-tools==0.0.19",
    "k-diffusion==0.1.1.post1",
    "huggingface_hub",
    "httpx2",
    "alias-free-torch",
    "ema-pytorch",
    "einops-exts",
    "descript-audiotools",
    "flatten_dict",
    "julius",
    "ffmpy",
    "importlib_resources",
    "randomname",
    "tensorboard",
    "absl-py",
    "scikit-image",
    "lazy_loader",
    "imageio",
    "tifffile",
    "clean-fid",
    "clip-anytorch",
    "torchvision==0.26.0",  # the release paired with torch 2.11.0
    "torchsde",
    "trampoline",
    "torchdiffeq",
    "dctorch",
    "jsonmerge",
    "jsonschema",
    "referencing",
    "rpds-py",
    "jsonschema-specifications",
    "ftfy",
    "regex",
]

RATE, HOP, LATENT = 16000, 256, 16
# bands=1: the peer codes the waveform; the demo recipe's sub-bands would make ours a smaller network
VAE_SIZE = dict(
    base_channels=32,
    channel_mults=[1, 2, 4, 8],
    strides=[2, 4, 4, 8],
    latent_dim=LATENT,
    bands=1,
    spectral_channels=0,
    noise_bands=0,  # the peer's Oobleck learns every latent channel and has no noise branch
)
# the demo batches of the recorded runs: conf/experiment/demo_vae.yaml's and demo_dit.yaml's until
# 2026-12-06 (4 crops and 8 clips since)
VAE_BATCH, VAE_SAMPLES = 8, 8192
DIT_SIZE = dict(width=192, depth=4, heads=4)
DIT_BATCH, DIT_FRAMES = 16, 128
SAMPLE_BATCH, SAMPLE_STEPS = 4, 30
# conf/train_vae.yaml's loss windows: fft sizes, hops, windows (what our side's steps read too)
_OUR_LOSS = yaml.safe_load((REPO / "conf" / "train_vae.yaml").read_text())["loss"]
OUR_LOSS_SIZES = tuple(_OUR_LOSS[key] for key in ("fft_sizes", "hop_sizes", "win_lengths"))
DEFAULTS = {
    "warmup": 3,  # untimed calls per side before the rounds
    "rounds": 15,
    "steps": 3,  # DiT steps per side per round
    "output": HERE / "results.md",
    # the row "sampling at equal quality": what fewstep_peer.py kept, and the VAE both sides decode with
    "fewstep": "outputs/bench/fewstep_peer",
    "demo_vae": "outputs/demo/vae/export",
}


# ------------------------------------------------------------------------------ the peer venv


def ensure_peer_venv() -> None:
    if PEER_PYTHON.exists():
        probe = [
            str(PEER_PYTHON),
            "-c",
            "import stable_audio_tools.models.dit, stable_audio_tools.inference.sampling",
        ]
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return
    print(f"setting up {PEER_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    purelib = subprocess.run(
        [str(PEER_PYTHON), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # our venv as a site dir (its .pth files too, so the editable latentaudio imports): same torch
    main_site = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_latentaudio_main_venv.pth").write_text(
        f"import site; site.addsitedir({main_site!r})\n"
    )
    subprocess.run([str(PEER_PYTHON), "-m", "pip", "install", "-q", "--no-deps", *PEER_PACKAGES], check=True)


def run_in_peer_venv(module: str) -> None:
    """Re-run ``python -m module`` with this process's arguments inside the peer's venv (made if
    missing); returns only when this process already runs there."""
    if Path(sys.prefix).resolve() != PEER_VENV.resolve():
        ensure_peer_venv()
        os.execv(str(PEER_PYTHON), [str(PEER_PYTHON), "-m", module, *sys.argv[1:]])


# ------------------------------------------------------------------------------ the two sides


def our_steps():
    """experiments/throughput/steps.py: the LightningModules' own training steps."""
    from experiments.throughput import steps

    return steps


def ours_vae(bf16: bool = False):
    """Our VAE at ``VAE_SIZE`` and its step (fp32 or bf16-mixed, no discriminator, conf/train_vae.yaml's loss)."""
    import torch

    module, step = our_steps().vae_training(
        dict(channels=1, **VAE_SIZE), torch.device("cpu"), bf16=bf16, adversarial=False, sample_rate=RATE
    )
    return module.vae, lambda audio: float(step(audio))


def peer_autoencoder(size: dict = VAE_SIZE):
    """The peer's Oobleck VAE (mono, ``RATE``) at our sizes: ``base_channels``, ``channel_mults``,
    ``strides``, ``latent_dim`` as in our VAE configs."""
    from stable_audio_tools.models.autoencoders import create_autoencoder_from_config

    oobleck = {
        "in_channels": 1,
        "channels": size["base_channels"],
        "c_mults": list(size["channel_mults"]),
        "strides": list(size["strides"]),
        "use_snake": True,
    }
    latent = size["latent_dim"]
    config = {
        "model_type": "autoencoder",
        "sample_rate": RATE,
        "audio_channels": 1,
        "model": {
            "encoder": {"type": "oobleck", "config": {**oobleck, "latent_dim": 2 * latent}},
            "decoder": {
                "type": "oobleck",
                "config": {**oobleck, "out_channels": 1, "latent_dim": latent, "final_tanh": False},
            },
            "bottleneck": {"type": "vae"},
            "latent_dim": latent,
            "downsampling_ratio": math.prod(size["strides"]),
            "io_channels": 1,
        },
    }
    config["model"]["decoder"]["config"].pop("in_channels")
    return create_autoencoder_from_config(config)


def sao_spectral_loss():
    """The Stable Audio Open VAE recipe's spectral loss (mono: plain MR-STFT), with perceptual weighting;
    called ``(reals, decoded)``."""
    import auraloss

    sizes = [2048, 1024, 512, 256, 128, 64, 32]
    return auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes,
        hop_sizes=[s // 4 for s in sizes],
        win_lengths=sizes,
        sample_rate=RATE,
        perceptual_weighting=True,
    )


def theirs_vae(our_loss: bool = False, bf16: bool = False):
    """The peer's VAE and step; ``bf16``: its network under bf16 autocast, the loss in fp32 (as
    Lightning's ``bf16-mixed`` would run its training wrapper, less the loss's own autocast)."""
    import contextlib

    import torch

    autoencoder = peer_autoencoder()
    loss_fn = sao_spectral_loss()
    if our_loss:
        from latentaudio.vae.losses import SpectralReconstructionLoss

        ours = SpectralReconstructionLoss(RATE, 1, *OUR_LOSS_SIZES)
        loss_fn = lambda reals, decoded: ours(decoded, reals)[0]  # noqa: E731
    optimizer = torch.optim.AdamW(autoencoder.parameters(), lr=1.5e-4, betas=(0.8, 0.99))

    def step(audio):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            latents, info = autoencoder.encode(audio, return_info=True)
            decoded = autoencoder.decode(latents)
        loss = loss_fn(audio, decoded.float()) + 1e-4 * info["kl"].float()  # their order (reals, decoded)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(autoencoder.parameters(), 1.0)
        optimizer.step()
        return float(loss.detach())

    return autoencoder, step


def ours_dit():
    import torch

    from latentaudio.dit.samplers import sample

    # no EMA: the peer's side leaves it out too
    module, train_step = our_steps().dit_training(
        DIT_SIZE, LATENT, torch.device("cpu"), overrides=["ema.decay=0"]
    )
    denoiser, objective = module.denoiser, module.objective

    def conditions(batch):
        return {
            "seconds_start": torch.zeros(batch),
            "seconds_total": torch.full((batch,), DIT_FRAMES * HOP / RATE),
            "label": torch.zeros(batch, dtype=torch.long),
        }

    def step(x0):
        return float(train_step(x0, conditions(x0.shape[0])))

    @torch.inference_mode()
    def sampler(noise, steps):
        batch = conditions(noise.shape[0])
        return sample(lambda x, t: denoiser(x, t, batch), noise, objective, "dpmpp_2m", steps)

    denoiser.eval()  # sampling runs in eval; the step function trains regardless of dropout here
    return denoiser, step, sampler


def theirs_dit():
    import math

    import torch
    from stable_audio_tools.inference.sampling import sample_k
    from stable_audio_tools.models.dit import DiffusionTransformer

    dit = DiffusionTransformer(
        io_channels=LATENT,
        embed_dim=DIT_SIZE["width"],
        depth=DIT_SIZE["depth"],
        num_heads=DIT_SIZE["heads"],
        cond_token_dim=0,
        global_cond_dim=DIT_SIZE["width"],
        project_cond_tokens=False,
        transformer_type="continuous_transformer",
    )
    optimizer = torch.optim.AdamW(dit.parameters(), lr=3e-4, betas=(0.9, 0.99))
    # their timing conditioner's output; a fixed tensor (its MLP costs microseconds)
    global_embed = torch.randn(1, DIT_SIZE["width"])

    def step(x0):
        t = torch.rand(x0.shape[0])
        alpha, sigma = torch.cos(t * math.pi / 2)[:, None, None], torch.sin(t * math.pi / 2)[:, None, None]
        noise = torch.randn_like(x0)
        out = dit(
            x0 * alpha + noise * sigma,
            t,
            global_embed=global_embed.expand(x0.shape[0], -1),
            cfg_dropout_prob=0.1,
        )
        loss = torch.nn.functional.mse_loss(out, noise * alpha - x0 * sigma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        optimizer.step()
        return float(loss.detach())

    @torch.inference_mode()
    def sampler(noise, steps):
        embed = global_embed.expand(noise.shape[0], -1)
        return sample_k(
            dit, noise, steps=steps, sampler_type="dpmpp-2m", device="cpu", global_embed=embed, cfg_scale=1.0
        )

    dit.eval()
    return dit, step, sampler


# ------------------------------------------------------------------------------ measuring


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Median, lower and upper quartile."""
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return median, low, high


def cpu_counters() -> tuple[float, ...]:
    """Wall clock, this process's CPU seconds, and the machine's steal and total jiffies (Linux)."""
    stat = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return time.perf_counter(), time.process_time(), stat[7], sum(stat)


def alternate(name: str, sides: dict, warmup: int, rounds: int, calls: int, work_seconds: float) -> dict:
    """Seconds per call of each side over ``rounds`` rounds of ``calls`` calls, the sides taking turns
    call by call after ``warmup`` untimed calls each.

    Per side the median and quartiles of the rounds; per peer side the speed ratio (its seconds over
    ours) round by round, since a slow spell of the machine slows both sides of one round alike.
    """
    import torch

    from experiments.common import Variant, time_interleaved

    variants = [
        Variant(label, lambda fn=fn, args=args: fn(*args), work_seconds, 0)
        for label, (fn, args) in sides.items()
    ]
    before = cpu_counters()
    time_interleaved(variants, warmup, rounds * calls, torch.device("cpu"))
    wall, cpu, steal, total = (b - a for a, b in zip(before, cpu_counters()))
    seconds = {
        v.name: [statistics.fmean(v.times[i * calls : (i + 1) * calls]) for i in range(rounds)]
        for v in variants
    }
    result = {
        "seconds": {label: quartiles(v) for label, v in seconds.items()},
        "ratio": {
            label: quartiles([p / o for p, o in zip(v, seconds["ours"])])
            for label, v in seconds.items()
            if label != "ours"
        },
        # below 1.0 or steal above 0: the machine was shared during this row
        "cpu_share": cpu / (wall * torch.get_num_threads()),
        "steal": steal / total,
        "work_seconds": work_seconds,
    }
    for label, v in seconds.items():
        print(f"  {name} {label}, seconds per round: " + " ".join(f"{t:.3f}" for t in v), flush=True)
    ratios = ", ".join(f"{k} {m:.2f}x ({lo:.2f}-{hi:.2f})" for k, (m, lo, hi) in result["ratio"].items())
    print(
        f"  {name}: ours / {ratios}; CPU share {result['cpu_share']:.2f}, steal {result['steal']:.1%}",
        flush=True,
    )
    return result


def measure(warmup: int, rounds: int, steps: int, fewstep: str = "", demo_vae: str = "") -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(0)
    results, info = {}, {}
    audio = 0.1 * torch.randn(VAE_BATCH, 1, VAE_SAMPLES)
    our_vae, our_vae_step = ours_vae()
    peer_vae, peer_vae_step = theirs_vae()
    _, peer_vae_our_loss_step = theirs_vae(our_loss=True)
    info["vae_parameters"] = {
        k: sum(p.numel() for p in m.parameters()) for k, m in (("ours", our_vae), ("peer", peer_vae))
    }
    print("VAE training step", flush=True)
    results["vae_train"] = alternate(
        "vae",
        {
            "ours": (our_vae_step, (audio,)),
            "peer": (peer_vae_step, (audio,)),
            "peer_our_loss": (peer_vae_our_loss_step, (audio,)),
        },
        warmup,
        rounds,
        1,  # a VAE step takes seconds here: one per side per round
        VAE_BATCH * VAE_SAMPLES / RATE,
    )

    from latentaudio.devices import native_bf16

    if native_bf16("cpu"):  # our default precision here (fastest_precision): each side in bf16-mixed too
        print("VAE training step, bf16-mixed", flush=True)
        _, our_bf16_step = ours_vae(bf16=True)
        _, peer_bf16_step = theirs_vae(bf16=True)
        results["vae_train_bf16"] = alternate(
            "vae bf16",
            {
                "ours": (our_bf16_step, (audio,)),
                "peer": (peer_vae_step, (audio,)),
                "peer_bf16": (peer_bf16_step, (audio,)),
            },
            warmup,
            rounds,
            1,
            VAE_BATCH * VAE_SAMPLES / RATE,
        )

    latents = torch.randn(DIT_BATCH, LATENT, DIT_FRAMES)
    our_dit, our_dit_step, our_sampler = ours_dit()
    peer_dit, peer_dit_step, peer_sampler = theirs_dit()
    info["dit_parameters"] = {
        k: sum(p.numel() for p in m.parameters()) for k, m in (("ours", our_dit), ("peer", peer_dit))
    }
    print("DiT training step", flush=True)
    results["dit_train"] = alternate(
        "dit",
        {"ours": (our_dit_step, (latents,)), "peer": (peer_dit_step, (latents,))},
        warmup,
        rounds,
        steps,
        DIT_BATCH * DIT_FRAMES * HOP / RATE,
    )

    noise = torch.randn(SAMPLE_BATCH, LATENT, DIT_FRAMES)

    def our_generate(bf16_decode: bool = False):
        with torch.inference_mode():
            latents = our_sampler(noise, SAMPLE_STEPS)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_decode):
                our_vae.decode(latents)

    def peer_generate(bf16_decode: bool = False):
        with torch.inference_mode():
            latents = peer_sampler(noise.clone(), SAMPLE_STEPS)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_decode):
                peer_vae.decode(latents)

    our_vae.eval()
    peer_vae.eval()
    print(f"sampling {SAMPLE_STEPS} steps + decode", flush=True)
    results["sampling"] = alternate(
        "sampling",
        {"ours": (our_generate, ()), "peer": (peer_generate, ())},
        warmup,
        rounds,
        1,
        SAMPLE_BATCH * DIT_FRAMES * HOP / RATE,
    )
    if native_bf16("cpu"):  # make generate decodes in bf16 here (decode_precision=auto): each side so too
        print(f"sampling {SAMPLE_STEPS} steps + bf16 decode", flush=True)
        results["sampling_bf16"] = alternate(
            "sampling, bf16 decode",
            {
                "ours": (our_generate, (True,)),
                "peer": (peer_generate, ()),
                "peer_bf16": (peer_generate, (True,)),
            },
            warmup,
            rounds,
            1,
            SAMPLE_BATCH * DIT_FRAMES * HOP / RATE,
        )

    from experiments.benchmarks.fewstep_peer import equal_quality_pair

    # decoded as make generate decodes (bf16 where native), then both sides in fp32
    for key, precision in (("sampling_equal_quality", "auto"), ("sampling_equal_quality_fp32", "fp32")):
        pair = equal_quality_pair(fewstep, demo_vae, SAMPLE_BATCH, DIT_FRAMES, precision) if fewstep else None
        if pair is None:
            print(
                f"sampling at equal quality: skipped, nothing in {fewstep or '(fewstep=)'} yet; "
                "run `.venv/bin/python -m experiments.benchmarks.fewstep_peer` first",
                flush=True,
            )
            break
        print(f"sampling at equal quality: {pair.what}", flush=True)
        results[key] = alternate(
            "equal quality", {"ours": (pair.ours, ()), "peer": (pair.peer, ())}, warmup, rounds, 1, pair.work
        )
        info.setdefault("equal_quality", pair)
    return {"results": results, "info": info}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores visible, torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(
        f"{name} {version(name)}"
        for name in ("torch", "stable-audio-tools", "k-diffusion", "auraloss", "einops")
    )


def rates(work_seconds: float, seconds: tuple[float, float, float]) -> str:
    """Work per second from seconds per call: the median (lower-upper quartile)."""
    median, fast, slow = (work_seconds / t for t in seconds)  # the fewer seconds, the faster
    return f"{median:.2f} ({slow:.2f}-{fast:.2f})"


def write_results(measured: dict, args: dict, path: Path) -> str:
    r, info = measured["results"], measured["info"]
    rows = [
        ("VAE training step", "vae_train", "peer", "audio-s / s"),
        ("VAE step, peer network with our loss", "vae_train", "peer_our_loss", "audio-s / s"),
        ("DiT training step", "dit_train", "peer", "audio-s / s"),
        (f"sampling, {SAMPLE_STEPS} steps + decode", "sampling", "peer", "x realtime"),
    ]
    if "sampling_equal_quality" in r:
        steps = info["equal_quality"].steps
        rows += [
            (
                f"sampling at equal quality (ours distilled, peer {steps} steps) + {decode}",
                key,
                "peer",
                "x realtime",
            )
            for decode, key in (
                ("decode as `make generate` does", "sampling_equal_quality"),
                ("fp32 decode", "sampling_equal_quality_fp32"),
            )
            if key in r
        ]
    if "sampling_bf16" in r:  # on a CPU with native bf16, make generate decodes in bf16
        at = [row[1] for row in rows].index("sampling") + 1
        rows[at:at] = [
            (
                f"sampling, {SAMPLE_STEPS} steps + decode, ours bf16, peer fp32",
                "sampling_bf16",
                "peer",
                "x realtime",
            ),
            (
                f"sampling, {SAMPLE_STEPS} steps + decode, both bf16",
                "sampling_bf16",
                "peer_bf16",
                "x realtime",
            ),
        ]
    if "vae_train_bf16" in r:  # on a CPU with native bf16: our default precision there
        rows[1:1] = [
            ("VAE training step, ours bf16-mixed, peer fp32", "vae_train_bf16", "peer", "audio-s / s"),
            ("VAE training step, both bf16-mixed", "vae_train_bf16", "peer_bf16", "audio-s / s"),
        ]
    lines = [
        "# latentaudio vs stable-audio-tools (measured)",
        "",
        "Regenerate: `.venv/bin/python -m experiments.benchmarks.peer` (installs the peer into",
        "`experiments/benchmarks/.venv-peer` on first use, then measures; about 6 minutes).",
        "",
        f"- machine: {machine()}; {versions()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}; {args['warmup']} untimed warm-up calls per side, then {args['rounds']} rounds of"
        f" 1 VAE step / {args['steps']} DiT steps / 1 sampling run per side, the sides taking turns call by call.",
        "- each figure: the median over rounds, (in brackets) the lower and upper quartile. The ratio is taken",
        "  round by round (the peer's seconds over ours in the same round), so a slow spell of the machine,",
        "  which slows both sides of a round, cancels out of it; two runs agree when their ratio ranges overlap.",
        "- CPU share: this process's CPU time over wall time x threads during the row (1.00: it had its threads",
        "  to itself); steal: the share of the machine's CPU time its host took. Load average at the end",
        "  (1 / 5 / 15 min): "
        + " / ".join(f"{v:.1f}" for v in os.getloadavg())
        + " (the benchmark itself is about 2).",
        "",
        "| measurement | ours | peer | ours / peer | CPU share, steal |",
        "|---|---:|---:|---:|---:|",
    ]
    for title, key, peer, unit in rows:
        row = r[key]
        ours, theirs = (rates(row["work_seconds"], row["seconds"][side]) for side in ("ours", peer))
        median, low, high = row["ratio"][peer]
        lines.append(
            f"| {title} ({unit}) | {ours} | {theirs} | **{median:.2f}x** ({low:.2f}-{high:.2f}) "
            f"| {row['cpu_share']:.2f}, {row['steal']:.1%} |"
        )
    lines += [
        "",
        "Seconds per call, median (quartiles): "
        + "; ".join(
            f"{key}: "
            + ", ".join(f"{k} {m:.3f} ({lo:.3f}-{hi:.3f})" for k, (m, lo, hi) in v["seconds"].items())
            for key, v in r.items()
        ),
        "",
        "## Exact configurations",
        "",
        f"- VAE, both sides: 16 kHz mono, base channels {VAE_SIZE['base_channels']}, channel multipliers "
        f"{VAE_SIZE['channel_mults']}, strides {VAE_SIZE['strides']} (hop {HOP}), {LATENT} latent channels, SnakeBeta, "
        f"weight norm, VAE bottleneck. Parameters: ours {info['vae_parameters']['ours']:,}, peer {info['vae_parameters']['peer']:,}.",
        f"  Batch {VAE_BATCH} x {VAE_SAMPLES} samples, fp32 (bf16 rows: the networks under bf16 autocast, the losses in fp32). Ours: `AudioVAE` + `SpectralReconstructionLoss` as in",
        "  `conf/train_vae.yaml` (6 resolutions, 2048..64, no perceptual weighting) + 1e-4 KL. Peer:",
        "  `create_autoencoder_from_config` (Oobleck encoder/decoder, `vae` bottleneck) + auraloss MR-STFT as in",
        "  the Stable Audio Open VAE recipe (7 resolutions 2048..32, perceptual weighting) + 1e-4 KL. Both: AdamW,",
        "  gradient clipping at 1.0, no discriminator (our recipe starts it at step 1000, the demo's at 900).",
        f"- DiT, both sides: width {DIT_SIZE['width']}, depth {DIT_SIZE['depth']}, {DIT_SIZE['heads']} heads, MLP ratio 4,"
        f" {LATENT} latent channels, sequence {DIT_FRAMES} frames, batch {DIT_BATCH}, fp32, v-objective,",
        f"  global (timing) conditioning. Parameters: ours {info['dit_parameters']['ours']:,}, peer {info['dit_parameters']['peer']:,}.",
        "  Ours: `DiT` (adaLN-Zero) + `Conditioner` (timing + 5 labels). Peer: `DiffusionTransformer`",
        "  (`continuous_transformer`, global conditioning prepended as a token), fed a fixed global embedding.",
        "  EMA is left out on both sides.",
        f"- Sampling: {SAMPLE_BATCH} clips of {DIT_FRAMES} frames ({DIT_FRAMES * HOP / RATE:.3f} s each), {SAMPLE_STEPS} steps of",
        "  DPM-Solver++ 2M (ours: `latentaudio.dit.samplers.sample`; peer: `sample_k(..., 'dpmpp-2m')` from",
        "  k-diffusion), guidance off (one network call per step on both sides), then the VAE decode.",
        "  Untrained weights: this measures speed only, not quality.",
        *(
            [
                f"- Sampling at equal quality ({SAMPLE_BATCH} clips per call, sampling + decode): {info['equal_quality'].what}.",
                "  Made by `.venv/bin/python -m experiments.benchmarks.fewstep_peer` (fewstep_peer_results.md).",
            ]
            if "equal_quality" in info
            else [
                "- Sampling at equal quality: not measured in this run (run `.venv/bin/python -m",
                "  experiments.benchmarks.fewstep_peer` first; it trains the peer's DiT as long as ours took).",
            ]
        ),
        "",
        "## Peer install",
        "",
        "`pip install --no-deps` into a venv that sees our `.venv` (same torch 2.11.0):",
        "",
        "    " + " ".join(PEER_PACKAGES),
        "",
    ]
    text = "\n".join(lines)
    path.write_text(text)
    return text


def main() -> None:
    from experiments.common import parse_arguments

    args = parse_arguments(sys.argv[1:], DEFAULTS, __doc__)
    run_in_peer_venv("experiments.benchmarks.peer")
    measured = measure(args["warmup"], args["rounds"], args["steps"], args["fewstep"], args["demo_vae"])
    print(write_results(measured, args, args["output"]))


if __name__ == "__main__":
    main()
