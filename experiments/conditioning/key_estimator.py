"""How often the key estimator is right on real demo clips, for a few chroma ranges and key profiles.

    .venv/bin/python -m experiments.conditioning.key_estimator [root=data/demo]
    .venv/bin/python -m experiments.conditioning.key_estimator dit=<bundle> vae=<bundle> captions=128
    .venv/bin/python -m experiments.conditioning.key_estimator vae=<bundle> captions=128   # the VAE alone

Every tonal clip of the folder (its metadata names a key) is scored by `estimate_key` with each
variant: the highest frequency the chroma counts, and the key profiles it is matched against
(Krumhansl-Kessler's probe-tone ratings, or Temperley's corpus counts). The clips with an even
index choose the variant, the odd ones report it, so the choice is not fitted to what it is
judged on. Prints a markdown table (overall, even, odd, per label); the result is recorded in
results.md.

With ``dit=``: the DiT generates one clip for each of the first ``captions`` rows with a key
(asked as `make evaluate` asks: `adherence.row_conditions`, seed = row number), and the key
accuracy of those clips, of the real clips and of their VAE reconstructions is printed for each
variant: more rows than `make evaluate`'s 40, so the generated figure is not within a few clips
of chance. ``cfg_scale=``: the guidance scale (default: the bundle's). ``decode_detail=true`` or
``false``: how the generated clips decode on a VAE with spectral channels (default: the bundle's).
The reconstructions are scored both as the VAE reconstructs a file (with its detail) and as the
generated clips decode ("as generated"). With ``vae=`` and no ``dit=``: the reconstructions only,
"as generated" by the VAE's own rule.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from experiments.common import optional_bool, parse_arguments
from latentaudio import estimators
from latentaudio.adherence import read_real_clips

VARIANTS = {
    f"{name}, up to {high} Hz": (high, profiles)
    for high in (2100, 1500, 1000)
    for name, profiles in (
        ("Krumhansl-Kessler", estimators.KRUMHANSL_KESSLER),
        ("Temperley", estimators.TEMPERLEY),
    )
}


def main(argv: list[str]) -> None:
    args = parse_arguments(
        argv,
        {
            "root": "data/demo",
            "dit": "",
            "vae": "outputs/demo/vae/export",
            "captions": 128,
            "cfg_scale": "",
            "decode_detail": "",
        },
        __doc__,
    )
    real = read_real_clips(Path(args["root"]), estimators.ANALYSIS_RATE)
    tonal = [i for i, row in enumerate(real.rows) if row.get("key")]
    print(f"{len(tonal)} clips with a key in {args['root']}\n")
    print("| variant | all | even (chooses) | odd (reports) | " + " | ".join(sorted(real.by_label())) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(real.by_label()))
    for name, (high, profiles) in VARIANTS.items():
        right, by_label = [], defaultdict(list)
        for i in tonal:
            found = estimators.estimate_key(real.clips[i], real.sample_rate, high_hz=high, profiles=profiles)
            right.append(found == real.rows[i]["key"])
            by_label[real.rows[i].get("label", "")].append(right[-1])
        cells = [f"{100 * np.mean(picks):.1f}" for picks in (right, right[0::2], right[1::2])]
        labels = [
            f"{100 * np.mean(by_label[label]):.0f}" if by_label[label] else "-"
            for label in sorted(real.by_label())
        ]
        print(f"| {name} | " + " | ".join(cells + labels) + " |")
    detail = optional_bool(args, "decode_detail")
    cfg = {"cfg_scale": float(args["cfg_scale"])} if str(args["cfg_scale"]) else {}
    if args["dit"] or any(arg.startswith("vae=") for arg in argv):
        generated_keys(real, tonal[: int(args["captions"])], args["vae"], args["dit"], cfg, detail)


def generated_keys(real, rows: list[int], vae: str, dit: str, settings: dict, detail: bool | None) -> None:
    """Key accuracy of a DiT's clips asked for each row's caption (none without ``dit``), beside
    the real clips and their VAE reconstructions, for every variant. ``settings``: sampling
    options (cfg_scale); ``detail``: the pipeline's ``decode_detail``."""
    import torch
    from tqdm import tqdm

    from latentaudio.adherence import row_conditions
    from latentaudio.autoencoder import Autoencoder
    from latentaudio.pipeline import Pipeline

    pipe = Pipeline.from_bundles(vae, dit, decode_detail=detail) if dit else None
    autoencoder = pipe.autoencoder if pipe else Autoencoder.from_bundle(vae)
    sets: dict[str, list] = {"real": [real.clips[i] for i in rows], "VAE": [], "VAE, as generated": []}
    if pipe:
        sets = {"generated": [], **sets}
    with torch.inference_mode():
        for number, i in enumerate(tqdm(rows, desc="generating" if pipe else "reconstructing", unit="clip")):
            if pipe:
                ask = row_conditions(pipe, pipe.bundle.meta.get("conditioning") or {}, real.rows[i])
                clip = pipe.generate(seconds=float(pipe.train_seconds), n=1, seed=number, **ask, **settings)
                sets["generated"].append(clip[0].cpu())
            source = real.clips[i][None]
            whole = autoencoder.reconstruct(source, real.sample_rate)[0].cpu()
            sets["VAE"].append(whole)
            if not autoencoder.generated_detail:  # else the same decode
                whole = autoencoder.reconstruct(source, real.sample_rate, as_generated=True)[0].cpu()
            sets["VAE, as generated"].append(whole)
    asked = [real.rows[i]["key"] for i in rows]
    print(f"\n{len(rows)} rows asked of {dit or vae} {settings or ''}: key accuracy (%)\n")
    print("| variant | " + " | ".join(sets) + " |\n|---|" + "---:|" * len(sets))
    for name, (high, profiles) in VARIANTS.items():
        cells = []
        for clips in sets.values():
            found = [
                estimators.estimate_key(c, autoencoder.sample_rate, high_hz=high, profiles=profiles)
                for c in clips
            ]
            cells.append(f"{100 * np.mean([f == k for f, k in zip(found, asked)]):.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
