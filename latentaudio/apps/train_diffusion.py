"""Stage two: train the DiT on the latents of a trained VAE.

make train-diffusion ARGS="experiment=demo_dit vae=outputs/demo/vae/export"
latentaudio-train-diffusion vae=<bundle> data.root=/path/to/audio      # encodes the folder once, cached
latentaudio-train-diffusion vae=<bundle> latents=/path/to/latent/shards

Fine-tuning with LoRA is this app with the ``finetune`` config: the base DiT bundle frozen,
low-rank adapters (and any labels the base does not know) trained, an adapter bundle exported.

make finetune ARGS="dit=<dit bundle> vae=<vae bundle> data.root=/path/to/my/sounds lora.rank=16"
latentaudio-finetune dit=<dit bundle> vae=<vae bundle> data.root=...

Few-step post-training is this app with the ``distill`` config: progressive distillation of the
base DiT bundle (latentaudio/dit/distill.py) into one that samples in a few steps without guidance,
or (``distill.method=guidance``) its guidance distilled in, sampled by the base's own sampler.

make distill ARGS="dit=<dit bundle> vae=<vae bundle> data.root=<its training audio>"
latentaudio-distill dit=<dit bundle> vae=<vae bundle> data.root=... distill.rounds=[16,8,4]
latentaudio-distill dit=<dit bundle> vae=<vae bundle> data.root=... distill.method=guidance distill.guidance_steps=8
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from latentaudio.apps.common import (
    CONFIG_PATH,
    ConfigError,
    check_speed_config,
    fit,
    log,
    plain,
    resolve_ckpt_path,
    save_resolved_config,
    training_arguments,
)
from latentaudio.bundle import Bundle, check_same_vae, load_bundle
from latentaudio.data.datamodule import check_latent_data
from latentaudio.data.encode import encode_cached
from latentaudio.data.scan import check_data_root
from latentaudio.data.shards import read_manifest
from latentaudio.dit.musical import KEY_ENCODINGS
from latentaudio.dit.samplers import resolve_sampling
from latentaudio.speech.symbols import SymbolVocabulary
from latentaudio.training.seeding import seed_run


def load_vae_bundle(cfg: DictConfig) -> Bundle:
    if cfg.get("vae") in (None, ""):
        raise ConfigError(
            "vae=<path> is required: the VAE bundle whose latents the DiT learns "
            "(the export/ folder of a train-vae run, e.g. outputs/demo/vae/export)"
        )
    return load_bundle(cfg.vae, kind="vae")


def check_diffusion_config(cfg: DictConfig) -> Bundle:
    """Fail in seconds, before encoding or building anything, on settings that cannot work."""
    check_speed_config(cfg)
    every = cfg.dit.get("checkpoint_blocks", False)
    if not isinstance(every, bool | int) or every < 0:
        raise ConfigError(
            f"dit.checkpoint_blocks={every!r}: use false, true (every block) or k (every k-th block)"
        )
    bundle = load_vae_bundle(cfg)
    try:
        check_latent_data(cfg.data.crop_frames, cfg.data.val_fraction, cfg.data.get("pack", 0.0))
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if cfg.dit.width % cfg.dit.heads or (cfg.dit.width // cfg.dit.heads) % 2:
        raise ConfigError(
            f"dit.width={cfg.dit.width} must split into dit.heads={cfg.dit.heads} heads of an even size"
        )
    try:
        resolve_sampling(cfg.objective.name, plain(cfg.sampling))
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if cfg.conditioning.text not in (None, "bytes", "t5"):
        raise ConfigError(f"conditioning.text={cfg.conditioning.text}: choose null, bytes or t5")
    if cfg.conditioning.get("phonemes") and int(cfg.conditioning.get("phoneme_dim", 0)) < 1:
        raise ConfigError(
            f"conditioning.phoneme_dim={cfg.conditioning.phoneme_dim}: give at least 1 (64 is the default)"
        )
    if cfg.conditioning.get("tempo_grid") and not cfg.conditioning.get("tempo"):
        raise ConfigError(
            "conditioning.tempo_grid=true gives the tempo frame by frame: set conditioning.tempo=true too"
        )
    encoding = cfg.conditioning.get("key_encoding", "embedding")
    if encoding not in KEY_ENCODINGS:
        raise ConfigError(f"conditioning.key_encoding={encoding}: choose one of {', '.join(KEY_ENCODINGS)}")
    aligned = cfg.get("aligned") or {}
    if aligned.get("enabled") and aligned.get("task") not in ("inpaint", "enhance"):
        raise ConfigError(f"aligned.task={aligned.get('task')}: choose inpaint or enhance")
    if aligned.get("enabled") and aligned.get("task") == "enhance":
        low, high = aligned.snr_db
        if low > high:
            raise ConfigError(f"aligned.snr_db={list(aligned.snr_db)}: give [lowest, highest] in dB")
        fresh, size = aligned.get("fresh_per_step"), aligned.get("pool_size", 256)
        if fresh is not None and (
            not isinstance(fresh, int) or fresh < 1 or not isinstance(size, int) or size < 1
        ):
            raise ConfigError(
                f"aligned.fresh_per_step={fresh}, aligned.pool_size={size}: give whole numbers >= 1 "
                "(or aligned.fresh_per_step=null to degrade every item of every batch)"
            )
    check_data_source(cfg)
    return bundle


def check_data_source(cfg: DictConfig) -> None:
    """``latents=`` must be a latent-shard folder, else ``data.root`` an audio folder."""
    if cfg.get("latents"):
        read_manifest(cfg.latents)  # LatentFolderError names what is missing
    else:
        check_data_root(cfg.data.root)


def check_base_config(cfg: DictConfig) -> tuple[Bundle, Bundle]:
    """The VAE and base DiT bundles of a fine-tuning or distillation run, and the settings of
    either, checked before anything is encoded."""
    from latentaudio.dit.distill import DistillError
    from latentaudio.dit.lora import AdapterError, AdapterSpec

    check_speed_config(cfg)
    if cfg.get("dit") in (None, "") or not isinstance(cfg.dit, str):
        what = "adapt" if cfg.app == "finetune" else "distill"
        raise ConfigError(
            f"dit=<path> is required: the DiT bundle to {what} (the export/ folder of a train-diffusion run, "
            "e.g. outputs/demo/dit/export)"
        )
    vae = load_vae_bundle(cfg)
    base = load_bundle(cfg.dit, kind="dit")
    check_same_vae(
        base.meta["vae_hash"],
        vae.hash,
        f"the DiT bundle {base.path}",
        f"pass vae= the VAE bundle the DiT was trained with, not {vae.path}",
    )
    try:
        if cfg.app == "finetune":
            AdapterSpec.from_config(plain(cfg.lora), "lora")
        else:
            check_distill_config(cfg, base)
        check_latent_data(
            cfg.data.crop_frames or base.meta["crop_frames"], cfg.data.val_fraction, cfg.data.get("pack", 0.0)
        )
    except (AdapterError, DistillError, ValueError) as error:
        raise ConfigError(str(error)) from error
    check_data_source(cfg)
    return vae, base


def check_distill_config(cfg: DictConfig, base: Bundle) -> None:
    from omegaconf import open_dict

    from latentaudio.dit.distill import DistillError, check_distillable, round_counts

    d = cfg.distill
    rounds = round_counts(plain(d))
    total = len(rounds) * int(d.steps_per_round)
    if cfg.trainer.max_steps is None:
        with open_dict(cfg):
            cfg.trainer.max_steps = total
    elif cfg.trainer.max_steps != total:
        raise DistillError(
            f"trainer.max_steps={cfg.trainer.max_steps} but {len(rounds)} rounds of distill.steps_per_round="
            f"{d.steps_per_round} take {total}: leave trainer.max_steps out (null follows the rounds)"
        )
    aligned = bool((base.meta.get("aligned") or {}).get("enabled"))
    check_distillable(base.meta["objective"]["name"], aligned, str(base.path))


def resolve_latents(cfg: DictConfig, bundle: Bundle) -> str:
    """The latent-shard folder to train on: ``latents=`` or the (resumable) cache of ``data.root``."""
    if cfg.get("latents"):
        return str(cfg.latents)
    folder = encode_cached(
        bundle,
        cfg.data.root,
        cfg.paths.cache_dir,
        min_seconds=cfg.data.min_seconds,
        check_content=cfg.data.check_content,
        chunk_seconds=cfg.data.chunk_seconds,
    )
    return str(folder)


def check_checkpoint_matches(
    ckpt_path: str, bundle: Bundle, statistics: dict, base: Bundle | None = None
) -> None:
    """A DiT checkpoint resumes only with the VAE and the latent statistics it was trained with,
    and a fine-tune's or distillation's only with its ``base`` DiT bundle.

    Its ``latent_mean``/``latent_std`` buffers, not this run's statistics, would normalise the
    resumed training, and the export must describe what the network learnt.
    """
    import torch

    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    hyper = checkpoint.get("hyper_parameters", {})
    trained_on = (hyper.get("finetune") or hyper.get("distill") or {}).get("base_hash")
    if base is not None and trained_on and trained_on != base.hash:
        # resuming would go on from the old base's weights and label the result with the new one
        raise ConfigError(
            f"the checkpoint {ckpt_path} adapts the DiT bundle {trained_on}, but dit= is {base.path} "
            f"({base.hash}): resume with dit= that bundle, or start a new run folder (another "
            "hydra.run.dir, without ckpt_path)"
        )
    trained_for = hyper.get("latent", {}).get("vae_hash")
    if trained_for:
        check_same_vae(
            trained_for,
            bundle.hash,
            f"the checkpoint {ckpt_path}",
            fix=f"resume with vae= the VAE bundle {trained_for} it was trained with, or start a new run folder",
        )
    state = checkpoint.get("state_dict", {})
    if "latent_mean" not in state:
        return
    trained = {"mean": state["latent_mean"].flatten(), "std": state["latent_std"].flatten()}
    now = {name: torch.tensor(statistics[name], dtype=torch.float32).flatten() for name in trained}
    if all(
        trained[name].shape == now[name].shape
        and torch.allclose(trained[name], now[name], rtol=1e-5, atol=1e-7)
        for name in trained
    ):
        return

    def shown(values: torch.Tensor) -> list[float]:
        return [float(f"{v:.4g}") for v in values.tolist()]

    raise ConfigError(
        f"the checkpoint {ckpt_path} was trained on latents with mean {shown(trained['mean'])} and std "
        f"{shown(trained['std'])}, but this run's latents have mean {shown(now['mean'])} and std "
        f"{shown(now['std'])}: resume on the latents it was trained on (the same data.root= or latents=), "
        "or start a new run folder (another hydra.run.dir, without ckpt_path)"
    )


def train(cfg: DictConfig) -> float | None:
    """Train (or fine-tune, with the ``finetune`` config) and export; returns the final validation
    loss (for sweeps)."""
    from latentaudio.data.datamodule import LatentDataModule

    init = None
    if cfg.app in ("finetune", "distill"):
        bundle, base = check_base_config(cfg)
    else:
        bundle, base = check_diffusion_config(cfg), None
        init = load_init_bundle(cfg, bundle) if cfg.get("init") else None
    save_resolved_config(cfg)
    latents = resolve_latents(cfg, bundle)
    # after encoding, so the initial weights do not depend on whether the latents were cached;
    # the same on every rank (SeedEachRank varies the draws)
    seed_run(cfg.seed)
    labels = None
    if base is not None:  # the base's label ids first, then (fine-tuning) the labels it has not seen
        known = list(base.meta.get("labels") or [])
        labels = known
        if cfg.app == "finetune":
            labels = known + [
                name for name in read_manifest(latents).get("labels") or [] if name not in known
            ]
        if not base.config["conditioner"].get("num_labels"):
            labels = []
    d = cfg.data
    datamodule = LatentDataModule(
        latents=latents,
        crop_frames=d.crop_frames or ((base or init).meta["crop_frames"] if (base or init) else None),
        batch_size=d.batch_size,
        val_fraction=d.val_fraction,
        split_seed=d.split_seed,
        expected_vae_hash=bundle.hash,
        num_workers=d.num_workers,
        pin_memory=d.pin_memory,
        persistent_workers=d.persistent_workers,
        prefetch_factor=d.prefetch_factor,
        drop_last=d.drop_last,
        labels=labels,
        pack=d.get("pack", 0.0),
    )
    if base is None and cfg.conditioning.get("phonemes"):
        datamodule.setup()
        if not datamodule.train_set.has_phonemes:
            raise ConfigError(
                f"conditioning.phonemes=true, but no training clip of {cfg.data.root} has timed phonemes: "
                "give a metadata.csv with a phonemes column ([[ipa, start_s, end_s], ...], as "
                "make demo-speech-data writes), or set conditioning.phonemes=false"
            )
    # a network that learnt on latents at one scale keeps that scale: the base's, or the init's
    statistics = (base or init).meta["latent_statistics"] if (base or init) else datamodule.statistics
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path:
        check_checkpoint_matches(ckpt_path, bundle, statistics, base)
    latent = {
        "vae_hash": bundle.hash,
        "vae_path": str(bundle.path),
        "sample_rate": bundle.meta["sample_rate"],
        "hop": bundle.meta["hop"],
        "latent_dim": bundle.meta["latent_dim"],
        "mean": statistics["mean"],
        "std": statistics["std"],
        "crop_frames": datamodule.hparams.crop_frames,
    }
    common = dict(latent=latent, **training_arguments(cfg))
    if init is not None:
        module = continue_module(cfg, init, common)
    elif base is None:
        module = diffusion_module(cfg, datamodule, common)
    elif cfg.app == "finetune":
        module = finetune_module(cfg, base, datamodule.labels, common)
    else:
        module = distill_module(cfg, base, common)
    return fit(cfg, module, datamodule, "val/loss", ckpt_path)


def diffusion_module(cfg: DictConfig, datamodule, common: dict):
    from latentaudio.dit.training import DiTTraining

    c = cfg.conditioning
    labels = datamodule.labels if c.labels else []
    latent = common["latent"]
    return DiTTraining(
        dit=plain(cfg.dit),
        conditioner={
            "global_dim": c.global_dim,
            "cross_dim": c.cross_dim,
            "timing": c.timing,
            "num_labels": len(labels),
            "text": c.text,
            "text_path": c.text_path,
            "cfg_dropout": plain(c.cfg_dropout),
            "max_seconds": c.max_seconds,
            "label_tokens": bool(c.label_tokens and labels),
            "tempo": bool(c.get("tempo", False)),
            "tempo_grid": bool(c.get("tempo_grid", False)),
            "frame_rate": latent["sample_rate"] / latent["hop"] if c.get("tempo_grid") else 0.0,
            "key": bool(c.get("key", False)),
            "key_encoding": str(c.get("key_encoding", "embedding")),
            "phonemes": bool(c.get("phonemes", False)),
            "phoneme_dim": int(c.get("phoneme_dim", 64)),
            "phoneme_symbols": len(SymbolVocabulary()) if c.get("phonemes") else 0,
            "voice": bool(c.get("voice", False)),
            "voice_latent_dim": int(latent["latent_dim"]) if c.get("voice") else 0,
        },
        objective=plain(cfg.objective),
        labels=labels,
        sampling=resolve_sampling(cfg.objective.name, plain(cfg.sampling)),
        aligned=plain(cfg.aligned) if cfg.get("aligned") else None,
        **common,
    )


def load_init_bundle(cfg: DictConfig, vae: Bundle) -> Bundle:
    """The DiT bundle ``init=`` names, checked against the VAE bundle."""
    init = load_bundle(cfg.init, kind="dit")
    check_same_vae(
        init.meta["vae_hash"],
        vae.hash,
        f"the DiT bundle {init.path} (init=)",
        f"pass vae= the VAE bundle it belongs to (make import-sat writes it beside the DiT), not {vae.path}",
    )
    if init.meta.get("aligned", {}).get("enabled") or init.config["conditioner"].get("num_labels"):
        raise ConfigError(
            f"init={init.path}: continuing a DiT with labels or aligned inputs is not supported; use make finetune"
        )
    return init


def continue_module(cfg: DictConfig, init: Bundle, common: dict):
    """Full training that starts from the weights of the DiT bundle ``init`` (every weight trains)."""
    from latentaudio.dit.training import DiTTraining

    meta = init.meta
    objective = {**plain(cfg.objective), "name": meta["objective"]["name"]}
    log.info("continuing %s (%s objective) from %s", init.hash, objective["name"], init.path)
    return DiTTraining(
        dit=init.config["dit"],
        conditioner=init.config["conditioner"],
        objective=objective,
        labels=[],
        sampling=meta.get("sampling") or {},
        init={"path": str(init.path), "hash": init.hash},
        **common,
    )


def finetune_module(cfg: DictConfig, base: Bundle, labels: list[str], common: dict):
    """The DiT training module on the base bundle's network, conditions and objective, with adapters."""
    from latentaudio.dit.training import DiTTraining

    known = list(base.meta.get("labels") or [])
    new_labels = labels[len(known) :]
    if new_labels:
        log.info("new labels, trained with the adapter: %s", ", ".join(new_labels))
    meta = base.meta
    aligned = meta.get("aligned") or {}
    return DiTTraining(
        dit=base.config["dit"],
        conditioner=base.config["conditioner"],
        objective=meta["objective"],
        labels=labels,
        sampling=meta.get("sampling") or {},
        aligned=aligned if aligned.get("enabled") else None,
        finetune={
            "base_path": str(base.path),
            "base_hash": base.hash,
            "base_labels": len(known),
            "lora": {**plain(cfg.lora), "labels": new_labels},
        },
        **common,
    )


def distill_module(cfg: DictConfig, base: Bundle, common: dict):
    """The distillation module: the base bundle's network, conditions and objective, as student and teacher."""
    from latentaudio.dit.distill import DistillTraining

    meta = base.meta
    sampling = meta.get("sampling") or {}
    d = cfg.distill
    return DistillTraining(
        dit=base.config["dit"],
        conditioner=base.config["conditioner"],
        objective=meta["objective"],
        labels=list(meta.get("labels") or []),
        sampling=sampling,
        distill={
            "base_path": str(base.path),
            "base_hash": base.hash,
            "method": d.method,
            "rounds": list(d.rounds),
            "guidance_steps": d.guidance_steps,
            "guidance_times": d.guidance_times,
            "steps_per_round": d.steps_per_round,
            "cfg_scale": d.cfg_scale if d.cfg_scale is not None else sampling.get("cfg_scale", 1.0),
            "cfg_rescale": d.cfg_rescale,
        },
        **common,
    )


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train_diffusion")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="finetune")
def finetune(cfg: DictConfig) -> float | None:
    return train(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="distill")
def distill(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
