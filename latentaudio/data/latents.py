"""Latent shards: a folder of audio encoded once by a VAE, for training the second stage.

Layout of a latent folder::

    manifest.json               format, VAE hash, rate, hop, shards, skipped files, statistics
    shard-00000.safetensors     tensors ``latents`` (latent_dim, frames) float32 and
                                ``offsets`` (clips + 1,) int64; header metadata ``clips``
                                (JSON: path, start, duration, frames, offset, caption, label)

A shard holds the latents of many clips back to back, so a folder of 100k short files is
a few hundred files on disk, not 100k. A shard closes at the first file boundary at or past
``shard_frames`` frames; all clips of one source file sit in one shard, so "is this file
done?" has a yes-or-no answer when resuming.

Latents are stored as float32: they are the DiT's training target, so storage precision is
target precision. float16 would halve the size but round to 1 part in 2048 and overflow
past 65504, and posterior means of a VAE trained with a small KL weight are not guaranteed
to stay small. At 64 channels and 21.5 frames/s (SAO) float32 costs 5.5 kB per second of
audio, about 20 GB per 1000 hours.

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
from torch.utils.data import Dataset
from tqdm import tqdm

from latentaudio.audio import AudioDecodeError, read_audio
from latentaudio.data.dataset import split_of
from latentaudio.data.scan import AudioFile, printable
from latentaudio.vae.chunked import encode_chunked

log = logging.getLogger(__name__)

FORMAT = "latentaudio-latents"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_PATTERN = "shard-{:05d}.safetensors"


class LatentFolderError(ValueError):
    """A folder that is not a (complete) latent-shard folder; the message says what to do."""


class LatentMismatchError(ValueError):
    """Latents made by another VAE than the one in use; the message names both hashes."""


# ----------------------------------------------------------------------------- writing


def encode_folder(
    vae: torch.nn.Module,
    vae_hash: str,
    sample_rate: int,
    root: str | os.PathLike,
    files: list[AudioFile],
    output_dir: str | os.PathLike,
    metadata: dict[str, dict] | None = None,
    chunk_seconds: float = 30.0,
    shard_frames: int = 2**18,
    progress: bool = True,
    overlap_frames: int = 64,
) -> dict:
    """Encode whole ``files`` (relative to ``root``) into shards under ``output_dir``; returns the manifest.

    Audio is converted to ``sample_rate`` and the VAE's channel count; files longer than
    ``chunk_seconds`` go through the encoder in overlapping chunks of that length
    (``overlap_frames`` latent frames of overlap: more than twice the encoder's receptive
    field for the shipped VAE sizes, so chunking changes nothing but float rounding).
    The encoder's memory is bounded by the chunk length; the decoded audio of one file is
    still held whole (float32: 10 minutes of 44.1 kHz stereo take 212 MB).
    Rerunning on the same ``output_dir`` skips files already in finished shards; files that
    fail to decode or give non-finite latents are skipped with a warning and listed under
    ``skipped`` (and retried by a rerun).
    """
    root, output_dir = Path(root), Path(output_dir)
    metadata = metadata or {}
    hop, latent_dim, channels = int(vae.hop), int(vae.latent_dim), int(vae.channels)
    device = next(vae.parameters()).device
    chunk_frames = max(round(chunk_seconds * sample_rate / hop), 2 * overlap_frames, 1)
    manifest = _start_or_resume(output_dir, vae_hash, sample_rate, hop, latent_dim, channels)
    done = {path for shard in manifest["shards"] for path in shard["files"]}
    todo = [f for f in files if f.path not in done]
    if done:
        log.info("resuming %s: %d files already encoded, %d to go", output_dir, len(done), len(todo))
    manifest["skipped"] = []
    manifest["complete"] = False
    manifest.pop("statistics", None)
    _write_json_atomic(output_dir / MANIFEST, manifest)

    pending: list[torch.Tensor] = []  # (latent_dim, frames) per clip
    clips: list[dict] = []
    pending_frames = 0
    vae.eval()
    with torch.inference_mode():
        for entry in tqdm(todo, desc="encoding", unit="file", disable=not progress):
            path = root / entry.path
            try:
                audio, _ = read_audio(path, sample_rate=sample_rate, channels=channels)  # (C, T)
                if not torch.isfinite(audio).all():
                    raise AudioDecodeError(path, "holds NaN or Inf samples")
            except AudioDecodeError as error:
                _skip(manifest, entry.path, path, error.reason)
                continue
            latents = encode_chunked(vae, audio[None].to(device), chunk_frames, overlap_frames)
            latents = latents[0].to("cpu", torch.float32)  # (latent_dim, F)
            if not torch.isfinite(latents).all():
                _skip(manifest, entry.path, path, "the VAE gave non-finite latents")
                continue
            meta = metadata.get(entry.path, {})
            label = meta.get("label")
            clips.append(
                {
                    "path": entry.path,
                    "start": 0.0,
                    "duration": entry.seconds,
                    "frames": latents.shape[-1],
                    "offset": pending_frames,
                    "caption": str(meta.get("caption") or ""),
                    "label": "" if label in (None, "") else str(label),
                }
            )
            pending.append(latents)
            pending_frames += latents.shape[-1]
            if pending_frames >= shard_frames:
                _finish_shard(output_dir, manifest, pending, clips)
                pending, clips, pending_frames = [], [], 0
    if clips:
        _finish_shard(output_dir, manifest, pending, clips)
    manifest["statistics"] = _merge_statistics([s["statistics"] for s in manifest["shards"]], latent_dim)
    manifest["labels"] = sorted({label for shard in manifest["shards"] for label in shard["labels"]})
    manifest["complete"] = True
    _write_json_atomic(output_dir / MANIFEST, manifest)
    return manifest


def _start_or_resume(
    output_dir: Path, vae_hash: str, sample_rate: int, hop: int, latent_dim: int, channels: int
) -> dict:
    """The manifest to extend: the folder's own (after checks) or a fresh one."""
    if (output_dir / MANIFEST).exists():
        manifest = _load_manifest(output_dir)
        if manifest["vae_hash"] != vae_hash:
            raise LatentMismatchError(
                f"{output_dir} holds latents of VAE {manifest['vae_hash']}, not of this VAE {vae_hash}: "
                "use another output folder (or delete this one)"
            )
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
    return manifest


def _discard_unfinished(output_dir: Path, finished: set[str]) -> None:
    """Remove temporaries and shards the manifest does not list (a run killed mid-shard)."""
    for candidate in output_dir.glob("shard-*.safetensors*"):
        if candidate.name not in finished:
            log.info("discarding unfinished %s", printable(candidate))
            candidate.unlink()
    for candidate in output_dir.glob(f".{MANIFEST}.tmp*"):
        candidate.unlink()


def _skip(manifest: dict, relative: str, path: Path, reason: str) -> None:
    log.warning("skipping %s: %s", printable(path), reason)
    manifest["skipped"].append({"path": relative, "reason": reason})


def _finish_shard(output_dir: Path, manifest: dict, pending: list[torch.Tensor], clips: list[dict]) -> None:
    name = SHARD_PATTERN.format(len(manifest["shards"]))
    latents = torch.cat(pending, dim=-1).contiguous()  # (latent_dim, frames)
    offsets = torch.tensor([c["offset"] for c in clips] + [latents.shape[-1]], dtype=torch.int64)
    _write_shard(output_dir / name, latents, offsets, clips)
    frames = int(latents.shape[-1])
    seconds = sum(c["duration"] for c in clips)  # one clip per whole file
    manifest["shards"].append(
        {
            "name": name,
            "frames": frames,
            "clips": len(clips),
            "files": sorted({c["path"] for c in clips}),
            "labels": sorted({c["label"] for c in clips if c["label"]}),
            "statistics": _shard_statistics(latents),
        }
    )
    manifest["frames"] += frames
    manifest["seconds"] += seconds
    _write_json_atomic(output_dir / MANIFEST, manifest)


def _write_shard(path: Path, latents: torch.Tensor, offsets: torch.Tensor, clips: list[dict]) -> None:
    temporary = path.with_name(f"{path.name}.tmp{os.getpid()}")
    save_file(
        {"latents": latents, "offsets": offsets},
        str(temporary),
        metadata={"format": FORMAT, "clips": json.dumps(clips)},
    )
    _replace(temporary, path)


def _write_json_atomic(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1))
    _replace(temporary, path)


def _replace(temporary: Path, path: Path) -> None:
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# ----------------------------------------------------------------------------- statistics


def _shard_statistics(latents: torch.Tensor) -> dict:
    """Count, mean and sum of squared deviations per channel, two-pass in float64."""
    x = latents.double()  # (latent_dim, frames)
    mean = x.mean(dim=-1)
    m2 = (x - mean[:, None]).square().sum(dim=-1)
    return {"count": int(x.shape[-1]), "mean": mean.tolist(), "m2": m2.tolist()}


def _merge_statistics(parts: list[dict], latent_dim: int) -> dict:
    """Per-channel mean and (population) std over all frames: Chan et al.'s pairwise merge."""
    count = 0
    mean = torch.zeros(latent_dim, dtype=torch.float64)
    m2 = torch.zeros(latent_dim, dtype=torch.float64)
    for part in parts:
        n = part["count"]
        part_mean = torch.tensor(part["mean"], dtype=torch.float64)
        delta = part_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + torch.tensor(part["m2"], dtype=torch.float64) + delta.square() * (count * n / total)
        count = total
    std = (m2 / count).sqrt() if count else torch.full((latent_dim,), float("nan"), dtype=torch.float64)
    return {"frames": count, "mean": mean.tolist(), "std": std.tolist()}


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


def split_latent_paths(manifest: dict, val_fraction: float, seed: int = 0) -> tuple[set[str], set[str]]:
    """(train paths, validation paths), split by a hash of each source path like the audio split.

    A small folder whose hash split leaves validation empty holds out one file instead.
    """
    paths = sorted({path for shard in manifest["shards"] for path in shard["files"]})
    train = [p for p in paths if split_of(p, val_fraction, seed) == "train"]
    val = [p for p in paths if split_of(p, val_fraction, seed) == "val"]
    if not val and len(train) > 1 and val_fraction > 0:
        val = [train.pop()]
    return set(train), set(val)


class LatentDataset(Dataset):
    """Crops of ``crop_frames`` latent frames, one item per clip of a latent folder.

    Every shard is loaded into memory at construction: fine up to a few GB of latents
    (about 400 h of SAO-size latents); larger sets need memory-mapped shards.
    Training crops start at random; validation crops (``random_crop=False``) are the middle
    of each clip. Shorter clips are zero-padded; ``padding_mask`` is True on real frames.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        crop_frames: int,
        random_crop: bool = True,
        expected_vae_hash: str | None = None,
        labels: list[str] | None = None,
        paths: set[str] | None = None,
    ):
        if crop_frames < 1:
            raise ValueError(f"crop_frames must be at least 1, got {crop_frames}")
        self.directory = Path(directory).expanduser()
        manifest = read_manifest(self.directory)
        if expected_vae_hash is not None and manifest["vae_hash"] != expected_vae_hash:
            raise LatentMismatchError(
                f"{self.directory} holds latents of VAE {manifest['vae_hash']}, but the VAE in use is "
                f"{expected_vae_hash}: re-encode the dataset with this VAE, or use the VAE that made them"
            )
        self.manifest = manifest
        self.vae_hash: str = manifest["vae_hash"]
        self.sample_rate: int = manifest["sample_rate"]
        self.hop: int = manifest["hop"]
        self.latent_dim: int = manifest["latent_dim"]
        self.crop_frames = crop_frames
        self.random_crop = random_crop
        self.vocabulary: list[str] = list(manifest.get("labels", []))  # sorted distinct labels found
        self.labels = list(labels) if labels is not None else self.vocabulary
        self.label_index = {name: i for i, name in enumerate(self.labels)}
        statistics = manifest["statistics"]
        self.statistics = {
            "mean": torch.tensor(statistics["mean"], dtype=torch.float32),
            "std": torch.tensor(statistics["std"], dtype=torch.float32),
        }
        self.shards: list[torch.Tensor] = []
        self.clips: list[tuple[int, dict]] = []  # (shard index, clip record)
        for shard in manifest["shards"]:
            if paths is not None and not paths.intersection(shard["files"]):
                continue
            latents, clips = _read_shard(self.directory / shard["name"])
            self.shards.append(latents)
            self.clips.extend((len(self.shards) - 1, c) for c in clips if paths is None or c["path"] in paths)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        shard, clip = self.clips[index]
        frames = clip["frames"]
        spare = max(frames - self.crop_frames, 0)
        if self.random_crop:
            crop_start = int(torch.randint(0, spare + 1, ()).item())
        else:
            crop_start = spare // 2
        valid = min(frames, self.crop_frames)
        begin = clip["offset"] + crop_start
        latents = self.shards[shard][:, begin : begin + valid]  # (latent_dim, valid)
        if valid < self.crop_frames:
            latents = torch.nn.functional.pad(latents, (0, self.crop_frames - valid))
        label = clip["label"]
        return {
            "latents": latents.float().contiguous(),  # (latent_dim, crop_frames)
            "padding_mask": torch.arange(self.crop_frames) < valid,  # (crop_frames,)
            "seconds_start": clip["start"] + crop_start * self.hop / self.sample_rate,
            "seconds_total": clip["duration"],
            "caption": clip["caption"],
            "label": self.label_index.get(label, -1) if label else -1,
            "path": clip["path"],
        }


def _read_shard(path: Path) -> tuple[torch.Tensor, list[dict]]:
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
