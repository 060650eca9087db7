"""Encode and decode audio with a VAE bundle; write the reconstructions and print metrics per file.

make reconstruct ARGS="vae=outputs/demo/vae/export input=data/demo/clips output=outputs/recon"
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from latentaudio import evaluation
from latentaudio.apps.common import CONFIG_PATH, log
from latentaudio.autoencoder import Autoencoder
from latentaudio.data.scan import printable, scan_audio_folder

METRICS = evaluation.RECONSTRUCTION_METRICS


def reconstruct(cfg: DictConfig) -> dict:
    """Returns ``{"files": {path: metrics}, "mean": metrics, "latent_rate": ...}`` (also saved as metrics.json)."""
    autoencoder = Autoencoder.from_bundle(cfg.vae, device=cfg.device, chunk_seconds=cfg.chunk_seconds)
    source = Path(cfg.input)
    if source.is_file():
        root, paths = source.parent, [source.name]
    else:
        root = source
        paths = [f.path for f in scan_audio_folder(source, progress=False).files]
    if cfg.limit:
        paths = paths[: cfg.limit]
    output = Path(cfg.output)
    files = evaluation.reconstruct_files(
        autoencoder,
        root,
        paths,
        write_to=output,
        warn=lambda path, reason: log.warning("skipping %s: %s", printable(root / path), reason),
    )
    results = {
        item.path: item.metrics for item in tqdm(files, total=len(paths), desc="reconstructing", unit="file")
    }
    if not results:
        raise SystemExit(f"no decodable audio in {source}")
    mean = evaluation.mean_metrics(results, METRICS)
    summary = {
        "vae": str(cfg.vae),
        "vae_hash": autoencoder.hash,
        "latent_rate": evaluation.latent_rate(autoencoder),
        "mean": mean,
        "files": results,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(summary, indent=2))
    width = max(len(p) for p in results)
    print(f"{'file':<{width}}  {'MR-STFT':>8}  {'mel':>7}  {'SI-SDR':>7}")
    for path, r in results.items():
        print(f"{path:<{width}}  {r['mrstft']:8.3f}  {r['mel']:7.3f}  {r['sisdr']:7.2f}")
    print(f"{'mean':<{width}}  {mean['mrstft']:8.3f}  {mean['mel']:7.3f}  {mean['sisdr']:7.2f}")
    print(f"latent rate: {summary['latent_rate']:.0f} values/s; reconstructions and metrics.json in {output}")
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="reconstruct")
def main(cfg: DictConfig) -> None:
    with torch.inference_mode():
        reconstruct(cfg)


if __name__ == "__main__":
    main()
