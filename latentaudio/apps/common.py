"""What every Hydra app shares: building loggers, callbacks and the trainer, resuming, cleaning up."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from latentaudio.training.callbacks import FinalCheckpoint
from latentaudio.training.checkpoint import AtomicCheckpointIO, loads_weights_only
from latentaudio.training.guard import SaveBeforeFault
from latentaudio.training.seeding import SeedEachRank
from latentaudio.training.speed import COMPILE_MODES, fastest_precision
from latentaudio.training.sweep import write_final_metrics

log = logging.getLogger("latentaudio")

# conf/ lives at the top of the repository; the package is installed editable.
CONFIG_PATH = str(Path(__file__).resolve().parents[2] / "conf")


# ${fastest_precision:} in a config: bf16-mixed where this machine runs it natively, else 32-true
OmegaConf.register_new_resolver("fastest_precision", fastest_precision, replace=True)


class ConfigError(ValueError):
    """A configuration that cannot work; raised before any model is built."""


def plain(node) -> dict | list:
    """A resolved config node as builtin containers (safe to store in checkpoints and bundles)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node


def save_resolved_config(cfg: DictConfig) -> None:
    """The run folder's config.yaml: every interpolation resolved, as the run used it."""
    path = Path(cfg.paths.output_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))


def check_speed_config(cfg: DictConfig) -> None:
    """``compile``, ``compile_mode`` and ``optim.accumulate_grad_batches``, shared by both training apps."""
    compile_ = cfg.get("compile", False)
    if not isinstance(compile_, bool):
        raise ConfigError(f"compile={compile_!r}: use compile=true or compile=false")
    mode = cfg.get("compile_mode")
    if mode is not None and mode not in COMPILE_MODES:
        raise ConfigError(f"compile_mode={mode!r}: use null or one of {', '.join(COMPILE_MODES)}")
    if mode is not None and not compile_:
        raise ConfigError(f"compile_mode={mode} has no effect without compile=true: set both, or neither")
    accumulate = cfg.optim.get("accumulate_grad_batches", 1)
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigError(
            f"optim.accumulate_grad_batches={accumulate!r}: give a whole number of batches per optimizer "
            "step, 1 (no accumulation) or more"
        )
    wanted = cfg.trainer.get("accumulate_grad_batches", 1)
    if wanted != 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={wanted} does not apply here (training optimises manually): "
            f"set optim.accumulate_grad_batches={wanted} instead and leave trainer.accumulate_grad_batches=1"
        )


def sweep_name() -> str | None:
    """The multirun's folder name when this job is part of a sweep (used to group wandb runs)."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
        return Path(hydra_cfg.sweep.dir).name
    return None


def build_loggers(cfg: DictConfig) -> list:
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        if node._target_.endswith("WandbLogger"):
            node = node.copy()
            if node.get("offline") is None:
                online = bool(os.environ.get("WANDB_API_KEY")) or os.environ.get("WANDB_MODE") == "online"
                node.offline = not online
            if node.get("group") is None:
                node.group = sweep_name()
            Path(node.save_dir).mkdir(parents=True, exist_ok=True)
        loggers.append(hydra.utils.instantiate(node))
        log.info("logger %s: %s", name, node._target_)
    return loggers


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks = []
    for node in (cfg.get("callbacks") or {}).values():
        if isinstance(node, DictConfig) and "_target_" in node:
            callbacks.append(hydra.utils.instantiate(node))
    return callbacks


def build_checkpoint_io(cfg: DictConfig) -> AtomicCheckpointIO:
    """``checkpoint_io=`` (optional): a subclass of AtomicCheckpointIO, e.g. one that injects faults."""
    node = cfg.get("checkpoint_io")
    checkpoint_io = hydra.utils.instantiate(node) if node else AtomicCheckpointIO()
    if not isinstance(checkpoint_io, AtomicCheckpointIO):
        raise ConfigError(
            f"checkpoint_io._target_={node._target_} is not a latentaudio.training.checkpoint.AtomicCheckpointIO: "
            "subclass it, so that saves stay atomic and resumes weights-only"
        )
    return checkpoint_io


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list) -> pl.Trainer:
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=[*callbacks, SeedEachRank(cfg.seed), SaveBeforeFault(), FinalCheckpoint()],
        logger=loggers if loggers else False,
        plugins=[build_checkpoint_io(cfg)],
    )
    if not loads_weights_only(trainer.strategy):
        raise ConfigError(
            f"trainer.strategy={type(trainer.strategy).__name__} reads checkpoints with its own unpickling "
            "loader: use trainer=ddp, trainer=fsdp (latentaudio's SafeFSDPStrategy) or a single device"
        )
    return trainer


def training_arguments(cfg: DictConfig) -> dict:
    """What both training modules take alike: the optimiser, EMA, guard, media, step count, compile."""
    return dict(
        optim=plain(cfg.optim),
        ema=plain(cfg.ema),
        guard=plain(cfg.guard),
        media=plain(cfg.media),
        max_steps=cfg.trainer.max_steps,
        compile=cfg.compile,
        compile_mode=cfg.compile_mode,
    )


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path=last``: this run folder's checkpoints/last.ckpt when it exists (restart after a kill)."""
    wanted = cfg.get("ckpt_path")
    if wanted in (None, "") and int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0:
        wanted = "last"  # a preempted or timed-out SLURM job that was requeued: carry on
    if wanted in (None, ""):
        return None
    if wanted == "last":
        # the newest of ModelCheckpoint's last.ckpt and Lightning's SLURM-signal hpc_ckpt_*.ckpt
        folder = Path(cfg.paths.output_dir)
        found = [
            p for p in [folder / "checkpoints" / "last.ckpt", *folder.glob("hpc_ckpt_*.ckpt")] if p.exists()
        ]
        if found:
            newest = max(found, key=lambda p: p.stat().st_mtime)
            log.info("resuming from %s", newest)
            return str(newest)
        log.info("no checkpoint in %s yet: starting from scratch", folder)
        return None
    if not Path(wanted).exists():
        raise ConfigError(f"ckpt_path={wanted} does not exist: pass a .ckpt file, or ckpt_path=last")
    return str(wanted)


def finish_loggers(loggers: list) -> None:
    """Close wandb runs (so multirun jobs do not merge) and say how to sync offline ones."""
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        import wandb

        run = wandb.run
        offline = run is not None and run.settings.mode == "offline"
        directory = run.dir if run is not None else None
        wandb.finish()
        if offline and directory:
            log.info("wandb run saved offline; upload it with: wandb sync %s", Path(directory).parent)


def fit(
    cfg: DictConfig, module: pl.LightningModule, datamodule, metric: str, ckpt_path: str | None
) -> float | None:
    """Train with the configured trainer, loggers and callbacks; leave metrics.json; return ``metric``."""
    quiet_known_warnings()
    loggers = build_loggers(cfg)
    try:
        trainer = build_trainer(cfg, build_callbacks(cfg), loggers)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        write_final_metrics(cfg.paths.output_dir, trainer, metric)  # for sweep summaries
        log.info("done: %s", {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()})
        value = trainer.callback_metrics.get(metric)
        return float(value) if value is not None else None
    finally:
        finish_loggers(loggers)


def quiet_known_warnings() -> None:
    """Silence library warnings that say nothing actionable about a latentaudio run."""
    # manual optimisation: the checkpoint holds the state after the step, which is what we want
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    # the EMA copy is evaluated only, by design
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def as_list(value) -> list[float]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, ListConfig)):
        return [float(v) for v in value]
    return [float(value)]


def adapters(cfg: DictConfig) -> list[tuple[str, float]]:
    """``lora=`` and ``lora_scale=`` as ``[(adapter path, scale), ...]``, checked."""
    from latentaudio.dit.lora import AdapterError, pair_scales

    paths = cfg.get("lora")
    paths = (
        []
        if paths in (None, "")
        else [str(p) for p in paths]
        if isinstance(paths, ListConfig)
        else [str(paths)]
    )
    for path in paths:
        if not Path(path).is_dir():
            raise ConfigError(
                f"lora={path}: no such adapter folder (the export/ folder of a make finetune run)"
            )
    try:
        return pair_scales(paths, as_list(cfg.get("lora_scale", 1.0)))
    except AdapterError as error:
        raise ConfigError(f"lora= and lora_scale=: {error}") from error
