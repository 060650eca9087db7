"""The speech demo measured: what the trained speech DiT says, in whose voice, beside its ceilings.

    .venv/bin/python -m experiments.speech.run                     # the bundles of `make demo-speech`
    .venv/bin/python -m experiments.speech.run vae=... dit=... steps=30 cfg_scale=2 out=<file.md>
    .venv/bin/python -m experiments.speech.run dit=... seed=1000 out=<file.md>   # another set of starting noise

``latentaudio.speech.evaluation.evaluate_speech`` on the 20 held-out sentences x 4 voices of
``make demo-speech-data``: each sentence said with a prompt of another held-out sentence in
each voice (its text given), and once without a prompt; against the same figures for
(a) the VAE's reconstructions of the references (what a perfect DiT could reach through this
VAE) and (b) the references themselves in another voice (``ceiling``: a perfect model). The voice
figures compare with references through the same VAE (``codec=`` of ``evaluate_speech``).
Writes the section "The trained demo" of ``results.md`` beside this script, and a listening
set (a few prompts, prompted and unprompted clips, references) to ``outputs/demo-speech/listening``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from experiments.common import parse_arguments
from latentaudio.audio import write_audio
from latentaudio.pipeline import Pipeline
from latentaudio.speech.evaluation import evaluate_pipeline, read_references

HERE = Path(__file__).resolve().parent
SECTION = "## The trained demo"
DEFAULTS = {
    "vae": "outputs/demo-speech/vae/export",
    "dit": "outputs/demo-speech/dit/export",
    "heldout": "data/demo-speech/heldout",
    "steps": 30,
    "cfg_scale": 2.0,
    "seed": 0,  # clip i starts from the noise of seed + i: another noise set is seed=1000, not 1
    "listening": "outputs/demo-speech/listening",
    "out": HERE / "results.md",
}
SCORES = (
    ("which_sentence_accuracy", "which sentence (of 20)", "{:.1%}"),
    ("mcd_same_sentence", "MCD to the same sentence (dB)", "{:.2f}"),
    ("mcd_other_sentence", "MCD to the other sentences (dB)", "{:.2f}"),
    ("speaker_similarity_prompt", "speaker similarity to the prompt's voice", "{:.3f}"),
    ("speaker_similarity_other_voices", "... to the other voices", "{:.3f}"),
    ("speaker_accuracy", "prompt's voice is the nearest (of 4)", "{:.1%}"),
)


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__ or "")
    pipe = Pipeline.from_bundles(args["vae"], args["dit"])
    texts, references, rate = read_references(args["heldout"])
    settings = dict(steps=int(args["steps"]), cfg_scale=float(args["cfg_scale"]))
    start = time.perf_counter()
    result = evaluate_pipeline(pipe, args["heldout"], seed=int(args["seed"]), **settings)
    total = time.perf_counter() - start
    made = result["clips"]
    columns = {
        "prompted": result["generated"],
        "unprompted": result["unprompted"],
        "VAE reconstruction": result["vae"],
        "real, another voice (ceiling)": result["ceiling"],
    }
    meta = json.loads((Path(args["dit"]) / "meta.json").read_text())
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python -m experiments.speech.run{''.join(' ' + a for a in argv)}` "
        f"({time.strftime('%Y-%m-%d')}, 2 CPU cores, {total:.0f} s, speaking {len(made)} clips at "
        f"{settings['steps']} steps, cfg {settings['cfg_scale']}). "
        f"Bundles: VAE `{pipe.autoencoder.hash}`, DiT `{pipe.bundle.hash}` (step {meta.get('step')}).",
        "",
        "| | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key, name, form in SCORES:
        lines.append(f"| {name} | " + " | ".join(form.format(c[key]) for c in columns.values()) + " |")
    lines.append("")
    lines.append(
        "Unprompted clips are scored against the nearest voice's rendering of each sentence (they have no "
        "voice to match), and their speaker figures against the prompts the prompted clips had: the "
        "baseline that prompting must beat. Chance: which sentence 5%, voice 25%. Voice figures compare "
        "with the references passed through the same VAE (`codec=`): against raw references even the VAE's "
        "own reconstructions of the right voice score chance, so raw figures would measure the codec. "
        "The ceiling's content figures are real renderings in another voice; its voice figures are the "
        "VAE's reconstructions of the right voice."
    )
    section = "\n".join(lines) + "\n"
    write_section(Path(args["out"]), section)
    write_listening_set(Path(args["listening"]), made, references, texts, pipe.sample_rate, rate)
    print(section)


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the section of ``results.md`` that this script owns."""
    text = path.read_text() if path.exists() else "# Speech\n"
    if SECTION in text:
        before, _, after = text.partition(SECTION)
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def write_listening_set(
    folder: Path, made: dict, references: dict, texts: list, rate: int, ref_rate: int
) -> None:
    """The first three sentences: prompted in each voice, unprompted, and the references."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        for (text, voice), clip in made.items():
            if text == texts[i]:
                write_audio(folder / f"s{i:02d}_{voice or 'unprompted'}.wav", clip, rate)
        for (k, voice), clip in references.items():
            if k == i:
                write_audio(folder / f"s{i:02d}_{voice}_reference.wav", clip, ref_rate)


if __name__ == "__main__":
    main(sys.argv[1:])
