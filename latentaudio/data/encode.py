"""Encode an audio folder once with a VAE into latent shards (the format: :mod:`latentaudio.data.shards`).

:func:`encode_with_vae` encodes into a folder the caller names (the encode-dataset app);
:func:`encode_cached` into a cache folder named by the VAE and by what the scan found: every
usable file's path, size and modification time, and the metadata those files get. Adding,
removing or changing a file, or editing ``metadata.csv`` or a sidecar, gives a new folder; an
unchanged folder finds its latents again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from tqdm import tqdm

from latentaudio.audio import AudioDecodeError, read_audio
from latentaudio.bundle import Bundle
from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import AudioFile, DataFolderError, ScanResult, printable, scan_audio_folder
from latentaudio.data.shards import LatentFolderError, append_shard, finish, read_manifest, start_or_resume
from latentaudio.vae.chunked import encode_chunked

log = logging.getLogger(__name__)

# The metadata columns each clip record keeps (as strings; "" for none): conditions (caption,
# label, bpm, key) and speech (the transcript, its timed phonemes as JSON, who speaks).
KEPT_COLUMNS = ("caption", "label", "bpm", "key", "text", "phonemes", "speaker")


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
    A shard closes at the first file boundary at or past ``shard_frames`` frames.
    Rerunning on the same ``output_dir`` skips files already in finished shards; files that
    fail to decode or give non-finite latents are skipped with a warning and listed under
    ``skipped`` (and retried by a rerun).
    """
    root, output_dir = Path(root), Path(output_dir)
    metadata = metadata or {}
    hop, latent_dim, channels = int(vae.hop), int(vae.latent_dim), int(vae.channels)
    device = next(vae.parameters()).device
    chunk_frames = max(round(chunk_seconds * sample_rate / hop), 2 * overlap_frames, 1)
    manifest = start_or_resume(output_dir, vae_hash, sample_rate, hop, latent_dim, channels)
    done = {path for shard in manifest["shards"] for path in shard["files"]}
    todo = [f for f in files if f.path not in done]
    if done:
        log.info("resuming %s: %d files already encoded, %d to go", output_dir, len(done), len(todo))

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
            clips.append(
                {
                    "path": entry.path,
                    "start": 0.0,
                    "duration": entry.seconds,
                    "frames": latents.shape[-1],
                    "offset": pending_frames,
                    **{
                        name: "" if meta.get(name) in (None, "") else str(meta[name]) for name in KEPT_COLUMNS
                    },
                }
            )
            pending.append(latents)
            pending_frames += latents.shape[-1]
            if pending_frames >= shard_frames:
                append_shard(output_dir, manifest, pending, clips)
                pending, clips, pending_frames = [], [], 0
    if clips:
        append_shard(output_dir, manifest, pending, clips)
    finish(output_dir, manifest)
    return manifest


def _skip(manifest: dict, relative: str, path: Path, reason: str) -> None:
    log.warning("skipping %s: %s", printable(path), reason)
    manifest["skipped"].append({"path": relative, "reason": reason})


def encode_with_vae(
    bundle: Bundle,
    root: str | os.PathLike,
    output: str | os.PathLike,
    device: str = "cpu",
    min_seconds: float = 0.05,
    check_content: bool = True,
    cache_dir: str | os.PathLike | None = None,
    chunk_seconds: float = 30.0,
    shard_frames: int = 2**18,
    overlap_frames: int = 64,
    progress: bool = True,
) -> dict:
    """Encode the audio folder ``root`` with the VAE of ``bundle`` into shards in ``output`` (resumable).

    ``cache_dir`` keeps the scan's per-file probe results between runs.
    """
    scan = scan_audio_folder(root, min_seconds, check_content, cache_dir, progress)
    metadata = load_metadata(scan.root, [f.path for f in scan.files])
    return _encode_scan(
        bundle, scan, metadata, output, device, chunk_seconds, shard_frames, overlap_frames, progress
    )


def encode_cached(
    bundle: Bundle,
    root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    device: str = "cpu",
    min_seconds: float = 0.05,
    check_content: bool = True,
    chunk_seconds: float = 30.0,
    progress: bool = True,
) -> Path:
    """The latent folder of ``root`` under this VAE in ``cache_dir``/latents: reused when the
    folder is unchanged since it was made, encoded (or an interrupted encoding finished) when not."""
    scan = scan_audio_folder(root, min_seconds, check_content, cache_dir, progress)
    metadata = load_metadata(scan.root, [f.path for f in scan.files])
    folder = Path(cache_dir).expanduser() / "latents" / f"{bundle.hash}-{latent_cache_key(scan, metadata)}"
    try:
        read_manifest(folder)
        log.info("using the cached latents of %s in %s", scan.root, folder)
    except LatentFolderError:
        log.info("encoding %s once with the VAE; cached in %s", scan.root, folder)
        _encode_scan(bundle, scan, metadata, folder, device, chunk_seconds, progress=progress)
    return folder


def latent_cache_key(scan: ScanResult, metadata: dict[str, dict]) -> str:
    """A digest of what encoding reads: each usable file (path, size, mtime) and its metadata."""
    content = {
        "columns": KEPT_COLUMNS,  # a column kept since then: encoded again
        "files": [[f.path, *scan.stamps[f.path]] for f in scan.files],
        "metadata": [[f.path, metadata.get(f.path, {})] for f in scan.files],
    }
    text = json.dumps(content, sort_keys=True, default=str)  # ASCII: odd file names escape safely
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_scan(
    bundle: Bundle,
    scan: ScanResult,
    metadata: dict[str, dict],
    output: str | os.PathLike,
    device: str = "cpu",
    chunk_seconds: float = 30.0,
    shard_frames: int = 2**18,
    overlap_frames: int = 64,
    progress: bool = True,
) -> dict:
    vae = bundle.build("vae", device=device)
    log.info("encoding %s with VAE %s (%s) into %s", scan.root, bundle.hash, bundle.path, output)
    manifest = encode_folder(
        vae,
        bundle.hash,
        int(bundle.meta["sample_rate"]),
        scan.root,
        scan.files,
        output,
        metadata=metadata,
        chunk_seconds=chunk_seconds,
        shard_frames=shard_frames,
        overlap_frames=overlap_frames,
        progress=progress,
    )
    log_summary(manifest, output)
    if manifest["frames"] == 0:
        raise DataFolderError(f"no file under {scan.root} could be encoded (see the warnings above)")
    return manifest


def log_summary(manifest: dict, output: str | os.PathLike) -> None:
    files = sum(len(shard["files"]) for shard in manifest["shards"])
    frames_per_second = manifest["sample_rate"] / manifest["hop"]
    log.info(
        "%s: %d files encoded (%.1f s of audio, %d latent frames of %d channels at %.2f frames/s), "
        "%d skipped, %d shards",
        output,
        files,
        manifest["seconds"],
        manifest["frames"],
        manifest["latent_dim"],
        frames_per_second,
        len(manifest["skipped"]),
        len(manifest["shards"]),
    )
    for entry in manifest["skipped"]:
        log.info("skipped %s: %s", entry["path"], entry["reason"])
    statistics = manifest["statistics"]
    log.info("latent mean per channel: %s", [round(v, 4) for v in statistics["mean"]])
    log.info("latent std per channel:  %s", [round(v, 4) for v in statistics["std"]])
