"""Cluster settings without a cluster: the SLURM launcher config, the strategies, resuming a requeued job."""

from __future__ import annotations

import os
import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from latentaudio.apps.common import CONFIG_PATH, resolve_ckpt_path


def compose_with_hydra(app: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(config_name=app, overrides=overrides, return_hydra_config=True)


def test_submitit_slurm_renders_one_task_per_gpu_and_the_trainer_nodes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='needs pip install -e ".[slurm]"')
    from submitit.slurm.slurm import _make_sbatch_string

    cfg = compose_with_hydra(
        "train_diffusion",
        [
            "trainer=ddp",
            "trainer.devices=8",
            "trainer.num_nodes=4",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            f"hydra.sweep.dir={tmp_path}",
            "hydra.job.name=train_diffusion",
        ],
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["tasks_per_node"] == 8 and launcher["gpus_per_node"] == 8 and launcher["nodes"] == 4
    assert launcher["max_num_timeout"] > 0  # preempted / timed-out jobs are requeued
    # the sbatch script submitit would submit, with the parameters as the launcher passes them
    sbatch = _make_sbatch_string(
        command="python -u -m submitit.core._submit",
        folder=launcher["submitit_folder"],
        job_name=launcher["name"],
        partition=launcher["partition"],
        time=launcher["timeout_min"],
        nodes=launcher["nodes"],
        ntasks_per_node=launcher["tasks_per_node"],
        gpus_per_node=launcher["gpus_per_node"],
        cpus_per_task=launcher["cpus_per_task"],
        signal_delay_s=launcher["signal_delay_s"],
    )
    for line in (
        "#SBATCH --nodes=4",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1440",
        "#SBATCH --signal=USR2@120",
    ):
        assert line in sbatch, sbatch


def test_ddp_and_fsdp_trainer_configs_build_their_strategies():
    import hydra

    from latentaudio.dit.model import DiTBlock
    from latentaudio.training.checkpoint import SafeFSDPStrategy, loads_weights_only

    ddp = compose_with_hydra("train_vae", ["trainer=ddp"]).trainer
    assert ddp.strategy == "ddp_find_unused_parameters_true" and ddp.precision == "bf16-mixed"
    fsdp = compose_with_hydra("train_diffusion", ["trainer=fsdp", "model/dit=sao"]).trainer
    strategy = hydra.utils.instantiate(fsdp.strategy)
    assert isinstance(strategy, SafeFSDPStrategy) and loads_weights_only(strategy)
    assert fsdp.strategy.auto_wrap_policy is not None
    assert hydra.utils.instantiate(fsdp.strategy.auto_wrap_policy) == {DiTBlock}


def test_requeued_slurm_job_resumes_from_the_newest_checkpoint(tmp_path, monkeypatch):
    cfg = OmegaConf.create({"ckpt_path": None, "paths": {"output_dir": str(tmp_path)}})
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    torch.save({}, last)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert resolve_ckpt_path(cfg) is None  # a first start never resumes unasked
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert resolve_ckpt_path(cfg) == str(last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"  # Lightning's save on the SLURM signal, newer than last.ckpt
    torch.save({}, hpc)
    later = time.time() + 5
    os.utime(hpc, (later, later))
    assert resolve_ckpt_path(cfg) == str(hpc)
