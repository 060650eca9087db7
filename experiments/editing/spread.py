"""How much one set of 17 clips says: the strength-0 edits of ``run.py`` on many random sets.

    .venv/bin/python -m experiments.editing.spread                  # the bundles of `make demo`
    .venv/bin/python -m experiments.editing.spread vae=... dit=... draws=20 name=critic

``run.py`` measures each edit on the 17 clips its DiT held out, one draw: a Frechet distance
from 17 clips moves by several points from one set to the next. Here each of ``draws`` sets of
``size`` clips is drawn from the training files *outside* ``run.py``'s reference set (the
reference stays the same 152 clips), and every strength-0 edit is made on it several ways: the
signal processing alone (phase vocoder, then resampling for pitch) and each of the model's
``stretches`` (``Pipeline.pitch`` / ``.tempo``: ``latent``, the latents stretched and decoded;
``hybrid``, the vocoder's output with the latent stretch's spectral envelope). Reported: the
median and range of FD mel over the draws, and in how many draws each model edit is the closer
to the real clips than the vocoder's (paired: the same set). The VAE trained on these files (only the
DiT's 17 held-out ones were kept from it), which if anything favours the VAE's rows.

Writes ``spread.md`` (``spread_<name>.md`` with ``name=``) beside this script.
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from experiments.common import parse_arguments
from experiments.editing.run import DEFAULTS as STUDY
from experiments.editing.run import HERE, load_clips, training_files
from latentaudio import metrics
from latentaudio.pipeline import Pipeline

DEFAULTS = {
    "vae": STUDY["vae"],
    "dit": STUDY["dit"],
    "data": STUDY["data"],
    "reference_limit": STUDY["reference_limit"],
    "edits": "pitch:-3,pitch:3,tempo:0.8,tempo:1.25",
    "stretches": "latent,hybrid",  # each set against the phase vocoder alone (Pipeline.tempo's stretch=)
    "draws": 20,
    "size": 17,
    "seed": 0,
    "name": "",
}


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__)
    pipe = Pipeline.from_bundles(args["vae"], args["dit"])
    rate = pipe.sample_rate
    reference_paths, others = training_files(args["data"], args["reference_limit"])
    reference = load_clips(pipe, args["data"], reference_paths)
    real = metrics.mel_statistics_features(reference, rate)
    pool = load_clips(pipe, args["data"], others)
    if len(pool) < args["size"]:
        raise SystemExit(f"only {len(pool)} training files outside the reference set; lower size=")

    def fd(clips) -> float:
        return metrics.frechet_distance(real, metrics.mel_statistics_features(list(clips), rate))

    edits = [(mode, float(amount)) for mode, amount in (e.split(":") for e in args["edits"].split(","))]
    stretches = str(args["stretches"]).split(",")
    rng, start = random.Random(args["seed"]), time.perf_counter()
    rows: list[dict[str, float]] = []
    for draw in range(args["draws"]):
        clips = pool[rng.sample(range(len(pool)), args["size"])]
        row = {"clips": fd(clips), "VAE reconstruction": fd(pipe.autoencoder.reconstruct(clips))}
        for mode, amount in edits:
            keyword = {"pitch": "semitones"}.get(mode, "rate")
            for stretch in ("vocoder", *stretches):
                edited = getattr(pipe, mode)(clips, rate, stretch=stretch, **{keyword: amount})
                row[f"{mode} {amount:g} ({stretch})"] = fd(edited)
        rows.append(row)
        print(
            f"draw {draw + 1}/{args['draws']}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()),
            flush=True,
        )

    lines = [
        "# Strength-0 edits on many sets of clips (written by spread.py)",
        "",
        f"`{' '.join(['python -m experiments.editing.spread', *argv])}`"
        + f" on {time.strftime('%Y-%m-%d')}, {time.perf_counter() - start:.0f} s: {args['draws']} sets of "
        f"{args['size']} clips drawn from {len(pool)} training files outside the reference set; FD mel "
        f"against the same {len(reference)} reference clips as run.py. VAE {pipe.autoencoder.hash}.",
        "",
        "| set | FD mel, median | min | max |",
        "|---|---:|---:|---:|",
    ]
    for key in rows[0]:
        values = [r[key] for r in rows]
        lines.append(f"| {key} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |")
    lines += [
        "",
        "| edit | stretch | closer than the vocoder's | median difference (stretch - vocoder) |",
        "|---|---|---:|---:|",
    ]
    for mode, amount in edits:
        vocoder = f"{mode} {amount:g} (vocoder)"
        for stretch in stretches:
            model = f"{mode} {amount:g} ({stretch})"
            wins = sum(r[model] < r[vocoder] for r in rows)
            difference = statistics.median(r[model] - r[vocoder] for r in rows)
            lines.append(
                f"| {mode} {amount:g} | {stretch} | {wins} of {len(rows)} sets | {difference:+.1f} |"
            )
    suffix = f"_{args['name']}" if args["name"] else ""
    (HERE / f"spread{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
