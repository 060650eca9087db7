"""Find usable audio files under a folder, once.

A scan probes every file (format, rate, channels, length) and, for short files, checks
the samples themselves: non-finite, silent or too short files are reported with one
line each and left out. Results are cached per folder, keyed by each file's size and
modification time, so a folder of 100k files is probed once, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentaudio.audio import (
    AUDIO_EXTENSIONS,
    AudioDecodeError,
    AudioInfo,
    audio_info,
    is_audio_file,
    open_sound_file,
)
from latentaudio.files import atomic_write

log = logging.getLogger(__name__)

CACHE_VERSION = 2
CONTENT_CHECK_BLOCK = 1 << 18  # frames decoded at a time when checking samples


@dataclass(frozen=True, kw_only=True)
class AudioFile(AudioInfo):
    """One usable file: ``path`` is relative to the scanned root."""

    path: str


@dataclass
class ScanResult:
    root: Path
    files: list[AudioFile]
    skipped: list[tuple[str, str]]  # (relative path, reason)
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)  # path: (size, mtime_ns), usable files

    def summary(self) -> str:
        hours = sum(f.seconds for f in self.files) / 3600
        return (
            f"{self.root}: {len(self.files)} usable audio files ({hours:.2f} h), {len(self.skipped)} skipped"
        )


class DataFolderError(ValueError):
    """The data folder is missing, empty or holds no usable audio."""


def printable(path: str | os.PathLike) -> str:
    """A path safe to print even when its name is not valid UTF-8."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def check_data_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DataFolderError(
            f"data folder {root} does not exist: set data.root=<a folder of audio files> "
            "(or run `make demo-data` for the built-in demo dataset)"
        )
    if not root.is_dir():
        raise DataFolderError(
            f"data.root={root} is a file, not a folder: point it at a folder of audio files"
        )
    return root


def scan_audio_folder(
    root: str | os.PathLike,
    min_seconds: float = 0.05,
    check_content: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ScanResult:
    """Probe every audio file under ``root`` (recursively); skip the unusable ones with a warning."""
    root = check_data_root(root)
    candidates = sorted(_walk_audio(root))
    if not candidates:
        raise DataFolderError(
            f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}: point data.root at a folder of audio"
        )
    cache_path = _cache_path(root, cache_dir)
    cache = _read_cache(cache_path)
    entries: dict[str, dict] = {}
    files: list[AudioFile] = []
    skipped: list[tuple[str, str]] = []
    stamps: dict[str, tuple[int, int]] = {}
    iterator = tqdm(
        candidates, desc="scanning audio", unit="file", disable=not progress or len(candidates) < 200
    )
    for relative in iterator:
        full = root / relative
        try:
            stat = full.stat()
        except OSError as error:
            skipped.append((relative, f"cannot stat: {error.strerror}"))
            continue
        key = [stat.st_size, stat.st_mtime_ns, min_seconds, check_content]
        entry = cache.get(relative)
        if entry is None or entry.get("key") != key:
            entry = {"key": key, **_probe(full, min_seconds, check_content)}
        entries[relative] = entry
        if entry.get("skip"):
            skipped.append((relative, entry["skip"]))
        else:
            files.append(
                AudioFile(
                    path=relative,
                    sample_rate=entry["sample_rate"],
                    channels=entry["channels"],
                    frames=entry["frames"],
                )
            )
            stamps[relative] = (stat.st_size, stat.st_mtime_ns)
    for relative, reason in skipped:
        log.warning("skipping %s: %s", printable(root / relative), reason)
    _write_cache(cache_path, entries)
    result = ScanResult(root, files, skipped, stamps)
    log.info(result.summary())
    if not files:
        raise DataFolderError(
            f"none of the {len(candidates)} audio files under {root} is usable (see the warnings above)"
        )
    return result


def _walk_audio(root: Path):
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in names:
            if not name.startswith(".") and is_audio_file(name):
                yield os.path.relpath(os.path.join(directory, name), root)


def _probe(path: Path, min_seconds: float, check_content: bool) -> dict:
    try:
        info = audio_info(path)
    except AudioDecodeError as error:
        return {"skip": error.reason}
    if info.seconds < min_seconds:
        return {"skip": f"too short ({info.frames} samples, {info.seconds:.3f} s < {min_seconds} s)"}
    if check_content:
        reason = _content_problem(path)
        if reason:
            return {"skip": reason}
    return {"sample_rate": info.sample_rate, "channels": info.channels, "frames": info.frames}


def _content_problem(path: Path) -> str | None:
    """Decode the whole file in blocks: non-finite samples or pure silence make it unusable."""
    peak = 0.0
    try:
        with open_sound_file(path) as handle:
            for block in handle.blocks(blocksize=CONTENT_CHECK_BLOCK, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    return "holds NaN or Inf samples"
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
    except Exception as error:
        return f"decoding failed part-way: {error}"
    if peak < 1e-5:
        return "silent (peak below -100 dBFS)"
    return None


def _cache_path(root: Path, cache_dir: str | os.PathLike | None) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.sha1(os.fsencode(root.resolve())).hexdigest()[:16]
    return Path(cache_dir) / f"scan-{digest}.json"


def _read_cache(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if data.get("version") == CACHE_VERSION else {}


def _write_cache(path: Path | None, entries: dict) -> None:
    if path is None:
        return
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps({"version": CACHE_VERSION, "files": entries}))
