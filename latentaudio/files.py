"""Files and folders that are never half-written: write beside the target, fsync, rename over it."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY = ".tmp-"  # a write in progress of ``name`` is ``.<name>.tmp-<random>`` beside it


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write a file or a folder there.

    When the block ends without an error, what it wrote is fsynced and renamed over ``path``,
    so a reader sees the old version or the new one, never part of one. An error removes the
    temporary; a kill leaves it behind under a name ``stale_temporaries(path)`` lists. Every
    write has its own temporary, so concurrent writers of one path never see each other's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}{TEMPORARY}{uuid.uuid4().hex[:8]}"
    try:
        yield temporary
        _fsync_written(temporary)
        _replace(temporary, path)
    finally:
        _remove(temporary)
    _fsync_folder(path.parent)


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporaries of writes of ``path`` that never finished: delete them only when no other
    process may be writing ``path`` at the same time."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}{TEMPORARY}*"))


def _replace(temporary: Path, path: Path) -> None:
    if temporary.is_dir() and path.is_dir():
        # a folder cannot be renamed over a non-empty one: move the old one aside first
        retired = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, retired)
        os.replace(temporary, path)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(temporary, path)


def _fsync_written(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"nothing was written to {path}, the temporary of an atomic write")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    if path.is_dir():
        _fsync_folder(path)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
