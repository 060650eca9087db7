"""Write the procedural speech demo corpus (deterministic; a second call is a no-op).

make demo-speech-data
latentaudio-demo-speech-data output=data/demo-speech n_sentences=300 voices_per_sentence=2
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, log


def write(cfg: DictConfig) -> dict[str, list[str]]:
    """The app without Hydra's wrapper: write the corpus, return its clips per folder."""
    from latentaudio.speech.demo import generate_demo_speech

    files = generate_demo_speech(
        cfg.output,
        n_sentences=cfg.n_sentences,
        voices=list(cfg.voices),
        voices_per_sentence=cfg.voices_per_sentence,
        sample_rate=cfg.sample_rate,
        seed=cfg.seed,
    )
    log.info(
        "speech demo corpus in %s: %d training clips (train/), %d held-out clips (heldout/)",
        cfg.output,
        len(files["train"]),
        len(files["heldout"]),
    )
    return files


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="demo_speech_data")
def main(cfg: DictConfig) -> None:
    write(cfg)


if __name__ == "__main__":
    main()
