"""Would a decoder that adds shaped noise bring the bells back for the label judge? An oracle.

    .venv/bin/python -m experiments.vae_fidelity.noise_fill vae=outputs/demo/vae/export

The VAE's reconstructions keep the bells' spectral envelope and lose the fine structure and its
movement (bells.py); the waveform L1 answers what the latents cannot pin down with its
conditional mean, which is silence for noise. A noise branch in the decoder (random noise
shaped by gains the decoder predicts, as DDSP's filtered noise) could fill that in. This probe
asks what the best such branch could reach before one is built: each held-out reconstruction gets
random-phase noise whose power fills its shortfall against the real clip, and the label judge
(``make evaluate``'s) scores the result. The shortfall is measured on an STFT (1024 / 256) and
filled at several resolutions: every bin and frame (any noise branch's upper bound), ``bands``
(a list) bands of equal width per frame (a branch at the latent rate predicting that many gains), and one
spectral shape per clip (a fixed noise floor). A reconstruction with white noise 30 dB below the
clip is the known reference (bells.py: 3 of 13 bells). ``self_db`` (a list of dB): the
reconstruction plus noise with its own power in every bin and frame at that level below it,
which needs no real clip (what a decoder could add to anything it decodes).
"""

from __future__ import annotations

import json
import sys

import torch

from experiments.common import parse_arguments

N_FFT, HOP = 1024, 256


def stft(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)  # (C, F, T)


def band_edges(bands: int) -> list[int]:
    """The bin edges of ``bands`` equal-width bands over the STFT's ``N_FFT // 2 + 1`` bins."""
    return torch.linspace(0, N_FFT // 2 + 1, bands + 1).round().long().tolist()


def band_mean(power: torch.Tensor, edges: list[int]) -> torch.Tensor:
    """(C, bins, T) -> (C, bands, T): the mean of each band's bins."""
    return torch.stack([power[:, lo:hi].mean(dim=1) for lo, hi in zip(edges[:-1], edges[1:])], dim=1)


def band_spread(per_band: torch.Tensor, edges: list[int]) -> torch.Tensor:
    """(C, bands, T) -> (C, bins, T): each band's value in every one of its bins."""
    return torch.cat(
        [
            per_band[:, j : j + 1].expand(-1, hi - lo, -1)
            for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))
        ],
        dim=1,
    )


def random_phase_noise(power: torch.Tensor, length: int, generator) -> torch.Tensor:
    """(C, T) noise with ``power`` (C, F, T) in every bin and frame of the STFT, random phases."""
    phase = torch.rand(power.shape, generator=generator) * 2 * torch.pi
    return torch.istft(
        torch.polar(power.sqrt(), phase), N_FFT, HOP, window=torch.hann_window(N_FFT), length=length
    )


def noise_fill(real: torch.Tensor, recon: torch.Tensor, bands: int | None, generator) -> torch.Tensor:
    """``recon`` (C, T) plus random-phase noise with the power ``real`` has and ``recon`` lacks,
    per bin and frame (``bands`` None), per band of ``bands`` equal-width bands and frame, or
    (``bands`` 0) per bin averaged over the clip."""
    target, have = stft(real).abs().pow(2), stft(recon).abs().pow(2)
    shortfall = (target - have).clamp(min=0)  # (C, F, T)
    if bands == 0:
        shortfall = shortfall.mean(dim=-1, keepdim=True).expand_as(shortfall)
    elif bands:
        edges = band_edges(bands)
        shortfall = band_spread(band_mean(shortfall, edges), edges)
    return recon + random_phase_noise(shortfall, real.shape[-1], generator)


def self_shaped(recon: torch.Tensor, db: float, generator) -> torch.Tensor:
    """``recon`` (C, T) plus random-phase noise with its own power per bin and frame, ``db``
    below it: no real clip needed, so a decoder could add it to anything it decodes."""
    power = stft(recon).abs().pow(2) * 10 ** (db / 10)  # (C, F, T)
    return recon + random_phase_noise(power, recon.shape[-1], generator)


def main(argv: list[str]) -> None:
    from experiments.vae_fidelity.bells import judged_setup

    args = parse_arguments(
        argv,
        {
            "vae": "outputs/demo/vae/export",
            "data": "data/demo",
            "bands": "16,64,256",
            "self_db": "-20,-10,-6",
        },
        __doc__,
    )
    autoencoder, real, _, judge, held, asked = judged_setup(args["vae"], args["data"])
    rate = real.sample_rate
    with torch.inference_mode():
        recon = [autoencoder.reconstruct(real.clips[i][None], rate)[0].cpu().float() for i in held]
    originals = [real.clips[i].float() for i in held]

    def verdict(clips) -> dict:
        out = judge.judge(clips, asked, rate)
        return {
            "accuracy": round(out["accuracy"], 3),
            **{k: round(v, 2) for k, v in out["per_label"].items()},
        }

    generator = torch.Generator().manual_seed(0)
    rows = {"real": verdict(originals), "vae": verdict(recon)}
    rows["vae + white noise 30 dB below"] = verdict(
        [
            x + x.pow(2).mean().sqrt() * 10 ** (-30 / 20) * torch.randn(x.shape, generator=generator)
            for x in recon
        ]
    )
    band_counts = [int(b) for b in str(args["bands"]).split(",")]
    for name, bands in (
        ("shortfall filled, every bin and frame", None),
        *((f"shortfall filled, {b} bands a frame", b) for b in band_counts),
        ("shortfall filled, one shape a clip", 0),
    ):
        rows[name] = verdict([noise_fill(x, y, bands, generator) for x, y in zip(originals, recon)])
    for db in (float(d) for d in str(args["self_db"]).split(",") if d):
        rows[f"its own spectrum as noise, {db:g} dB"] = verdict(
            [self_shaped(y, db, generator) for y in recon]
        )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
