"""A noise branch fitted after training: does filling what the decoder lacks bring the DiT's bells back?

    .venv/bin/python -m experiments.vae_fidelity.noise_head vae=outputs/demo/vae/export dit=outputs/demo/dit/export

noise_fill.py's oracle fills each reconstruction's shortfall against the real clip (the power
the real clip has beyond the reconstruction in each STFT bin, averaged over ``bands`` bands a
frame) with random-phase noise, and the label judge hears the bells again. This probe asks
whether a network can predict that shortfall without the real clip: a small conv net (two
k=3 convs of width 128 with GELUs, then a 1x1 conv) reads the frozen VAE's latents and the log
band powers of its decoder's output, and is fitted on the training clips (the clips the label
judge does not hold out) to the log of (decoder + shortfall) power by the squared log ratio
(the conditional mean; the absolute one, the median, learns almost nothing). Then, on the
judge's held-out clips, the reconstructions plus its noise (``scales``: its power times each):
SI-SDR and the judge, beside the oracle; and with ``dit=``, `make evaluate`'s label adherence
(24 clips a label, seed 0) of the DiT's clips decoded with that noise added.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from experiments.common import parse_arguments
from experiments.vae_fidelity.noise_fill import (
    HOP,
    band_edges,
    band_mean,
    band_spread,
    noise_fill,
    random_phase_noise,
    stft,
)

EPS = 1e-7  # power floor in the logs


def _head(latent_dim: int, bands: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(latent_dim + bands, 128, 3, padding=1),
        nn.GELU(),
        nn.Conv1d(128, 128, 3, padding=1),
        nn.GELU(),
        nn.Conv1d(128, bands, 1),
    )


def _inputs(latents: torch.Tensor, have: torch.Tensor) -> torch.Tensor:
    return torch.cat([latents, (have + EPS).log() / 5], dim=1)  # (N, D + bands, F)


def fit_head(vae, clips: list[torch.Tensor], edges: list[int], steps: int, seed: int = 0) -> nn.Module:
    """The head fitted on ``clips`` (each (1, T), mono) through the frozen ``vae``."""
    torch.manual_seed(seed)
    latents, have, short = [], [], []
    with torch.inference_mode():
        for clip in clips:
            z = vae.encode_posterior(clip[None])[0]  # (1, D, F)
            decoded = vae.decode(z, length=clip.shape[-1])[0]
            real_power, decoded_power = stft(clip).abs().pow(2), stft(decoded).abs().pow(2)
            frames = z.shape[-1]
            latents.append(z[0])
            have.append(band_mean(decoded_power, edges)[0, :, :frames])
            short.append(band_mean((real_power - decoded_power).clamp(min=0), edges)[0, :, :frames])
    latents, have, short = torch.stack(latents), torch.stack(have), torch.stack(short)  # (N, ., F)
    head = _head(latents.shape[1], have.shape[1])
    optimizer = torch.optim.Adam(head.parameters(), 1e-3)
    for _ in range(steps):
        batch = torch.randint(0, len(latents), (16,))
        predicted = head(_inputs(latents[batch], have[batch])).exp()
        ratio = (have[batch] + predicted + EPS).log() - (have[batch] + short[batch] + EPS).log()
        loss = ratio.pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


def with_noise(
    head: nn.Module, edges: list[int], latents: torch.Tensor, decoded: torch.Tensor, scale: float, generator
):
    """``decoded`` (C, T) plus the head's noise for ``latents`` (D, F), its power times ``scale``."""
    frames = latents.shape[-1]
    with torch.inference_mode():
        have = band_mean(stft(decoded).abs().pow(2), edges)[..., :frames]  # (C, bands, F)
        per_band = head(_inputs(latents[None], have[:1])).exp()  # (1, bands, F)
    per_bin = band_spread(per_band, edges)  # (1, bins, F)
    per_bin = torch.cat([per_bin, per_bin[..., -1:]], dim=-1)  # the STFT's F + 1 frames: the last repeated
    noise = random_phase_noise(per_bin * scale, frames * HOP, generator)
    return decoded + noise[..., : decoded.shape[-1]]


def main(argv: list[str]) -> None:
    from experiments.vae_fidelity.bells import judged_setup
    from latentaudio import adherence
    from latentaudio.metrics import si_sdr

    args = parse_arguments(
        argv,
        {
            "vae": "outputs/demo/vae/export",
            "dit": "",
            "data": "data/demo",
            "bands": 64,
            "steps": 3000,
            "scales": "1,2",
        },
        __doc__,
    )
    autoencoder, real, _, judge, held, asked = judged_setup(args["vae"], args["data"])
    rate, vae = real.sample_rate, autoencoder.vae.eval()
    if autoencoder.hop != HOP:
        raise SystemExit(f"{args['vae']}: hop {autoencoder.hop}; this probe's STFT frames are {HOP} samples")
    edges = band_edges(int(args["bands"]))
    held_set = set(held)
    head = fit_head(
        vae,
        [real.clips[i].float() for i in range(len(real.clips)) if i not in held_set],
        edges,
        int(args["steps"]),
    )
    originals = [real.clips[i].float() for i in held]
    with torch.inference_mode():
        latents = [vae.encode_posterior(x[None])[0][0] for x in originals]
        decoded = [vae.decode(z[None], length=x.shape[-1])[0] for z, x in zip(latents, originals)]
    generator = torch.Generator().manual_seed(0)

    def row(clips) -> dict:
        verdict = judge.judge(clips, asked, rate)
        return {
            "judge": round(verdict["accuracy"], 3),
            "bell": round(verdict["per_label"].get("bell", float("nan")), 2),
            "si_sdr_db": round(
                float(torch.stack([si_sdr(y, x).mean() for x, y in zip(originals, clips)]).mean()), 2
            ),
        }

    scales = [float(s) for s in str(args["scales"]).split(",")]
    rows = {
        "vae": row(decoded),
        "oracle": row([noise_fill(x, y, int(args["bands"]), generator) for x, y in zip(originals, decoded)]),
    }
    for scale in scales:
        rows[f"head x{scale:g}"] = row(
            [with_noise(head, edges, z, y, scale, generator) for z, y in zip(latents, decoded)]
        )
    print(json.dumps(rows, indent=1), flush=True)
    if not args["dit"]:
        return
    from latentaudio.pipeline import Pipeline

    pipeline = Pipeline.from_bundles(args["vae"], args["dit"])
    plain = pipeline.autoencoder.decode
    for scale in [0.0, *scales]:

        def decode(latents: torch.Tensor, length: int | None = None, scale=scale) -> torch.Tensor:
            audio = plain(latents, length=length)  # (B, C, T)
            if scale == 0:
                return audio
            return torch.stack(
                [
                    with_noise(head, edges, z.float(), y.float(), scale, generator)
                    for z, y in zip(latents, audio)
                ]
            )

        pipeline.autoencoder.decode = decode
        labels = adherence.measure_adherence(
            pipeline, adherence.read_real_clips(Path(args["data"]), rate), 24, 0, seed=0
        )["labels"]
        print(
            json.dumps(
                {
                    f"DiT, head x{scale:g}": {
                        "accuracy": round(labels["accuracy"], 3),
                        "per_label": labels["per_label"],
                        "through_vae": round(labels["vae_ceiling"], 3),
                    }
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
