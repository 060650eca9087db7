"""Write the built-in procedural demo dataset (deterministic; a second call is a no-op).

make demo-data
latentaudio-demo-data output=data/demo n_clips=320
latentaudio-demo-data output=data/demo-marimba classes=[marimba] n_clips=48   # sounds the demo DiT never heard
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import CONFIG_PATH, log


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="demo_data")
def main(cfg: DictConfig) -> None:
    from latentaudio.data.demo import generate_demo_dataset

    files = generate_demo_dataset(
        cfg.output,
        n_clips=cfg.n_clips,
        sample_rate=cfg.sample_rate,
        seconds=cfg.seconds,
        seed=cfg.seed,
        progress=True,
        classes=list(cfg.classes),
    )
    log.info("demo dataset: %d clips in %s", len(files), cfg.output)


if __name__ == "__main__":
    main()
