"""Do a VAE's latents carry the phase of its notes? Average them over sub-hop delays and listen.

    .venv/bin/python -m experiments.vae_fidelity.phase_average vae=outputs/demo/vae/export
    .venv/bin/python -m experiments.vae_fidelity.phase_average vae=... dit=outputs/demo/dit/export

A diffusion model that cannot tell two latent sequences apart predicts their mean. If the latents
code where within a hop each cycle of a note starts (its phase), a clip delayed by a few samples
has other latents, and the mean over such delays is not the note but a blur of it. This probe
encodes each of the label judge's held-out clips (``make evaluate``'s split) delayed by each of
``shifts`` samples (all below one hop, so the frames stay aligned), and reports:

- how far a delay moves the latents, in units of each channel's spread over the clips (0: the
  latents do not see the delay; about 1.4: as far apart as two unrelated frames);
- the label judge on the clean decodes and on the decodes of the mean latents, per label;
- the spectral flatness below 2 kHz (per STFT frame, geometric over arithmetic mean of the
  power; 0 for lines, 1 for white noise) of the real clips, the clean decodes, the decodes of the
  mean latents, and with ``dit=`` the DiT's clips for each label (``per_label`` of them, the
  bundle's sampler): a DiT averaging over phase would make clips as flat as the mean latents
  decode to.

Any folder with a metadata.csv works (``data=``); with fewer than two labels there is no judge,
and the rest is reported.
"""

from __future__ import annotations

import json
import sys

import torch

from experiments.common import parse_arguments

FLATNESS_FFT = 1024  # 16 Hz bins at 16 kHz: a note's partials are lines, not bands


def flatness_below(clip: torch.Tensor, rate: int, hz: float = 2000.0) -> float:
    """Mean spectral flatness of a (C, T) clip's frames below ``hz``, over its frames within 40 dB of
    its loudest (silence between notes would read as noise)."""
    window = torch.hann_window(FLATNESS_FFT)
    spectrum = torch.stft(
        clip.float().mean(dim=0), FLATNESS_FFT, FLATNESS_FFT // 4, window=window, return_complex=True
    )
    power = spectrum.abs().pow(2)[: int(hz * FLATNESS_FFT / rate)] + 1e-10  # (bins, frames)
    energy = power.sum(dim=0)
    loud = energy > energy.max() * 1e-4
    flat = power.log().mean(dim=0).exp() / power.mean(dim=0)
    return float(flat[loud].mean())


def delayed(clip: torch.Tensor, samples: int) -> torch.Tensor:
    """(C, T) -> the same clip ``samples`` later, zeros before it, cut to length T."""
    return torch.nn.functional.pad(clip, (samples, 0))[..., : clip.shape[-1]]


def delayed_latents(encode, clips: list[torch.Tensor], shifts: list[int]) -> list[torch.Tensor]:
    """Each (C, T) clip's posterior means at each delay: (len(shifts), D, F) per clip.
    ``encode``: (1, C, T) -> (posterior mean (1, D, F), scale), as ``AudioVAE.encode_posterior``."""
    return [torch.cat([encode(delayed(x, s)[None])[0] for s in shifts]) for x in clips]


def latent_moves(latents: list[torch.Tensor], shifts: list[int]) -> dict[int, float]:
    """How far each delay moves the latents from the undelayed ones (``shifts[0]``): the RMS of
    the difference in units of each channel's spread over all clips, averaged over clips. Two
    independent codes of equal spread are sqrt(2) apart."""
    spread = torch.cat([z[0] for z in latents], dim=-1).std(dim=-1)[:, None]  # (D, 1)
    return {
        s: float(torch.stack([((z[k] - z[0]) / spread).pow(2).mean().sqrt() for z in latents]).mean())
        for k, s in enumerate(shifts)
    }


def by_label(values: list[float], labels: list[str]) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for value, label in zip(values, labels):
        out.setdefault(label, []).append(value)
    return {label: round(sum(v) / len(v), 3) for label, v in sorted(out.items())}


def main(argv: list[str]) -> None:
    from experiments.vae_fidelity.bells import judged_setup
    from latentaudio.metrics import si_sdr

    args = parse_arguments(
        argv,
        {
            "vae": "outputs/demo/vae/export",
            "data": "data/demo",
            "dit": "",
            "shifts": "0,16,32,48,64,80,96,112",
            "per_label": 8,
        },
        __doc__,
    )
    shifts = [int(s) for s in str(args["shifts"]).split(",")]
    autoencoder, real, _, judge, held, asked = judged_setup(args["vae"], args["data"])
    rate, vae = real.sample_rate, autoencoder.vae.eval()
    if max(shifts) >= autoencoder.hop:
        raise SystemExit(
            f"shifts={args['shifts']}: keep every delay below the hop ({autoencoder.hop} samples)"
        )
    originals = [real.clips[i].float() for i in held]
    with torch.inference_mode():
        latents = delayed_latents(vae.encode_posterior, originals, shifts)
        moved = latent_moves(latents, shifts)
        clean = [vae.decode(z[:1], length=x.shape[-1])[0] for z, x in zip(latents, originals)]
        averaged = [
            vae.decode(z.mean(dim=0, keepdim=True), length=x.shape[-1])[0] for z, x in zip(latents, originals)
        ]
        # a VAE that decodes generated clips from its spectral channels alone (vae/spectral.py)
        as_generated = None
        if not autoencoder.generated_detail:
            as_generated = {
                "decode as generated (spectral channels alone)": [
                    vae.decode(z[:1], length=x.shape[-1], detail=False)[0] for z, x in zip(latents, originals)
                ],
                "mean over delays, decoded as generated": [
                    vae.decode(z.mean(dim=0, keepdim=True), length=x.shape[-1], detail=False)[0]
                    for z, x in zip(latents, originals)
                ],
            }

    def row(clips: list[torch.Tensor]) -> dict:
        flat = [flatness_below(c, rate) for c in clips]
        out = {
            "flatness_below_2k": round(sum(flat) / len(flat), 3),
            "flatness_per_label": by_label(flat, asked),
        }
        if judge is not None:  # None: a folder with fewer than two labels
            verdict = judge.judge(clips, asked, rate)
            out["judge"] = round(verdict["accuracy"], 3)
            out["judge_per_label"] = {k: round(v, 2) for k, v in verdict["per_label"].items()}
        return out

    report = {
        "vae": args["vae"],
        "held_out_clips": len(held),
        "shifts": shifts,
        "latent_change_in_spreads": {str(s): round(v, 3) for s, v in moved.items()},
        "real": row(originals),
        "clean decode": row(clean),
        "mean over delays": row(averaged),
        "mean over delays, SI-SDR to the clean decode": round(
            float(torch.stack([si_sdr(a, c).mean() for a, c in zip(averaged, clean)]).mean()), 2
        ),
    }
    report.update({name: row(clips) for name, clips in (as_generated or {}).items()})
    print(json.dumps(report, indent=1), flush=True)
    if not args["dit"]:
        return
    from latentaudio.pipeline import Pipeline

    pipeline = Pipeline.from_bundles(args["vae"], args["dit"])
    generated = {
        label: [
            flatness_below(clip.cpu(), rate)
            for clip in pipeline.generate(label=label, n=int(args["per_label"]), seed=0)
        ]
        for label in sorted(set(asked))
    }
    print(
        json.dumps(
            {
                "dit": args["dit"],
                "dit flatness_per_label": {k: round(sum(v) / len(v), 3) for k, v in generated.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
