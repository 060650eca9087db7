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
from experiments.vae_fidelity.noise_fill import _random_phase_noise, _stft, noise_fill

EPS = 1e-7  # power floor in the logs


class _Bands:
    """Equal-width bands over the 513 bins of noise_fill's STFT (1024 / 256)."""

    def __init__(self, count: int):
        self.edges = torch.linspace(0, 513, count + 1).round().long().tolist()

    def mean(self, power: torch.Tensor, frames: int) -> torch.Tensor:
        """(C, 513, T) -> (C, bands, frames): the mean of each band's bins, the first ``frames`` frames."""
        return torch.stack([power[:, lo:hi].mean(1) for lo, hi in zip(self.edges[:-1], self.edges[1:])], 1)[
            ..., :frames
        ]

    def spread(self, per_band: torch.Tensor) -> torch.Tensor:
        """(bands, F) -> (1, 513, F + 1): each band's value in its bins, the last frame repeated."""
        bins = torch.cat(
            [
                per_band[j : j + 1].expand(hi - lo, -1)
                for j, (lo, hi) in enumerate(zip(self.edges[:-1], self.edges[1:]))
            ]
        )
        return torch.cat([bins, bins[:, -1:]], dim=1)[None]


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


def fit_head(vae, clips: list[torch.Tensor], bands: _Bands, steps: int, seed: int = 0) -> nn.Module:
    """The head fitted on ``clips`` (each (1, T), mono) through the frozen ``vae``."""
    torch.manual_seed(seed)
    latents, have, short = [], [], []
    with torch.inference_mode():
        for clip in clips:
            z = vae.encode_posterior(clip[None])[0]  # (1, D, F)
            decoded = vae.decode(z, length=clip.shape[-1])[0]
            real_power, decoded_power = _stft(clip).abs().pow(2), _stft(decoded).abs().pow(2)
            frames = z.shape[-1]
            latents.append(z[0])
            have.append(bands.mean(decoded_power, frames)[0])
            short.append(bands.mean((real_power - decoded_power).clamp(min=0), frames)[0])
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
    head: nn.Module, bands: _Bands, latents: torch.Tensor, decoded: torch.Tensor, scale: float, generator
):
    """``decoded`` (C, T) plus the head's noise for ``latents`` (D, F), its power times ``scale``."""
    frames = latents.shape[-1]
    with torch.inference_mode():
        have = bands.mean(_stft(decoded).abs().pow(2), frames)  # (C, bands, F)
        per_band = head(_inputs(latents[None], have[:1]))[0].exp()  # (bands, F)
    noise = _random_phase_noise(bands.spread(per_band) * scale, frames * 256, generator)
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
    if autoencoder.hop != 256:
        raise SystemExit(f"{args['vae']}: hop {autoencoder.hop}; this probe's STFT frames are 256 samples")
    bands = _Bands(int(args["bands"]))
    held_set = set(held)
    head = fit_head(
        vae,
        [real.clips[i].float() for i in range(len(real.clips)) if i not in held_set],
        bands,
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
        "oracle": row(
            [noise_fill(x, y, len(bands.edges) - 1, generator) for x, y in zip(originals, decoded)]
        ),
    }
    for scale in scales:
        rows[f"head x{scale:g}"] = row(
            [with_noise(head, bands, z, y, scale, generator) for z, y in zip(latents, decoded)]
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
                    with_noise(head, bands, z.float(), y.float(), scale, generator)
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
