"""Hydra multirun of the training apps: one run folder per job and a sweep summary at the end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from latentaudio.training.sweep import collect_jobs, write_summary

TINY_VAE = ["model/vae=tiny", "data.sample_length=2048", "debug=fast", "trainer.max_steps=2"]


def run_app(app: str, args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", f"latentaudio.apps.{app}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def fake_job(sweep: Path, number: int, overrides: list[str], record: dict | None) -> None:
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if record is not None:
        (job / "metrics.json").write_text(json.dumps(record))


def test_summary_lists_what_differs_and_the_final_metrics(tmp_path):
    record = {
        "objective": "val/mrstft",
        "value": 1.5,
        "step": 4,
        "metrics": {"val/mrstft": 1.5, "train/kl": 2.0},
    }
    fake_job(tmp_path, 0, ["model/vae=tiny", "vae.latent_dim=2"], record)
    fake_job(tmp_path, 1, ["model/vae=tiny", "vae.latent_dim=4"], dict(record, value=1.25))
    fake_job(tmp_path, 10, ["model/vae=tiny", "vae.latent_dim=8"], None)  # failed job
    rows = collect_jobs(tmp_path)
    assert [row["job"] for row in rows] == ["0", "1", "10"]
    assert [row["vae.latent_dim"] for row in rows] == ["2", "4", "8"]
    assert "model/vae" not in rows[0]  # the same in every job: not a difference
    assert rows[1]["val/mrstft"] == 1.25 and rows[2]["status"].startswith("no metrics")
    table = write_summary(tmp_path)
    assert "vae.latent_dim" in table and "1.25" in table
    with (tmp_path / "summary.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 3


def test_two_job_multirun_of_the_vae_app(sine_folder, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_app(
        "train_vae",
        [
            "-m",
            *TINY_VAE,
            "vae.latent_dim=2,4",
            f"data.root={sine_folder}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").exists()
        record = json.loads((sweep / job / "metrics.json").read_text())
        assert record["objective"] == "val/mrstft" and record["value"] > 0 and record["step"] == 2
    summary = (sweep / "summary.md").read_text()
    assert "vae.latent_dim" in summary and (sweep / "summary.csv").exists()
    assert "sweep summary" in result.stdout


@pytest.mark.slow
def test_optuna_search_runs_two_trials(sine_folder, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason='needs pip install -e ".[sweep]"')
    sweep = tmp_path / "optuna"
    run_app(
        "train_vae",
        [
            "hparams_search=vae_optuna",
            "hydra.sweeper.n_trials=2",
            *TINY_VAE,
            f"data.root={sine_folder}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    results = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in results and "best_value" in results
    rows = collect_jobs(sweep)
    assert len(rows) == 2 and all(row["status"] == "done" for row in rows)
    assert "optim.lr" in rows[0]  # each trial drew its own learning rate
