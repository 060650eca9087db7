"""The real-data ceiling of the speech metrics on the demo corpus's held-out sentences.

    .venv/bin/python -m experiments.speech.ceiling                      # after `make demo-speech-data`
    .venv/bin/python -m experiments.speech.ceiling heldout=<folder> out=<file.md>

What a perfect speech model would score (``latentaudio.speech.evaluation``): which sentence was
said, with the renderings of one voice standing in for generated speech and those of another as
the candidates (every ordered voice pair, all 20 sentences); the MCD-DTW to the same sentence
and to the others; speaker similarity of clips of one voice to those of the same voice and of
the others (feature statistics standardised by all the clips). Then ``evaluate_speech``'s own
ceiling block, the figures a model's ``evaluate_speech`` result is read against.
Writes ``results.md`` beside this script (the ceiling section) and prints it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common import parse_arguments
from latentaudio.speech.evaluation import (
    evaluate_speech,
    read_references,
    speaker_embedding,
    speaker_similarity,
    which_sentence,
)

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> None:
    args = parse_arguments(
        argv, {"heldout": Path("data/demo-speech/heldout"), "out": HERE / "results.md"}, __doc__ or ""
    )
    start = time.perf_counter()
    texts, clips, rate = read_references(args["heldout"])
    voices = list(dict.fromkeys(voice for _, voice in clips))
    n = len(texts)
    lines = [
        "| said by | candidates in | which sentence | MCD same sentence (dB) | MCD other sentences (dB) |",
        "|---|---|---|---|---|",
    ]
    pairs = []
    for said in voices:
        for heard in voices:
            if said == heard:
                continue
            result = which_sentence(
                [clips[(i, said)] for i in range(n)], [[clips[(k, heard)]] for k in range(n)], range(n), rate
            )
            distances = result["distances"]
            same, other = np.diag(distances).mean(), distances[~np.eye(n, dtype=bool)].mean()
            pairs.append((result["accuracy"], same, other))
            lines.append(f"| {said} | {heard} | {result['accuracy']:.0%} | {same:.2f} | {other:.2f} |")
    accuracy, same, other = (float(np.mean(column)) for column in zip(*pairs))
    lines.append(f"| **all pairs** | | **{accuracy:.1%}** | **{same:.2f}** | **{other:.2f}** |")

    keys = [(i, v) for i in range(n) for v in voices]
    vectors = torch.stack([speaker_embedding(clips[key], rate) for key in keys])
    similarity = speaker_similarity(vectors[:, None], vectors[None], background=vectors)
    same_voice = torch.tensor([[a[1] == b[1] and a != b for b in keys] for a in keys])
    other_voice = torch.tensor([[a[1] != b[1] for b in keys] for a in keys])
    nearest = similarity.clone().fill_diagonal_(-2).argmax(dim=1)
    voice_accuracy = np.mean([keys[int(j)][1] == key[1] for key, j in zip(keys, nearest)])

    block = evaluate_speech(None, args["heldout"])["ceiling"]
    block = {key: value for key, value in block.items() if key != "ranks"}
    seconds = time.perf_counter() - start
    text = "\n".join(
        [
            "# Speech evaluation: the real-data ceiling on the demo held-out set",
            "",
            f"Command: `.venv/bin/python -m experiments.speech.ceiling` ({n} held-out sentences x "
            f"{len(voices)} eSpeak voices of `make demo-speech-data`), {seconds:.0f} s on 2 CPU cores.",
            "Metrics: `latentaudio/speech/evaluation.py` (MFCC-style mel cepstrum c1..c24, 25 ms / 10 ms "
            "frames at 16 kHz; MCD along the DTW path; speaker vector = mean/std of c1..c12 and log-f0 "
            "median/spread, cosine after standardising by all clips). One DTW of two 2.5 s clips (250 x 235 "
            "frames): 18 ms.",
            "",
            f"## Which sentence was said (nearest of {n} by MCD-DTW), across voices",
            "",
            *lines,
            "",
            "## Speaker similarity (cosine of standardised speaker vectors)",
            "",
            f"- same voice, other sentence: {float(similarity[same_voice].mean()):.3f}",
            f"- other voice: {float(similarity[other_voice].mean()):.3f}",
            f"- nearest other clip has the same voice: {voice_accuracy:.1%} (chance {1 / len(voices):.0%})",
            "",
            "## `evaluate_speech(None, heldout)['ceiling']`",
            "",
            "Content: each sentence's rendering in the next voice stands in for generated speech; voice: "
            "each clip against a prompt of another sentence in its own voice and in the others.",
            "",
            "```json",
            json.dumps(block, indent=1),
            "```",
            "",
        ]
    )
    args["out"].write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
