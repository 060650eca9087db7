"""Label accuracy of a tempo-conditioned DiT asked for the label alone, and with a tempo too.

    .venv/bin/python -m experiments.conditioning.label_with_tempo dit=outputs/levers/tempo_grid/export

A DiT trained with the beat clock (``conditioning.tempo_grid``) sees an all-zero clock when no
tempo is asked; this measures what that costs its labels. 8 clips per label each way (with a
tempo: two at each of 80, 100, 120 and 140 bpm), judged by ``make evaluate``'s label classifier
fitted on the demo's real clips.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from experiments.common import parse_arguments
from latentaudio import adherence
from latentaudio.pipeline import Pipeline

TEMPI = (80, 100, 120, 140)


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, {"vae": "outputs/demo/vae/export", "dit": "", "data": "data/demo"}, __doc__)
    pipe = Pipeline.from_bundles(args["vae"], args["dit"])
    real = adherence.read_real_clips(Path(args["data"]), pipe.sample_rate)
    train, held = adherence.judge_split(real.paths)
    names = [str(row.get("label") or "") for row in real.rows]
    judge = adherence.LabelJudge.fit(
        [real.clips[i] for i in train],
        [names[i] for i in train],
        [real.clips[i] for i in held],
        [names[i] for i in held],
        pipe.sample_rate,
    )
    for asked_tempo in (False, True):
        clips, asked = [], []
        for index, label in enumerate(pipe.labels):
            if asked_tempo:
                per_tempo = [
                    pipe.generate(n=2, label=label, bpm=b, seed=10 * index + j) for j, b in enumerate(TEMPI)
                ]
                audio = torch.cat(per_tempo)
            else:
                audio = pipe.generate(n=2 * len(TEMPI), label=label, seed=index)
            clips += list(audio)
            asked += [label] * audio.shape[0]
        verdict = judge.judge(clips, asked, pipe.sample_rate)
        per_label = ", ".join(f"{k} {v:.0%}" for k, v in verdict["per_label"].items())
        print(
            f"{'label and a tempo' if asked_tempo else 'label alone'}: {verdict['accuracy']:.1%} ({per_label})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
