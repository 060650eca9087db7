"""How a VAE passes isolated tones: gain at each tone's frequency and SDR of the whole clip.

    .venv/bin/python -m experiments.vae_fidelity.tones vae=outputs/demo/vae/export

Each probe is a 2-second decaying sine (the demo's notes ring for about a second) over a faint
hiss, at frequencies between the demo's lowest notes and its bells' upper partials. A VAE that
keeps a tone passes it at about 0 dB; one that cannot make it returns silence there (large
negative gain, SDR near 0 dB). The demo VAE of 2026-12-04 passed 620 Hz at -1.4 dB and 1010 Hz
at -22 dB: the bells' 1-4 kHz partials, which the label judge needs, were lost (results.md).
"""

from __future__ import annotations

import json
import math
import sys

import torch

from experiments.common import parse_arguments

FREQUENCIES = (150, 310, 620, 1010, 1530, 2070, 3110, 4170)


def tone_response(autoencoder, frequencies=FREQUENCIES, seconds: float = 2.0, seed: int = 0) -> dict:
    """``{frequency: {"gain_db", "sdr_db"}}`` for the VAE behind ``autoencoder``."""
    rate = autoencoder.sample_rate
    t = torch.arange(round(seconds * rate)) / rate
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for frequency in frequencies:
        tone = 0.5 * torch.sin(2 * math.pi * frequency * t) * torch.exp(-t * 6.9 / 1.2)
        clip = (tone + 0.003 * torch.randn(len(t), generator=generator))[None]  # (1, T)
        decoded = autoencoder.reconstruct(clip, rate)[0, 0]  # (T,)
        spectrum_in, spectrum_out = torch.fft.rfft(clip[0]), torch.fft.rfft(decoded)
        near = (torch.fft.rfftfreq(len(t), 1 / rate) - frequency).abs() < 15
        gain = spectrum_out[near].abs().pow(2).sum() / spectrum_in[near].abs().pow(2).sum()
        error = (decoded - clip[0]).pow(2).sum()
        out[frequency] = {
            "gain_db": round(10 * math.log10(gain.item() + 1e-12), 1),
            "sdr_db": round(10 * math.log10(clip.pow(2).sum().item() / (error.item() + 1e-12)), 1),
        }
    return out


def main(argv: list[str]) -> None:
    from latentaudio.autoencoder import Autoencoder

    args = parse_arguments(argv, {"vae": "outputs/demo/vae/export"}, __doc__)
    print(json.dumps(tone_response(Autoencoder.from_bundle(args["vae"])), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
