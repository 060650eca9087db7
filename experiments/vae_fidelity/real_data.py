"""Build a folder of real music and speech at 16 kHz from Debian's packages, for issue 14's
"real recordings" check. Nothing is downloaded at run time and nothing is committed: install the
packages by hand, then run this.

    apt-get download wesnoth-1.16-music && dpkg -x wesnoth-1.16-music_*.deb /tmp/real/music_pkg
    apt-get install festival festvox-kallpc16k      # a diphone voice: concatenated real recordings
    .venv/bin/python -m experiments.vae_fidelity.real_data music=/tmp/real/music_pkg out=data/real

Music: `clips_per_track` 4-second clips spread over each Wesnoth soundtrack (orchestral, 41
tracks). Speech: `sentences` sentences of the GPL's text (/usr/share/common-licenses), read by
festival's kal voice. Writes <out>/{music,speech}/*.wav and <out>/metadata.csv (label music or
speech), so `make evaluate` reports each kind on its own.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from experiments.common import parse_arguments
from latentaudio.audio import read_audio, write_audio

RATE = 16000
SECONDS = 4.0


def music_clips(source: Path, out: Path, per_track: int) -> list[str]:
    written = []
    for track in sorted(source.rglob("*.ogg")):
        audio, _ = read_audio(track, sample_rate=RATE, channels=1)  # (1, T)
        length = int(SECONDS * RATE)
        usable = audio.shape[-1] - length
        if usable <= 0:
            continue
        for i in range(per_track):
            start = int(usable * (i + 0.5) / per_track)
            clip = audio[:, start : start + length]
            if clip.abs().max() < 1e-3:
                continue  # a silent stretch between movements
            relative = f"music/{track.stem}_{i}.wav"
            write_audio(out / relative, clip / clip.abs().max().clamp_min(1e-3) * 0.9, RATE)
            written.append(relative)
    return written


def sentences(count: int) -> list[str]:
    text = Path("/usr/share/common-licenses/GPL-3").read_text()
    found = [s.strip().replace("\n", " ") for s in re.split(r"(?<=[.;:])\s", text)]
    found = [re.sub(r"\s+", " ", s) for s in found if 40 <= len(s) <= 160 and s[0].isalpha()]
    return found[:count]


def speech_clips(out: Path, count: int) -> list[str]:
    written = []
    for i, sentence in enumerate(sentences(count)):
        with tempfile.TemporaryDirectory() as folder:
            text, wave = Path(folder) / "s.txt", Path(folder) / "s.wav"
            text.write_text(sentence)
            subprocess.run(["text2wave", str(text), "-o", str(wave), "-F", str(RATE)], check=True)
            audio, _ = read_audio(wave, sample_rate=RATE, channels=1)
        relative = f"speech/sentence_{i:03d}.wav"
        write_audio(out / relative, audio / audio.abs().max().clamp_min(1e-3) * 0.9, RATE)
        written.append(relative)
    return written


def main(argv: list[str]) -> None:
    args = parse_arguments(
        argv,
        {"music": "/tmp/real/music_pkg", "out": "data/real", "clips_per_track": 8, "sentences": 200},
        __doc__,
    )
    torch.set_num_threads(1)
    out = Path(args["out"])
    rows = [f"{p},music" for p in music_clips(Path(args["music"]), out, args["clips_per_track"])]
    rows += [f"{p},speech" for p in speech_clips(out, args["sentences"])]
    (out / "metadata.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    print(f"{len(rows)} clips in {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
