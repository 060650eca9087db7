"""List a transcribed speech corpus (LJSpeech or LibriTTS layout) in ours: metadata.csv with
path, text and, for LibriTTS, speaker.

make speech-data ARGS="layout=ljspeech source=~/data/LJSpeech-1.1 output=data/ljspeech"
latentaudio-speech-data layout=libritts source=~/data/LibriTTS output=~/data/LibriTTS   # in place
make speech-data ARGS="layout=ljspeech source=... output=... align=true"   # + phoneme timings, for TTS
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, log


def convert(cfg: DictConfig) -> Path:
    """The app without Hydra's wrapper: write ``cfg.output/metadata.csv``, return its path."""
    from latentaudio.speech.layouts import convert_corpus

    listing = convert_corpus(cfg.layout, cfg.source, cfg.output, audio=cfg.audio, align=cfg.align)
    log.info("listed: %s (train with data.root=%s)", listing, listing.parent)
    return listing


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="speech_data")
def main(cfg: DictConfig) -> None:
    convert(cfg)


if __name__ == "__main__":
    main()
