"""The on-disk format of a latent folder: shards of latents and the manifest that lists them.

Layout::

    manifest.json               format, VAE hash, rate, hop, shards, skipped files, statistics
    shard-00000.safetensors     tensors ``latents`` (latent_dim, frames) float32 and
                                ``offsets`` (clips + 1,) int64; header metadata ``clips``
                                (JSON: path, start, duration, frames, offset, caption, label, bpm, key)

A shard holds the latents of many clips back to back, so a folder of 100k short files is
a few hundred files on disk, not 100k. All clips of one source file sit in one shard, so
"is this file done?" has a yes-or-no answer when resuming.

Latents are stored as float32: they are the DiT's training target, so storage precision is
target precision. float16 would round to 1 part in 2048 and overflow past 65504, and
posterior means of a VAE trained with a small KL weight are not guaranteed to stay small.
At 64 channels and 21.5 frames/s (SAO) float32 costs 5.5 kB per second of audio, about
20 GB per 1000 hours.

Every file is written under a temporary name and renamed, and the manifest is rewritten
after every finished shard: a killed run leaves finished shards, a manifest that lists
exactly those, and perhaps a stray temporary or unlisted shard, which the next run discards
and redoes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from latentaudio.bundle import check_same_vae
from latentaudio.data.scan import printable
from latentaudio.data.statistics import merge_statistics, shard_statistics
from latentaudio.files import TEMPORARY, atomic_write, stale_temporaries

log = logging.getLogger(__name__)

FORMAT = "latentaudio-latents"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_PATTERN = "shard-{:05d}.safetensors"


class LatentFolderError(ValueError):
    """A folder that is not a (complete) latent-shard folder; the message says what to do."""


class LatentMismatchError(ValueError):
    """Latents made by another VAE than the one in use; the message names both hashes."""


ENCODE_AGAIN = (
    "encode the audio with this VAE into another output folder (make encode-dataset), or use the VAE "
    "bundle that made them"
)


# ----------------------------------------------------------------------------- writing


def start_or_resume(
    output_dir: Path, vae_hash: str, sample_rate: int, hop: int, latent_dim: int, channels: int
) -> dict:
    """The manifest to extend, marked unfinished: the folder's own (after checks) or a fresh one."""
    if (output_dir / MANIFEST).exists():
        manifest = _load_manifest(output_dir)
        check_same_vae(manifest["vae_hash"], vae_hash, f"the latents in {output_dir}", ENCODE_AGAIN)
        found = (manifest["sample_rate"], manifest["hop"], manifest["latent_dim"], manifest["channels"])
        if found != (sample_rate, hop, latent_dim, channels):
            raise LatentMismatchError(
                f"{output_dir} was encoded at (sample_rate, hop, latent_dim, channels)={found}, "
                f"now {(sample_rate, hop, latent_dim, channels)}: use another output folder"
            )
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "vae_hash": vae_hash,
            "sample_rate": int(sample_rate),
            "hop": hop,
            "latent_dim": latent_dim,
            "channels": channels,
            "dtype": "float32",
            "shards": [],
            "skipped": [],
            "frames": 0,
            "seconds": 0.0,
            "complete": False,
        }
    _discard_unfinished(output_dir, {shard["name"] for shard in manifest["shards"]})
    manifest["skipped"] = []
    manifest["complete"] = False
    manifest.pop("statistics", None)
    _write_json_atomic(output_dir / MANIFEST, manifest)
    return manifest


def append_shard(output_dir: Path, manifest: dict, pending: list[torch.Tensor], clips: list[dict]) -> None:
    """Write the clips' latents (each (latent_dim, frames)) as the next shard and list it."""
    name = SHARD_PATTERN.format(len(manifest["shards"]))
    latents = torch.cat(pending, dim=-1).contiguous()  # (latent_dim, frames)
    offsets = torch.tensor([c["offset"] for c in clips] + [latents.shape[-1]], dtype=torch.int64)
    write_shard(output_dir / name, latents, offsets, clips)
    frames = int(latents.shape[-1])
    manifest["shards"].append(
        {
            "name": name,
            "frames": frames,
            "clips": len(clips),
            "files": sorted({c["path"] for c in clips}),
            "labels": sorted({c["label"] for c in clips if c["label"]}),
            "statistics": shard_statistics(latents),
        }
    )
    manifest["frames"] += frames
    manifest["seconds"] += sum(c["duration"] for c in clips)  # one clip per whole file
    _write_json_atomic(output_dir / MANIFEST, manifest)


def finish(output_dir: Path, manifest: dict) -> None:
    """Merge the shards' statistics and labels and mark the folder complete."""
    manifest["statistics"] = merge_statistics(
        [s["statistics"] for s in manifest["shards"]], manifest["latent_dim"]
    )
    manifest["labels"] = sorted({label for shard in manifest["shards"] for label in shard["labels"]})
    manifest["complete"] = True
    _write_json_atomic(output_dir / MANIFEST, manifest)


def write_shard(path: Path, latents: torch.Tensor, offsets: torch.Tensor, clips: list[dict]) -> None:
    with atomic_write(path) as temporary:
        save_file(
            {"latents": latents, "offsets": offsets},
            str(temporary),
            metadata={"format": FORMAT, "clips": json.dumps(clips)},
        )


def _discard_unfinished(output_dir: Path, finished: set[str]) -> None:
    """Remove temporaries and shards the manifest does not list (a run killed mid-shard)."""
    for candidate in output_dir.glob("shard-*.safetensors"):
        if candidate.name not in finished:
            log.info("discarding unfinished %s", printable(candidate))
            candidate.unlink()
    for candidate in [
        *output_dir.glob(f".shard-*.safetensors{TEMPORARY}*"),
        *stale_temporaries(output_dir / MANIFEST),
    ]:
        candidate.unlink()


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(data, indent=1))


# ----------------------------------------------------------------------------- reading


def read_manifest(directory: str | os.PathLike, require_complete: bool = True) -> dict:
    """The manifest of a latent folder; refuses folders that are not one, or not finished."""
    directory = Path(directory).expanduser()
    manifest = _load_manifest(directory)
    if require_complete and not manifest.get("complete"):
        raise LatentFolderError(
            f"{directory} is an unfinished latent folder ({len(manifest['shards'])} shards so far): "
            "rerun encode_dataset with output= pointing at it to finish it"
        )
    return manifest


def manifest_files(manifest: dict) -> list[str]:
    """The source files (relative paths, sorted) whose latents the folder holds."""
    return sorted({path for shard in manifest["shards"] for path in shard["files"]})


def read_shard(path: Path) -> tuple[torch.Tensor, list[dict]]:
    """(latents (latent_dim, frames), clip records) of one shard."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(path))
        clips = json.loads(header["clips"])
    except Exception as error:  # safetensors raises its own error type for damaged files
        raise LatentFolderError(
            f"shard {path} is missing or damaged ({error}): re-encode the dataset into a new folder"
        ) from error
    latents = tensors["latents"]
    if latents.shape[-1] != sum(c["frames"] for c in clips):
        raise LatentFolderError(f"shard {path} does not match its clip list: re-encode the dataset")
    return latents, clips


def _load_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise LatentFolderError(
            f"latent folder {directory} does not exist: make one with `latentaudio-encode-dataset vae=...`"
        )
    if not path.exists():
        raise LatentFolderError(
            f"{directory} is not a latent folder (no {MANIFEST}): point at the output of encode_dataset"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise LatentFolderError(f"{path} is unreadable: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise LatentFolderError(f"{path} does not describe a latentaudio latent folder")
    if manifest.get("version") != FORMAT_VERSION:
        raise LatentFolderError(
            f"{path} has format version {manifest.get('version')}, this code reads version "
            f"{FORMAT_VERSION}: re-encode the dataset"
        )
    return manifest
