"""What the label judge hears in a VAE's bells: band energies, the judge under known changes, and
the features that move its verdict.

    .venv/bin/python -m experiments.vae_fidelity.bells vae=outputs/demo/vae/export

Three parts, on the demo's held-out clips (the label judge's own split, ``make evaluate``'s):
- ``bands``: energy (dB) of a few real clips and of their reconstructions in 0-0.5, 0.5-1, 1-2,
  2-4 and 4-8 kHz;
- ``changes``: the judge's accuracy on the real held-out clips after label-preserving changes of
  a known size (everything above 1, 2 or 4 kHz cut by 10 or 20 dB; white noise 40 dB below the
  clip), beside its accuracy on the VAE's reconstructions of them: does the judge hear the level
  of the upper bands, or something else?
- ``features``: for the bells, which feature groups move the judge's bell-against-band margin
  from the real clips to their reconstructions (standardised feature change times the
  difference of the two classes' weights, summed over the group; positive: towards band).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from experiments.common import parse_arguments

BANDS_HZ = ((0, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000))
CLIPS = (
    "clips/0001_bell.wav",
    "clips/0006_bell.wav",
    "clips/0000_pluck.wav",
    "clips/0003_drums.wav",
    "clips/0004_band.wav",
)
# label_features: 64 log-mel means and stds, then 20 MFCC means and stds and 20 of their deltas'
GROUPS = {
    "log-mel mean": slice(0, 64),
    "log-mel std": slice(64, 128),
    "MFCC mean": slice(128, 148),
    "MFCC std": slice(148, 168),
    "MFCC delta mean": slice(168, 188),
    "MFCC delta std": slice(188, 208),
}


def energy_db(clip: torch.Tensor, rate: int, lo: float, hi: float) -> float:
    """Energy in dB of a (C, T) clip (channels averaged) from ``lo`` up to ``hi`` Hz."""
    spectrum = torch.fft.rfft(clip.float().mean(dim=0)).abs().pow(2)
    frequency = torch.fft.rfftfreq(clip.shape[-1], 1 / rate)
    return 10 * float(torch.log10(spectrum[(frequency >= lo) & (frequency < hi)].sum() + 1e-12))


def band_energies(clip: torch.Tensor, rate: int) -> list[float]:
    """Energy in dB of a (C, T) clip in each of ``BANDS_HZ``."""
    return [round(energy_db(clip, rate, lo, hi), 1) for lo, hi in BANDS_HZ]


def cut_above(clip: torch.Tensor, rate: int, hz: float, db: float) -> torch.Tensor:
    spectrum = torch.fft.rfft(clip)
    frequency = torch.fft.rfftfreq(clip.shape[-1], 1 / rate)
    return torch.fft.irfft(spectrum * torch.where(frequency >= hz, 10 ** (-db / 20), 1.0), n=clip.shape[-1])


def judged_setup(vae: str, data: str):
    """The VAE bundle, the folder's real clips with their labels, the label judge fitted on them
    (``make evaluate``'s), the indices of the clips it holds out and their labels."""
    from latentaudio import adherence
    from latentaudio.autoencoder import Autoencoder

    autoencoder = Autoencoder.from_bundle(vae)
    real = adherence.read_real_clips(Path(data), autoencoder.sample_rate)
    labels = [str(row.get("label") or "") for row in real.rows]
    judge, _, held = adherence.fit_judge(real)
    return autoencoder, real, labels, judge, held, [labels[i] for i in held]


def main(argv: list[str]) -> None:
    from latentaudio import adherence

    args = parse_arguments(argv, {"vae": "outputs/demo/vae/export", "data": "data/demo"}, __doc__)
    autoencoder, real, labels, judge, held, asked = judged_setup(args["vae"], args["data"])
    rate = real.sample_rate
    with torch.inference_mode():
        recon = {i: autoencoder.reconstruct(real.clips[i][None], rate)[0].cpu() for i in held}
        named = {p: real.paths.index(p) for p in CLIPS if p in real.paths}
        for i in named.values():
            if i not in recon:  # a named clip the judge trained on
                recon[i] = autoencoder.reconstruct(real.clips[i][None], rate)[0].cpu()
    bands = {
        p: {"real": band_energies(real.clips[i], rate), "vae": band_energies(recon[i], rate)}
        for p, i in named.items()
    }

    def verdict(clips) -> dict:
        out = judge.judge(clips, asked, rate)
        return {
            "accuracy": round(out["accuracy"], 3),
            "bell": round(out["per_label"].get("bell", float("nan")), 3),
        }

    generator = torch.Generator().manual_seed(0)
    changes = {"real": verdict([real.clips[i] for i in held]), "vae": verdict([recon[i] for i in held])}
    for hz in (1000, 2000, 4000):
        for db in (10, 20):
            changes[f"-{db} dB above {hz} Hz"] = verdict(
                [cut_above(real.clips[i], rate, hz, db) for i in held]
            )
    changes["noise 40 dB below"] = verdict(
        [
            x + x.pow(2).mean().sqrt() * 0.01 * torch.randn(x.shape, generator=generator)
            for x in (real.clips[i] for i in held)
        ]
    )

    bells = [i for i in held if labels[i] == "bell"]
    scaler, model = judge.model[0], judge.model[-1]
    classes = list(model.classes_)
    towards_band = model.coef_[classes.index("band")] - model.coef_[classes.index("bell")]
    shift = (
        scaler.transform(adherence.label_features([recon[i] for i in bells], rate))
        - scaler.transform(adherence.label_features([real.clips[i] for i in bells], rate))
    ).mean(axis=0) * towards_band
    features = {name: round(float(np.sum(shift[part])), 2) for name, part in GROUPS.items()}
    print(json.dumps({"bands_db": bands, "judge": changes, "bell_to_band_shift": features}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
