"""Which files train and which validate: one rule for audio folders, latent folders and evaluation.

A file goes to validation when a hash of its path (and ``seed``) falls below ``val_fraction``,
so adding files never moves the others. A folder so small that the hash puts nothing in
validation holds out one file instead: the one whose hash sits lowest, the first that a larger
``val_fraction`` would take.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from latentaudio.data.scan import DataFolderError, scan_audio_folder


def check_val_fraction(val_fraction: float) -> None:
    if not 0 <= val_fraction < 1:
        raise ValueError(
            f"data.val_fraction={val_fraction}: give the fraction of files held out for validation, "
            "at least 0 and below 1"
        )


def split(paths: Iterable[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """(training paths, validation paths), each sorted; every caller that splits uses this."""
    check_val_fraction(val_fraction)
    paths = sorted(set(paths))
    train = [p for p in paths if _position(p, seed) >= val_fraction]
    val = [p for p in paths if _position(p, seed) < val_fraction]
    if not train and val:
        raise DataFolderError(
            f"all {len(val)} files fell in the validation split: lower data.val_fraction={val_fraction}"
        )
    if not val and len(train) > 1 and val_fraction > 0:
        nearest = min(train, key=lambda p: _position(p, seed))
        train.remove(nearest)
        val = [nearest]
    return train, val


def held_out_files(
    root: str | os.PathLike,
    val_fraction: float = 0.05,
    seed: int = 0,
    min_seconds: float = 0.05,
    check_content: bool = True,
) -> list[str]:
    """The usable files under ``root`` (relative paths, sorted) that a run with these ``data.*``
    settings held out from training: what to evaluate on."""
    files = scan_audio_folder(root, min_seconds, check_content, progress=False).files
    return split([f.path for f in files], val_fraction, seed)[1]


def _position(path: str, seed: int) -> float:
    """Where the path's hash falls in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{path}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
