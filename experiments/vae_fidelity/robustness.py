"""Does a VAE's decoder survive the errors a diffusion model makes in its latents?

    .venv/bin/python -m experiments.vae_fidelity.robustness vae=outputs/demo/vae/export

A DiT never produces the encoder's latents exactly; what it hands the decoder is off by some
fraction of the latents' spread. This probe encodes the label judge's held-out demo clips (the
split of ``make evaluate``), adds Gaussian noise of ``levels`` (a list) times each latent
channel's standard deviation over those clips, decodes, and reports the label judge's accuracy
(per label), the mean SI-SDR against the real clips, and the energy the decoder adds below 2 kHz
(dB against the clean decode: the wash the demo decoder makes of perturbed latents). Level 0 is
the judge through the VAE, the ceiling `make evaluate` prints. Same noise for every VAE (seed 0).
"""

from __future__ import annotations

import json
import sys

import torch

from experiments.common import parse_arguments


def main(argv: list[str]) -> None:
    from experiments.vae_fidelity.bells import energy_db, judged_setup
    from latentaudio.metrics import si_sdr

    args = parse_arguments(
        argv, {"vae": "outputs/demo/vae/export", "data": "data/demo", "levels": "0,0.1,0.2,0.3,0.5"}, __doc__
    )
    autoencoder, real, _, judge, held, asked = judged_setup(args["vae"], args["data"])
    rate, vae = real.sample_rate, autoencoder.vae.eval()
    originals = [real.clips[i].float() for i in held]
    with torch.inference_mode():
        means = [vae.encode_posterior(clip[None])[0] for clip in originals]  # (1, D, F) each
        spread = torch.cat(means, dim=-1).std(dim=(0, 2), keepdim=True)  # (1, D, 1): per channel
        clean = [vae.decode(z, length=x.shape[-1])[0] for z, x in zip(means, originals)]
    generator = torch.Generator().manual_seed(0)
    rows = {}
    for level in (float(v) for v in str(args["levels"]).split(",")):
        with torch.inference_mode():
            decoded = [
                vae.decode(
                    z + level * spread * torch.randn(z.shape, generator=generator), length=x.shape[-1]
                )[0]
                for z, x in zip(means, originals)
            ]
        verdict = judge.judge(decoded, asked, rate)
        rows[f"{level:g}"] = {
            "judge": round(verdict["accuracy"], 3),
            **{label: round(v, 2) for label, v in verdict["per_label"].items()},
            "si_sdr_db": round(
                float(torch.stack([si_sdr(y, x).mean() for x, y in zip(originals, decoded)]).mean()), 2
            ),
            "below_2k_db": round(
                sum(energy_db(y, rate, 0, 2000) - energy_db(c, rate, 0, 2000) for y, c in zip(decoded, clean))
                / len(decoded),
                2,
            ),
        }
        print(f"level {level:g}: {rows[f'{level:g}']}", flush=True)
    print(json.dumps({"vae": args["vae"], "held_out_clips": len(held), "levels": rows}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
