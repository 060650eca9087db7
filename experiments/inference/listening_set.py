"""The listening set: a few generated, varied, inpainted, continued, enhanced, transposed and
time-stretched clips of the demo model;
per label, and (with a text DiT or a tempo/key DiT) at different tempi and keys.

    python -m experiments.inference.listening_set                      # the bundles of `make demo`
    python -m experiments.inference.listening_set vae=... dit=... output=...

Writes WAV files and spectrogram PNGs to ``outputs/listening_set`` (not committed) and a
`listening_set.md` beside this script listing what each clip is and the settings used, so the
set can be regenerated with this one command.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from experiments.common import optional_bool, parse_arguments
from latentaudio import retiming
from latentaudio.audio import read_audio, write_audio
from latentaudio.dit.aligned import add_noise_at_snr
from latentaudio.pipeline import Pipeline
from latentaudio.training.media import spectrogram_image

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "vae": "outputs/demo/vae/export",
    "dit": "outputs/demo/dit/export",
    "dit_enhance": "outputs/demo/dit_enhance/export",  # make demo-enhance; left out when missing
    "dit_text": "outputs/demo/dit_text/export",  # experiment=demo_dit_text; left out when missing
    "dit_tempo_key": "outputs/demo/dit_tempo_key/export",  # experiment=demo_dit_tempo_key; left out when missing
    "data": "data/demo/clips",
    "output": "outputs/listening_set",
    # the caption and tempo/key DiTs' decode over their bundles' (sampling.decode_detail): "" keeps
    # the bundle's, "true" decodes with the generated detail (bundles trained before that setting)
    "decode_detail": "",
}


# the same instruments at two tempi, and in two keys: what the text DiT is asked to tell apart
CAPTIONS = (
    "plucked melody in A minor at 80 bpm",
    "plucked melody in A minor at 140 bpm",
    "organ chords in C major at 100 bpm",
    "organ chords in F# minor at 100 bpm",
    "drum beat at 90 bpm",
    "drum beat at 130 bpm",
)


# one instrument in two keys and at two tempi: what the tempo/key DiT is asked to tell apart
ASKED = (
    ("organ", 100, "C major"),
    ("organ", 100, "F# minor"),
    ("pluck", 80, "A minor"),
    ("pluck", 140, "A minor"),
)


def main(argv: list[str]) -> None:
    args = parse_arguments(argv, DEFAULTS, __doc__)
    detail = optional_bool(args, "decode_detail")
    pipe = Pipeline.from_bundles(ROOT / args["vae"], ROOT / args["dit"])
    out = ROOT / args["output"]
    clips = sorted((ROOT / args["data"]).glob("*.wav"))
    by_label = {label: next(c for c in clips if c.stem.endswith(label)) for label in pipe.labels}
    source, rate = read_audio(by_label.get("pluck", clips[0]))
    noisy = add_noise_at_snr(source[None], (5.0, 5.0), torch.Generator().manual_seed(0))[0]
    entries: list[tuple[str, str, torch.Tensor]] = []

    def add(name: str, what: str, audio: torch.Tensor) -> None:
        entries.append((name, what, audio))

    add(
        "source",
        f"the source clip {by_label.get('pluck', clips[0]).name}",
        pipe.autoencoder.prepare(source, rate)[0],
    )
    add("reconstruction", "the source through the VAE", pipe.autoencoder.reconstruct(source, rate)[0])
    for label in pipe.labels:
        add(
            f"generate_{label}",
            f"generate 4 s, label={label}, seed 0",
            pipe.generate(seconds=4, label=label, seed=0)[0],
        )
    add(
        "generate_long",
        "generate 12 s (about 6x the training window, in overlapping windows), no label, seed 1",
        pipe.generate(seconds=12, seed=1)[0],
    )
    add("vary_0.5", "vary the source, strength 0.5", pipe.vary(source, rate, strength=0.5, seed=0)[0])
    add(
        "inpaint",
        "inpaint 0.6-1.2 s of the source",
        pipe.inpaint(source, rate, ranges=[(0.6, 1.2)], seed=0)[0],
    )
    add("continue", "continue the source by 4 s", pipe.extend(source, rate, seconds=4, seed=0)[0])
    add("noisy", "the source with white noise at 5 dB SNR", pipe.autoencoder.prepare(noisy, rate)[0])
    add(
        "enhance",
        "enhance the noisy clip (SDEdit fallback, strength 0.3)",
        pipe.enhance(noisy, rate, strength=0.3, seed=0)[0],
    )

    drums, drums_rate = read_audio(by_label.get("drums", clips[0]))
    add(
        "drums",
        f"the drum clip {by_label.get('drums', clips[0]).name}",
        pipe.autoencoder.prepare(drums, drums_rate)[0],
    )
    for stretch in retiming.STRETCHES:
        add(
            f"pitch_+3_{stretch}",
            f"the source 3 semitones up (stretch={stretch}, strength 0)",
            pipe.pitch(source, rate, semitones=3, stretch=stretch)[0],
        )
        add(
            f"tempo_1.25_drums_{stretch}",
            f"the drum clip 1.25x faster, pitch kept (stretch={stretch}, strength 0)",
            pipe.tempo(drums, drums_rate, rate=1.25, stretch=stretch)[0],
        )
    add(
        "pitch_+3_hybrid_0.2",
        "the source 3 semitones up (stretch=hybrid, the default), 0.2 of it regenerated by the DiT",
        pipe.pitch(source, rate, semitones=3, strength=0.2, seed=0)[0],
    )
    add(
        "speed_0.8",
        "the source tape-style at 0.8x (slower and 3.9 semitones lower)",
        pipe.speed(source, rate, rate=0.8)[0],
    )

    if (ROOT / args["dit_enhance"] / "meta.json").exists():
        trained = Pipeline.from_bundles(ROOT / args["vae"], ROOT / args["dit_enhance"])
        add(
            "enhance_trained",
            f"enhance the noisy clip with the trained enhancement DiT `{trained.bundle.hash}`",
            trained.enhance(noisy, rate, seed=0)[0],
        )

    if (ROOT / args["dit_text"] / "meta.json").exists():
        spoken = Pipeline.from_bundles(ROOT / args["vae"], ROOT / args["dit_text"], decode_detail=detail)
        for index, caption in enumerate(CAPTIONS):
            add(
                f"caption_{index}",
                f'caption "{caption}" (text DiT `{spoken.bundle.hash}`), seed 0',
                spoken.generate(seconds=4, prompt=caption, seed=0)[0],
            )

    if (ROOT / args["dit_tempo_key"] / "meta.json").exists():
        musical = Pipeline.from_bundles(
            ROOT / args["vae"], ROOT / args["dit_tempo_key"], decode_detail=detail
        )
        for label, bpm, key in ASKED:
            add(
                f"{label}_{bpm}bpm_{key.replace(' ', '_').replace('#', 'sharp')}",
                f"label={label} bpm={bpm} key={key} (tempo/key DiT `{musical.bundle.hash}`), seed 0",
                musical.generate(seconds=4, label=label, bpm=bpm, key=key, seed=0)[0],
            )

    lines = [
        "# Listening set of the demo model",
        "",
        f"Regenerate: `.venv/bin/python -m experiments.inference.listening_set{''.join(' ' + a for a in argv)}` ({time.strftime('%Y-%m-%d')}); "
        f"files in `{args['output']}/` (not committed). Bundles: VAE `{pipe.autoencoder.hash}`, DiT `{pipe.bundle.hash}`; "
        f"sampler and steps: the DiT bundle's defaults {pipe.defaults}.",
        "",
        "| file | what |",
        "|---|---|",
    ]
    for name, what, audio in entries:
        path = write_audio(out / f"{name}.wav", audio, pipe.sample_rate)
        spectrogram_image(audio, pipe.sample_rate, path.with_suffix(".png"), title=name)
        lines.append(f"| `{name}.wav` | {what} ({audio.shape[-1] / pipe.sample_rate:.1f} s) |")
    (Path(__file__).parent / "listening_set.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
