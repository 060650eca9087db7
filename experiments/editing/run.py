"""Pitch, tempo and speed edits on held-out clips: the signal processing alone against the
model regenerating part of it (``Pipeline.pitch`` / ``tempo`` / ``speed``).

    .venv/bin/python -m experiments.editing.run                  # the bundles of `make demo`
    .venv/bin/python -m experiments.editing.run vae=... dit=... data=<folder> strengths=0,0.2 limit=17
    .venv/bin/python -m experiments.editing.run vae=... dit=... data=<folder> clips=<other folder>

The clips are the files a training run with ``data.val_fraction`` 0.05 (seed 0) held out (or,
with ``clips=``, the first ``limit`` files of that folder: recordings the bundles never saw), cut
to the DiT's training window; each is edited with its own ``label`` from the metadata, as a user
who knows what the clip is would. For every edit and strength (0: the transform alone; ``vae``:
the transform's VAE reconstruction, to tell what the VAE alone does; t > 0: noised to t and
sampled back):

- **achieved** pitch shift (``estimators.estimate_pitch_shift`` against the original clip) and
  time scale (``estimators.estimate_time_scale`` on the onsets), as the median absolute error
  against what the edit asks and the share of clips within 0.3 semitone / 1%; the duration is
  the asked one by construction and checked;
- **closeness to real audio**: Frechet and kernel distances (mel statistics, MFCCs) of the
  edited set to the real clips the DiT trained on; equal set sizes throughout, so they compare
  across rows;
- **transients**: onset sharpness relative to the original clips (1: as sharp).

Writes ``table.md`` and ``runs.jsonl`` beside this script (replaced on every run; ``name=critic``
writes ``table_critic.md`` and ``runs_critic.jsonl`` instead, for another pair of bundles);
``results.md`` there reads them.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from experiments.common import parse_arguments
from latentaudio import estimators
from latentaudio.audio import read_audio
from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import scan_audio_folder
from latentaudio.data.split import held_out_files, split
from latentaudio.evaluation import distribution_metrics
from latentaudio.pipeline import Pipeline

HERE = Path(__file__).resolve().parent
DEFAULTS = {
    "vae": Path("outputs/demo/vae/export"),
    "dit": Path("outputs/demo/dit/export"),
    "data": Path("data/demo"),
    "strengths": "0,vae,0.2,0.3,0.5",
    "stretches": "latent,vocoder,hybrid",  # how pitch and tempo stretch time (Pipeline.tempo's stretch=)
    "edits": "none:1,pitch:-3,pitch:3,tempo:0.8,tempo:1.25,speed:0.8,speed:1.25",
    "limit": 17,
    "clips": "",  # a folder whose files are edited instead of data's held-out ones (labels from its metadata)
    "reference_limit": 160,
    "unpitched": "drums",  # labels whose clips have no pitch to measure (comma-separated)
    "steps": 0,  # 0: the bundle's default
    "seed": 0,
    "name": "",  # suffix of the files written: table_<name>.md, runs_<name>.jsonl
}
USAGE = __doc__


def load_clips(pipe: Pipeline, root: Path, paths: list[str]) -> torch.Tensor:
    """(N, C, frames) the files at the model's rate, all cut to one training window or to the
    shortest file if that is shorter.

    Never zero-padded: digital silence appended to a clip is something no VAE decodes (its
    output rings into the padding), and the demo's 2.0 s files padded to the 2.048 s window
    added 11 points to the FD of the VAE's reconstructions to the real clips (18.7 against 7.1),
    a gap of the study, not of the edits.
    """
    window = round(pipe.train_seconds * pipe.sample_rate)
    audio = [
        read_audio(root / path, sample_rate=pipe.sample_rate, channels=pipe.autoencoder.channels)[0]
        for path in paths
    ]
    frames = min([window] + [clip.shape[-1] for clip in audio])
    if frames < window:  # say which file sets every clip's length, in case it is a stray short one
        shortest = min(range(len(paths)), key=lambda i: audio[i].shape[-1])
        print(f"clips cut to {frames / pipe.sample_rate:.2f} s, the length of {paths[shortest]}", flush=True)
    return torch.stack([clip[:, :frames] for clip in audio])


def asked_change(mode: str, amount: float) -> tuple[float, float]:
    """(semitones, time scale) that an edit asks for."""
    if mode == "pitch":
        return amount, 1.0
    if mode == "tempo":
        return 0.0, amount
    if mode == "none":
        return 0.0, 1.0
    return 12.0 * math.log2(amount), amount


def unedited(pipe: Pipeline):
    """The ``none`` edit, the ceiling of every row: the clips themselves (strength 0), their VAE
    reconstructions (``vae``) and ``vary`` at each strength."""

    def method(clips, sample_rate, strength, rate, **options):
        return clips.clone() if strength == 0 else pipe.vary(clips, sample_rate, strength=strength, **options)

    return method


def edit(
    pipe: Pipeline, clips: torch.Tensor, labels: list[str], mode: str, amount: float, strength, stretch, args
):
    """(N, C, T') every clip edited, each with its own label (one batch per label)."""
    keyword = {"pitch": "semitones"}.get(mode, "rate")
    method = getattr(pipe, mode) if mode != "none" else unedited(pipe)
    if stretch:
        method = functools.partial(method, stretch=stretch)
    if strength == "vae":  # the transform alone, through the VAE and back
        alone = method(clips, pipe.sample_rate, strength=0.0, **{keyword: amount})
        return pipe.autoencoder.reconstruct(alone)
    settings = {"steps": args["steps"]} if args["steps"] else {}
    out: list[torch.Tensor | None] = [None] * len(labels)
    for label in sorted(set(labels)):
        rows = [i for i, name in enumerate(labels) if name == label]
        edited = method(
            clips[rows],
            pipe.sample_rate,
            strength=float(strength),
            label=label or None,
            seed=args["seed"],
            **{keyword: amount},
            **settings,
        )
        for row, clip in zip(rows, edited):
            out[row] = clip
    return torch.stack(out)


def measure(edited, clips, labels, mode, amount, rate, reference, reference_vae, unpitched) -> dict:
    semitones, scale = asked_change(mode, amount)
    pitch_errors, scale_errors, sharpness = [], [], []
    per_label: dict[str, list[float]] = {}
    for out, original, label in zip(edited, clips, labels):
        error = abs(estimators.estimate_pitch_shift(out, original, rate) - semitones)
        if label not in unpitched:
            pitch_errors.append(error)
        per_label.setdefault(label, []).append(error)
        scale_errors.append(abs(estimators.estimate_time_scale(out, original, rate) / scale - 1.0))
        sharpness.append(estimators.onset_sharpness(out, rate) / estimators.onset_sharpness(original, rate))
    finite = [e for e in scale_errors if math.isfinite(e)]
    expected_length = round(clips.shape[-1] / scale)
    distances = distribution_metrics(reference, rate, list(edited), rate)
    in_vae_domain = distribution_metrics(reference_vae, rate, list(edited), rate)
    return {
        "pitch_error": statistics.median(pitch_errors),
        "pitch_within_0.3": sum(e <= 0.3 for e in pitch_errors) / len(pitch_errors),
        "pitch_error_by_label": {k: statistics.median(v) for k, v in sorted(per_label.items())},
        "scale_error": statistics.median(finite) if finite else float("nan"),
        "scale_within_1pct": sum(e <= 0.01 for e in finite) / len(scale_errors),
        "length_error": abs(edited.shape[-1] - expected_length) / expected_length,
        "sharpness": statistics.median(sharpness),
        **distances,
        **{f"{k}_vae": v for k, v in in_vae_domain.items()},
    }


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| edit | strength | pitch err (st) | within 0.3 st | time-scale err | within 1% | FD mel "
        "| FD mel, VAE domain | FD MFCC | FD MFCC, VAE domain | sharpness |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['edit']} | {r['strength']} | {r['pitch_error']:.3f} | {r['pitch_within_0.3']:.0%} "
            f"| {r['scale_error']:.2%} | {r['scale_within_1pct']:.0%} | {r['fd_mel_stats']:.1f} "
            f"| {r['fd_mel_stats_vae']:.1f} | {r['fd_mfcc']:.1f} | {r['fd_mfcc_vae']:.1f} | {r['sharpness']:.2f} |"
        )
    return lines


def training_files(data, reference_limit: int) -> tuple[list[str], list[str]]:
    """The files the DiT trained on (``data.val_fraction`` 0.05, seed 0), split in two: about
    ``reference_limit`` evenly spaced ones, the real clips every edit is measured against, and
    the others (what ``spread.py`` draws its sets from)."""
    every = [f.path for f in scan_audio_folder(data, progress=False).files]
    trained_on = split(every, 0.05, 0)[0]
    step = max(1, len(every) // reference_limit)
    reference = trained_on[::step]
    taken = set(reference)
    return reference, [path for path in trained_on if path not in taken]


def load_study(args) -> tuple:
    """(pipeline, held-out paths, their clips, their labels, the real clips the DiT trained on and
    their VAE reconstructions): what every row of this study and ``residual.py`` measures against."""
    torch.manual_seed(args["seed"])
    pipe = Pipeline.from_bundles(args["vae"], args["dit"])
    data = args["data"]
    source = Path(args["clips"] or data)
    if args["clips"]:  # recordings the bundles never saw, e.g. other parts of the same tracks
        held_out = [f.path for f in scan_audio_folder(source, progress=False).files][: args["limit"]]
    else:
        held_out = held_out_files(data)[: args["limit"]]
    if not held_out:
        raise SystemExit(f"no files to edit in {source} (make demo-data)")
    metadata = load_metadata(source, held_out)
    labels = [str(metadata[p].get("label") or "") for p in held_out]
    clips = load_clips(pipe, source, held_out)
    reference_batch = load_clips(pipe, data, training_files(data, args["reference_limit"])[0])
    reference_vae = list(pipe.autoencoder.reconstruct(reference_batch))
    return pipe, held_out, clips, labels, list(reference_batch), reference_vae


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, USAGE)
    pipe, held_out, clips, labels, reference, reference_vae = load_study(args)
    data = args["data"]
    rate = pipe.sample_rate
    unpitched = set(str(args["unpitched"]).split(","))
    rows = []
    start = time.perf_counter()
    runs = []
    for item in args["edits"].split(","):
        mode, amount = item.split(":")
        stretches = str(args["stretches"]).split(",") if mode in ("pitch", "tempo") else [""]
        runs += [(mode, amount, stretch) for stretch in stretches]
    for mode, amount, stretch in runs:
        for strength in str(args["strengths"]).split(","):
            strength = strength if strength == "vae" else float(strength)
            edited = edit(pipe, clips, labels, mode, float(amount), strength, stretch, args)
            row = {"edit": f"{mode} {amount}" + (f" ({stretch})" if stretch else ""), "strength": strength}
            row.update(
                measure(edited, clips, labels, mode, float(amount), rate, reference, reference_vae, unpitched)
            )
            rows.append(row)
            print(table([row])[-1], flush=True)
    wall = time.perf_counter() - start
    suffix = f"_{args['name']}" if args["name"] else ""
    (HERE / f"runs{suffix}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    command = "python -m experiments.editing.run " + " ".join(argv)
    lines = [
        "# Pitch, tempo and speed edits: signal processing alone vs regenerated by the model",
        "",
        f"`{command.strip()}` on {time.strftime('%Y-%m-%d')}, {wall:.0f} s. {len(held_out)} "
        + (f"files of {args['clips']}" if args["clips"] else f"held-out files of {data}")
        + " ("
        f"{', '.join(f'{labels.count(k)} {k}' for k in sorted(set(labels)))}), "
        f"{clips.shape[-1] / rate:.2f} s each (cut to the shortest file or the training window, never padded); distances against {len(reference)} clips the DiT trained on. "
        f"VAE {pipe.autoencoder.hash}, DiT {pipe.bundle.hash}.",
        "",
        "strength 0: the transform alone (latent: the clip's latents stretched in time and decoded; "
        "vocoder: torchaudio's phase vocoder; pitch then resamples, speed only resamples); vae: its VAE "
        "reconstruction; t > 0: noised to t and sampled back with the clip's label. `none` is the "
        "ceiling: the held-out clips themselves, their VAE reconstructions, and `vary` of them. "
        f"Errors are medians over clips (pitch: over the pitched ones, all but {', '.join(sorted(unpitched))}); FD lower is closer to the real clips (FD) or to their VAE "
        "reconstructions (VAE domain: what any output of a latent model can reach); sharpness is "
        "the onset sharpness relative to the original clip (median).",
        "",
        *table(rows),
        "",
        "Pitch error by label (median semitones):",
        "",
        "| edit | strength | " + " | ".join(rows[0]["pitch_error_by_label"]) + " |",
        "|---|---|" + "---|" * len(rows[0]["pitch_error_by_label"]),
        *(
            f"| {r['edit']} | {r['strength']} | "
            + " | ".join(f"{v:.2f}" for v in r["pitch_error_by_label"].values())
            + " |"
            for r in rows
        ),
        "",
    ]
    (HERE / f"table{suffix}.md").write_text("\n".join(lines))
    print(f"wrote {HERE / f'table{suffix}.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
