"""A short real training of the demo VAE on demo data improves held-out reconstruction clearly."""

import csv

import pytest
import torch
from apps_helpers import compose_app

from latentaudio import metrics
from latentaudio.apps.train_vae import train
from latentaudio.bundle import instantiate
from latentaudio.data.datamodule import AudioDataModule
from latentaudio.data.demo import generate_demo_dataset


@pytest.mark.slow
def test_demo_vae_improves_over_untrained(tmp_path):
    root = tmp_path / "demo"
    generate_demo_dataset(root, n_clips=64)
    overrides = [
        "experiment=demo_vae",
        f"data.root={root}",
        "data.val_fraction=0.15",
        "logger=csv",
        "callbacks=none",
        "trainer.max_steps=200",
        "trainer.val_check_interval=200",
        "trainer.enable_progress_bar=false",
    ]
    cfg = compose_app("train_vae", tmp_path / "run", overrides)
    torch.manual_seed(cfg.seed)
    untrained = instantiate(dict(cfg.vae)).eval()
    data = AudioDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    with torch.no_grad():
        decoded = untrained.decode(untrained.encode(batch["audio"]), length=batch["audio"].shape[-1])
    before_mrstft = metrics.mrstft_distance(decoded, batch["audio"]).mean().item()
    before_sisdr = metrics.si_sdr(decoded, batch["audio"]).mean().item()

    train(cfg)
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    after_mrstft = [float(r["val/mrstft"]) for r in rows if r.get("val/mrstft")][-1]
    after_sisdr = [float(r["val/sisdr"]) for r in rows if r.get("val/sisdr")][-1]
    assert after_mrstft < 0.75 * before_mrstft, (before_mrstft, after_mrstft)
    assert after_sisdr > before_sisdr + 10.0, (before_sisdr, after_sisdr)
